"""What every checkpoint needs besides the trainer's own objects: all random streams, and a write
that a crash cannot leave half done. Used by the Gymnasium runs and by the language-model GRPO
trainer alike."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def random_states(generator: torch.Generator) -> dict:
    """The state of the trainer's generator and of torch's, NumPy's and Python's global ones."""
    return {
        "generator": generator.get_state(),
        "generator_device": generator.device.type,
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
    }


def restore_random_states(state: dict, generator: torch.Generator, reseed: int = 0) -> bool:
    """Put back what :func:`random_states` saved, so that sampling continues exactly; return
    whether it could. A generator of another device type (a run with ``device='auto'`` saved
    on a CPU machine and resumed on a GPU one) cannot take the saved state: it is seeded with
    ``reseed`` instead, so the resume is still repeatable, and False is returned."""
    exact = state.get("generator_device", "cpu") == generator.device.type
    if exact:
        generator.set_state(state["generator"])
    else:
        generator.manual_seed(reseed)
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    return exact


def write_atomically(path: Path, write) -> None:
    """``write(temporary)`` then rename it to ``path``: a crash never leaves a half-written file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    os.replace(temporary, path)


def save(state: dict, path: Path) -> None:
    """``torch.save`` through :func:`write_atomically`."""
    write_atomically(path, lambda temporary: torch.save(state, temporary))
