"""GRPO on Gymnasium: shared start states per group, group-relative advantages without a critic,
a short run, learning CartPole on a held-out seed, exact resume and bad input."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from conftest import read_rows, without_timing

from rlgrad.app.registry import resume
from rlgrad.support.envs import VectorEnv
from rlgrad.trainers import grpo

TINY = {
    "num_envs": 6,
    "group_size": 3,
    "total_steps": 1200,
    "eval_every": 600,
    "eval_episodes": 2,
    "checkpoint_every": 400,
}


def test_a_group_starts_from_one_state_and_groups_differ():
    config = grpo.Config(**TINY)
    env = VectorEnv("CartPole-v1", 6, seed=0, vectorization="sync")
    observations = env.reset(grpo.group_seeds(config, torch.Generator().manual_seed(0)))
    assert np.array_equal(observations[0], observations[1])
    assert np.array_equal(observations[0], observations[2])
    assert np.array_equal(observations[3], observations[5])
    assert not np.array_equal(observations[0], observations[3])


def test_episode_advantages_are_the_returns_normalized_within_each_group():
    config = grpo.Config(num_envs=4, group_size=2)
    returns = torch.tensor([[10.0, 20.0, 5.0, 5.0], [9.0, 19.0, 4.0, 4.0]])  # G_0 on row 0
    valid = torch.ones(2, 4, dtype=torch.bool)
    advantages = grpo.step_advantages(config, returns, valid)
    # group 1: μ = 15, population σ = 5 → ∓1; group 2: equal returns → exactly 0
    torch.testing.assert_close(advantages, torch.tensor([-1.0, 1.0, 0.0, 0.0]))


def test_step_advantages_normalize_reward_to_go_over_the_steps_of_a_group():
    config = grpo.Config(num_envs=2, group_size=2, advantage="reward_to_go")
    returns = torch.tensor([[3.0, 1.0], [2.0, 0.0], [1.0, 0.0]])  # env 1 ended after a step
    valid = torch.tensor([[True, True], [True, False], [True, False]])
    advantages = grpo.step_advantages(config, returns, valid)  # [N, T]
    values = torch.tensor([3.0, 2.0, 1.0, 1.0])  # the group's four valid steps
    expected = (values - values.mean()) / values.std(correction=0)
    torch.testing.assert_close(advantages[0], expected[:3])
    torch.testing.assert_close(advantages[1], torch.tensor([expected[3].item(), 0.0, 0.0]))


@pytest.mark.parametrize("advantage", ["return", "reward_to_go"])
def test_a_short_run_logs_finite_group_statistics(advantage, tmp_path):
    config = grpo.Config(env="CartPole-v1", **TINY, advantage=advantage)
    history = grpo.train(config, tmp_path / "run")
    rows = read_rows(tmp_path / "run")
    assert len(rows) == len(history.rows) >= 2
    for column in ("policy_loss", "approx_kl", "group_return_std", "frac_reward_zero_std"):
        assert all(math.isfinite(float(r[column])) for r in rows), column
    assert all(0.0 <= float(r["frac_reward_zero_std"]) <= 1.0 for r in rows)
    assert float(rows[0]["group_return_std"]) > 0  # a random policy's episodes differ


@pytest.mark.slow
@pytest.mark.parametrize("advantage", ["return", "reward_to_go"])
def test_grpo_learns_cartpole_within_48000_steps_on_a_held_out_seed(advantage, tmp_path):
    # A random CartPole policy lasts about 22 steps; this one untrained (or with its advantages
    # zeroed) evaluates at 9.2. With the CartPole preset's GRPO settings (tuned on seeds 1000 and
    # up) seed 101 measured 160 (return) and 273.8 (reward-to-go) at the end, steps 54,912 and
    # 60,928 (the last iteration's 64 episodes overshoot the budget); seeds 102 and 103 measured
    # 500/500 and 482/190.
    config = grpo.Config(
        env="CartPole-v1",
        seed=101,
        advantage=advantage,
        total_steps=48_000,
        lr=0.029177970276787087,
        group_size=16,
        epochs=1,
        clip_eps=0.1,
        eval_every=48_000,
        eval_episodes=5,
        checkpoint_every=0,
    )
    history = grpo.train(config, tmp_path / "run")
    evaluations = [r for r in read_rows(tmp_path / "run") if r["eval_return_mean"] is not None]
    assert float(evaluations[-1]["eval_return_mean"]) >= 100.0, history.column("eval_return_mean")


def test_resuming_continues_exactly(tmp_path):
    config = grpo.Config(env="CartPole-v1", **TINY)
    whole = grpo.train(config, tmp_path / "whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    first = sorted((tmp_path / "cut" / "checkpoints").glob("step_*.pt"))[0]
    assert 0 < int(first.stem.split("_")[1]) < config.total_steps
    resumed = resume(tmp_path / "cut", checkpoint=first)
    assert without_timing(resumed.rows) == without_timing(whole.rows)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"num_envs": 7, "group_size": 2}, "'num_envs' = 7 must be a multiple of group_size = 2"),
        ({"group_size": 1, "num_envs": 4}, "'group_size' must be at least 2"),
        ({"vectorization": "auto"}, "'vectorization' must be 'sync' or 'async'"),
        ({"advantage": "gae"}, "'advantage' must be one of return, reward_to_go"),
        ({"aggregation": "sum"}, "'aggregation' must be one of token_mean"),
    ],
)
def test_bad_configs_name_the_field(changes, message):
    with pytest.raises(ValueError) as error:
        grpo.check(grpo.Config(**changes))
    assert message in str(error.value)
