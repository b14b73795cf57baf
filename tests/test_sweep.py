"""`rlgrad sweep`: the grid and the index, and on a local 2-CPU Ray: a worker killed by its pid,
Ctrl-C on the driver, `--resume`, a trial that fails for its own reason, and `rlgrad report`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import rows_without_timing

from rlgrad.app import presets
from rlgrad.app import sweep as sweeps
from rlgrad.app.cli import main
from rlgrad.app.presets import build_config
from rlgrad.app.registry import module
from rlgrad.app.report import read_runs
from rlgrad.app.trials import (
    StopRequestWatcher,
    Trial,
    gpus_needed,
    run_block,
    run_trial,
    stop_request_path,
)

# A PPO trial of a few seconds that checkpoints often, so that a kill lands between checkpoints.
QUICK = {
    "num_envs": "4",
    "num_steps": "32",
    "epochs": "2",
    "eval_every": "4096",
    "eval_episodes": "2",
    "checkpoint_every": "2048",
}
TOTAL_STEPS = 24_576


def test_a_trial_on_a_gpu_reserves_one_from_ray():
    # Ray shows a task only the GPUs it reserved, so a cuda trial without one could not see any
    assert gpus_needed({"device": "cuda"}, 0) and gpus_needed({"device": "cuda:1"}, 4)
    assert gpus_needed({"device": "auto"}, 1) and not gpus_needed({"device": "auto"}, 0)
    assert not gpus_needed({"device": "cpu"}, 8) and not gpus_needed({"lr": "1e-3"}, 8)


def test_seeds_and_grid_parse():
    assert sweeps.parse_seeds("0-3") == [0, 1, 2, 3]
    assert sweeps.parse_seeds("5,1,3-4,1") == [1, 3, 4, 5]
    with pytest.raises(ValueError, match="--seeds must look like"):
        sweeps.parse_seeds("a-b")
    grid = sweeps.parse_grid(["config.lr=1e-3,3e-3", "hidden_sizes=(64,64),(32,)"])
    assert grid == {"lr": ["1e-3", "3e-3"], "hidden_sizes": ["(64,64)", "(32,)"]}
    configs = sweeps.grid_configs(grid)
    assert [c["label"] for c in configs] == [
        "lr=1e-3,hidden_sizes=(64,64)",
        "lr=1e-3,hidden_sizes=(32,)",
        "lr=3e-3,hidden_sizes=(64,64)",
        "lr=3e-3,hidden_sizes=(32,)",
    ]
    assert [c["id"] for c in configs] == ["c0", "c1", "c2", "c3"]
    assert sweeps.grid_configs({}) == [{"id": "base", "label": "base", "overrides": {}}]
    assert sweeps.grid_configs({"lr": ["0.1"]})[0]["label"] == "lr=0.1"
    with pytest.raises(ValueError, match="--set takes config"):
        sweeps.parse_grid(["config.lr"])


def test_the_index_holds_the_design_and_each_trial_builds_its_config(tmp_path):
    sweep = sweeps.create(
        tmp_path / "s", "ppo", ["CartPole-v1", "Acrobot-v1"], [3, 4], {"lr": ["0.01", "0.02"]}
    )
    saved = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert len(saved["trials"]) == 2 * 2 * 2
    assert {t["state"] for t in saved["trials"]} == {"pending"}
    entry = next(t for t in saved["trials"] if t["key"] == "Acrobot-v1/c1/seed4")
    trial = sweep.trial(entry)
    # the shipped preset of Acrobot, then the grid's lr, then the seed
    expected = build_config("ppo", "Acrobot-v1", saved["base_fields"]["Acrobot-v1"], {})
    assert trial.fields["lr"] == 0.02 and trial.fields["seed"] == 4
    assert trial.fields["num_envs"] == expected.num_envs
    assert trial.run_dir == str((tmp_path / "s" / "runs" / "Acrobot-v1-c1-seed4").resolve())
    # nothing a run directory holds (returns, metrics) is in the index
    assert set(entry) == {"key", "env", "config", "seed", "run_dir", "state", "reason"} | {
        "resumed_from_step"
    }
    with pytest.raises(ValueError, match="already holds a sweep"):
        sweeps.create(tmp_path / "s", "ppo", ["CartPole-v1"], [0], {})


@pytest.mark.parametrize(
    "grid, envs, message",
    [
        ({"lrr": ["0.1"]}, ["CartPole-v1"], "did you mean 'lr'"),
        ({"epochs": ["many"]}, ["CartPole-v1"], "config field 'epochs'"),
        ({}, ["NoSuchEnv-v0"], "unknown environment"),
    ],
)
def test_a_mistyped_sweep_fails_before_anything_runs(tmp_path, grid, envs, message):
    with pytest.raises(ValueError, match=message):
        sweeps.create(tmp_path / "s", "ppo", envs, [0], grid)
    assert not (tmp_path / "s" / "sweep.json").exists()


def test_without_ray_the_command_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    assert main(["sweep", "ppo", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "rlgrad sweep: this command runs on Ray: pip install 'rlgrad[ray]'"
    assert not (tmp_path / "s").exists()


# ----- a stop request, without Ray: what the driver's Ctrl-C and Optuna's pruning use -----


def _quick_trial(tmp_path) -> Trial:
    grid = {name: [value] for name, value in QUICK.items()}
    sweep = sweeps.create(
        tmp_path / "s", "ppo", ["CartPole-v1"], [7], grid, presets.DEFAULTS, total_steps=8192
    )
    trial = sweep.trial(sweep.trials[0])
    return trial


def test_a_stop_request_interrupts_at_a_checkpoint_and_the_trial_resumes(tmp_path):
    trial = _quick_trial(tmp_path)
    run_dir, request = Path(trial.run_dir), stop_request_path(trial.run_dir)
    assert request == run_dir.parent / (run_dir.name + ".stop")

    def ask_to_stop_after_the_first_update():
        _wait_for(lambda: (run_dir / "metrics.csv").exists(), "the first metrics row")
        request.touch()

    asker = threading.Thread(target=ask_to_stop_after_the_first_update)
    asker.start()
    stopped = run_trial(trial)
    asker.join()
    assert stopped.state == "interrupted"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] and 0 < summary["steps"] < 8192
    # a trial queued behind a stop request returns without touching its run
    assert run_trial(trial).state == "interrupted"
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == summary["steps"]

    request.unlink()  # what the driver's next submit does
    resumed = run_trial(trial)
    assert resumed.state == "done" and resumed.resumed_from_step == summary["steps"]
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 8192


def _block_of_four(directory: Path) -> list:
    """The trials of a new 4-seed PPO sweep of one config: what one task trains together."""
    grid = {name: [value] for name, value in QUICK.items()}
    sweep = sweeps.create(
        directory, "ppo", ["CartPole-v1"], [3, 4, 5, 6], grid, presets.DEFAULTS, total_steps=4096
    )
    return [sweep.trial(entry) for entry in sweep.trials]


def test_a_block_of_seeds_trains_together_stops_together_and_resumes_together(tmp_path):
    """Four trials of one config as one task (run_block): a stop request for one of them stops
    the block after an update, every seed with a checkpoint at the same step; run again, the
    block resumes together, and each seed ends with the rows of the uninterrupted block's."""
    block = _block_of_four(tmp_path / "s")
    first = Path(block[0].run_dir)

    def ask_to_stop_after_the_first_update():
        _wait_for(lambda: (first / "metrics.csv").exists(), "the first metrics row")
        stop_request_path(block[2].run_dir).touch()

    asker = threading.Thread(target=ask_to_stop_after_the_first_update)
    asker.start()
    stopped = run_block(block)
    asker.join()
    assert [o.state for o in stopped] == ["interrupted"] * 4
    steps = {json.loads((Path(t.run_dir) / "summary.json").read_text())["steps"] for t in block}
    assert len(steps) == 1 and 0 < steps.pop() < 4096
    stop_request_path(block[2].run_dir).unlink()
    resumed = run_block(block)
    assert [o.state for o in resumed] == ["done"] * 4
    assert len({o.resumed_from_step for o in resumed}) == 1
    assert len({o.worker_pid for o in resumed}) == 1  # one task trained them all
    uninterrupted = _block_of_four(tmp_path / "w")
    assert [o.state for o in run_block(uninterrupted)] == ["done"] * 4
    for trial, reference in zip(block, uninterrupted, strict=True):
        assert rows_without_timing(Path(trial.run_dir)) == rows_without_timing(
            Path(reference.run_dir)
        )
    # done trials are not trained again
    assert [o.state for o in run_block(block)] == ["done"] * 4


