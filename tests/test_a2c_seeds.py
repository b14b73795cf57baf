"""A2C with a seed axis: seeds trained together equal the same seeds trained alone, and a seed
whose rewards turn NaN fails on its own while the others train on undisturbed."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import without_timing

from rlgrad.support.envs import SeedEnvs
from rlgrad.support.runs import TrainingError
from rlgrad.trainers import a2c

CONFIG = a2c.Config(
    env="CartPole-v1",
    total_steps=240,
    num_envs=3,
    eval_every=120,
    eval_episodes=2,
    checkpoint_every=0,
    hidden_sizes=(16,),
)
# the columns computed from float sums; every other one (counts, episode returns, evaluations)
# must be equal to the digit, or the seeds acted differently
AVERAGED = ("policy_loss", "value_loss", "entropy", "grad_norm", "explained_variance")


def assert_same_run(rows: list[dict], alone: list[dict]) -> None:
    """Rows of a seed trained beside others against the rows of that seed trained alone: the
    counts, returns and evaluations equal; the losses equal up to float32 rounding (a batched
    matmul of two seeds may sum in another order than one of one seed)."""
    assert len(rows) == len(alone) > 0
    for row, reference in zip(without_timing(rows), without_timing(alone), strict=True):
        assert row.keys() == reference.keys()
        for name, value in row.items():
            if name in AVERAGED and value is not None and reference[name] is not None:
                assert value == pytest.approx(reference[name], rel=1e-6, abs=1e-6), name
            else:
                assert value == reference[name], name


def test_each_seed_of_a_batch_equals_that_seed_trained_alone(tmp_path):
    together = a2c.train_seeds(CONFIG, [3, 8], tmp_path / "both")
    assert [h.run_dir for h in together] == [
        tmp_path / "both" / "seed3",
        tmp_path / "both" / "seed8",
    ]
    for seed, history in zip([3, 8], together, strict=True):
        alone = a2c.train(a2c.Config(**{**vars(CONFIG), "seed": seed}), tmp_path / f"alone{seed}")
        assert_same_run(history.rows, alone.rows)
        assert "failed" not in history.summary
    # the two seeds did train differently: the comparison above is not of one run with itself
    returns = [[row["eval_return_mean"] for row in h.rows] for h in together]
    losses = [[row["value_loss"] for row in h.rows] for h in together]
    assert returns[0] != returns[1] or losses[0] != losses[1]


def with_a_nan_reward(monkeypatch, seed_index: int, at_call: int) -> None:
    """Make SeedEnvs.step return a NaN reward for seed ``seed_index``'s first environment on its
    ``at_call``-th step (the other seeds' rewards untouched)."""
    step, calls = SeedEnvs.step, []

    def step_with_nan(self, actions, active):
        result = step(self, actions, active)
        calls.append(1)
        if len(calls) == at_call:
            result.rewards[seed_index, 0] = math.nan
        return result

    monkeypatch.setattr(SeedEnvs, "step", step_with_nan)


def test_a_seed_whose_rewards_turn_nan_fails_alone(tmp_path, monkeypatch):
    alone = a2c.train(a2c.Config(**{**vars(CONFIG), "seed": 3}), tmp_path / "alone")
    # the NaN arrives in the 7th update (5 steps each): seed 8 stops with the rows of 6 updates
    with_a_nan_reward(monkeypatch, seed_index=1, at_call=33)
    healthy, broken = a2c.train_seeds(CONFIG, [3, 8], tmp_path / "both")
    assert "failed" not in healthy.summary
    assert_same_run(healthy.rows, alone.rows)  # the other seed's run is undisturbed
    assert "a reward" in broken.summary["failed"] and "nan" in broken.summary["failed"]
    assert [row["update"] for row in broken.rows] == [1, 2, 3, 4, 5, 6]
    # a failed seed leaves a finite last checkpoint
    state = torch.load(
        tmp_path / "both" / "seed8" / "checkpoints" / "latest.pt", weights_only=False
    )
    assert state["steps"] < CONFIG.total_steps
    assert all(torch.isfinite(p).all() for p in state["modules"]["agent"].values())


def test_one_seed_whose_rewards_turn_nan_raises(tmp_path, monkeypatch):
    with_a_nan_reward(monkeypatch, seed_index=0, at_call=33)
    with pytest.raises(TrainingError, match="a reward"):
        a2c.train(CONFIG, tmp_path / "run")
