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

ALGORITHMS = ("ppo", "a2c", "reinforce", "dqn", "grpo", "sac", "td3", "crossq", "trpo")


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


def seed_run_dirs(run_dir: str | Path) -> list[Path]:
    """The run directories in a ``rlgrad train --seeds`` directory, one per seed (``seed{s}/``), in
    the order of their seeds; empty for an ordinary run directory."""
    run_dir = Path(run_dir)
    if read_config(run_dir) is not None:
        return []
    found = [d for d in run_dir.glob("seed*") if read_config(d) is not None]
    return sorted(found, key=lambda d: int(d.name[4:]) if d.name[4:].lstrip("-").isdigit() else 0)


def resume(run_dir: str | Path, *, checkpoint: str | Path | None = None, progress: bool = False):
    """Continue a run from its latest checkpoint (or ``checkpoint``), exactly where it stopped.
    A directory of many seeds trained together resumes them together: the first history is
    returned, and all of them are written."""
    seed_dirs = seed_run_dirs(run_dir)
    if seed_dirs:
        return resume_seeds(run_dir, seed_dirs, progress=progress)[0]
    algorithm, config = saved_config(run_dir)
    return module(algorithm).train(
        config, run_dir, resume=True, checkpoint=checkpoint, progress=progress
    )


def resume_seeds(run_dir: str | Path, seed_dirs: list[Path], *, progress: bool = False):
    """Continue the seeds of a ``rlgrad train --seeds`` directory together; their histories."""
    saved = [saved_config(d) for d in seed_dirs]
    algorithms = {algorithm for algorithm, _ in saved}
    if len(algorithms) != 1:
        raise BadInputError(f"{str(run_dir)!r} holds runs of {', '.join(sorted(algorithms))}")
    (algorithm,) = algorithms
    seeds = [config.seed for _, config in saved]
    return module(algorithm).train_seeds(
        saved[0][1], seeds, run_dir, resume=True, progress=progress
    )
