"""The algorithm registry: which trainers exist, the trainer of a run directory, and resume.

from rlgrad.app.registry import module
history = module("ppo").train(module("ppo").Config(env="CartPole-v1"))
"""

from __future__ import annotations

import importlib
from pathlib import Path

from rlgrad.errors import BadInputError
from rlgrad.support import configs
from rlgrad.support.run_format import read_config

ALGORITHMS = ("ppo", "a2c", "reinforce", "dqn", "grpo", "sac", "td3", "trpo")


def module(algorithm: str):
    """The trainer module of ``algorithm``, or a ValueError listing the known ones."""
    if algorithm not in ALGORITHMS:
        raise BadInputError(
            f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        )
    return importlib.import_module(f"rlgrad.trainers.{algorithm}")


def saved_config(run_dir: str | Path):
    """The algorithm name and the Config a run directory was started with."""
    saved = read_config(run_dir)
    if saved is None:
        raise BadInputError(f"{str(run_dir)!r} is not a run directory (no config.json)")
    trainer = module(saved["algorithm"])
    return saved["algorithm"], configs.from_dict(trainer.Config, saved["config"])


def resume(run_dir: str | Path, *, checkpoint: str | Path | None = None, progress: bool = False):
    """Continue a run from its latest checkpoint (or ``checkpoint``), exactly where it stopped."""
    algorithm, config = saved_config(run_dir)
    return module(algorithm).train(
        config, run_dir, resume=True, checkpoint=checkpoint, progress=progress
    )
