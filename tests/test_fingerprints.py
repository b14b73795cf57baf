"""Same seed, same numbers, across refactors and across CPUs: every trainer's metrics.csv of a
tiny run against a reference recorded from the code before the refactors (issues 30 and 32).

Each trainer runs a tiny deterministic configuration (CartPole-v1 for the discrete trainers,
Pendulum-v1 for SAC and TD3: a few hundred steps, tiny networks, evaluations and several gradient
steps), and its metrics.csv must match tests/data/{name}_tiny.csv: the same columns and rows,
every number within rel 1e-5 / abs 1e-6 (timing columns aside). The references were written by
the single-seed trainers before each became a slice of a seed-batched one (commit cfd9ada for
PPO, A2C, REINFORCE, GRPO and DQN, 9ea9c6a for SAC, dee569e for TD3, 77a45e5 for TRPO).

Why a tolerance and not a hash of the file: float32 sums round differently from one CPU to the
next (a kernel for AVX-512 adds in another order than one for AVX2), and so do the batched
matmuls of the seed axis against ``nn.Linear``. Measured over these runs, on two CPUs and across
the seed axis and the fused Adam: at most 2.7e-3 relative but 4e-8 absolute (PPO's policy loss,
a sum of terms that nearly cancel), 3.3e-6 relative / 3.6e-7 absolute elsewhere. What a real
change does is far outside that: one random draw taken in another order, a target network moved
a step late or a metric averaged differently moves the losses in their first digits and, on
CartPole, an episode's length by whole steps (a mean of 16.14 by ≥ 0.1, against 1.6e-4 allowed).
Exact reproducibility on one machine is tested where it is promised: the same seed twice, and a
resumed run against the uninterrupted one (below, and in each trainer's tests). For a refactor
that should change no arithmetic at all, ``python tests/test_fingerprints.py`` prints each run's
sha256 on this machine, to compare before and after.

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
REFERENCES = Path(__file__).parent / "data"


def fingerprint(run_dir: Path) -> str:
    """The sha256 of metrics.csv with the timing columns removed (the header included, so a
    renamed, added or reordered column changes it too): equal for two runs on one machine."""
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
def test_a_tiny_run_matches_its_recorded_reference(name, tmp_path):
    history = train(name, tmp_path / "run")
    # the run is what the reference claims to cover: several rows, evaluations, and for the
    # learners with a warm-up, gradient steps
    assert len(history.rows) >= 2
    assert sum(row["eval_return_mean"] is not None for row in history.rows) >= 2
    if name in ("dqn", "sac", "td3"):
        assert history.rows[-1]["total_gradient_steps"] >= 100
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        now = list(csv.DictReader(handle))
    with open(REFERENCES / f"{name}_tiny.csv", newline="") as handle:
        reference = list(csv.DictReader(handle))
    assert len(now) == len(reference) and list(now[0]) == list(reference[0])
    for row, then in zip(now, reference, strict=True):
        for column in set(then) - set(TIMING_COLUMNS):
            if then[column] == "":  # not measured (e.g. no gradient step yet)
                assert row[column] == "", (row["step"], column)
            else:
                expected = float(then[column])
                assert float(row[column]) == pytest.approx(expected, rel=1e-5, abs=1e-6), (
                    row["step"],
                    column,
                )


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


if __name__ == "__main__":  # this machine's hashes, to compare before and after a refactor
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        for run_name in sorted(RUNS) if len(sys.argv) < 2 else sys.argv[1:]:
            train(run_name, Path(directory) / run_name)
            print(f'    "{run_name}": "{fingerprint(Path(directory) / run_name)}",')
