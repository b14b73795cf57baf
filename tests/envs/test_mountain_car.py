"""MountainCar-v0 and MountainCarContinuous-v0 in torch against Gymnasium's, step by step over
many episodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlgrad.envs import MountainCar, MountainCarContinuous, make
from rlgrad.errors import BadInputError
from tests.envs.gym_twin import GymTwin, gymnasium


def set_float32_state(env, row: np.ndarray) -> None:
    """MountainCarContinuous: Gymnasium holds the state as a float32 array after every step."""
    env.state = np.array(row, dtype=np.float32)


def pumping_pushes(velocities: torch.Tensor, generator, noise: float) -> torch.Tensor:
    """Push along the velocity (pumps energy in: the goal in about 100 steps), except that with
    probability ``noise`` the push is random: actions 0, 1, 2 of MountainCar-v0."""
    n = velocities.shape[0]
    pump = torch.where(velocities >= 0, 2, 0)
    random = torch.randint(0, 3, (n,), generator=generator)
    return torch.where(torch.rand(n, generator=generator) < noise, random, pump)


def forces(velocities: torch.Tensor, generator, pumping: torch.Tensor) -> torch.Tensor:
    """MountainCarContinuous-v0 actions ``[n, 1]`` (float32): U(−1.5, 1.5), so some are clipped;
    for copies in ``pumping`` half of them point along the velocity; one in five is exactly ±1
    (a value Gymnasium does not clip, whose push it computes differently)."""
    n = velocities.shape[0]
    draws = torch.rand(n, generator=generator) * 3 - 1.5
    along = draws.abs() * torch.where(velocities >= 0, 1.0, -1.0)
    draws = torch.where(pumping & (torch.rand(n, generator=generator) < 0.5), along, draws)
    draws = torch.where(torch.rand(n, generator=generator) < 0.2, draws.sign(), draws)
    return draws.to(torch.float32)[:, None]


def assert_same_step(ours, theirs):
    for mine, gyms in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, gyms)


@pytest.mark.parametrize("goal_velocity", [0.0, 0.02])
def test_discrete_float64_matches_gymnasium_through_many_episodes(goal_velocity):
    num_envs, steps = 16, 1000
    env = MountainCar(num_envs, dtype=torch.float64, seed=3, goal_velocity=goal_velocity)
    twin = GymTwin("MountainCar-v0", num_envs, goal_velocity=goal_velocity)
    env.reset()
    env.state[:4] = torch.tensor([[0.45, 0.03], [0.3, 0.05], [0.49, 0.0], [0.499, -0.001]])
    twin.reset_like(env, seed=3)
    pumping = torch.arange(num_envs) < 10  # the other 6 push at random: truncated at 200
    generator = torch.Generator().manual_seed(4)
    terminations = truncations = 0
    for _ in range(steps):
        random = torch.randint(0, 3, (num_envs,), generator=generator)
        action = torch.where(pumping, pumping_pushes(env.state[:, 1], generator, 0.3), random)
        ours, theirs = twin.step_like(env, action)
        assert_same_step(ours, theirs)  # float32 observations, rewards and flags, bit for bit
        # torch's float64 cosine (SLEEF) and the C library's (math.cos) differ by one ulp for
        # about 1 argument in 1000, so the float64 states may differ in their last bits
        np.testing.assert_allclose(env.state.numpy(), twin.states(), rtol=0, atol=1e-12)
        terminations += int(ours[2].sum())
        truncations += int(ours[3].sum())
    assert terminations > 50 and truncations >= 6 * 4  # many goals, time limits and autoresets


def test_continuous_float64_matches_gymnasium_bit_for_bit_through_many_episodes():
    num_envs, steps = 16, 1500
    env = make("MountainCarContinuous-v0", num_envs=num_envs, dtype=torch.float64, seed=5)
    twin = GymTwin("MountainCarContinuous-v0", num_envs, set_state=set_float32_state)
    env.reset()
    env.state[:3] = torch.tensor([[0.44, 0.03], [0.4, 0.01], [-1.19, -0.06]]).double()
    twin.reset_like(env, seed=5)
    pumping = torch.arange(num_envs) < 12
    generator = torch.Generator().manual_seed(6)
    terminations = 0
    for _ in range(steps):
        ours, theirs = twin.step_like(env, forces(env.state[:, 1], generator, pumping))
        assert_same_step(ours, theirs)
        # Gymnasium's float32 state, ours in float64: the same numbers
        np.testing.assert_array_equal(env.state.numpy(), twin.states())
        terminations += int(ours[2].sum())
    assert terminations > 50


def test_continuous_truncation_at_999_steps_matches_gymnasium():
    # weak random forces never reach the goal: every episode ends by the time limit
    env = make("MountainCarContinuous-v0", num_envs=3, dtype=torch.float64, seed=7)
    twin = GymTwin("MountainCarContinuous-v0", 3, set_state=set_float32_state)
    env.reset()
    twin.reset_like(env, seed=7)
    generator = torch.Generator().manual_seed(8)
    truncations = 0
    for step in range(1, 2 * 1000 + 1):
        action = (torch.rand(3, 1, generator=generator) - 0.5).to(torch.float32)
        ours, theirs = twin.step_like(env, action)
        assert_same_step(ours, theirs)
        truncations += int(ours[3].sum())
        if step in (999, 1999):  # 999 steps, then one autoreset step, then 999 again
            assert ours[3].all() and not ours[2].any()
    assert truncations == 6 and env.elapsed.tolist() == [0, 0, 0]


@pytest.mark.parametrize("env_class", [MountainCar, MountainCarContinuous])
def test_float32_physics_stays_within_float32_precision_of_one_step(env_class):
    n = 512
    env = env_class(n, dtype=torch.float32, seed=9)
    draws = torch.rand(n, 2, generator=torch.Generator().manual_seed(10))
    # states all over the box, the left wall's neighbourhood excluded (there a float32 rounding
    # decides whether the wall stops the car)
    states = torch.stack((-1.1 + 1.7 * draws[:, 0], 0.14 * draws[:, 1] - 0.07), dim=-1)
    if env_class is MountainCar:
        actions = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(11))
    else:
        actions = forces(
            states[:, 1], torch.Generator().manual_seed(11), torch.ones(n, dtype=torch.bool)
        )
    fast, fast_rewards, _ = env.transition(states, actions)
    exact = env_class(n, dtype=torch.float64)
    slow, slow_rewards, _ = exact.transition(states.double(), actions)
    torch.testing.assert_close(fast.double(), slow, rtol=0, atol=3e-7)
    torch.testing.assert_close(fast_rewards.double(), slow_rewards, rtol=1e-6, atol=1e-7)


def test_discrete_steps_at_known_states_by_hand():
    env = MountainCar(5, dtype=torch.float64)
    states = torch.tensor(
        [[0.49, 0.02], [-1.19, -0.05], [-0.9, 0.0695], [0.59, 0.06], [-0.5, 0.0]],
        dtype=torch.float64,
    )
    next_states, rewards, terminated = env.transition(states, torch.tensor([2, 0, 2, 2, 1]))
    # right push near the flag: ẋ' = 0.02 + 0.001 − 0.0025·cos(1.47) ≈ 0.020748 (cos 1.47 ≈
    # 0.1006), x' ≈ 0.510748 ≥ 0.5 and ẋ' ≥ 0: the goal
    v = 0.02 + (0.001 - 0.0025 * math.cos(1.47))
    assert next_states[0].tolist() == pytest.approx([0.49 + v, v], abs=1e-15)
    # left push at the left wall: ẋ' ≈ −0.05 − 0.001 + 0.0025·0.9112 ≈ −0.04872, x' ≈ −1.2387
    # is clipped to −1.2 and the wall stops the car
    assert next_states[1].tolist() == [-1.2, 0.0]
    # right push downhill at full speed: 0.0695 + 0.001 + 0.0025·0.904 > 0.07, clipped
    assert next_states[2].tolist() == pytest.approx([-0.83, 0.07], abs=1e-15)
    # past the right end: x clipped to 0.6 (and the goal reached)
    assert next_states[3, 0].item() == 0.6
    # no push at the bottom: only the slope, ẋ' = −0.0025·cos(−1.5) ≈ −0.000177
    assert next_states[4, 1].item() == pytest.approx(-0.0025 * math.cos(-1.5), abs=1e-18)
    assert rewards.tolist() == [-1.0] * 5
    assert terminated.tolist() == [True, False, False, True, False]
    # with a goal velocity of 0.05 the car at the flag is too slow to count
    slow = MountainCar(5, dtype=torch.float64, goal_velocity=0.05)
    assert not slow.transition(states, torch.tensor([2, 0, 2, 2, 1]))[2][0]


def test_continuous_rewards_and_steps_at_known_states_by_hand():
    env = MountainCarContinuous(3, dtype=torch.float64)
    states = torch.tensor([[0.44, 0.03], [-0.5, 0.0], [-0.5, 0.0]], dtype=torch.float64)
    actions = torch.tensor([[1.5], [-0.5], [-1.0]])
    next_states, rewards, terminated = env.transition(states, actions)
    # a = 1.5 pushes with f = 1: ẋ' = 0.03 + 0.0015 − 0.0025·cos(1.32) ≈ 0.030880, x' ≈ 0.47088
    # ≥ 0.45: the goal, paid 100 − 0.1·1.5² = 99.775 (the cost of the action as given)
    v = 0.03 + 0.0015 - 0.0025 * math.cos(1.32)
    assert next_states[0].tolist() == pytest.approx([0.44 + v, v], rel=1e-6)
    # a = −0.5 at rest at the bottom: ẋ' = −0.00075 − 0.0025·cos(−1.5) ≈ −0.000927, cost 0.025
    v = -0.00075 - 0.0025 * math.cos(-1.5)
    assert next_states[1].tolist() == pytest.approx([-0.5 + v, v], rel=1e-6)
    assert rewards.tolist() == pytest.approx([100 - 0.1 * 1.5**2, -0.1 * 0.25, -0.1], abs=1e-12)
    assert terminated.tolist() == [True, False, False]


@pytest.mark.parametrize("env_id", ["MountainCar-v0", "MountainCarContinuous-v0"])
def test_autoreset_after_the_goal_and_spaces_as_gymnasium(env_id):
    env = make(env_id, num_envs=1, dtype=torch.float64, seed=0)
    env.reset()
    env.state = torch.tensor([[0.49, 0.05]], dtype=torch.float64)
    action = torch.tensor([2]) if env_id == "MountainCar-v0" else torch.tensor([[1.0]])
    observations, reward, terminated, truncated, _ = env.step(action)
    assert terminated.item() and not truncated.item() and observations[0, 0] >= 0.5
    observations, reward, terminated, truncated, _ = env.step(action)
    assert not terminated.item() and not truncated.item() and reward.item() == 0.0
    assert -0.6 <= observations[0, 0] <= -0.4 and observations[0, 1] == 0 and env.elapsed == 0
    theirs = gymnasium.make(env_id)
    low, high = env.observation_space.low, env.observation_space.high
    np.testing.assert_array_equal(np.float32(low), theirs.observation_space.low)
    np.testing.assert_array_equal(np.float32(high), theirs.observation_space.high)
    if env_id == "MountainCar-v0":
        assert env.action_space.n == theirs.action_space.n == 3
    else:
        np.testing.assert_array_equal(np.float32(env.action_space.low), theirs.action_space.low)
        np.testing.assert_array_equal(np.float32(env.action_space.high), theirs.action_space.high)
    assert env.max_episode_steps == theirs.spec.max_episode_steps


def test_reset_distribution_same_seed_and_bad_input_named():
    a, b = make("MountainCar-v0", 1000, seed=1), make("MountainCar-v0", 1000, seed=1)
    observations = a.reset()[0]
    torch.testing.assert_close(observations, b.reset()[0], rtol=0, atol=0)
    assert observations[:, 0].min() >= -0.6 and observations[:, 0].max() <= -0.4
    assert observations[:, 0].std() == pytest.approx(0.2 / math.sqrt(12), rel=0.1)  # uniform
    assert (observations[:, 1] == 0).all()
    continuous = make("MountainCarContinuous-v0", 4, dtype=torch.float64)
    start = continuous.reset()[0].double()
    torch.testing.assert_close(continuous.state, start, rtol=0, atol=0)  # float32 values
    with pytest.raises(BadInputError, match=r"MountainCar-v0.step: actions must have shape \("):
        a.step(torch.zeros(1000, 1, dtype=torch.long))
    with pytest.raises(
        BadInputError, match=r"MountainCarContinuous-v0.step: actions must have shape \(4, 1\)"
    ):
        continuous.step(torch.zeros(4))
    with pytest.raises(BadInputError, match="MountainCar-v0: goal_velocity must be a finite"):
        MountainCar(2, goal_velocity="fast")
