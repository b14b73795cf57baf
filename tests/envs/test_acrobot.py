"""Acrobot-v1 in torch against Gymnasium's, step by step over many episodes.

Acrobot is chaotic, and torch's and NumPy's float64 sin and cos differ in the last bit on about
0.15 % of arguments, their x² (NumPy's scalar ``x ** 2``) on about 0.1 % (measured here): a
one-ulp difference grows by ~10⁴ over some tens of steps. So the checks are: every one-step
transition from states visited over many episodes (Gymnasium re-synced to the torch state before
every step); free-running trajectories for as long as they agree; and, with NumPy's sin, cos and
square put into torch, free-running bit for bit through many episodes, which shows that everything
else (the order of every operation) is Gymnasium's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlgrad.envs import Acrobot, make
from rlgrad.envs.acrobot import wrap_angles
from tests.envs.gym_twin import GymTwin, gymnasium, set_state_array


def observation(env) -> np.ndarray:
    return env._get_ob()


def gymnasium_states(twin) -> np.ndarray:
    return np.array([np.asarray(env.unwrapped.state, dtype=np.float64) for env in twin.vector.envs])


def resync(twin, torch_env) -> None:
    for env, row in zip(twin.vector.envs, torch_env.state.numpy(), strict=True):
        set_state_array(env.unwrapped, row)


def mixed_policy(observations: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Copies 0–1 hold still (their episodes run to the time limit), 2–3 act at random, the
    rest pump energy with torque along θ̇2, which reaches the goal in ~65–190 steps. (Torque
    along θ̇1 never reaches it from rest in Gymnasium either: 0 goals in 5,000 steps.)"""
    actions = torch.where(observations[:, 5] > 0, 2, 0)
    actions[:2] = 1
    actions[2:4] = torch.randint(0, 3, (2,), generator=generator)
    return actions


def test_float64_one_step_matches_gymnasium_from_states_of_many_episodes():
    env = make("Acrobot-v1", num_envs=12, dtype=torch.float64, seed=3)
    twin = GymTwin("Acrobot-v1", 12, observation=observation)
    observations, _ = env.reset()
    twin.reset_like(env, seed=3)
    generator = torch.Generator().manual_seed(4)
    terminations = truncations = autoresets = exact_rows = 0
    for _ in range(1050):
        resync(twin, env)
        autoresets += int(env.reset_pending.sum())
        actions = mixed_policy(observations, generator)
        ours, theirs = twin.step_like(env, actions)
        states, gym_states = env.state.numpy(), gymnasium_states(twin)
        np.testing.assert_allclose(states, gym_states, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=1e-12)
        for mine, gyms in zip(ours[1:], theirs[1:], strict=True):
            np.testing.assert_array_equal(mine, gyms)  # rewards and flags, exactly
        exact_rows += int((states == gym_states).all(axis=1).sum())
        terminations += int(ours[2].sum())
        truncations += int(ours[3].sum())
        observations = torch.as_tensor(ours[0])
    assert terminations > 50 and truncations >= 4 and autoresets == terminations + truncations
    # the rest differ by a few ulps, from sin, cos and x² (measured: 99.6 % bit for bit)
    assert exact_rows > 0.95 * 1050 * 12


def test_float64_free_running_trajectories_stay_within_1e_12_of_gymnasium():
    # Measured here: over 64 copies pumping energy from reset, the first bit of difference came
    # after 4–390 steps, the first difference above 1e-12 after 86 steps at the earliest (and
    # 16 steps after that copy's first ulp at the least); held-still copies stay within 1e-12
    # for 400 steps. So 50 free steps from reset must agree to 1e-12 anywhere.
    env = make("Acrobot-v1", num_envs=32, dtype=torch.float64, seed=11)
    twin = GymTwin("Acrobot-v1", 32, observation=observation)
    observations, _ = env.reset()
    twin.reset_like(env, seed=11)
    for _ in range(50):
        actions = torch.where(observations[:, 5] > 0, 2, 0)
        ours, theirs = twin.step_like(env, actions)
        np.testing.assert_allclose(env.state.numpy(), gymnasium_states(twin), rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=1e-12)
        for mine, gyms in zip(ours[1:], theirs[1:], strict=True):
            np.testing.assert_array_equal(mine, gyms)
        observations = torch.as_tensor(ours[0])


def numpy_elementwise(function):
    """A float64 torch function that evaluates NumPy's ``function`` on each element, as
    Gymnasium evaluates it on each scalar (``torch.pow(x, 2)`` becomes ``x ** 2``)."""

    def elementwise(tensor: torch.Tensor, *args) -> torch.Tensor:
        values = [function(np.float64(value), *args) for value in tensor.reshape(-1).tolist()]
        return torch.tensor(values, dtype=torch.float64).reshape(tensor.shape)

    return elementwise


