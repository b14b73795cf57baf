"""Learning-curve figures of run directories."""

from __future__ import annotations

import json
import warnings

import pytest

from rlgrad.support.plots import learning_curve

pytest.importorskip("matplotlib")


def _run_dir(path, rows):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"algorithm": "ppo", "config": {"env": "E"}}))
    lines = ["step,episode_return_mean,eval_return_mean"] + [",".join(map(str, r)) for r in rows]
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    return path


def test_a_run_stopped_before_its_first_evaluation_draws_without_a_warning(tmp_path):
    run = _run_dir(tmp_path / "run", [(100, 9.0, ""), (200, 12.0, "")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of a legend with nothing in it
        out = learning_curve([run], tmp_path / "curve.png")
    assert out.stat().st_size > 5_000


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
