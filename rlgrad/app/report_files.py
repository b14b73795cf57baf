"""The files of ``rlgrad report -o OUT``: ``report.md`` and its figures (matplotlib).

* ``learning_curves.png``: per environment, the IQM over runs of the evaluation return at each
  step, with its 95% stratified-bootstrap band, up to the last step of the longest run: a run
  that ended earlier (``stop_when_solved``, a smaller budget) carries its last evaluation forward,
  and the curve is dashed from where the first run ended (the figure says so);
* ``performance_profiles.png``: the fraction of runs whose normalized final score exceeds τ, for
  every τ, with its band (a curve above another everywhere dominates it);
* ``interval_estimates.png``: IQM, median, mean and optimality gap of the normalized scores, and
  the IQM training seconds to solve, each group with its 95% interval.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rlgrad.app import statistics as stats
from rlgrad.app.report import CONFIDENCE, Group, GroupStatistics, report
from rlgrad.errors import BadInputError
from rlgrad.support.plots import CARRIED_NOTE, carried_forward
from rlgrad.support.run_format import step_unit


def write_report(
    paths: list[str | Path],
    out: str | Path,
    baseline: str | None = None,
    reps: int = 2000,
    plots: bool = True,
) -> tuple[str, list[Path]]:
    """Write ``out/report.md`` and, with ``plots``, its figures; return the tables and files."""
    text, groups, results = report(paths, baseline, reps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = draw_all(groups, results, out, reps) if plots else []
    figures = "".join(f"\n![{p.stem}]({p.name})\n" for p in written)
    (out / "report.md").write_text(f"# rlgrad report\n\n{text}{figures}")
    return text, [out / "report.md", *written]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise BadInputError("report figures need matplotlib: pip install 'rlgrad[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_all(groups: list[Group], results: list[GroupStatistics], out: Path, reps: int):
    plt = _pyplot()
    paths = [
        learning_curves(plt, groups, out / "learning_curves.png", reps),
        performance_profiles(plt, groups, out / "performance_profiles.png", reps),
        interval_estimates(plt, groups, results, out / "interval_estimates.png", reps),
    ]
    return [p for p in paths if p is not None]


def learning_curves(plt, groups: list[Group], path: Path, reps: int) -> Path | None:
    envs = list(dict.fromkeys(g.env for g in groups))
    figure, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    drawn = carried = False
    for axis, env in zip(axes[0], envs, strict=True):
        for group in (g for g in groups if g.env == env):
            curves = [r.curve for r in group.finished if len(r.curve[0])]
            if not curves:
                continue
            grid, stacked, ended = carried_forward(curves)  # stacked: [runs, points]
            band = stats.stratified_bootstrap([stacked], stats.iqm, reps, CONFIDENCE)
            label = f"{group.algorithm} {group.label} ({len(curves)} runs)"
            solid = grid <= ended
            line = axis.plot(grid[solid], band.point[solid], label=label)
            color = line[0].get_color()
            if not solid.all():  # from the last step every run reached on, some are carried
                tail = grid >= ended
                axis.plot(grid[tail], band.point[tail], linestyle="--", color=color)
                carried = True
            axis.fill_between(grid, band.low, band.high, alpha=0.2, color=color)
            drawn = True
        threshold = next((g.threshold() for g in groups if g.env == env), None)
        if threshold is not None:
            axis.axhline(threshold, color="grey", linestyle=":", linewidth=1)
        axis.set_title(env)
        axis.set_xlabel(step_unit([g.algorithm for g in groups if g.env == env]))
        axis.set_ylabel("evaluation return (IQM, 95% CI)")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    if not drawn:
        return _discard(plt, figure)
    if carried:
        figure.text(0.5, 0.01, CARRIED_NOTE, ha="center", va="bottom", fontsize=8)
    return _save(plt, figure, path, bottom=0.06 if carried else 0.0)


def _scores_by_label(groups: list[Group]) -> dict[str, list[np.ndarray]]:
    """Normalized final scores per (algorithm, config), one array per environment."""
    by_label: dict[str, list[np.ndarray]] = {}
    for group in groups:
        scores = group.normalized_scores()
        if scores is not None and len(scores):
            by_label.setdefault(f"{group.algorithm} {group.label}", []).append(scores)
    return by_label


def performance_profiles(plt, groups: list[Group], path: Path, reps: int) -> Path | None:
    by_label = _scores_by_label(groups)
    if not by_label:
        return None
    everything = np.concatenate([np.concatenate(t) for t in by_label.values()])
    taus = np.linspace(min(everything.min(), 0.0), max(everything.max(), 1.0) + 0.05, 101)
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, tasks in by_label.items():
        band = stats.stratified_bootstrap(tasks, stats.performance_profile(taus), reps, CONFIDENCE)
        line = axis.plot(taus, band.point, label=label)
        axis.fill_between(taus, band.low, band.high, alpha=0.2, color=line[0].get_color())
    axis.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("normalized score τ  (0: random actions, 1: the solve threshold)")
    axis.set_ylabel("fraction of runs with score > τ")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    return _save(plt, figure, path)


def interval_estimates(
    plt, groups: list[Group], results: list[GroupStatistics], path: Path, reps: int
) -> Path | None:
    by_label = _scores_by_label(groups)
    if not by_label:
        return None
    labels = list(by_label)
    panels = [*stats.AGGREGATES, "training s to solve (IQM)"]
    figure, axes = plt.subplots(
        1, len(panels), figsize=(3.2 * len(panels), 0.5 * len(labels) + 1.6), squeeze=False
    )
    for axis, name in zip(axes[0], panels, strict=True):
        for row, label in enumerate(labels):
            if name in stats.AGGREGATES:
                estimate = stats.stratified_bootstrap(
                    by_label[label], stats.AGGREGATES[name], reps, CONFIDENCE
                )
            else:
                times = [
                    r.seconds_to_solve
                    for r in results
                    if f"{r.group.algorithm} {r.group.label}" == label and r.seconds_to_solve
                ]
                if len(times) != 1:  # pooled times over environments mean nothing
                    continue
                estimate = times[0]
            if not all(math.isfinite(v) for v in (estimate.low, estimate.point)):
                continue
            high = estimate.high if math.isfinite(estimate.high) else estimate.point * 2
            color = f"C{row % 10}"  # one colour per config in every panel
            axis.barh(
                row, high - estimate.low, left=estimate.low, height=0.6, alpha=0.5, color=color
            )
            axis.plot([estimate.point], [row], "|", color="black", markersize=14, mew=2)
        axis.margins(x=0.08)
        axis.set_yticks(range(len(labels)))
        axis.set_yticklabels(labels if axis is axes[0][0] else [], fontsize=7)
        axis.set_title(name, fontsize=9)
        axis.grid(alpha=0.3, axis="x")
    figure.suptitle("normalized scores with 95% stratified-bootstrap intervals", fontsize=9)
    return _save(plt, figure, path)


def _save(plt, figure, path: Path, bottom: float = 0.0) -> Path:
    figure.tight_layout(rect=(0, bottom, 1, 1))  # leave ``bottom`` of the height to a note
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _discard(plt, figure) -> None:
    plt.close(figure)
    return None