def test_with_numpys_sin_cos_and_square_free_running_is_bit_for_bit(monkeypatch):
    # the only difference left is the last bit of sin, cos and x² (NumPy's scalar x ** 2 goes
    # through pow, torch's through x·x): with NumPy's, torch's arithmetic gives Gymnasium's
    # numbers exactly, step after step through many episodes, without any re-sync
    monkeypatch.setattr(torch, "cos", numpy_elementwise(np.cos))
    monkeypatch.setattr(torch, "sin", numpy_elementwise(np.sin))
    monkeypatch.setattr(torch, "pow", numpy_elementwise(lambda value, exponent: value**exponent))
    env = make("Acrobot-v1", num_envs=6, dtype=torch.float64, seed=5)
    twin = GymTwin("Acrobot-v1", 6, observation=observation)
    observations, _ = env.reset()
    twin.reset_like(env, seed=5)
    generator = torch.Generator().manual_seed(6)
    terminations = truncations = 0
    for _ in range(560):
        actions = mixed_policy(observations, generator)
        ours, theirs = twin.step_like(env, actions)
        np.testing.assert_array_equal(env.state.numpy(), gymnasium_states(twin))
        for mine, gyms in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(mine, gyms)
        terminations += int(ours[2].sum())
        truncations += int(ours[3].sum())
        observations = torch.as_tensor(ours[0])
    assert terminations > 10 and truncations >= 2


def test_float32_one_step_within_float32_precision_of_float64():
    # states from float64 episodes (pumping and random), then one step from each in both types
    env = make("Acrobot-v1", num_envs=64, dtype=torch.float64, seed=4)
    observations, _ = env.reset()
    generator = torch.Generator().manual_seed(0)
    visited = []
    for _ in range(150):
        observations, *_ = env.step(mixed_policy(observations, generator))
        visited.append(env.state)
    states = torch.cat(visited).float()  # [150·64, 4]
    actions = torch.randint(0, 3, (len(states),), generator=generator)
    fast, fast_rewards, fast_terminated = Acrobot(1, dtype=torch.float32).transition(
        states, actions
    )
    exact, rewards, terminated = Acrobot(1, dtype=torch.float64).transition(
        states.double(), actions
    )
    # measured: angles within 7e-7 rad, velocities within 3.7e-6 rad/s (1.5e-6 relative)
    turns = torch.remainder(fast.double()[:, :2] - exact[:, :2] + math.pi, 2 * math.pi) - math.pi
    assert turns.abs().max() < 4e-6
    torch.testing.assert_close(fast.double()[:, 2:], exact[:, 2:], rtol=1e-5, atol=1e-5)
    heights = -torch.cos(exact[:, 0]) - torch.cos(exact[:, 1] + exact[:, 0])
    clear = (heights - 1.0).abs() > 1e-4  # away from the goal line both types agree
    assert terminated.sum() > 50
    assert torch.equal(fast_terminated[clear], terminated[clear])
    assert torch.equal(fast_rewards[clear].double(), rewards[clear])


def test_goal_terminates_with_reward_0_and_next_step_autoresets():
    env = make("Acrobot-v1", num_envs=2, dtype=torch.float64, seed=0)
    env.reset()
    # copy 0 points straight up (tip 2 above the pivot), copy 1 hangs at rest
    env.state = torch.tensor([[math.pi, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    _, rewards, terminated, truncated, _ = env.step(torch.tensor([1, 1]))
    assert terminated.tolist() == [True, False] and rewards.tolist() == [0.0, -1.0]
    observations, rewards, terminated, truncated, _ = env.step(torch.tensor([2, 1]))
    assert rewards.tolist() == [0.0, -1.0] and not terminated.any() and not truncated.any()
    # a fresh episode: U(−0.1, 0.1) in every entry, held at float32's precision as Gymnasium does
    assert env.state[0].abs().max() <= 0.1 and env.elapsed.tolist() == [0, 2]
    assert torch.equal(env.state[0], env.state[0].float().double())
    assert observations[0, [0, 2]].min() >= math.cos(0.1) - 1e-7
    assert observations[0, [1, 3, 4, 5]].abs().max() <= 0.1


def test_wrap_keeps_gymnasiums_rule_at_the_edges():
    from gymnasium.envs.classic_control.acrobot import wrap

    # π stays π (Gymnasium's interval is closed); several turns come off one at a time
    angles = [math.pi, -math.pi, 3.2, -3.2, 7.0, -20.0, 28.9, 1e-3, math.nextafter(math.pi, 9)]
    ours = wrap_angles(torch.tensor(angles, dtype=torch.float64)).tolist()
    assert ours == [wrap(angle, -math.pi, math.pi) for angle in angles]
    far = wrap_angles(torch.tensor([1000.0, -1000.0], dtype=torch.float64))
    assert far.abs().max() <= math.pi  # beyond the passes: still in range


def test_spaces_match_gymnasium():
    theirs = gymnasium.make("Acrobot-v1")
    assert Acrobot.action_space.n == theirs.action_space.n == 3
    assert Acrobot.observation_space.high == tuple(theirs.observation_space.high.tolist())
    assert Acrobot.observation_space.low == tuple(theirs.observation_space.low.tolist())
    assert Acrobot.default_max_episode_steps == theirs.spec.max_episode_steps == 500


def test_same_seed_same_episodes_and_bad_input_named():
    a, b = make("Acrobot-v1", 4, seed=11), make("Acrobot-v1", 4, seed=11)
    torch.testing.assert_close(a.reset()[0], b.reset()[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"Acrobot-v1.step: actions must have shape \(4,\)"):
        a.step(torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="Acrobot-v1: num_envs must be an int ≥ 1; got 0"):
        make("Acrobot-v1", 0)
    with pytest.raises(ValueError, match="Acrobot-v1: dtype must be"):
        make("Acrobot-v1", 2, dtype=torch.float16)
