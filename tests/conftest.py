"""Shared test settings and the helpers more than one test file uses (import them with
``from conftest import ...``; tests/ is on the path, as for ``toy_envs``)."""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, settings

from rlgrad.support import configs
from rlgrad.support.run_format import TIMING_COLUMNS, read_rows

# Derandomized so a failing property fails the same way on every run and machine; no deadline
# because 2-core CI machines stall unpredictably.
settings.register_profile(
    "rlgrad",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("RLGRAD_HYPOTHESIS_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("rlgrad")


def randn(*shape: int, seed: int = 0, requires_grad: bool = False) -> torch.Tensor:
    """Standard normal float64 draws ``[*shape]`` from a generator seeded with ``seed``."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x.requires_grad_(requires_grad)


def random_logits(mdp, seed: int, scale: float = 1.5) -> torch.Tensor:
    """Softmax-policy logits θ ``[S, A]`` for a tabular MDP: ``scale`` times N(0, 1) draws."""
    return scale * randn(mdp.num_states, mdp.num_actions, seed=seed)


def without_timing(rows: list[dict]) -> list[dict]:
    """Rows less their clock columns, which differ between two runs of the same seed."""
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def dataclasses_replace(config, **changes):
    """The config with ``changes`` applied and checked, as a command-line override would be."""
    return configs.with_overrides(config, changes, "test")


def rows_without_timing(run_dir) -> list[dict]:
    """A run's metrics.csv rows less their clock columns: what two runs of a seed share."""
    return without_timing(read_rows(run_dir))
