"""Acrobot-v1 as a batch of tensors: Gymnasium's dynamics ("book" equations, RK4), step for step."""

from __future__ import annotations

import math

import torch

from rlgrad.envs.base import Box, Discrete, TorchVectorEnv

GRAVITY = 9.8
LINK_LENGTH_1 = 1.0  # l1; the second link's length only matters for drawing
LINK_MASS_1 = 1.0  # m1
LINK_MASS_2 = 1.0  # m2
LINK_COM_1 = 0.5  # lc1: joint 1 to link 1's centre of mass
LINK_COM_2 = 0.5  # lc2: joint 2 to link 2's centre of mass
LINK_INERTIA = 1.0  # I1 = I2
DT = 0.2  # seconds per step, one RK4 step
MAX_VELOCITY_1 = 4 * math.pi
MAX_VELOCITY_2 = 9 * math.pi
# Gymnasium wraps an angle by adding or subtracting 2π one at a time while it lies outside
# [−π, π]. From a state with angles in [−π, π] and velocities within their bounds, one RK4 step
# moves an angle at most ~29 rad (five turns; measured on a grid over that box with its extreme
# velocities), so six exact passes reproduce Gymnasium wherever the dynamics can go; only states
# set by hand far outside that box need more.
WRAP_PASSES = 6


def _as_float32(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32))


_HIGH = (1.0, 1.0, 1.0, 1.0, _as_float32(MAX_VELOCITY_1), _as_float32(MAX_VELOCITY_2))


def acrobot_derivatives(states: torch.Tensor, torques: torch.Tensor) -> torch.Tensor:
    """d/dt (θ1, θ2, θ̇1, θ̇2) for states ``[n, 4]`` under torques ``[n]``: ``[n, 4]``.

    Sutton & Barto's ("book") equations, as Gymnasium writes them, with a the torque:

        d1 = m1 lc1² + m2 (l1² + lc2² + 2 l1 lc2 cos θ2) + I1 + I2
        d2 = m2 (lc2² + l1 lc2 cos θ2) + I2
        φ2 = m2 lc2 g cos(θ1 + θ2 − π/2)
        φ1 = −m2 l1 lc2 θ̇2² sin θ2 − 2 m2 l1 lc2 θ̇2 θ̇1 sin θ2
             + (m1 lc1 + m2 l1) g cos(θ1 − π/2) + φ2
        θ̈2 = (a + d2/d1 φ1 − m2 l1 lc2 θ̇1² sin θ2 − φ2) / (m2 lc2² + I2 − d2²/d1)
        θ̈1 = −(d2 θ̈2 + φ1) / d1

    Each line is evaluated in Gymnasium's order of operations (left to right, constants folded
    as Python folds them), so that float64 gives NumPy's numbers to the last bit wherever torch's
    and NumPy's sin, cos and square agree (squares are ``torch.pow(x, 2)`` where Gymnasium writes
    ``x ** 2``; torch computes x·x, and NumPy's scalar ``x ** 2`` differs from that in the last
    bit on about 0.1 % of arguments).
    """
    theta1, theta2, dtheta1, dtheta2 = states.unbind(-1)
    m1, m2, l1, lc1, lc2 = LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1, LINK_COM_1, LINK_COM_2
    i1 = i2 = LINK_INERTIA
    cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + i2
    phi2 = m2 * lc2 * GRAVITY * torch.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * torch.pow(dtheta2, 2) * sin2
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
        + (m1 * lc1 + m2 * l1) * GRAVITY * torch.cos(theta1 - math.pi / 2)
        + phi2
    )
    ddtheta2 = (torques + d2 / d1 * phi1 - m2 * l1 * lc2 * torch.pow(dtheta1, 2) * sin2 - phi2) / (
        m2 * lc2**2 + i2 - torch.pow(d2, 2) / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=-1)


def wrap_angles(angles: torch.Tensor) -> torch.Tensor:
    """Angles brought into [−π, π] by adding or subtracting 2π one turn at a time, as
    Gymnasium's ``wrap`` does (π itself stays π; each pass rounds as its subtraction does)."""
    turn = math.pi - (-math.pi)
    for _ in range(WRAP_PASSES):
        angles = torch.where(
            angles > math.pi,
            angles - turn,
            torch.where(angles < -math.pi, angles + turn, angles),
        )
    # beyond the passes (only from states set by hand): one remainder, equal up to rounding
    far = (angles > math.pi) | (angles < -math.pi)
    return torch.where(far, torch.remainder(angles + math.pi, turn) - math.pi, angles)


class Acrobot(TorchVectorEnv):
    """Swing the tip of a two-link pendulum above a line by torquing the middle joint: actions
    0, 1, 2 apply −1, 0, +1 N·m; reward −1 per step and 0 on the step that reaches the goal,
    which terminates the episode; truncated at 500 steps.

    The state is (θ1, θ2, θ̇1, θ̇2), θ1 from straight down and θ2 relative to link 1; the
    observation is (cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2) in float32. One step is one
    classical Runge–Kutta step of h = 0.2 s of :func:`acrobot_derivatives`, the torque held:

        k1 = f(s), k2 = f(s + h/2 k1), k3 = f(s + h/2 k2), k4 = f(s + h k3)
        s' = s + h/6 (k1 + 2 k2 + 2 k3 + k4)

    then θ1 and θ2 are wrapped into [−π, π] (:func:`wrap_angles`), θ̇1 clipped to ±4π and θ̇2
    to ±9π. The episode terminates when the tip is more than one link above the pivot:
    −cos θ1 − cos(θ2 + θ1) > 1. Resets draw all four state entries from U(−0.1, 0.1), rounded
    to float32 as Gymnasium stores them.
    """

    id = "Acrobot-v1"
    observation_space = Box(tuple(-h for h in _HIGH), _HIGH)
    action_space = Discrete(3)
    default_max_episode_steps = 500
    state_size = 4

    def initial_states(self, n: int) -> torch.Tensor:
        # Gymnasium keeps its reset state in float32 (its later states are float64)
        return self.uniform(n, [-0.1] * 4, [0.1] * 4).to(torch.float32).to(self.dtype)

    def transition(self, state: torch.Tensor, action: torch.Tensor):
        # actions 0, 1, 2 → −1, 0, +1 exactly; other values are not checked (that would make
        # the device wait for the host every step)
        torques = (action - 1).to(state.dtype)
        # Gymnasium integrates over t = [0, h] with h = t[1] − t[0] and h/2 = h / 2.0
        h = DT - 0
        half = h / 2.0
        k1 = acrobot_derivatives(state, torques)
        k2 = acrobot_derivatives(state + half * k1, torques)
        k3 = acrobot_derivatives(state + half * k2, torques)
        k4 = acrobot_derivatives(state + h * k3, torques)
        raw = state + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        angles = wrap_angles(raw[:, :2])
        next_state = torch.stack(
            (
                angles[:, 0],
                angles[:, 1],
                raw[:, 2].clamp(-MAX_VELOCITY_1, MAX_VELOCITY_1),
                raw[:, 3].clamp(-MAX_VELOCITY_2, MAX_VELOCITY_2),
            ),
            dim=-1,
        )
        theta1, theta2 = angles[:, 0], angles[:, 1]
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        reward = torch.where(terminated, 0.0, -1.0).to(state.dtype)
        return next_state, reward, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)
        observations = torch.stack(
            (
                torch.cos(theta1),
                torch.sin(theta1),
                torch.cos(theta2),
                torch.sin(theta2),
                dtheta1,
                dtheta2,
            ),
            dim=-1,
        )
        return observations.to(torch.float32)  # Gymnasium's float32 view of its float64 state
