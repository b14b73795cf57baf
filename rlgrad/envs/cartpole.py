"""CartPole-v1 as a batch of tensors: Gymnasium's dynamics, step for step."""

from __future__ import annotations

import math

import torch

from rlgrad.envs.base import Box, Discrete, TorchVectorEnv

GRAVITY = 9.8
CART_MASS = 1.0
POLE_MASS = 0.1
TOTAL_MASS = CART_MASS + POLE_MASS
HALF_LENGTH = 0.5  # Gymnasium's `length` is half the pole's length
POLE_MASS_LENGTH = POLE_MASS * HALF_LENGTH
FORCE = 10.0
TAU = 0.02  # seconds per step, explicit Euler
THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4
_HIGH = (X_LIMIT * 2, 3.4028234663852886e38, THETA_LIMIT * 2, 3.4028234663852886e38)


class CartPole(TorchVectorEnv):
    """Balance a pole on a cart by pushing it left (0) or right (1); reward 1 per step, the
    episode terminates when |x| > 2.4 or |θ| > 12°, and is truncated at 500 steps.

    State and observation are (x, ẋ, θ, θ̇). With u = ±10 N, c = cos θ, s = sin θ (Barto et al.
    1983, as Gymnasium writes it):

        tmp = (u + m_p l θ̇² s)/(m_c + m_p)
        θ̈ = (g s − c·tmp) / (l (4/3 − m_p c²/(m_c + m_p)))
        ẍ = tmp − m_p l θ̈ c/(m_c + m_p)

    then one explicit Euler step of τ = 0.02 s, positions first with the old velocities.
    """

    id = "CartPole-v1"
    observation_space = Box(tuple(-h for h in _HIGH), _HIGH)
    action_space = Discrete(2)
    default_max_episode_steps = 500
    state_size = 4

    def initial_states(self, n: int) -> torch.Tensor:
        return self.uniform(n, [-0.05] * 4, [0.05] * 4)

    def transition(self, state: torch.Tensor, action: torch.Tensor):
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = torch.where(action == 1, FORCE, -FORCE).to(state.dtype)
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + POLE_MASS_LENGTH * theta_dot.square() * sin) / TOTAL_MASS
        theta_acc = (GRAVITY * sin - cos * temp) / (
            HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos.square() / TOTAL_MASS)
        )
        x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
        next_state = torch.stack(
            (
                x + TAU * x_dot,
                x_dot + TAU * x_acc,
                theta + TAU * theta_dot,
                theta_dot + TAU * theta_acc,
            ),
            dim=-1,
        )
        x, theta = next_state[:, 0], next_state[:, 2]
        terminated = (x < -X_LIMIT) | (x > X_LIMIT) | (theta < -THETA_LIMIT) | (theta > THETA_LIMIT)
        # Gymnasium pays 1 on every step, the terminating one included
        reward = torch.ones_like(x)
        return next_state, reward, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state.to(torch.float32)  # Gymnasium's float32 view of its float64 state