def test_seed_blocks_split_each_config_evenly_over_the_slots():
    entries = [{"env": e, "config": c, "seed": s} for e in "AB" for c in ("c0",) for s in range(5)]
    blocks = sweeps.seed_blocks(entries, True, 2, None)
    assert [[(e["env"], e["seed"]) for e in b] for b in blocks] == [
        [("A", 0), ("A", 1), ("A", 2)],
        [("A", 3), ("A", 4)],
        [("B", 0), ("B", 1), ("B", 2)],
        [("B", 3), ("B", 4)],
    ]
    assert [len(b) for b in sweeps.seed_blocks(entries, True, 2, 4)] == [4, 1, 4, 1]
    assert [len(b) for b in sweeps.seed_blocks(entries, False, 2, 4)] == [1] * 10


def test_a_stop_request_before_the_first_step_leaves_nothing_to_resume(tmp_path):
    trial = _quick_trial(tmp_path)
    Path(trial.run_dir).parent.mkdir(parents=True)
    stop_request_path(trial.run_dir).touch()
    assert run_trial(trial).state == "interrupted"
    assert not Path(trial.run_dir).exists()


def test_the_watcher_never_interrupts_after_its_block(tmp_path):
    # a test suite run as a background job inherits SIGINT ignored, and interrupt_main then
    # does nothing; a run installs its own handler, as this does
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _watch_and_stop(tmp_path / "run.stop")
    finally:
        signal.signal(signal.SIGINT, previous)


