"""`rlgrad tune`: the search space as data, the objective, pruning values, and a small study on a
local Ray that is resumed and whose best config trains through `rlgrad train --preset FILE`."""

from __future__ import annotations

import csv
import json
import math
import time

import pytest

from rlgrad.app import presets
from rlgrad.app import tune as tuning
from rlgrad.app.cli import main
from rlgrad.app.registry import module

optuna = pytest.importorskip("optuna")


def test_every_search_space_samples_valid_configs():
    # every algorithm's space, sampled by a seeded random sampler, gives configs its trainer
    # accepts on top of the shipped preset (a fraction_of field keeps minibatches valid)
    for algorithm, space in tuning.search_spaces().items():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        base = presets.preset(algorithm, "CartPole-v1")
        for _ in range(20):
            fields = tuning.suggest(study.ask(), space, base)
            config = presets.build_config(algorithm, "CartPole-v1", base, fields)
            module(algorithm).check(config)


def test_suggest_reads_the_distributions_of_the_file():
    space = {
        "lr": {"float": [1e-4, 1e-2], "log": True},
        "epochs": {"int": [2, 4]},
        "hidden_sizes": {"choices": [[64, 64], [32]]},
        "minibatch_size": {"fraction_of": ["num_envs", "num_steps"], "choices": [0.5, 0.25]},
    }
    trial = optuna.trial.FixedTrial(
        {"lr": 0.001, "epochs": 3, "hidden_sizes": "(32,)", "minibatch_size_fraction": 0.25}
    )
    fields = tuning.suggest(trial, space, {"num_envs": 8, "num_steps": 16})
    # a quarter of the base preset's rollout of 8 · 16 = 128 samples
    assert fields == {"lr": 0.001, "epochs": 3, "hidden_sizes": "(32,)", "minibatch_size": 32}
    config = presets.build_config("ppo", "CartPole-v1", {}, fields)
    assert config.hidden_sizes == (32,)


def test_the_objective_puts_reliability_before_speed():
    # 3 of 3 solved slowly beats 2 of 3 solved at once: n_solved is the integer part
    slow_but_sure = tuning.objective([(True, 600.0)] * 3)
    fast_but_flaky = tuning.objective([(True, 0.1), (True, 0.1), (False, None)])
    assert slow_but_sure > fast_but_flaky
    assert math.floor(slow_but_sure) == 3 and math.floor(fast_but_flaky) == 2
    # equally reliable: the faster wins; 1 / (1 + 30/60) = 2/3 against 1 / (1 + 90/60) = 0.4
    assert tuning.objective([(True, 30.0)]) == pytest.approx(1 + 2 / 3)
    assert tuning.objective([(True, 90.0)]) == pytest.approx(1.4)
    assert tuning.objective([(False, None)] * 4) == 0.0


def _write_metrics(run_dir, evaluations, exist_ok=False):
    run_dir.mkdir(parents=True, exist_ok=exist_ok)
    lines = ["step,eval_return_mean"] + [f"{s},{r}" for s, r in evaluations]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_intermediate_values_count_seeds_solved_so_far(tmp_path):
    tuner = tuning.Tuner.__new__(tuning.Tuner)  # only the fields intermediate() reads
    tuner.threshold, tuner.low = 100.0, 0.0
    a, b = tmp_path / "a", tmp_path / "b"
    _write_metrics(a, [(10, 100), (20, 100), (30, 120), (40, 50)])
    _write_metrics(b, [(10, 50), (20, 100), (30, 100)])  # has not reached step 40 yet
    runs = {
        0: tuning.Trial("0/seed0", "ppo", {}, str(a)),
        1: tuning.Trial("0/seed1", "ppo", {}, str(b)),
    }
    active = tuning.ActiveTrial(None, {}, runs)
    values = dict(tuner.intermediate(active))
    # steps both reached: 10, 20, 30. At 30, seed 0 has three evaluations >= 100 (solved), seed
    # 1 only two; progress is the mean of the latest scaled returns, capped below 1
    assert set(values) == {10, 20, 30}
    assert values[10] == pytest.approx((0.999 + 0.5) / 2)
    assert values[30] == pytest.approx(1 + (0.999 + 0.999) / 2)
    # seed 1 reaches 40 with a third 100 (solved); seed 0 falls to 50 there but stays solved:
    # "solved" is any three evaluations in a row (a rule on the last three would count it out)
    active.reported_steps |= {10, 20, 30}
    _write_metrics(b, [(10, 50), (20, 100), (30, 100), (40, 100)], exist_ok=True)
    assert dict(tuner.intermediate(active)) == {40: pytest.approx(2 + (50 / 100 + 0.999) / 2)}


