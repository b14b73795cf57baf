"""MountainCar-v0 and MountainCarContinuous-v0 as batches of tensors: Gymnasium's dynamics, step
for step.

An underpowered car in a valley, x ∈ [−1.2, 0.6], must rock back and forth to reach the flag on
the right hill. Both tasks share the valley (the slope pulls with −0.0025 cos 3x), the speed
limit |ẋ| ≤ 0.07, the inelastic left wall and the reset x ~ U(−0.6, −0.4), ẋ = 0; they differ in
the engine, the goal and the reward.
"""

from __future__ import annotations

import math
import struct

import torch

from rlgrad.envs.base import Box, Discrete, TorchVectorEnv
from rlgrad.errors import BadInputError

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GRAVITY = 0.0025  # the slope's pull on the velocity is −GRAVITY·cos(3x) per step
FORCE = 0.001  # MountainCar-v0: velocity change per step of a push left (0) or right (2)
POWER = 0.0015  # MountainCarContinuous-v0: velocity change per step and unit of force
GOAL_POSITION = 0.5  # MountainCar-v0
CONTINUOUS_GOAL_POSITION = 0.45  # MountainCarContinuous-v0
GOAL_REWARD = 100.0  # MountainCarContinuous-v0, on the step that reaches the goal
ACTION_COST = 0.1  # MountainCarContinuous-v0: −0.1·a² per step


def _nearest_float32(x: float) -> float:
    """The float32 value nearest ``x``, as a Python float (exact in float64)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _round_to_float32(values: torch.Tensor) -> torch.Tensor:
    """``values`` rounded to float32 and kept in their dtype (a no-op on float32 tensors).

    Rounding the float64 result of +, − or × of two float32 numbers gives exactly the float32
    result (53 ≥ 2·24 + 2 bits), so float64 tensors reproduce float32 arithmetic this way.
    """
    return values.to(torch.float32).to(values.dtype)


def _real_number(env_id: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInputError(f"{env_id}: {name} must be a finite real number; got {value!r}")
    return float(value)


class _MountainCarTask(TorchVectorEnv):
    """What the two tasks share: the state (x, ẋ), its reset, its observation, the goal velocity.

    ``goal_velocity`` is Gymnasium's keyword of the same name: the goal is reached when x is past
    the flag and ẋ ≥ goal_velocity (default 0).
    """

    observation_space = Box((MIN_POSITION, -MAX_SPEED), (MAX_POSITION, MAX_SPEED))
    state_size = 2

    def __init__(self, *args, goal_velocity: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.goal_velocity = _real_number(self.id, "goal_velocity", goal_velocity)

    def initial_states(self, n: int) -> torch.Tensor:
        positions = self.uniform(n, [-0.6], [-0.4])
        return torch.cat((positions, torch.zeros_like(positions)), dim=-1)  # [n, 2]

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state.to(torch.float32)


class MountainCar(_MountainCarTask):
    """Drive a car up the right hill with pushes left (0), none (1) or right (2); reward −1 per
    step, the episode terminates when x ≥ 0.5 and ẋ ≥ goal_velocity, and is truncated at 200
    steps.

    With a ∈ {0, 1, 2}, in this order (Moore 1990, as Gymnasium writes it):

        ẋ' = clip(ẋ + ((a − 1)·0.001 + cos(3x)·(−0.0025)), −0.07, 0.07)
        x' = clip(x + ẋ', −1.2, 0.6)
        ẋ' = 0 if x' = −1.2 and ẋ' < 0     (the left wall stops the car)

    The state is float64 in Gymnasium, so float64 here reproduces it.
    """

    id = "MountainCar-v0"
    action_space = Discrete(3)
    default_max_episode_steps = 200

    def transition(self, state: torch.Tensor, action: torch.Tensor):
        position, velocity = state.unbind(-1)
        push = (action.to(state.dtype) - 1) * FORCE
        velocity = velocity + (push + torch.cos(3 * position) * -GRAVITY)
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED)
        position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION)
        velocity = torch.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
        terminated = (position >= GOAL_POSITION) & (velocity >= self.goal_velocity)
        reward = torch.full_like(position, -1.0)  # the goal step pays −1 too
        return torch.stack((position, velocity), dim=-1), reward, terminated


class MountainCarContinuous(_MountainCarTask):
    """Drive a car up the right hill with a force a ∈ [−1, 1]; reward −0.1·a² per step plus 100
    on the step that reaches the goal (x ≥ 0.45 and ẋ ≥ goal_velocity), which terminates the
    episode; truncated at 999 steps.

    With f = clip(a, −1, 1), in this order (Gymnasium's, after Arnaud de Broissia):

        ẋ' = clip(ẋ + (f·0.0015 − 0.0025·cos(3x)), −0.07, 0.07)
        x' = clip(x + ẋ', −1.2, 0.6)
        ẋ' = 0 if x' = −1.2 and ẋ' < 0     (the left wall stops the car)
        r = 100·[goal reached] − 0.1·a²     (the action as given, not clipped)

    Gymnasium keeps this task's state in float32 and NumPy 2 keeps float32 when a Python float
    joins in, so its arithmetic is float32 except the cosine, the unclipped action's cost and,
    when the action is clipped, the push ±0.0015 minus the slope's pull, which are float64 until
    they meet the float32 velocity. In float64 this class rounds to float32 at those same places
    and so reproduces Gymnasium bit for bit; in float32 it is the same arithmetic, the cosine and
    those sums in float32. The reset position, drawn in float64, is rounded to float32 (the
    precision of every later state), so every step is float32 arithmetic; Gymnasium keeps its
    float64 draw for the first step of an episode and takes that one step in float64.
    """

    id = "MountainCarContinuous-v0"
    action_space = Box((-1.0,), (1.0,))
    default_max_episode_steps = 999

    def initial_states(self, n: int) -> torch.Tensor:
        return _round_to_float32(super().initial_states(n))

    def transition(self, state: torch.Tensor, action: torch.Tensor):
        as_float32 = _round_to_float32
        position, velocity = as_float32(state).unbind(-1)
        action = action[:, 0].to(torch.float32).to(state.dtype)  # Gymnasium's action dtype
        clipped = (action < -1.0) | (action > 1.0)
        # An action outside [−1, 1] becomes the Python float ±1.0 in Gymnasium, so its push is
        # float64 and its sum with the slope's pull is rounded once; an action inside stays
        # float32, and so do its push and that sum.
        push = torch.where(
            clipped, POWER * action.sign(), as_float32(action * _nearest_float32(POWER))
        )
        pull = GRAVITY * torch.cos(as_float32(3 * position))
        acceleration = torch.where(
            clipped, as_float32(push - pull), as_float32(push - as_float32(pull))
        )
        velocity = as_float32(velocity + acceleration)
        # Gymnasium compares the float32 velocity and position with its limits in float32
        max_speed = _nearest_float32(MAX_SPEED)
        velocity = velocity.clamp(-max_speed, max_speed)
        min_position = _nearest_float32(MIN_POSITION)
        position = as_float32(position + velocity).clamp(
            min_position, _nearest_float32(MAX_POSITION)
        )
        velocity = torch.where((position == min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= _nearest_float32(CONTINUOUS_GOAL_POSITION)) & (
            velocity >= _nearest_float32(self.goal_velocity)
        )
        reward = torch.where(terminated, GOAL_REWARD, 0.0) - action.square() * ACTION_COST
        return torch.stack((position, velocity), dim=-1), reward, terminated
