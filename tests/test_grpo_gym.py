"""GRPO on Gymnasium: shared start states per group, group-relative advantages without a critic,
a short run, exact resume and bad input."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from test_trainers import read_rows, without_timing

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
def test_a_short_run_learns_something_and_logs_group_statistics(advantage, tmp_path):
    config = grpo.Config(env="CartPole-v1", **TINY, advantage=advantage)
    history = grpo.train(config, tmp_path / "run")
    rows = read_rows(tmp_path / "run")
    assert len(rows) == len(history.rows) >= 2
    for column in ("policy_loss", "approx_kl", "group_return_std", "frac_reward_zero_std"):
        assert all(math.isfinite(float(r[column])) for r in rows), column
    assert all(0.0 <= float(r["frac_reward_zero_std"]) <= 1.0 for r in rows)
    assert float(rows[0]["group_return_std"]) > 0  # a random policy's episodes differ


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
