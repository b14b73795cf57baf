"""`rlgrad train / eval / plot / presets` from the command line, including Ctrl-C and resume."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import rows_without_timing

import rlgrad
from rlgrad import BadInputError
from rlgrad.app import presets
from rlgrad.app.cli import main
from rlgrad.app.commands.common import new_run_start
from rlgrad.app.presets import all_presets, preset_config

QUICK = [
    "--no-progress",
    "--config.num_envs",
    "4",
    "--config.num_steps",
    "16",
    "--config.epochs",
    "1",
    "--config.minibatch_size",
    "64",
    "--config.eval_episodes",
    "2",
]


def test_train_eval_plot_and_presets(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            "ppo",
            "--env",
            "CartPole-v1",
            "--seed",
            "3",
            "--total-steps",
            "512",
            "--run-dir",
            str(run_dir),
            *QUICK,
            "--config.eval_every",
            "256",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "ppo on CartPole-v1 (seed 3): 512 steps" in out and str(run_dir) in out
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["algorithm"] == "ppo" and saved["config"]["seed"] == 3
    # the preset applies under the command-line fields
    preset = all_presets()["ppo"]["CartPole-v1"]
    given = {"num_envs", "num_steps", "epochs", "minibatch_size", "total_steps", "eval_every"}
    untouched = {k: v for k, v in preset.items() if k not in given}
    assert untouched, "the preset should set more than the command line does"
    for field, value in untouched.items():
        assert saved["config"][field] == (list(value) if isinstance(value, tuple) else value)

    assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
    assert "3 episodes, return" in capsys.readouterr().out

    second = tmp_path / "run2"
    main(["train", "ppo", "--seed", "4", "--total-steps", "512", "--run-dir", str(second), *QUICK])
    capsys.readouterr()
    assert main(["plot", str(run_dir), str(second), "-o", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 1000

    assert main(["presets"]) == 0
    assert "CartPole-v1" in capsys.readouterr().out


def test_train_many_seeds_in_one_process_report_and_resume(tmp_path, capsys):
    run_dir = tmp_path / "seeds"
    argv = ["train", "ppo", "--env", "CartPole-v1", "--seeds", "3,5", "--run-dir", str(run_dir)]
    code = main([*argv, "--total-steps", "512", *QUICK, "--config.eval_every", "256"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ppo on CartPole-v1: 2 seeds in one process" in out
    assert "seed 3" in out and "seed 5" in out and "compare them with `rlgrad report`" in out
    for seed in (3, 5):
        summary = json.loads((run_dir / f"seed{seed}" / "summary.json").read_text())
        assert summary["seed"] == seed and summary["steps"] == 512
    assert main(["report", str(run_dir), "-o", str(tmp_path / "report"), "--reps", "50"]) == 0
    assert (tmp_path / "report" / "report.md").exists()
    # the seeds resume together, from their last checkpoints, up to a larger budget
    for seed in (3, 5):
        config_file = run_dir / f"seed{seed}" / "config.json"
        saved = json.loads(config_file.read_text())
        saved["config"]["total_steps"] = 768
        config_file.write_text(json.dumps(saved))
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    for seed in (3, 5):
        assert rows_without_timing(run_dir / f"seed{seed}")[-1]["step"] == 768


def test_help_lists_every_config_field_with_its_docstring(capsys):
    with pytest.raises(SystemExit):
        main(["train", "ppo", "--help"])
    text = capsys.readouterr().out
    for field in ("clip_eps", "lam", "target_kl", "normalize_obs", "checkpoint_every"):
        assert f"--config.{field}" in text
    assert "GAE λ" in text and "Clip range ε" in text
    with pytest.raises(SystemExit):
        main(["train", "dqn", "--help"])
    text = capsys.readouterr().out
    for field in ("double", "dueling", "n_step", "tau", "checkpoint_replay", "learning_starts"):
        assert f"--config.{field}" in text
    assert "Polyak averaging" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "dqnn"], "invalid choice: 'dqnn'"),
        (["train", "ppo", "--env", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
        (["train", "ppo", "--env", "Blackjack-v1"], "need a Box observation space"),
        (["train", "ppo", "--config.num_envs", "0"], "'num_envs' must be > 0; got 0"),
        (["train", "ppo", "--config.minibatch_size", "99999"], "larger than a rollout"),
        (["train", "ppo", "--config.clip_epsilon", "0.1"], "did you mean 'clip_eps'"),
        (["train", "ppo", "--config.lr", "fast"], "config field 'lr'"),
        (["train", "ppo", "--seed", "x"], "invalid int value: 'x'"),
        (["train", "dqn", "--env", "Pendulum-v1"], "DQN needs a Discrete action space"),
        (["train", "dqn", "--config.buffer_size", "10"], "'buffer_size' = 10 is smaller than"),
        (["train", "ppo", "--seeds", "3-1"], "--seeds names no seed: '3-1'"),
        (["train", "ppo", "--seeds", "1,2", "--seed", "4"], "give either --seed or --seeds"),
        (["train", "crossq", "--seeds", "0-3"], "use `rlgrad sweep crossq --seeds 0-3`"),
        (["train", "ppo", "--config.env_backend", "jax"], "'env_backend'"),
        (["train", "a2c", "--config.device", "cuda:7"], "config field 'device'"),
        (["train", "--resume", "/nonexistent/run"], "is not a run directory"),
        (["eval", "/nonexistent/run"], "is not a run directory"),
        (["grpo-demo", "--steps", "0"], "--steps must be a positive number"),
        (["grpo-demo", "--lr", "-1"], "config field 'learning_rate' must be >= 0; got -1.0"),
    ],
)
def test_bad_input_is_one_line_that_says_what_to_do(argv, message, tmp_path, capsys):
    trains = argv[:2] in (["train", "ppo"], ["train", "dqn"], ["train", "crossq"])
    argv = [*argv, "--run-dir", str(tmp_path / "r")] if trains else argv
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err
    assert "\n" not in err and "Traceback" not in err


def test_a_bug_keeps_its_traceback_and_only_refused_input_is_one_line(monkeypatch, capsys):
    # A ValueError from inside NumPy (here: a reshape that cannot work) is a bug, not bad input:
    # main() must let it through instead of printing "rlgrad presets: ..." and exiting 2.
    import numpy as np

    def broken():
        return np.reshape(np.arange(3), (2, 2))

    monkeypatch.setattr(presets, "all_presets", broken)
    with pytest.raises(ValueError, match="cannot reshape") as raised:
        main(["presets"])
    assert type(raised.value) is ValueError  # not a BadInputError
    assert "rlgrad presets:" not in capsys.readouterr().err
    # the same bug from the console script: a traceback and exit status 1, not 2
    script = (
        "import numpy as np\n"
        "from rlgrad.app import presets\n"
        "from rlgrad.app.cli import main\n"
        "presets.all_presets = lambda: np.reshape(np.arange(3), (2, 2))\n"
        "raise SystemExit(main(['presets']))\n"
    )
    crashed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert crashed.returncode == 1
    assert "Traceback" in crashed.stderr and "cannot reshape" in crashed.stderr
    # while a config field rlgrad refuses is a BadInputError: one line, exit 2
    monkeypatch.undo()
    with pytest.raises(BadInputError, match="config field 'lr'"):
        presets.build_config("ppo", "CartPole-v1", {}, {"lr": "fast"})
    assert main(["train", "ppo", "--config.lr", "fast"]) == 2
    assert capsys.readouterr().err.strip().startswith("rlgrad train: config field 'lr'")


def value_errors_built(source: str) -> list[int]:
    """Lines of ``source`` that construct a plain ``ValueError(...)``."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "ValueError"
    ]


