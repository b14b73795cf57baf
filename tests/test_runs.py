"""The run directory: one writer (`Run`), one reader (`read_run`), "solved" written once, and the
best checkpoint next to the latest."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
import torch

from rlgrad.app.agents import load_agent
from rlgrad.app.presets import read_preset_file
from rlgrad.app.registry import resume
from rlgrad.support import runs
from rlgrad.support.evaluation import evaluate
from rlgrad.support.run_format import read_rows, read_run, solved_at, solved_to_the_end
from rlgrad.trainers import ppo, reinforce

TINY_PPO = {
    "num_envs": 4,
    "num_steps": 32,  # 128 steps an update
    "minibatch_size": 64,
    "epochs": 2,
    "eval_episodes": 2,
    "total_steps": 512,
    "eval_every": 128,
    "checkpoint_every": 128,
    "keep_checkpoints": 10,
}


def evaluations(pairs):
    """Rows as the writer holds them: ``None`` where an update did not evaluate."""
    return [{"step": s, "eval_return_mean": r} for s, r in pairs]


# ----- "solved", once -----


def test_solved_is_any_three_consecutive_evaluations_not_only_the_last_three():
    # evaluations 1-3 are >= 475; the last one collapses: solved from step 1 all the same
    rows = evaluations([(1, 480.0), (2, 476.0), (3, 490.0), (4, 10.0)])
    assert solved_at(rows, 475.0)["step"] == 1
    assert not solved_to_the_end(rows, 475.0)  # ... but not at the end of the budget
    # updates without an evaluation (None) do not break a streak: 2, 4 and 5 are consecutive
    # evaluations; the 474.9 at step 1 is below the threshold
    rows = evaluations([(1, 474.9), (2, 475.0), (3, None), (4, 500.0), (5, 475.0)])
    assert solved_at(rows, 475.0)["step"] == 2
    assert solved_to_the_end(rows, 475.0)
    # two at the threshold, one below, two more: never three in a row
    rows = evaluations([(1, 500.0), (2, 500.0), (3, 474.0), (4, 500.0), (5, 500.0)])
    assert solved_at(rows, 475.0) is None and not solved_to_the_end(rows, 475.0)
    assert solved_at(rows, None) is None  # no threshold, nothing to solve
    assert solved_at([], 1.0) is None and not solved_to_the_end([], 1.0)


def test_the_reader_turns_empty_cells_into_none_and_steps_into_ints(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "step,update,wall_s,eval_return_mean,loss\n128,1,0.5,,0.25\n256,2,1.0,9.5,\n"
    )
    assert read_rows(tmp_path) == [
        {"step": 128, "update": 1, "wall_s": 0.5, "eval_return_mean": None, "loss": 0.25},
        {"step": 256, "update": 2, "wall_s": 1.0, "eval_return_mean": 9.5, "loss": None},
    ]
    assert isinstance(read_rows(tmp_path)[0]["step"], int)
    empty = read_run(tmp_path / "never-ran")  # a sweep's trial that has not started
    assert (empty.rows, empty.config, empty.summary, empty.solved) == ([], None, None, None)
    assert empty.train_s == 0.0 and empty.final_return is None and not empty.finished


def test_the_reader_round_trips_the_writer(tmp_path):
    # a threshold the tiny run reaches, so that solved_step is a number (CartPole returns >= 9)
    config = ppo.Config(
        env="CartPole-v1",
        seed=2,
        lr=3e-3,
        eval_threshold=20.0,
        **{**TINY_PPO, "total_steps": 768, "eval_every": 256},  # rows at 128 and 384: no eval
    )
    history = ppo.train(config, tmp_path / "run")
    read = read_run(tmp_path / "run")
    # every value as the writer held it: ints, floats, and None for what was not measured
    assert read.rows == history.rows
    assert [row["eval_return_mean"] is None for row in read.rows] == [True, False] * 3
    cells = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1].split(",")
    assert "" in cells and "None" not in cells  # None is an empty cell on disk
    assert read.summary == history.summary
    assert read.algorithm == "ppo" and read.config["lr"] == 3e-3 and read.finished
    # solved from the rows by the one rule, as the summary says
    assert read.solved_step == history.summary["solved_step"] is not None
    assert read.solved_train_s == history.summary["solved_train_s"]
    steps, returns = read.curve()
    assert steps.tolist() == [256.0, 512.0, 768.0]
    assert returns.tolist() == history.column("eval_return_mean")
    assert read.final_return == history.summary["final_eval_return_mean"]
    assert read.best_return == history.summary["best_eval_return_mean"]
    # a run directory is a preset too (to repeat the run on other seeds), read the same way
    algorithm, env, fields = read_preset_file(tmp_path / "run")
    assert (algorithm, env, fields["lr"], fields["seed"]) == ("ppo", "CartPole-v1", 3e-3, 2)


# ----- the best checkpoint -----


def _scripted(monkeypatch, script: dict[int, float], seen: dict[int, dict]):
    """Evaluations that return ``script[step]`` and keep a copy of the agent they scored."""

    def scripted(run, episodes):
        seen[run.steps] = copy.deepcopy(run.agent.state_dict())
        return np.full(episodes, script[run.steps])

    def scripted_seeds(seed_runs, seed_indices):  # PPO evaluates its seeds together
        return {
            s: scripted(seed_runs.runs[s], seed_runs.config.eval_episodes) for s in seed_indices
        }

    monkeypatch.setattr(runs.Run, "evaluate", scripted)
    monkeypatch.setattr(runs.SeedRuns, "evaluate", scripted_seeds)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_best_pt_holds_the_weights_of_the_best_evaluation(tmp_path, monkeypatch):
    # returns go up, then down: the best is the evaluation at step 256, not the last one
    seen: dict[int, dict] = {}
    _scripted(monkeypatch, {128: 10.0, 256: 30.0, 384: 30.0, 512: 5.0}, seen)
    history = ppo.train(ppo.Config(env="CartPole-v1", **TINY_PPO), tmp_path / "run")
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=False)
    latest = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)
    # 384 ties 256: strictly greater is needed, so the first of equal evaluations stays
    assert best["steps"] == 256 == history.summary["best_eval_step"]
    assert best["eval_return_mean"] == 30.0
    assert _same_weights(best["modules"]["agent"], seen[256])
    assert not _same_weights(best["modules"]["agent"], seen[512])  # training did move them
    assert _same_weights(latest["modules"]["agent"], seen[512])
    loaded = load_agent(tmp_path / "run", "best").network.state_dict()
    assert _same_weights(loaded, seen[256])


def test_the_best_checkpoint_evaluates_to_the_best_evaluation(tmp_path):
    # a real run whose evaluation goes up and then down (seed 2, lr 3e-3: 264.5 at step 512,
    # 155.5 at the end, on the CPU); its normalized observations check the saved statistics
    config = ppo.Config(
        env="CartPole-v1",
        seed=2,
        lr=3e-3,
        normalize_obs=True,
        **{**TINY_PPO, "epochs": 4, "total_steps": 2048, "eval_every": 256},
    )
    history = ppo.train(config, tmp_path / "run")
    summary = history.summary
    assert summary["best_eval_return_mean"] > summary["final_eval_return_mean"]  # the premise
    for checkpoint, expected in (
        ("best", summary["best_eval_return_mean"]),
        ("latest", summary["final_eval_return_mean"]),
    ):
        agent = load_agent(tmp_path / "run", checkpoint)
        returns = evaluate(
            agent.network,
            "CartPole-v1",
            config.eval_episodes,
            config.seed,  # the seeds of the run's own evaluations
            obs_stats=agent.obs_stats.state_dict(),
            normalize_obs=agent.normalize_obs,
        )
        assert returns.mean() == expected, checkpoint


def test_a_resume_keeps_best_pt_of_its_own_trajectory(tmp_path, monkeypatch):
    seen: dict[int, dict] = {}
    _scripted(monkeypatch, {128: 10.0, 256: 30.0, 384: 20.0, 512: 5.0}, seen)
    config = ppo.Config(env="CartPole-v1", **TINY_PPO)
    ppo.train(config, tmp_path / "whole")
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "best.pt", weights_only=False)

    # stopped after the best evaluation: the 20 at step 384 must not pass for a new best
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    cut = tmp_path / "cut" / "checkpoints"
    (cut / "best.pt").unlink()
    resume(tmp_path / "cut", checkpoint=cut / "step_0000000256.pt")
    best = torch.load(cut / "best.pt", weights_only=False)
    assert best["steps"] == 256 and _same_weights(
        best["modules"]["agent"], whole["modules"]["agent"]
    )

    # resumed from before the best (step 128) on a trajectory whose later evaluations differ:
    # the best.pt left by the abandoned future (step 256, 30.0) must not survive
    _scripted(monkeypatch, {128: 10.0, 256: 5.0, 384: 7.0, 512: 3.0}, seen)
    shutil.copytree(tmp_path / "whole", tmp_path / "other")
    other = tmp_path / "other" / "checkpoints"
    history = resume(tmp_path / "other", checkpoint=other / "step_0000000128.pt")
    best = torch.load(other / "best.pt", weights_only=False)
    assert best["steps"] == 128 == history.summary["best_eval_step"]
    assert best["eval_return_mean"] == 10.0
    assert _same_weights(best["modules"]["agent"], seen[128])


def test_load_agent_names_the_missing_checkpoint(tmp_path):
    config = reinforce.Config(env="CartPole-v1", total_steps=100, eval_every=0, eval_episodes=1)
    reinforce.train(config, tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "best.pt").unlink()
    with pytest.raises(ValueError, match=r"load_agent\(\): no checkpoint at .*best\.pt"):
        load_agent(tmp_path / "run", "best")
