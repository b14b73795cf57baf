"""Learning curves from run directories (matplotlib, an optional dependency)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def read_metrics(run_dir: Path) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _curve(rows: list[dict], column: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(float(r["step"]), float(r[column])) for r in rows if r.get(column) not in ("", None)]
    if not points:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*points, strict=True)
    return np.array(steps), np.array(values)


def _label(run_dir: Path) -> str:
    saved = json.loads((Path(run_dir) / "config.json").read_text())
    return f"{saved['algorithm']} {saved['config']['env']}"


def learning_curve(run_dirs: list[Path], out: Path, column: str = "eval_return_mean") -> Path:
    """Plot ``column`` against environment steps; runs of the same algorithm and environment
    (several seeds) are drawn as their mean with a band from the lowest to the highest run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Path]] = defaultdict(list)
    for run_dir in run_dirs:
        groups[_label(run_dir)].append(Path(run_dir))
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label, dirs in groups.items():
        curves = [_curve(read_metrics(d), column) for d in dirs]
        curves = [c for c in curves if len(c[0])]
        if not curves:
            continue
        if len(curves) == 1:
            steps, values = curves[0]
            axes.plot(steps, values, marker="o", markersize=3, label=label)
            train_steps, train_values = _curve(read_metrics(dirs[0]), "episode_return_mean")
            if column == "eval_return_mean" and len(train_steps):
                axes.plot(
                    train_steps, train_values, alpha=0.4, label=f"{label} (training episodes)"
                )
            continue
        grid = np.unique(np.concatenate([s for s, _ in curves]))
        grid = grid[grid <= min(s[-1] for s, _ in curves)]
        stacked = np.stack([np.interp(grid, s, v) for s, v in curves])
        line = axes.plot(grid, stacked.mean(axis=0), label=f"{label} (mean of {len(curves)})")
        axes.fill_between(
            grid, stacked.min(axis=0), stacked.max(axis=0), alpha=0.2, color=line[0].get_color()
        )
    axes.set_xlabel("environment steps")
    axes.set_ylabel(column.replace("_", " "))
    axes.grid(alpha=0.3)
    if axes.get_lines():
        axes.legend(fontsize=8)
    else:  # stopped before its first evaluation: say so rather than draw an empty frame
        axes.text(
            0.5, 0.5, f"no {column.replace('_', ' ')} yet", ha="center", transform=axes.transAxes
        )
    figure.tight_layout()
    out = Path(out)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