def test_every_error_rlgrad_raises_on_purpose_is_a_bad_input_error():
    # main() reports only BadInputError as bad input, so a plain ValueError raised on purpose
    # anywhere in rlgrad would reach a user of the command line as a traceback
    assert value_errors_built(
        "try:\n    int('x')\nexcept ValueError:\n    raise ValueError('a')"
    ) == [4]
    package = Path(rlgrad.__file__).parent
    plain = [
        f"{path.relative_to(package.parent)}:{line}"
        for path in sorted(package.rglob("*.py"))
        for line in value_errors_built(path.read_text())
    ]
    assert not plain, "raise BadInputError (rlgrad.errors), not ValueError:\n" + "\n".join(plain)


def test_train_sweep_and_tune_start_from_the_same_fields(tmp_path):
    # the preset rule, written once: --no-preset -> trainer defaults, --preset FILE -> the file
    # (its algorithm and, unless --env, its environment), else the shipped preset
    file = presets.write_preset_file(tmp_path / "p.json", "dqn", "Acrobot-v1", {"lr": 0.01})
    assert new_run_start("train", "ppo", None, None, False) == ("ppo", "CartPole-v1", "shipped")
    assert new_run_start("sweep", "sac", None, None, True) == ("sac", "Pendulum-v1", "none")
    assert new_run_start("tune", None, None, str(file), False) == ("dqn", "Acrobot-v1", str(file))
    assert new_run_start("tune", "dqn", "CartPole-v1", str(file), False)[1] == "CartPole-v1"
    for algorithm, preset_file, no_preset, message in [
        ("ppo", str(file), True, "give --preset FILE or --no-preset, not both"),
        ("ppo", str(file), False, "is a dqn preset, not ppo"),
        (None, None, False, "name an algorithm (rlgrad sweep ppo"),
    ]:
        with pytest.raises(BadInputError, match=message.replace("(", r"\(")):
            new_run_start("sweep", algorithm, None, preset_file, no_preset)
    # and each command reports a conflict before it starts anything
    for command in (["sweep", "ppo"], ["tune", "ppo"]):
        out = tmp_path / command[0]
        code = main([*command, "--preset", str(file), "--out", str(out), "--no-progress"])
        assert code == 2 and not out.exists()


