"""Classic-control tasks as batched torch environments that live on a device.

``rlgrad.envs.make("CartPole-v1", num_envs=4096, device="cuda")`` gives 4,096 copies of
Gymnasium's CartPole stepped as one batch of tensors: the same dynamics, spaces, termination,
time-limit truncation and next-step autoreset as Gymnasium 1.x (see :mod:`rlgrad.envs.base`),
checked against Gymnasium step by step in the tests.
"""

from __future__ import annotations

import torch

from rlgrad.envs.acrobot import Acrobot
from rlgrad.envs.base import Box, Discrete, TorchVectorEnv
from rlgrad.envs.cartpole import CartPole
from rlgrad.envs.mountain_car import MountainCar, MountainCarContinuous
from rlgrad.envs.pendulum import Pendulum
from rlgrad.errors import BadInputError

ENVIRONMENTS: dict[str, type[TorchVectorEnv]] = {
    env.id: env for env in (CartPole, Acrobot, MountainCar, MountainCarContinuous, Pendulum)
}


def make(
    env_id: str,
    num_envs: int = 1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    *,
    seeds: list[int] | None = None,
) -> TorchVectorEnv:
    """``num_envs`` copies of the task ``env_id`` (a Gymnasium id, e.g. ``"CartPole-v1"``); with
    ``seeds``, ``num_envs`` copies for each seed, each group on its own generator (see
    :class:`~rlgrad.envs.base.TorchVectorEnv`)."""
    if env_id not in ENVIRONMENTS:
        known = ", ".join(sorted(ENVIRONMENTS))
        raise BadInputError(f"rlgrad.envs.make: env_id must be one of {known}; got {env_id!r}")
    return ENVIRONMENTS[env_id](
        num_envs,
        device=device,
        dtype=dtype,
        seed=seed,
        max_episode_steps=max_episode_steps,
        seeds=seeds,
    )


__all__ = [
    "ENVIRONMENTS",
    "Acrobot",
    "Box",
    "CartPole",
    "Discrete",
    "MountainCar",
    "MountainCarContinuous",
    "Pendulum",
    "TorchVectorEnv",
    "make",
]
