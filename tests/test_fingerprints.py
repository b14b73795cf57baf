"""Same seed, same numbers: a fingerprint of every trainer's metrics.csv across refactors.

A regression guard against the pre-refactor implementation (issue 30, point 3). Each trainer runs
a tiny deterministic configuration (CartPole-v1 for the discrete trainers, Pendulum-v1 for SAC
and TD3: a few hundred steps, tiny networks, evaluations and several gradient steps), and the
sha256 of its metrics.csv without the timing columns (wall_s, train_s, sps) must equal the hash
recorded from the code *before* the off-policy trainers were rewritten to own their loops. A
refactor that changes no arithmetic keeps every hash; one that changes a number anywhere in a
run (a random draw taken in another order, a target network moved a step late, a metric averaged
differently) changes its hash. The hashes are specific to this PyTorch/Gymnasium build and CPU;
regenerate them with ``python tests/test_fingerprints.py`` only for a change that is meant to
alter the numbers, and say which in the commit.

The resume tests check the other half of "same seed, same numbers": a DQN or SAC run stopped at
a checkpoint and resumed equals the uninterrupted run, row for row, and the learner's counters
(gradient steps, which decide SAC's and TD3's delayed actor updates) come back from the
checkpoint rather than from the metrics.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import without_timing

from rlgrad.support.run_format import TIMING_COLUMNS
from rlgrad.trainers import a2c, dqn, grpo, ppo, reinforce, sac, td3, trpo

CART = {"env": "CartPole-v1", "eval_episodes": 2, "checkpoint_every": 0}
PENDULUM = {
    "env": "Pendulum-v1",
    "eval_episodes": 1,
    "checkpoint_every": 0,
    "hidden_sizes": (16, 16),
    "batch_size": 16,
}
RUNS = {
    "ppo": (ppo, {**CART, "total_steps": 256, "num_envs": 2, "num_steps": 32,
                  "minibatch_size": 32, "epochs": 2, "eval_every": 128, "hidden_sizes": (16,)}),
    "a2c": (a2c, {**CART, "total_steps": 200, "num_envs": 2, "eval_every": 100,
                  "hidden_sizes": (16,)}),
    "reinforce": (reinforce, {**CART, "total_steps": 150, "num_envs": 2, "eval_every": 75,
                              "hidden_sizes": (16,)}),
    "grpo": (grpo, {**CART, "total_steps": 300, "num_envs": 4, "group_size": 2,
                    "max_episode_steps": 40, "eval_every": 150, "hidden_sizes": (16,)}),
    "trpo": (trpo, {**CART, "total_steps": 256, "num_envs": 2, "num_steps": 64,
                    "critic_epochs": 2, "minibatch_size": 32, "eval_every": 128,
                    "hidden_sizes": (16,)}),
    "dqn": (dqn, {**CART, "total_steps": 400, "num_envs": 2, "learning_starts": 100,
                  "batch_size": 16, "train_frequency": 2, "target_update_every": 50,
                  "log_every": 50, "eval_every": 200, "hidden_sizes": (16,)}),
    "sac": (sac, {**PENDULUM, "total_steps": 300, "learning_starts": 100, "log_every": 50,
                  "eval_every": 150, "policy_delay": 2}),
    "td3": (td3, {**PENDULUM, "total_steps": 300, "learning_starts": 100, "log_every": 50,
                  "eval_every": 150}),
}  # fmt: skip

# sha256 of each run's metrics.csv without timing columns, recorded from the pre-refactor code.
# PPO, TRPO, SAC and TD3 were re-recorded once, when every trainer came to average its metrics
# with training.Means (float64 sums instead of float32 ones): in those runs only the averaged
# columns (losses, entropy, approx_kl, q_mean, grad_norm) moved, by at most 1.5e-7 relative
# (float32 rounding); every other column, returns and evaluations included, stayed identical.
# PPO was re-recorded when it came to train every seed as a slice of one seed-batched network
# (issue 32): batched matmuls and per-seed masked means sum in another order, so its losses move
# in the last float32 digits; test_ppo_with_a_seed_axis_matches_the_single_seed_trainer bounds
# how far from the trainer before that change. A2C was re-recorded for the same change (and its
# RMSprop became SeedRMSprop, the same arithmetic): only policy_loss, value_loss, grad_norm and
# explained_variance moved, in the last float32 digits; episodes and evaluations stayed identical
# (test_a2c_with_a_seed_axis_matches_the_single_seed_trainer). DQN too, for seed-batched Q- and
# target networks, SeedAdam and a replay storage with a seed axis: its averaged q_taken_mean, loss
# and grad_norm moved by at most ~1e-8 relative
# (test_dqn_with_a_seed_axis_matches_the_single_seed_trainer). REINFORCE and GRPO too
# (seed-batched networks, masked means per seed over padded episodes, SeedAdam for the fused
# Adam): their step counts, episodes, evaluations and group statistics are unchanged and
# test_an_episode_trainer_with_a_seed_axis_matches_the_single_seed_trainer bounds the rest.
# TD3 and SAC too (seed-batched actors, critics and log α, SeedAdam with the critics' lr per
# parameter, each seed's noise drawn from its own generator): every count unchanged, the
# averaged metrics within 6.3e-8 relative and the returns within 4.6e-8
# (test_a_continuous_control_trainer_with_a_seed_axis_matches_the_single_seed_trainer).
# DQN, SAC and TD3 were re-recorded once more when SeedAdam took torch's fused Adam kernel
# where every seed steps with one shared step count (the usual step): last-bit changes.
EXPECTED = {
    "a2c": "e1fc60c275a4346e2c1d275669c249f78098f1aa5a5b11a7078fa14c5a418637",
    "dqn": "d9903adbfca261650c6dd60e6f331da8afaad42e4920a71e4bf8b595c5e86f8e",
    "grpo": "c938bb61e1006eb6eeaeab34bc14fa26299fb1ed87903f5d674d021665810beb",
    "ppo": "7ffc4ee80dd917eb1e6f4f95e0fd9bef792aba3d2fd047f3d4b8487b703b2e20",
    "reinforce": "8ab1babd863f9af2e7f0276827eaed9825926b38b7d1b1d0804c1c5e44a0703a",
    "sac": "370829e9610720a8069571f823ab407eb8953063da676afc84f8d5f526b70c34",
    "td3": "7529b2786c71ef4b3555941e2bcdb961b238661eade91a06032c7ae5b1cb862c",
    "trpo": "bac4bea5523518e873ed507d8012f6a5798b347a3457ef30ff6ea2a8cf01f22b",
}


def fingerprint(run_dir: Path) -> str:
    """The sha256 of metrics.csv with the timing columns removed (the header included, so a
    renamed, added or reordered column changes it too)."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING_COLUMNS]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([[row[i] for i in keep] for row in rows])
    return hashlib.sha256(text.getvalue().encode()).hexdigest()