def _watch_and_stop(request: Path) -> None:
    with StopRequestWatcher(request, poll_s=0.01):
        time.sleep(0.05)
    request.touch()
    time.sleep(0.2)  # a watcher still running would raise KeyboardInterrupt in this sleep
    with pytest.raises(KeyboardInterrupt), StopRequestWatcher(request, poll_s=0.01):
        pass
    request.unlink()
    with pytest.raises(KeyboardInterrupt), StopRequestWatcher(request, poll_s=0.01):
        request.touch()
        # interrupted within a poll: interrupt_main takes effect between two bytecodes, so the
        # wait is short sleeps (one long sleep would only see it when it ends, after 5 s)
        for _ in range(500):
            time.sleep(0.01)


# ----- on a local Ray -----


def _trial_workers() -> list[int]:
    """The pids of the Ray workers running a trial now (Ray titles them after the task)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(
                b"ray::rlgrad-trial"
            ):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _wait_for(condition, what: str, timeout: float = 300.0, detail=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f" ({detail()})" if detail else ""))


def _index(directory: Path) -> dict[str, dict]:
    return {t["key"]: t for t in json.loads((directory / "sweep.json").read_text())["trials"]}


def _mid_trial(directory: Path, exclude: Path | None = None):
    """The trial running now, with its worker's pid, once it has a checkpoint past step 0 and is
    not past half way (so it still runs a moment later): (run_dir, pid).

    For a sweep with one trial in flight: its worker is then the only one running a trial. (The
    TensorBoard file cannot tell which: the writer opens it only while it writes.)
    """
    if not (directory / "sweep.json").exists():
        return None
    running = [t for t in _index(directory).values() if t["state"] == "running"]
    workers = _trial_workers()
    if len(running) != 1 or len(workers) != 1:
        return None
    run_dir = directory / running[0]["run_dir"]
    steps = [int(p.stem.removeprefix("step_")) for p in run_dir.glob("checkpoints/step_*.pt")]
    if run_dir != exclude and 0 < max(steps, default=0) <= TOTAL_STEPS // 2:
        return run_dir, workers[0]
    return None


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="finds workers through /proc")
def test_a_killed_worker_ctrl_c_and_resume_lose_nothing(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("torch.utils.tensorboard")
    directory = tmp_path / "sweep"
    settings = [f"--set=config.{name}={value}" for name, value in QUICK.items()]
    # config c1 asks for minibatches larger than a rollout: its trials fail on their own
    command = [
        sys.executable,
        "-m",
        "rlgrad.app.cli",
        "sweep",
        "ppo",
        "--env",
        "CartPole-v1",
        "--seeds",
        "0-3",
        "--no-preset",
        "--total-steps",
        str(TOTAL_STEPS),
        *settings,
        "--set=config.clip_eps=0.2,0.3",
        "--set=config.minibatch_size=64,100000",
        "--out",
        str(directory),
        "--no-progress",
        # one trial at a time: after the kill nothing else runs until Ray's retry has finished,
        # so trials are left for the Ctrl-C however slowly the retry's new worker starts
        "--max-concurrent",
        "1",
        "--seeds-per-task",  # one trial a task, as this test follows single trials
        "1",
    ]
    # c0: clip_eps 0.2 / minibatch 64, c1: 0.2 / 100000, c2: 0.3 / 64, c3: 0.3 / 100000
    env = {**os.environ, "RAY_ADDRESS": ""}
    driver = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a test suite run as a background job inherits SIGINT ignored; the driver must hear it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # 1. kill the worker of a running trial by its pid, between two checkpoints
        killed_dir, pid = _wait_for(
            lambda: _mid_trial(directory), "a trial past its first checkpoint"
        )
        os.kill(pid, signal.SIGKILL)
        killed_key = next(
            k for k, t in _index(directory).items() if directory / t["run_dir"] == killed_dir
        )
        # Ray retries it on a new worker, which resumes from the checkpoint
        _wait_for(lambda: _index(directory)[killed_key]["state"] == "done", "the retried trial")
        # 2. Ctrl-C on the driver while a later trial runs, past its first checkpoint
        stopped_dir, _ = _wait_for(
            lambda: _mid_trial(directory, exclude=killed_dir),
            "a later trial past its first checkpoint",
            detail=lambda: (
                f"driver exit code {driver.poll()}, states "
                f"{sorted(t['state'] for t in _index(directory).values())}"
            ),
        )
        finished_before = {
            k: (directory / t["run_dir"] / "summary.json").stat().st_mtime_ns
            for k, t in _index(directory).items()
            if t["state"] == "done"
        }
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, err
    stopped = _index(directory)
    assert not any(t["state"] == "running" for t in stopped.values())
    assert any(t["state"] in ("interrupted", "pending") for t in stopped.values())
    assert stopped[killed_key]["resumed_from_step"] > 0
    stopped_key = next(k for k, t in stopped.items() if directory / t["run_dir"] == stopped_dir)
    assert stopped[stopped_key]["state"] == "interrupted"

    # 3. --resume runs only what is not finished; the failed config stays failed
    code = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlgrad.app.cli",
            "sweep",
            "--resume",
            str(directory),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert code.returncode == 1, code.stderr  # 1: some trials failed
    assert (
        "failed CartPole-v1/c1/seed0: BadInputError: config field 'minibatch_size'" in code.stdout
    )
    final = _index(directory)
    for key, mtime in finished_before.items():
        assert (directory / final[key]["run_dir"] / "summary.json").stat().st_mtime_ns == mtime
    good = {k: t for k, t in final.items() if "/c0/" in k or "/c2/" in k}
    bad = {k: t for k, t in final.items() if k not in good}
    assert {t["state"] for t in good.values()} == {"done"}
    assert {t["state"] for t in bad.values()} == {"failed"}
    assert all("larger than a rollout" in t["reason"] for t in bad.values())

    # every trial ran exactly once: a trial that was stopped (the killed one, those Ctrl-C hit)
    # and resumed has the metrics of one uninterrupted run of the same config
    sweep = sweeps.Sweep.load(directory)
    resumed = {k: t for k, t in good.items() if t["resumed_from_step"] is not None}
    assert killed_key in resumed and stopped_key in resumed
    for key, entry in good.items():
        steps = [int(r["step"]) for r in rows_without_timing(directory / entry["run_dir"])]
        assert steps == sorted(set(steps)) and steps[-1] == TOTAL_STEPS, key
    for key, entry in resumed.items():
        trial = sweep.trial(entry)
        reference = tmp_path / "reference" / key.replace("/", "-")
        config = module("ppo").Config(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in trial.fields.items()}
        )
        module("ppo").train(config, reference)
        assert rows_without_timing(Path(trial.run_dir)) == rows_without_timing(reference), key

    # 4. the report reads the sweep
    out = tmp_path / "report"
    assert main(["report", str(directory), "-o", str(out), "--reps", "200"]) == 0
    text = (out / "report.md").read_text()
    assert "| ppo | CartPole-v1 | clip_eps=0.2,minibatch_size=64 | 4 |" in text
    assert "| ppo | CartPole-v1 | clip_eps=0.2,minibatch_size=100000 | 4 | 0/4 | 0%" in text
    assert (out / "learning_curves.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "command, mentions",
    [
        ("sweep", ["--seeds", "--set", "--address", "--max-concurrent", "--resume", "ray"]),
        ("report", ["SWEEP_DIR", "--baseline", "bootstrap", "Wilson"]),
        ("tune", ["--trials", "--seeds-per-trial", "--storage", "n_solved", "Optuna"]),
    ],
)
def test_each_command_explains_itself(command, mentions, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for mention in mentions:
        assert mention in text, mention


def test_report_reads_a_folder_of_plain_run_directories(tmp_path, capsys):
    # two seeds trained without a sweep, then reported as one group
    for seed in (0, 1):
        config = build_config(
            "ppo",
            "CartPole-v1",
            {**QUICK, "minibatch_size": "64", "eval_every": "512", "eval_threshold": "20"},
            {"seed": seed, "total_steps": 2048},
        )
        module("ppo").train(config, tmp_path / "runs" / f"seed{seed}")
    assert main(["report", str(tmp_path / "runs"), "--no-plots", "--reps", "100"]) == 0
    table = capsys.readouterr().out
    assert "| ppo | CartPole-v1 | runs | 2 |" in table
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no sweep"):
        read_runs([tmp_path / "empty"])
    with pytest.raises(ValueError, match="is not a sweep or run directory"):
        read_runs([tmp_path / "missing"])


def test_the_summary_counts_solved_runs_and_gives_final_and_best_returns(tmp_path):
    # three done seeds, threshold 100: seed 0 solved and kept it; seed 1 solved (evaluations
    # 3-5 in a row) then fell to 40; seed 2 never had three in a row
    returns = {0: [50, 100, 100, 120], 1: [100, 90, 100, 110, 100, 40], 2: [100, 100, 99, 100]}
    trials = []
    for seed, evals in returns.items():
        run_dir = tmp_path / "runs" / f"seed{seed}"
        run_dir.mkdir(parents=True)
        rows = [f"{100 * (i + 1)},{i + 1.0},{r}" for i, r in enumerate(evals)]
        (run_dir / "metrics.csv").write_text("\n".join(["step,train_s,eval_return_mean", *rows]))
        (run_dir / "summary.json").write_text('{"threshold": 100.0, "interrupted": false}')
        trials.append(
            {
                "key": f"k{seed}",
                "env": "E",
                "config": "c0",
                "state": "done",
                "run_dir": f"runs/seed{seed}",
            }
        )
    sweep = sweeps.Sweep(tmp_path, {"configs": [{"id": "c0", "label": "base"}]}, trials)
    text = sweeps.summary_text(sweep)
    # final returns 120, 40, 100: mean 86.7; best 120, 110, 100: mean 110.0
    assert (
        "E base: solved 2 of 3 done (1 below the threshold again at the end); final return mean "
        "86.7, best 110.0 (checkpoints/best.pt)" in text
    )
