"""Learning curves from run directories (matplotlib, an optional dependency)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from rlgrad.support.run_format import curve as column_curve
from rlgrad.support.run_format import read_config, read_rows, step_unit

CARRIED_NOTE = "dashed: runs that ended carry their last evaluation forward"


def carried_forward(
    curves: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, float]:
    """Every run's curve on the union of the runs' steps.

    ``curves`` holds one ``(steps [n_i], values [n_i])`` per run. Returns ``grid [points]``,
    ``values [runs, points]`` and the step where the first run ended. Between its points a run
    is interpolated linearly; after its last one it keeps its last value (a run stopped once
    solved is taken to stay solved). Without this the aggregate curve would stop where the
    shortest run stopped: a sweep with ``stop_when_solved`` would end at its luckiest seed.

    >>> grid, values, ended = carried_forward([(np.array([1., 2.]), np.array([10., 20.])),
    ...                                        (np.array([1., 2., 3.]), np.array([0., 2., 4.]))])
    >>> grid.tolist(), values.tolist(), ended
    ([1.0, 2.0, 3.0], [[10.0, 20.0, 20.0], [0.0, 2.0, 4.0]], 2.0)
    """
    grid = np.unique(np.concatenate([steps for steps, _ in curves]))
    # np.interp holds the last value beyond the last step: exactly the carry-forward
    values = np.stack([np.interp(grid, steps, points) for steps, points in curves])
    return grid, values, float(min(steps[-1] for steps, _ in curves))


def _label(run_dir: Path) -> str:
    saved = read_config(run_dir)
    return f"{saved['algorithm']} {saved['config']['env']}"


def learning_curve(run_dirs: list[Path], out: Path, column: str = "eval_return_mean") -> Path:
    """Plot ``column`` against the runs' steps (environment steps; GRPO steps for LM runs,
    :func:`rlgrad.support.run_format.step_unit`); runs of the same algorithm and environment
    (several seeds) are drawn as their mean with a band from the lowest to the highest run, up
    to the longest run's last step: runs that ended sooner carry their last value forward,
    drawn dashed from where the first run ended."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Path]] = defaultdict(list)
    for run_dir in run_dirs:
        groups[_label(run_dir)].append(Path(run_dir))
    figure, axes = plt.subplots(figsize=(7, 4.2))
    carried = False
    for label, dirs in groups.items():
        rows = [read_rows(d) for d in dirs]
        curves = [column_curve(r, column) for r in rows]
        curves = [c for c in curves if len(c[0])]
        if not curves:
            continue
        if len(curves) == 1:
            steps, values = curves[0]
            axes.plot(steps, values, marker="o", markersize=3, label=label)
            train_steps, train_values = column_curve(rows[0], "episode_return_mean")
            if column == "eval_return_mean" and len(train_steps):
                axes.plot(
                    train_steps, train_values, alpha=0.4, label=f"{label} (training episodes)"
                )
            continue
        grid, stacked, ended = carried_forward(curves)  # stacked: [runs, points]
        solid = grid <= ended
        mean = stacked.mean(axis=0)
        line = axes.plot(grid[solid], mean[solid], label=f"{label} (mean of {len(curves)})")
        color = line[0].get_color()
        if not solid.all():
            tail = grid >= ended
            axes.plot(grid[tail], mean[tail], linestyle="--", color=color)
            carried = True
        axes.fill_between(grid, stacked.min(axis=0), stacked.max(axis=0), alpha=0.2, color=color)
    axes.set_xlabel(step_unit([read_config(d)["algorithm"] for d in run_dirs]))
    axes.set_ylabel(column.replace("_", " "))
    axes.grid(alpha=0.3)
    if axes.get_lines():
        axes.legend(fontsize=8, title=CARRIED_NOTE if carried else None, title_fontsize=7)
    else:  # stopped before its first evaluation: say so rather than draw an empty frame
        axes.text(
            0.5, 0.5, f"no {column.replace('_', ' ')} yet", ha="center", transform=axes.transAxes
        )
    figure.tight_layout()
    out = Path(out)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
