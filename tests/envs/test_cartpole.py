"""CartPole-v1 in torch against Gymnasium's, step by step over many episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlgrad.envs import CartPole, make
from tests.envs.gym_twin import GymTwin


def run_against_gymnasium(num_envs, steps, dtype, seed):
    env = make("CartPole-v1", num_envs=num_envs, dtype=dtype, seed=seed)
    twin = GymTwin("CartPole-v1", num_envs)
    env.reset()
    twin.reset_like(env, seed=seed)
    actions = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        # mostly one-sided pushes, so poles fall and carts leave often: many terminations
        action = (torch.rand(num_envs, generator=actions) < 0.8).long()
        yield twin.step_like(env, action)


def test_float64_matches_gymnasium_exactly_through_many_episodes():
    terminations = 0
    for ours, theirs in run_against_gymnasium(num_envs=8, steps=400, dtype=torch.float64, seed=3):
        np.testing.assert_array_equal(ours[0], theirs[0])  # float32 observations, bit for bit
        np.testing.assert_array_equal(ours[1], theirs[1])
        np.testing.assert_array_equal(ours[2], theirs[2])
        np.testing.assert_array_equal(ours[3], theirs[3])
        terminations += int(ours[2].sum())
    assert terminations > 50  # the check went through many episode ends and autoresets


def test_truncation_at_500_steps_matches_gymnasium():
    # a balancing controller keeps the pole up: every episode ends by the time limit
    env = make("CartPole-v1", num_envs=2, dtype=torch.float64, seed=0)
    twin = GymTwin("CartPole-v1", 2)
    observations, _ = env.reset()
    twin.reset_like(env)
    truncations = 0
    for _ in range(1100):
        action = (observations[:, 2] + 0.5 * observations[:, 3] > 0).long()
        ours, theirs = twin.step_like(env, action)
        for mine, gyms in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(mine, gyms)
        observations = torch.as_tensor(ours[0])
        truncations += int(ours[3].sum())
    assert truncations == 4 and not env.reset_pending.all()


def test_float32_physics_stays_within_float32_precision_of_one_step():
    env = make("CartPole-v1", num_envs=256, dtype=torch.float32, seed=5)
    env.reset()
    env.state = env.state * 20  # states all over the allowed box
    exact = CartPole(256, dtype=torch.float64)
    action = torch.randint(0, 2, (256,), generator=torch.Generator().manual_seed(0))
    fast, _, _ = env.transition(env.state, action)
    slow, _, _ = exact.transition(env.state.double(), action)
    torch.testing.assert_close(fast.double(), slow, rtol=2e-6, atol=2e-6)


def test_autoreset_follows_gymnasium_next_step_rule():
    env = make("CartPole-v1", num_envs=1, dtype=torch.float64, seed=0)
    env.reset()
    env.state = torch.tensor([[2.399, 1.0, 0.0, 0.0]], dtype=torch.float64)
    observations, reward, terminated, truncated, _ = env.step(torch.tensor([1]))
    assert terminated.item() and reward.item() == 1.0 and observations[0, 0] > 2.4
    observations, reward, terminated, truncated, _ = env.step(torch.tensor([1]))
    assert not terminated.item() and not truncated.item() and reward.item() == 0.0
    assert observations.abs().max() <= 0.05 and env.elapsed.item() == 0


def test_same_seed_same_episodes_and_bad_input_named():
    a, b = make("CartPole-v1", 4, seed=11), make("CartPole-v1", 4, seed=11)
    torch.testing.assert_close(a.reset()[0], b.reset()[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"CartPole-v1.step: actions must have shape \(4,\)"):
        a.step(torch.zeros(3, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"discrete actions must be an integer tensor; got torch\.float"
    ):
        a.step(torch.zeros(4))
    with pytest.raises(ValueError, match=r"rlgrad\.envs\.make: env_id must be one of"):
        make("Cartpole-v1")
    with pytest.raises(ValueError, match="num_envs must be an int ≥ 1; got 0"):
        make("CartPole-v1", 0)
