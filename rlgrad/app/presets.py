"""Tuned hyperparameters per (algorithm, environment), stored as data.

The shipped presets live in ``presets.json``: for each algorithm and environment, the config
fields that differ from the trainer's defaults, found with ``rlgrad tune`` on tuning seeds and
measured on other seeds (BENCHMARKS.md). ``rlgrad train`` starts from the preset when one exists.

A *preset file* holds one preset, as ``rlgrad tune`` writes it::

    {"algorithm": "ppo", "env": "CartPole-v1", "fields": {"lr": 0.003, ...}, "tuning": {...}}

and ``rlgrad train --preset FILE`` or ``rlgrad sweep --preset FILE`` start from it. A run's
``config.json`` (``{"algorithm": ..., "config": {...}}``), or the run directory itself, is
accepted as a preset file too, so a run can be repeated on other seeds.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

from rlgrad.app.registry import module
from rlgrad.errors import BadInputError
from rlgrad.support import configs
from rlgrad.support.run_format import read_config

SHIPPED, DEFAULTS = "shipped", "none"


@cache
def all_presets() -> dict[str, dict[str, dict]]:
    """``{algorithm: {env_id: {field: value}}}``."""
    text = resources.files("rlgrad.app").joinpath("presets.json").read_text()
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
    return build_config(algorithm, env_id, preset(algorithm, env_id), overrides)


def build_config(algorithm: str, env_id: str, base: dict, overrides: dict):
    """``Config(env=env_id)`` with the ``base`` fields, then ``overrides`` (strings are parsed)."""
    config = module(algorithm).Config(env=env_id)
    config = configs.with_overrides(config, base, algorithm)
    return configs.with_overrides(config, overrides, algorithm)


def read_preset_file(path: str | Path) -> tuple[str, str | None, dict]:
    """``(algorithm, env or None, fields)`` of a preset file, or of a run directory (or its
    ``config.json``), read as every tool reads one
    (:func:`rlgrad.support.run_format.read_config`)."""
    path = Path(path)
    if path.is_dir():
        saved = read_config(path)
        if saved is None:
            raise BadInputError(f"preset {str(path)!r} is a folder but not a run directory")
    elif not path.is_file():
        raise BadInputError(f"preset file {str(path)!r} does not exist")
    else:
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise BadInputError(f"preset file {str(path)!r} is not JSON ({error})") from None
    fields = saved.get("fields", saved.get("config")) if isinstance(saved, dict) else None
    if not isinstance(fields, dict) or not isinstance(saved.get("algorithm"), str):
        raise BadInputError(
            f"preset file {str(path)!r} needs an 'algorithm' and a 'fields' object "
            "(as `rlgrad tune` writes), or is a run's config.json"
        )
    module(saved["algorithm"])  # an unknown algorithm fails here, naming the known ones
    fields = dict(fields)
    env = saved.get("env", fields.get("env"))
    fields.pop("env", None)
    return saved["algorithm"], env, fields


def base_fields(algorithm: str, env_id: str, source: str) -> dict:
    """The fields a run starts from: the shipped preset (``"shipped"``), the trainer's defaults
    (``"none"``), or a preset file's fields (any other ``source`` is a path)."""
    if source == SHIPPED:
        return preset(algorithm, env_id)
    if source == DEFAULTS:
        return {}
    file_algorithm, _, fields = read_preset_file(source)
    if file_algorithm != algorithm:
        raise BadInputError(
            f"preset file {source!r} is for {file_algorithm}, not {algorithm}; "
            f"use `rlgrad ... {file_algorithm}` or another file"
        )
    return fields


def write_preset_file(path: str | Path, algorithm: str, env_id: str, fields: dict, **notes):
    """Write a preset file; ``notes`` (how it was found) go under ``"tuning"``."""
    text = json.dumps(
        {"algorithm": algorithm, "env": env_id, "fields": fields, "tuning": notes}, indent=2
    )
    Path(path).write_text(text + "\n")
    return Path(path)
