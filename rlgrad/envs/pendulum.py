"""Pendulum-v1 as a batch of tensors: Gymnasium's dynamics, step for step."""

from __future__ import annotations

import math

import torch

from rlgrad.envs.base import Box, TorchVectorEnv
from rlgrad.errors import BadInputError

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05  # seconds per step, semi-implicit Euler
MASS = 1.0
LENGTH = 1.0


def angle_normalize(angles: torch.Tensor) -> torch.Tensor:
    """Angles mapped to [−π, π): ((θ + π) mod 2π) − π, as Gymnasium's ``angle_normalize``."""
    return torch.remainder(angles + math.pi, 2 * math.pi) - math.pi


class Pendulum(TorchVectorEnv):
    """Swing a pendulum up and hold it upright with a torque u ∈ [−2, 2]; it never terminates
    and is truncated at 200 steps.

    State (θ, θ̇) with θ = 0 upright; observation (cos θ, sin θ, θ̇). With u clipped to [−2, 2],
    g = 10 (Gymnasium's keyword ``g``), m = l = 1 and dt = 0.05, in this order:

        r = −(normalize(θ)² + 0.1·θ̇² + 0.001·u²)          (the cost of the old state)
        θ̇' = clip(θ̇ + (3g/(2l)·sin θ + 3/(m l²)·u)·dt, −8, 8)
        θ' = θ + θ̇'·dt                                    (the new velocity moves the angle)

    Gymnasium's state is float64 and its torque float32 (the action's dtype), so it computes
    0.001·u² and 3/(m l²)·u in float32; this class does too, in both dtypes.
    """

    id = "Pendulum-v1"
    observation_space = Box((-1.0, -1.0, -MAX_SPEED), (1.0, 1.0, MAX_SPEED))
    action_space = Box((-MAX_TORQUE,), (MAX_TORQUE,))
    default_max_episode_steps = 200
    state_size = 2

    def __init__(self, *args, g: float = 10.0, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g):
            raise BadInputError(f"{self.id}: g must be a finite real number; got {g!r}")
        self.g = float(g)

    def initial_states(self, n: int) -> torch.Tensor:
        return self.uniform(n, [-math.pi, -1.0], [math.pi, 1.0])

    def transition(self, state: torch.Tensor, action: torch.Tensor):
        theta, theta_dot = state.unbind(-1)
        torque = action[:, 0].to(torch.float32).clamp(-MAX_TORQUE, MAX_TORQUE)
        torque_cost = (0.001 * torque.square()).to(state.dtype)
        cost = angle_normalize(theta).square() + 0.1 * theta_dot.square() + torque_cost
        gravity = 3 * self.g / (2 * LENGTH) * torch.sin(theta)
        motor = (3.0 / (MASS * LENGTH**2) * torque).to(state.dtype)
        new_theta_dot = (theta_dot + (gravity + motor) * DT).clamp(-MAX_SPEED, MAX_SPEED)
        new_theta = theta + new_theta_dot * DT
        terminated = torch.zeros_like(theta, dtype=torch.bool)
        return torch.stack((new_theta, new_theta_dot), dim=-1), -cost, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        theta, theta_dot = state.unbind(-1)
        observations = torch.stack((torch.cos(theta), torch.sin(theta), theta_dot), dim=-1)
        return observations.to(torch.float32)  # [n, 3]
