"""Pendulum-v1 in torch against Gymnasium's, step by step over many episodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlgrad.envs import Pendulum, make
from rlgrad.errors import BadInputError
from tests.envs.gym_twin import GymTwin, gymnasium

# Gymnasium squares with NumPy scalar powers, which call the C library's pow/powf; these differ
# from the correctly rounded x·x by one ulp for about 1 argument in 1000. In the torque's cost
# 0.001·u², computed in float32 (≤ 0.004), one float32 ulp is at most 2⁻³¹; the two float64
# squares move the cost (≤ 16.3) by about 1e-15.
REWARD_TOLERANCE = 2.0**-31 + 1e-12


def gymnasium_observation(env) -> np.ndarray:
    return env._get_obs()


@pytest.mark.parametrize("g", [10.0, 9.81])
def test_float64_matches_gymnasium_through_many_episodes(g):
    num_envs, steps = 16, 1000
    env = Pendulum(num_envs, dtype=torch.float64, seed=3, g=g)
    twin = GymTwin("Pendulum-v1", num_envs, observation=gymnasium_observation, g=g)
    env.reset()
    twin.reset_like(env, seed=3)
    generator = torch.Generator().manual_seed(4)
    truncations = rewards_not_identical = 0
    for _ in range(steps):
        # torques in U(−3, 3), a third of them clipped to ±2 by the task
        action = (torch.rand(num_envs, 1, generator=generator) * 6 - 3).to(torch.float32)
        (observations, rewards, terminated, truncated), theirs = twin.step_like(env, action)
        np.testing.assert_array_equal(observations, theirs[0])  # float32, bit for bit
        np.testing.assert_allclose(rewards, theirs[1], rtol=0, atol=REWARD_TOLERANCE)
        rewards_not_identical += int((rewards != theirs[1]).sum())
        np.testing.assert_array_equal(terminated, theirs[2])
        np.testing.assert_array_equal(truncated, theirs[3])
        # torch's float64 sine and cosine (SLEEF) and the C library's differ by one ulp for
        # about 1 argument in 1000, so the float64 states may differ in their last bits
        np.testing.assert_allclose(env.state.numpy(), twin.states(), rtol=0, atol=1e-12)
        assert not terminated.any()
        truncations += int(truncated.sum())
    # every episode is cut at 200 steps, then one autoreset step: steps 200, 401, 602, 803
    assert truncations == num_envs * 4
    # the squares' ulps are rare: a cost computed otherwise (say 0.001·u² in float64) is not
    assert rewards_not_identical < 0.02 * num_envs * steps


def test_float32_physics_stays_within_float32_precision_of_one_step():
    n = 512
    generator = torch.Generator().manual_seed(5)
    draws = torch.rand(n, 2, generator=generator)
    states = torch.stack((4 * math.pi * draws[:, 0] - 2 * math.pi, 16 * draws[:, 1] - 8), -1)
    actions = torch.rand(n, 1, generator=generator) * 6 - 3
    fast, fast_rewards, _ = Pendulum(n, dtype=torch.float32).transition(states, actions)
    exact = Pendulum(n, dtype=torch.float64)
    slow, slow_rewards, _ = exact.transition(states.double(), actions)
    torch.testing.assert_close(fast.double(), slow, rtol=0, atol=2e-6)
    torch.testing.assert_close(fast_rewards.double(), slow_rewards, rtol=0, atol=1e-5)


def test_rewards_steps_and_observations_at_known_states_by_hand():
    env = Pendulum(5, dtype=torch.float64)
    states = torch.tensor(
        [[0.0, 0.0], [math.pi, 8.0], [2 * math.pi + 0.5, 1.0], [math.pi / 2, 0.0], [0.3, 7.9]],
        dtype=torch.float64,
    )
    actions = torch.tensor([[0.0], [2.0], [5.0], [0.0], [2.0]])
    next_states, rewards, terminated = env.transition(states, actions)
    # upright and still, no torque: the best reward, 0, and the pendulum stays
    assert rewards[0].item() == 0.0 and next_states[0].tolist() == [0.0, 0.0]
    # hanging down (π normalizes to −π) at full speed and torque: Gymnasium's worst reward,
    # −(π² + 0.1·8² + 0.001·2²) ≈ −16.2736044
    assert rewards[1].item() == pytest.approx(-(math.pi**2 + 6.4 + 0.004), abs=1e-6)
    # 2π + 0.5 normalizes to 0.5; the torque 5 is clipped to 2: −(0.25 + 0.1 + 0.004)
    assert rewards[2].item() == pytest.approx(-0.354, abs=1e-7)
    # horizontal at rest: θ̈ = 3g/(2l)·sin(π/2) = 15, so θ̇' = 15·0.05 = 0.75, θ' = π/2 + 0.0375
    assert next_states[3].tolist() == pytest.approx([math.pi / 2 + 0.0375, 0.75], abs=1e-15)
    # 7.9 + (15 sin 0.3 + 3·2)·0.05 > 8: the speed is clipped to 8 before it moves the angle
    assert next_states[4].tolist() == pytest.approx([0.3 + 8 * 0.05, 8.0], abs=1e-15)
    assert not terminated.any()
    observations = env.observe(torch.tensor([[math.pi / 3, 0.5]], dtype=torch.float64))
    assert observations[0].tolist() == pytest.approx([0.5, math.sqrt(3) / 2, 0.5], abs=1e-7)
    assert observations.dtype == torch.float32


def test_spaces_reset_distribution_seeding_and_bad_input_named():
    env, theirs = make("Pendulum-v1", 4000, seed=1), gymnasium.make("Pendulum-v1")
    np.testing.assert_array_equal(
        np.float32(env.observation_space.low), theirs.observation_space.low
    )
    np.testing.assert_array_equal(
        np.float32(env.observation_space.high), theirs.observation_space.high
    )
    np.testing.assert_array_equal(np.float32(env.action_space.low), theirs.action_space.low)
    np.testing.assert_array_equal(np.float32(env.action_space.high), theirs.action_space.high)
    assert env.max_episode_steps == theirs.spec.max_episode_steps == 200
    env.reset()
    theta, theta_dot = env.state.unbind(-1)
    assert theta.abs().max() <= math.pi and theta_dot.abs().max() <= 1
    assert theta.std().item() == pytest.approx(2 * math.pi / math.sqrt(12), rel=0.05)
    assert theta_dot.std().item() == pytest.approx(2 / math.sqrt(12), rel=0.05)
    again = make("Pendulum-v1", 4000, seed=1)
    torch.testing.assert_close(again.reset()[0], env.observe(env.state), rtol=0, atol=0)
    with pytest.raises(
        BadInputError, match=r"Pendulum-v1.step: actions must have shape \(4000, 1\)"
    ):
        env.step(torch.zeros(4000))
    with pytest.raises(BadInputError, match="Pendulum-v1: g must be a finite real number"):
        Pendulum(2, g=float("nan"))


def test_integer_torques_are_refused_by_name():
    env = make("Pendulum-v1", 2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"Pendulum-v1\.step: continuous actions must be a float"):
        env.step(torch.zeros(2, 1, dtype=torch.long))