def train(name: str, run_dir: Path, **changes):
    trainer, fields = RUNS[name]
    return trainer.train(trainer.Config(**{**fields, **changes}), run_dir)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_metrics_of_a_tiny_run_match_the_recorded_fingerprint(name, tmp_path):
    history = train(name, tmp_path / "run")
    # the run is what the fingerprint claims to cover: several rows, evaluations, and for the
    # learners with a warm-up, gradient steps
    assert len(history.rows) >= 2
    assert sum(row["eval_return_mean"] is not None for row in history.rows) >= 2
    if name in ("dqn", "sac", "td3"):
        assert history.rows[-1]["total_gradient_steps"] >= 100
    assert fingerprint(tmp_path / "run") == EXPECTED[name]


def assert_matches_the_trainer_before_the_seed_axis(
    name: str, run_dir: Path, averaged: tuple, **tolerance
) -> None:
    """``run_dir``'s metrics.csv against tests/data/{name}_tiny_before_seed_axis.csv, written by
    the single-seed trainer of commit cfd9ada on the same config: the same columns, the
    ``averaged`` ones within ``tolerance`` (pytest.approx's rel and abs), every other one but
    the clocks equal (the counts, episode returns and evaluations)."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        now = list(csv.DictReader(handle))
    reference = Path(__file__).parent / "data" / f"{name}_tiny_before_seed_axis.csv"
    with open(reference, newline="") as handle:
        before = list(csv.DictReader(handle))
    assert len(now) == len(before) > 0 and now[0].keys() == before[0].keys()
    exact = set(now[0]) - set(averaged) - set(TIMING_COLUMNS)
    assert {"step", "episode_return_mean", "eval_return_mean"} <= exact
    for row, then in zip(now, before, strict=True):
        for column in exact:
            assert row[column] == then[column] or float(row[column]) == float(then[column])
        for column in averaged:
            if then[column] == "":  # not measured (e.g. no gradient step yet)
                assert row[column] == "", (row["step"], column)
            else:
                expected = float(then[column])
                assert float(row[column]) == pytest.approx(expected, **tolerance), column


def test_ppo_with_a_seed_axis_matches_the_single_seed_trainer(tmp_path):
    """The seed-batched PPO trainer, on one seed, against metrics.csv of the single-seed PPO
    trainer it replaced (tests/data, written by the code of commit cfd9ada): every episode,
    evaluation and count identical, every averaged metric within float32 rounding."""
    train("ppo", tmp_path / "run")
    averaged = (
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "grad_norm",
        "explained_variance",
    )
    assert_matches_the_trainer_before_the_seed_axis(
        "ppo", tmp_path / "run", averaged, rel=1e-3, abs=1e-6
    )


def test_a2c_with_a_seed_axis_matches_the_single_seed_trainer(tmp_path):
    """The seed-batched A2C trainer (SeedRMSprop, masked per-seed means), on one seed, against
    metrics.csv of the single-seed A2C trainer of commit cfd9ada: 20 updates with every episode,
    evaluation and count identical. The losses and the gradient norm differ only by float32
    rounding (masked sums in another order; measured: at most 1.9e-7 relative, about 1.5 ulp);
    the explained variance, 1 − a ratio of variances close to 1, by at most 1.2e-7 absolute."""
    train("a2c", tmp_path / "run")
    averaged = ("policy_loss", "value_loss", "entropy", "grad_norm", "explained_variance")
    assert_matches_the_trainer_before_the_seed_axis(
        "a2c", tmp_path / "run", averaged, rel=5e-7, abs=3e-7
    )


def test_dqn_with_a_seed_axis_matches_the_single_seed_trainer(tmp_path):
    """The seed-batched DQN trainer, on one seed, against metrics.csv of the single-seed DQN
    trainer it replaced (tests/data, written by the code of commit cfd9ada): every episode,
    evaluation, count and ε identical, every averaged metric within float32 rounding (measured:
    at most 1.8e-8 relative; the batched matmuls round differently from nn.Linear, and no argmax
    flips in these 400 steps)."""
    train("dqn", tmp_path / "run")
    assert_matches_the_trainer_before_the_seed_axis(
        "dqn", tmp_path / "run", ("loss", "q_taken_mean", "grad_norm"), rel=1e-6
    )


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_a_continuous_control_trainer_with_a_seed_axis_matches_the_single_seed_trainer(
    name, tmp_path
):
    """The seed-batched SAC and TD3 trainers, on one seed, against metrics.csv of the
    single-seed trainers they replaced (tests/data, written by the code of commits 9ea9c6a for
    SAC and dee569e for TD3): every count identical; the averaged metrics within float32
    rounding (measured: at most 6.3e-8 relative, TD3's critic_loss), and so are the returns,
    which continuous actions carry the rounding into (measured: at most 4.6e-8)."""
    train(name, tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        now = list(csv.DictReader(handle))
    data = Path(__file__).parent / "data" / f"{name}_tiny_before_seed_axis.csv"
    with open(data, newline="") as handle:
        before = list(csv.DictReader(handle))
    assert len(now) == len(before) == 6 and list(now[0]) == list(before[0])
    counted = ("step", "update", "episode_length_mean", "gradient_steps", "total_gradient_steps")
    counted += ("buffer_transitions",)
    for row, reference in zip(now, before, strict=True):
        for column in counted:
            assert row[column] == reference[column], column
        for column in set(row) - set(counted) - set(TIMING_COLUMNS):
            if reference[column] == "":
                assert row[column] == "", (row["step"], column)
            else:
                expected = float(reference[column])
                assert float(row[column]) == pytest.approx(expected, rel=1e-6), column


@pytest.mark.parametrize(
    "name, exact",
    [
        ("reinforce", ("lr",)),
        ("grpo", ("group_return_std", "frac_reward_zero_std", "lr")),
    ],
)
def test_an_episode_trainer_with_a_seed_axis_matches_the_single_seed_trainer(name, exact, tmp_path):
    """The seed-batched REINFORCE and GRPO trainers, on one seed, against metrics.csv of the
    single-seed trainers they replaced (tests/data, written by the code of commit cfd9ada): the
    same columns, every step count, episode, evaluation and group statistic identical, every
    averaged metric within float32 rounding. Measured: GRPO's within 2.3e-7 relative; REINFORCE's
    value loss, entropy and gradient norm identical, its policy loss within 3e-8 absolute (a sum
    of terms of size ~1 that nearly cancel, so 1.6e-4 relative to its value of ~1e-4)."""
    train(name, tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        now = list(csv.DictReader(handle))
    data = Path(__file__).parent / "data" / f"{name}_tiny_before_seed_axis.csv"
    with open(data, newline="") as handle:
        before = list(csv.DictReader(handle))
    assert len(now) == len(before) == 3
    assert list(now[0]) == list(before[0])
    counted = ("step", "update", "episode_return_mean", "episode_length_mean")
    evaluated = ("eval_return_mean", "eval_return_std")
    averaged = set(before[0]) - set(counted + evaluated + exact + TIMING_COLUMNS)
    assert averaged >= {"policy_loss", "entropy", "grad_norm"}
    for row, reference in zip(now, before, strict=True):
        for column in counted + evaluated + exact:
            assert row[column] == reference[column], column
        for column in averaged:
            assert float(row[column]) == pytest.approx(
                float(reference[column]), rel=1e-6, abs=1e-7
            ), column


@pytest.mark.parametrize("legacy", [False, True], ids=["counters", "legacy"])
@pytest.mark.parametrize("name", ["dqn", "sac"])
def test_a_resumed_off_policy_run_equals_the_uninterrupted_one(name, legacy, tmp_path):
    # 2N steps with a checkpoint at N; then the same run cut back to that checkpoint and resumed
    whole = train(name, tmp_path / "whole", checkpoint_every=150, keep_checkpoints=5)
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    checkpoint = tmp_path / "cut" / "checkpoints" / "step_0000000150.pt"
    state = torch.load(checkpoint, weights_only=False)
    assert state["steps"] == 150
    # the counters travel in the checkpoint's modules, not only in its metric rows
    counted = state["modules"]["counters"]["gradient_steps"]
    assert counted == state["rows"][-1]["total_gradient_steps"] > 0
    if legacy:  # a checkpoint written before the counters were saved: its rows still hold them
        del state["modules"]["counters"]
        torch.save(state, checkpoint)
    trainer, fields = RUNS[name]
    config = trainer.Config(**{**fields, "checkpoint_every": 150, "keep_checkpoints": 5})
    resumed = trainer.train(config, tmp_path / "cut", resume=True, checkpoint=checkpoint)
    assert without_timing(resumed.rows) == without_timing(whole.rows)
    assert fingerprint(tmp_path / "cut") == fingerprint(tmp_path / "whole")


if __name__ == "__main__":  # print the current fingerprints, to record them in EXPECTED
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        for run_name in sorted(RUNS) if len(sys.argv) < 2 else sys.argv[1:]:
            train(run_name, Path(directory) / run_name)
            print(f'    "{run_name}": "{fingerprint(Path(directory) / run_name)}",')