def _solved_by_hand(run_dir, threshold=30.0):
    """(training s at the first of three evaluations in a row >= threshold or None, the last
    step, the last evaluation), straight from metrics.csv."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    evals = [
        (float(r["eval_return_mean"]), float(r["train_s"])) for r in rows if r["eval_return_mean"]
    ]
    solved = None
    for i in range(len(evals) - 2):
        if min(evals[i][0], evals[i + 1][0], evals[i + 2][0]) >= threshold:
            solved = evals[i][1]
            break
    return solved, int(rows[-1]["step"]), evals[-1][0]


def test_a_study_on_ray_resumes_and_its_best_config_trains(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "tuning"
    base = tmp_path / "base.json"
    quick = {
        "num_envs": 8,
        "num_steps": 16,
        "minibatch_size": 64,
        "epochs": 2,
        "eval_every": 1024,
        "eval_episodes": 2,
        "checkpoint_every": 0,
        "eval_threshold": 30.0,
    }
    presets.write_preset_file(base, "ppo", "CartPole-v1", quick)
    command = [
        "tune",
        "ppo",
        "--env",
        "CartPole-v1",
        "--trials",
        "3",
        "--seeds-per-trial",
        "2",
        "--preset",
        str(base),
        "--total-steps",
        "4096",
        "--out",
        str(out),
        "--no-progress",
        "--no-prune",
        "--validation-seeds",
        "2",
        "--validate-top",
        "2",
    ]
    assert main(command) == 0
    seeds = (1000, 1001)
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.load_study(study_name="ppo-CartPole-v1", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    # each trial's value is n_solved + 1 / (1 + mean seconds to solve / 60), worked out here
    # from its two runs' metrics.csv by hand (not with the code's objective or solved rule)
    for trial in complete:
        directory = next((out / "trials").glob(f"{trial.number:04d}-*"))
        times = [t for t in (_solved_by_hand(directory / f"seed{s}")[0] for s in seeds) if t]
        expected = len(times) + (1 / (1 + sum(times) / len(times) / 60) if times else 0.0)
        assert trial.value == pytest.approx(expected)
        assert trial.user_attrs["solved"] == len(times)
    # the first trial is the base preset's own values, where they lie in the space
    assert complete[0].params["num_envs"] == 8 and complete[0].params["epochs"] == 2
    assert complete[0].params["minibatch_size_fraction"] == 0.5  # 64 of a 128-sample rollout
    assert complete[0].user_attrs["fields"]["minibatch_size"] == 64

    # the same command with --trials 4 continues the study: one more trial, not four
    assert main([*command[:5], "4", *command[6:]]) == 0
    study = optuna.load_study(study_name="ppo-CartPole-v1", storage=storage)
    assert len(study.trials) == 4

    # the two best trials were trained on validation seeds 2000 and 2001 too, for their whole
    # budget, and ranked by the objective of those seeds where a seed counts only if it solved
    # and still returns at least the threshold at its last evaluation
    ranking = json.loads((out / "validation.json").read_text())["ranking"]
    assert len(ranking) == 2 and ranking[0]["objective"] >= ranking[1]["objective"]
    for row in ranking:
        times = []
        for seed in (2000, 2001):
            run_dir = out / "validation" / f"{row['trial']:04d}" / f"seed{seed}"
            seconds, last_step, last_return = _solved_by_hand(run_dir)
            assert last_step >= 4096  # not stopped once solved
            if seconds is not None and last_return >= 30.0:
                times.append(seconds)
        expected = len(times) + (1 / (1 + sum(times) / len(times) / 60) if times else 0.0)
        assert row["objective"] == pytest.approx(expected)
        assert row["validation_solved"] == f"{len(times)}/2"
    best = json.loads((out / "best_preset.json").read_text())
    assert best["tuning"]["trial"] == ranking[0]["trial"]
    assert best["tuning"]["tuning_seeds"] == [1000, 1001]
    capsys.readouterr()
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            "--preset",
            str(out / "best_preset.json"),
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ]
    )
    assert code == 0
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    for name, value in best["fields"].items():
        expected = tuple(value) if isinstance(value, list) else value
        assert saved[name] == (list(expected) if isinstance(expected, tuple) else expected), name


def test_only_trials_of_a_dead_driver_are_asked_again(tmp_path, monkeypatch):
    # two drivers share a study; one was killed (its trial's heartbeat stopped), the other lives
    monkeypatch.setattr(tuning, "HEARTBEAT_S", 1)
    monkeypatch.setattr(tuning, "STALE_AFTER_S", 1)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=tuning._heartbeat_storage(optuna, url))
    with tuning._quiet_optuna():
        dead, alive = study.ask(), study.ask()
    dead.suggest_float("lr", 1e-4, 1e-2)
    storage = study._storage
    storage.record_heartbeat(dead._trial_id)
    time.sleep(2.5)  # longer than the grace period
    storage.record_heartbeat(alive._trial_id)  # the live driver keeps beating
    with tuning._quiet_optuna():
        optuna.storages.fail_stale_trials(study)  # what Tuner.recover() runs
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[dead.number] == optuna.trial.TrialState.FAIL
    assert states[alive.number] == optuna.trial.TrialState.RUNNING
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    assert [t.params for t in waiting] == [dead.params]  # asked again with the same config


def _write_run(run_dir, rows, finished):
    """A run directory with (step, training s, evaluation return) rows, threshold 100."""
    run_dir.mkdir(exist_ok=True)
    lines = ["step,train_s,eval_return_mean"] + [f"{s},{t},{r}" for s, t, r in rows]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    if finished:
        summary = {"threshold": 100.0, "interrupted": False}
        (run_dir / "summary.json").write_text(json.dumps(summary))


def test_best_possible_bounds_a_running_trial_by_what_its_seeds_have_shown(tmp_path):
    tuner = tuning.Tuner.__new__(tuning.Tuner)
    tuner.seeds = [0, 1, 2]
    runs = {s: tuning.Trial(f"0/seed{s}", "ppo", {}, str(tmp_path / f"seed{s}")) for s in range(3)}
    # seed 0 solved: three evaluations >= 100 from the row at 10 s of training
    _write_run(
        tmp_path / "seed0", [(50, 5, 90), (100, 10, 100), (150, 15, 120), (200, 20, 101)], True
    )
    _write_run(tmp_path / "seed1", [(64, 12.5, 20), (128, 30.0, 40)], False)  # running
    active = tuning.ActiveTrial(None, {}, runs, {0: tuning.Outcome(tuning.DONE)})
    # seed 0 solved in 10 s, seed 1 has trained 30 s so far, seed 2 has not started: at best all
    # three solve, with a mean time of (10 + 30 + 0) / 3 s
    assert tuner.best_possible(active) == (3, pytest.approx(40 / 3))
    # seed 1 ends unsolved (never three in a row): at most two solve, in (10 + 0) / 2 s
    rows = [(64, 12.5, 20), (128, 30.0, 100), (192, 40.0, 100), (256, 50.0, 99)]
    _write_run(tmp_path / "seed1", rows, True)
    active.outcomes[1] = tuning.Outcome(tuning.DONE)
    assert tuner.best_possible(active) == (2, pytest.approx(5.0))
    # at the end, the bound is what the trial has: two solved, in (10 + 50) / 2 = 30 s
    _write_run(tmp_path / "seed2", [(9, 50, 100), (18, 60, 100), (27, 70, 100)], True)
    active.outcomes[2] = tuning.Outcome(tuning.DONE)
    assert tuner.best_possible(active) == (2, pytest.approx(30.0))


class _Best:
    def __init__(self, solved, mean):
        self.user_attrs = {"solved": solved, "mean_train_s_to_solve": mean}


class _Study:
    def __init__(self, best):
        self.best_trial = best


class _Trial:
    def __init__(self):
        self.reports = []

    def report(self, value, step):
        self.reports.append((value, step))


@pytest.mark.parametrize(
    "best, shown, stops",
    [
        ((5, 10.0), (5, 15.0), False),  # as reliable so far, a little slower: it runs on
        ((5, 10.0), (5, 25.0), True),  # over twice the best one's time already: it stops
        ((5, 10.0), (4, 1.0), True),  # it can no longer solve five seeds: it stops
        ((4, 10.0), (5, 50.0), False),  # it may still solve more seeds than the best
    ],
)
def test_a_trial_stops_only_when_it_is_sure_to_lose(best, shown, stops):
    tuner = tuning.Tuner.__new__(tuning.Tuner)
    tuner.study, tuner.total_steps = _Study(_Best(*best)), 1000
    tuner.best_possible = lambda active: shown
    active = tuning.ActiveTrial(_Trial(), {}, {})
    assert tuner._cannot_win(active) is stops
    if stops:  # it tells Optuna the most it could have reached
        ((value, step),) = active.optuna_trial.reports
        assert step == 1000 and value == pytest.approx(
            tuning.objective([(True, shown[1])] * shown[0])
        )
