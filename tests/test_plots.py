"""Learning-curve figures of run directories."""

from __future__ import annotations

import json
import warnings

import pytest

from rlgrad.support.plots import learning_curve

pytest.importorskip("matplotlib")


def _run_dir(path, rows, algorithm="ppo"):
    path.mkdir(parents=True)
    saved = {"algorithm": algorithm, "config": {"env": "E"}}
    (path / "config.json").write_text(json.dumps(saved))
    lines = ["step,episode_return_mean,eval_return_mean"] + [",".join(map(str, r)) for r in rows]
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    return path


def test_a_run_stopped_before_its_first_evaluation_draws_without_a_warning(tmp_path):
    run = _run_dir(tmp_path / "run", [(100, 9.0, ""), (200, 12.0, "")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of a legend with nothing in it
        out = learning_curve([run], tmp_path / "curve.png")
    assert out.stat().st_size > 5_000


def _saved_xlabels(monkeypatch):
    """The x-axis labels of the figures learning_curve saves, in order."""
    from matplotlib.figure import Figure

    labels = []
    original = Figure.savefig

    def spy(self, *args, **kwargs):
        labels.append([axes.get_xlabel() for axes in self.axes])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return labels


def test_the_x_axis_names_what_the_runs_steps_count(tmp_path, monkeypatch):
    from rlgrad.lm import run_files

    # a grpo-demo run's rows are one per GRPO step (rlgrad.lm.run_files), a PPO run's step
    # column counts environment steps; a plot of both can only say "steps"
    gym = _run_dir(tmp_path / "gym", [(100, 1.0, 10.0), (200, 2.0, 20.0)])
    lm = _run_dir(tmp_path / "lm", [(1, 0.1, ""), (2, 0.2, 0.5)], algorithm=run_files.ALGORITHM)
    labels = _saved_xlabels(monkeypatch)
    for runs in ([gym], [lm], [gym, lm]):
        learning_curve(runs, tmp_path / "curve.png")
    assert labels == [["environment steps"], ["GRPO steps"], ["steps"]]


def test_seeds_of_one_config_draw_as_one_mean_line(tmp_path):
    import matplotlib.pyplot as plt

    runs = [
        _run_dir(tmp_path / f"s{i}", [(100, 1.0, 10.0 * i), (200, 2.0, 20.0 * i)]) for i in range(3)
    ]
    drawn = []
    original = plt.Axes.plot

    def spy(self, x, y, *args, **kwargs):
        drawn.append((list(x), list(y), kwargs.get("label")))
        return original(self, x, y, *args, **kwargs)

    plt.Axes.plot = spy
    try:
        learning_curve(runs, tmp_path / "curve.png")
    finally:
        plt.Axes.plot = original
    assert drawn == [([100.0, 200.0], [10.0, 20.0], "ppo E (mean of 3)")]


def _spy_plots(monkeypatch):
    import matplotlib.pyplot as plt

    drawn = []
    original = plt.Axes.plot

    def spy(self, x, y, *args, **kwargs):
        drawn.append((list(x), list(y), kwargs.get("linestyle", "-"), kwargs.get("label")))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "plot", spy)
    return drawn


def test_a_run_that_ended_carries_its_last_evaluation_forward(tmp_path, monkeypatch):
    # seed 0 stopped once solved at step 200 (returns 100, 500); seed 1 ran to 400
    # (50, 100, 300, 500). The mean is drawn to 400, seed 0 holding its 500: solid while both
    # run, (100+50)/2 = 75 and (500+100)/2 = 300; dashed after, (500+300)/2 = 400 and 500
    short = _run_dir(tmp_path / "short", [(100, 1.0, 100.0), (200, 2.0, 500.0)])
    rows = [(100, 1.0, 50.0), (200, 2.0, 100.0), (300, 3.0, 300.0), (400, 4.0, 500.0)]
    long = _run_dir(tmp_path / "long", rows)
    drawn = _spy_plots(monkeypatch)
    learning_curve([short, long], tmp_path / "curve.png")
    assert drawn == [
        ([100.0, 200.0], [75.0, 300.0], "-", "ppo E (mean of 2)"),
        ([200.0, 300.0, 400.0], [300.0, 400.0, 500.0], "--", None),
    ]


def test_report_curves_reach_the_longest_run_and_say_so(tmp_path, monkeypatch):
    from rlgrad.app import report_files
    from rlgrad.app.report import group_runs, read_runs

    # three finished seeds of one config; two stopped once solved at 200 and 300
    ends = {"a": [10.0, 500.0], "b": [20.0, 30.0, 500.0], "c": [0.0, 40.0, 60.0, 80.0]}
    for name, returns in ends.items():
        rows = [(100 * (i + 1), 1.0, r) for i, r in enumerate(returns)]
        run = _run_dir(tmp_path / "runs" / name, rows)
        summary = {"threshold": 475.0, "interrupted": False, "best_eval_return_mean": None}
        (run / "summary.json").write_text(json.dumps(summary))
    groups = group_runs(read_runs([tmp_path / "runs"]))
    drawn = _spy_plots(monkeypatch)
    plt = report_files._pyplot()
    notes = []
    monkeypatch.setattr(
        plt.Figure, "text", lambda self, x, y, text, **kw: notes.append(text), raising=True
    )
    report_files.learning_curves(plt, groups, tmp_path / "curves.png", reps=50)
    # with three runs the IQM (a quarter trimmed from each end) is the mean of all three, and
    # the bootstrap's point is the IQM of the runs themselves: at 400 the carried 500, 500 and 80
    solid, dashed = drawn
    assert solid[0] == [100.0, 200.0] and solid[1] == pytest.approx([10.0, (500 + 30 + 40) / 3])
    assert dashed[0] == [200.0, 300.0, 400.0] and dashed[2] == "--"
    assert dashed[1] == pytest.approx([(500 + 30 + 40) / 3, (500 + 500 + 60) / 3, 1080 / 3])
    assert notes == [report_files.CARRIED_NOTE]


def test_report_curves_of_lm_runs_are_drawn_against_grpo_steps(tmp_path, monkeypatch):
    from rlgrad.app import report_files
    from rlgrad.app.report import group_runs, read_runs
    from rlgrad.lm import run_files

    for seed in range(2):
        run = _run_dir(tmp_path / "runs" / f"s{seed}", [(1, 0.1, 0.2), (2, 0.2, 0.4)], "grpo-lm")
        summary = {"threshold": None, "interrupted": False, "best_eval_return_mean": 0.4}
        (run / "summary.json").write_text(json.dumps(summary))
    assert run_files.ALGORITHM == "grpo-lm"
    labels = _saved_xlabels(monkeypatch)
    groups = group_runs(read_runs([tmp_path / "runs"]))
    report_files.learning_curves(report_files._pyplot(), groups, tmp_path / "c.png", reps=20)
    assert labels == [["GRPO steps"]]