def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one(tmp_path):
    common = [
        "train",
        "a2c",
        "--total-steps",
        "30000",
        "--no-progress",
        "--config.eval_every",
        "5000",
        "--config.eval_episodes",
        "2",
        "--config.checkpoint_every",
        "0",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cut = tmp_path / "cut"
    process = subprocess.Popen(
        [sys.executable, "-m", "rlgrad.app.cli", *common, "--run-dir", str(cut)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until training has written a few rows
        if (cut / "metrics.csv").exists() and len(
            (cut / "metrics.csv").read_text().splitlines()
        ) > 20:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: resume with" in out
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["interrupted"] and 0 < summary["steps"] < 30000

    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    whole = tmp_path / "whole"
    assert main([*common, "--run-dir", str(whole)]) == 0
    assert rows_without_timing(cut) == rows_without_timing(whole)


def test_presets_are_valid_configs():
    for algorithm, envs in all_presets().items():
        for env_id in envs:
            config = preset_config(algorithm, env_id)
            assert config.env == env_id


def test_a_preset_file_trains_and_bad_ones_say_what_is_wrong(tmp_path, capsys):
    from rlgrad.app.presets import write_preset_file

    good = write_preset_file(
        tmp_path / "p.json",
        "ppo",
        "Acrobot-v1",
        {"num_envs": 4, "num_steps": 16, "epochs": 1, "minibatch_size": 64, "eval_episodes": 2},
    )
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                str(good),
                "--seed",
                "5",
                "--total-steps",
                "128",
                "--run-dir",
                str(run_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["algorithm"] == "ppo" and saved["config"]["env"] == "Acrobot-v1"
    assert (saved["config"]["seed"], saved["config"]["num_envs"]) == (5, 4)
    (tmp_path / "bad.json").write_text("{not json")
    cases = [
        (["train", "dqn", "--preset", str(good)], "is a ppo preset, not dqn"),
        (["train", "--preset", str(tmp_path / "none.json")], "does not exist"),
        (["train", "--preset", str(tmp_path / "bad.json")], "is not JSON"),
        (["train", "ppo", "--preset", str(good), "--no-preset"], "not both"),
    ]
    for command, message in cases:
        capsys.readouterr()
        assert main(command) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


PLOTS, GYM = "pip install 'rlgrad[plots]'", "pip install 'rlgrad[gym]'"


@pytest.mark.parametrize(
    "missing, command, message",
    [
        (
            "matplotlib",
            ["tour", "--plots", "{tmp}"],
            f"rlgrad tour: matplotlib is not installed (--plots draws with it): {PLOTS}",
        ),
        ("gymnasium", ["train", "ppo"], f"rlgrad train: gymnasium is not installed: {GYM}"),
        ("matplotlib", ["plot", "{tmp}"], f"rlgrad plot: matplotlib is not installed: {PLOTS}"),
        (
            "matplotlib",
            ["report", "{tmp}", "-o", "{tmp}/r"],
            "rlgrad report: matplotlib is not installed (for the figures; or pass --no-plots): "
            + PLOTS,
        ),
        ("gymnasium", ["eval", "{tmp}"], f"rlgrad eval: gymnasium is not installed: {GYM}"),
        (
            "peft",
            ["grpo-demo", "--lora"],
            "rlgrad grpo-demo: peft is not installed (--lora trains adapters with it): "
            "pip install 'rlgrad[peft]'",
        ),
    ],
)
def test_a_missing_optional_dependency_is_one_line_before_any_work(
    missing, command, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now fails
    code = main([part.replace("{tmp}", str(tmp_path)) for part in command])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""  # nothing ran: the tour printed no first step
    assert captured.err.strip() == message


def test_eval_takes_the_best_or_the_latest_checkpoint(tmp_path, capsys):
    from rlgrad.trainers import ppo

    # a run whose evaluation goes up, then down (264.5 at step 512, 155.5 at the end, on the
    # CPU): the same seeds and episode count as the run's own evaluations give its numbers back
    config = ppo.Config(
        env="CartPole-v1",
        seed=2,
        lr=3e-3,
        num_envs=4,
        num_steps=32,
        minibatch_size=64,
        epochs=4,
        eval_episodes=2,
        total_steps=2048,
        eval_every=256,
        checkpoint_every=0,
    )
    summary = ppo.train(config, tmp_path / "run").summary
    best, final = summary["best_eval_return_mean"], summary["final_eval_return_mean"]
    assert best > final  # the premise
    capsys.readouterr()
    for checkpoint, expected in (("best", best), ("latest", final), (None, final)):
        option = ["--checkpoint", checkpoint] if checkpoint else []
        assert main(["eval", str(tmp_path / "run"), "--episodes", "2", *option]) == 0
        assert f"2 episodes, return {expected:.1f} ±" in capsys.readouterr().out, checkpoint
    path = tmp_path / "run" / "checkpoints" / "best.pt"
    assert main(["eval", str(tmp_path / "run"), "--episodes", "2", "--checkpoint", str(path)]) == 0
    assert f"return {best:.1f} ±" in capsys.readouterr().out
