"""``rlgrad report``: many-seed statistics of sweeps (or of any folder of run directories).

Runs are grouped by (algorithm, environment, config): runs whose configs differ only in the seed
form one group, even across sweep directories. For each group the report gives

* reliability: the success rate (solved as :func:`rlgrad.support.run_format.solved_at` defines it:
  ``SOLVED_AFTER`` consecutive evaluations at the threshold) with its Wilson 95% interval;
* speed: environment steps and training seconds to solve, as IQMs with stratified-bootstrap 95%
  intervals, where a run that never solved counts as +inf (so the IQM itself becomes inf once
  more than a quarter of the runs never solved: a slow-but-sure config is not hidden behind the
  fast runs of an unreliable one);
* scores: the final evaluation return's IQM, median and mean, and the optimality gap of the
  normalized score, (return − random) / (threshold − random), each with its interval; the best
  evaluation's mean (the return of the agent in each run's ``checkpoints/best.pt``);
* for each environment with several configs, the probability that a run of each config beats a
  run of the baseline config (on final return, and on time to solve);

and draws the IQM learning curves with their 95% bands, performance profiles and interval
estimates. A run that failed (the NaN guard) counts as unsolved, with its last evaluation as its
score; a run that has not finished is left out and counted. Every run directory is read through
:func:`rlgrad.support.run_format.read_run`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from rlgrad.app import statistics as stats
from rlgrad.app.sweep import INDEX, Sweep
from rlgrad.app.trials import DONE, FAILED
from rlgrad.errors import BadInputError
from rlgrad.support.run_format import RunFiles, read_run

CONFIDENCE = 0.95
IGNORED_FIELDS = ("seed",)  # configs that differ only in these are one group


@dataclass
class RunResult:
    """One run directory, read back, with its sweep's label and state."""

    files: RunFiles
    algorithm: str
    fields: dict
    label: str
    state: str  # DONE, FAILED, or anything else for unfinished

    @property
    def run_dir(self) -> Path:
        return self.files.directory

    @property
    def env(self) -> str:
        return self.fields["env"]

    @property
    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Evaluation steps ``[n]`` and returns ``[n]``."""
        return self.files.curve()

    @property
    def solved(self) -> bool:
        """Solved, in a run that ended normally (a failed run counts as unsolved)."""
        return self.state == DONE and self.files.solved is not None

    @property
    def final_return(self) -> float | None:
        return self.files.final_return

    @property
    def best_return(self) -> float | None:
        return self.files.best_return


@dataclass
class Group:
    """The runs of one (algorithm, environment, config)."""

    algorithm: str
    env: str
    label: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def finished(self) -> list[RunResult]:
        return [r for r in self.runs if r.state in (DONE, FAILED)]

    @property
    def unfinished(self) -> int:
        return len(self.runs) - len(self.finished)

    def threshold(self) -> float | None:
        for run in self.finished:
            if run.files.summary is not None and run.files.threshold is not None:
                return float(run.files.threshold)
        return _gym_threshold(self.env)

    def steps_to_solve(self) -> np.ndarray:
        return np.array([r.files.solved_step if r.solved else math.inf for r in self.finished])

    def seconds_to_solve(self) -> np.ndarray:
        return np.array([r.files.solved_train_s if r.solved else math.inf for r in self.finished])

    def final_returns(self) -> np.ndarray:
        return np.array([r.final_return for r in self.finished if r.final_return is not None])

    def normalized_scores(self) -> np.ndarray | None:
        threshold = self.threshold()
        if threshold is None:
            return None
        low = random_score(self.env)
        return (self.final_returns() - low) / (threshold - low)


# ----- reading sweeps and run directories -----


def read_runs(paths: list[str | Path]) -> list[RunResult]:
    """Every run under ``paths``: sweep directories (their index), run directories, or folders
    of run directories."""
    runs: list[RunResult] = []
    several = len(paths) > 1  # then every label names its sweep too, as given
    for given in paths:
        path = Path(given)
        if (path / INDEX).exists():
            sweep = Sweep.load(path)
            labels = {c["id"]: c["label"] for c in sweep.spec["configs"]}
            for entry in sweep.trials:
                label = labels[entry["config"]]
                if several:
                    label = f"{given}:{label}"
                trial = sweep.trial(entry)  # the config even of a trial that never started
                run = _read_run(Path(trial.run_dir), label, entry["state"])
                run.algorithm, run.fields = trial.algorithm, trial.fields
                runs.append(run)
        elif (path / "config.json").exists():
            runs.append(_read_run(path, path.name, None))
        elif path.is_dir():
            found = sorted(p.parent for p in path.glob("*/config.json"))
            if not found:
                raise BadInputError(
                    f"{str(path)!r} holds no sweep ({INDEX}) and no run directories"
                )
            runs += [_read_run(p, path.name, None) for p in found]
        else:
            raise BadInputError(f"{str(path)!r} is not a sweep or run directory")
    return runs


def _read_run(run_dir: Path, label: str, state: str | None) -> RunResult:
    files = read_run(run_dir)
    if state is None:  # a plain run directory: finished or failed as its summary says
        state = DONE if files.finished else FAILED if files.failed else "unfinished"
    algorithm = files.algorithm or "?"
    fields = files.config if files.config is not None else {"env": "?"}
    return RunResult(files, algorithm, fields, label, state)


def group_runs(runs: list[RunResult]) -> list[Group]:
    """Runs with the same algorithm and config (the seed aside), in order of first appearance."""
    groups: dict[tuple, Group] = {}
    for run in runs:
        config = {k: v for k, v in run.fields.items() if k not in IGNORED_FIELDS}
        key = (run.algorithm, json.dumps(config, sort_keys=True))
        if key not in groups:
            groups[key] = Group(run.algorithm, run.env, run.label)
        groups[key].runs.append(run)
    labels = defaultdict(list)
    for group in groups.values():  # two configs may share a label (e.g. two sweeps' "base")
        labels[(group.algorithm, group.env, group.label)].append(group)
    for same in labels.values():
        for i, group in enumerate(same[1:], start=2):
            group.label = f"{group.label} ({i})"
    return list(groups.values())


def _gym_threshold(env_id: str) -> float | None:
    import gymnasium

    try:
        return gymnasium.spec(env_id).reward_threshold
    except gymnasium.error.Error:
        return None


@cache
def random_score(env_id: str, episodes: int = 100, seed: int = 0) -> float:
    """The mean return of uniformly random actions over ``episodes`` seeded episodes: the 0 of
    the normalized score (the threshold is its 1)."""
    import gymnasium

    env = gymnasium.make(env_id)
    env.action_space.seed(seed)
    total = 0.0
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / episodes


# ----- the numbers -----


@dataclass
class GroupStatistics:
    group: Group
    success: stats.Interval | None
    steps_to_solve: stats.Interval | None
    seconds_to_solve: stats.Interval | None
    returns: dict[str, stats.Interval] = field(default_factory=dict)  # IQM, median, mean
    optimality_gap: stats.Interval | None = None
    best_return_mean: float | None = None


def group_statistics(group: Group, reps: int = 2000, seed: int = 0) -> GroupStatistics:
    finished = group.finished
    if not finished:
        return GroupStatistics(group, None, None, None)
    solved = sum(r.solved for r in finished)

    def interval(values, statistic):
        return stats.stratified_bootstrap([values], statistic, reps, CONFIDENCE, seed)

    result = GroupStatistics(
        group,
        stats.wilson_interval(solved, len(finished), CONFIDENCE),
        interval(group.steps_to_solve(), stats.iqm),
        interval(group.seconds_to_solve(), stats.iqm),
    )
    returns = group.final_returns()
    if len(returns):
        for name in ("IQM", "median", "mean"):
            result.returns[name] = interval(returns, stats.AGGREGATES[name])
    scores = group.normalized_scores()
    if scores is not None and len(scores):
        result.optimality_gap = interval(scores, stats.optimality_gap)
    best = [r.best_return for r in finished if r.best_return is not None]
    result.best_return_mean = float(np.mean(best)) if best else None
    return result


def aggregate_over_envs(groups: list[Group], reps: int = 2000, seed: int = 0) -> list[dict]:
    """For each (algorithm, config label) run on several environments: the four aggregates of
    the normalized scores, stratified by environment."""
    by_label: dict[tuple, list[Group]] = defaultdict(list)
    for group in groups:
        by_label[(group.algorithm, group.label)].append(group)
    rows = []
    for (algorithm, label), members in by_label.items():
        tasks = [g.normalized_scores() for g in members]
        tasks = [t for t in tasks if t is not None and len(t)]
        if len(tasks) < 2:
            continue
        row = {"algorithm": algorithm, "label": label, "envs": len(tasks)}
        for name, statistic in stats.AGGREGATES.items():
            row[name] = stats.stratified_bootstrap(tasks, statistic, reps, CONFIDENCE, seed)
        rows.append(row)
    return rows


def improvements(groups: list[Group], baseline: str | None, reps: int = 2000) -> list[dict]:
    """P(a run of each config beats a run of the baseline), per environment with several."""
    by_env: dict[tuple, list[Group]] = defaultdict(list)
    for group in groups:
        if group.finished:
            by_env[(group.algorithm, group.env)].append(group)
    rows = []
    for (algorithm, env), members in by_env.items():
        if len(members) < 2:
            continue
        reference = next((g for g in members if g.label == baseline), members[0])
        for group in members:
            if group is reference:
                continue
            returns = [group.final_returns()], [reference.final_returns()]
            # lower is better for time, so "X beats Y" is Y's time above X's
            times = [reference.seconds_to_solve()], [group.seconds_to_solve()]
            has_returns = all(len(r[0]) for r in returns)
            rows.append(
                {
                    "algorithm": algorithm,
                    "env": env,
                    "label": group.label,
                    "baseline": reference.label,
                    "return": (
                        stats.probability_of_improvement_interval(*returns, reps=reps)
                        if has_returns
                        else None
                    ),
                    "time": stats.probability_of_improvement_interval(*times, reps=reps),
                }
            )
    return rows


# ----- Markdown -----


def format_number(x: float) -> str:
    if x is None:
        return "—"
    if math.isinf(x):
        return "∞"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def format_interval(interval: stats.Interval | None) -> str:
    if interval is None:
        return "—"
    point, low, high = (format_number(x) for x in (interval.point, interval.low, interval.high))
    return f"{point} [{low}, {high}]"


def markdown(
    results: list[GroupStatistics], aggregates: list[dict], improvement_rows: list[dict]
) -> str:
    lines = [
        "| algorithm | env | config | runs | solved | success rate [95% CI] | "
        "steps to solve, IQM [95% CI] | training s to solve, IQM [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        g = r.group
        finished, solved = len(g.finished), sum(run.solved for run in g.finished)
        runs = f"{finished}" + (f" (+{g.unfinished} unfinished)" if g.unfinished else "")
        success = (
            f"{r.success.point:.0%} [{r.success.low:.0%}, {r.success.high:.0%}]"
            if r.success
            else "—"
        )
        lines.append(
            f"| {g.algorithm} | {g.env} | {g.label} | {runs} | {solved}/{finished} | {success} | "
            f"{format_interval(r.steps_to_solve)} | {format_interval(r.seconds_to_solve)} |"
        )
    lines += [
        "",
        "| algorithm | env | config | final return IQM [95% CI] | median | mean | "
        "optimality gap [95% CI] | best return (mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        g = r.group
        lines.append(
            f"| {g.algorithm} | {g.env} | {g.label} | {format_interval(r.returns.get('IQM'))} | "
            f"{format_interval(r.returns.get('median'))} | "
            f"{format_interval(r.returns.get('mean'))} | "
            f"{format_interval(r.optimality_gap)} | {format_number(r.best_return_mean)} |"
        )
    if aggregates:
        lines += [
            "",
            "Normalized scores over environments, (return − random) / (threshold − random), "
            "stratified by environment:",
            "",
            "| algorithm | config | envs | IQM | median | mean | optimality gap |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in aggregates:
            cells = " | ".join(format_interval(row[name]) for name in stats.AGGREGATES)
            lines.append(f"| {row['algorithm']} | {row['label']} | {row['envs']} | {cells} |")
    if improvement_rows:
        lines += [
            "",
            "Probability that a run of the config beats a run of the baseline (0.5: no "
            "difference):",
            "",
            "| algorithm | env | config | baseline | P(higher final return) | P(solves sooner) |",
            "|---|---|---|---|---|---|",
        ]
        for row in improvement_rows:
            lines.append(
                f"| {row['algorithm']} | {row['env']} | {row['label']} | {row['baseline']} | "
                f"{format_interval(row['return'])} | {format_interval(row['time'])} |"
            )
    return "\n".join(lines) + "\n"


def report(
    paths: list[str | Path], baseline: str | None = None, reps: int = 2000
) -> tuple[str, list[Group], list[GroupStatistics]]:
    """The Markdown tables of ``paths``, with the groups and statistics behind them."""
    groups = group_runs(read_runs(paths))
    results = [group_statistics(g, reps) for g in groups]
    text = markdown(
        results, aggregate_over_envs(groups, reps), improvements(groups, baseline, reps)
    )
    return text, groups, results
