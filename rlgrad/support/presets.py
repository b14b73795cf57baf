"""Tuned hyperparameters per (algorithm, environment), stored as data in ``presets.json``.

Each preset is a set of config fields that differ from the trainer's defaults, found by tuning
runs recorded in BENCHMARKS.md. ``rlgrad train`` starts from the preset when one exists.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def all_presets() -> dict[str, dict[str, dict]]:
    """``{algorithm: {env_id: {field: value}}}``."""
    text = resources.files("rlgrad.support").joinpath("presets.json").read_text()
    return {
        algorithm: {env: dict(fields) for env, fields in envs.items()}
        for algorithm, envs in json.loads(text).items()
        if not algorithm.startswith("_")
    }


def preset(algorithm: str, env_id: str) -> dict:
    """The preset fields for ``algorithm`` on ``env_id`` (empty when there is none)."""
    return dict(all_presets().get(algorithm, {}).get(env_id, {}))


def preset_config(algorithm: str, env_id: str, **overrides):
    """The trainer's Config for ``env_id``: defaults, then the preset, then ``overrides``."""
    from rlgrad.support import configs
    from rlgrad.trainers import module

    trainer = module(algorithm)
    fields = {**preset(algorithm, env_id), **overrides}
    config = trainer.Config(env=env_id)
    return configs.with_overrides(config, fields, algorithm)
