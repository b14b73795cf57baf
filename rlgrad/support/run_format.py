"""The run directory's format: its one writer and its one reader, side by side.

    config.json         {"algorithm": name, "config": {field: value}}
    metrics.csv         one row per update: BASE_COLUMNS, then the trainer's own metrics
    summary.json        final and best evaluation, time to the threshold
    checkpoints/latest.pt, checkpoints/best.pt

:class:`rlgrad.support.runs.Run` (and the LM trainer, :mod:`rlgrad.lm.run_files`) write through
:func:`write_config`, :class:`MetricsFile` and :func:`write_summary`; every tool (report, tune,
sweep, plots, eval, the CLI) reads through :func:`read_run` (or :func:`read_rows`,
:func:`read_config`, :func:`read_summary`). A value that was not measured (no evaluation in this
update, no gradient step yet) is ``None`` in a row, in memory and as read back alike, and an
empty cell in metrics.csv. "Solved" is defined once, by :func:`solved_at`: the first of
``SOLVED_AFTER`` consecutive evaluations at or above the threshold, anywhere in the run.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TIMING_COLUMNS = ("wall_s", "train_s", "sps")
BASE_COLUMNS = (
    "step",
    "update",
    "wall_s",
    "train_s",
    "sps",
    "episode_return_mean",
    "episode_length_mean",
    "eval_return_mean",
    "eval_return_std",
)
SOLVED_AFTER = 3  # consecutive evaluations at or above the threshold
INTEGER_COLUMNS = ("step", "update")  # every other number in a row is a float
CONFIG_FILE, METRICS_FILE, SUMMARY_FILE = "config.json", "metrics.csv", "summary.json"
CHECKPOINTS = ("latest", "best")  # checkpoints/latest.pt resumes; checkpoints/best.pt evaluates
# what a row's ``step`` counts: environment steps, but for the LM trainer (rlgrad.lm.run_files)
# a GRPO step, one sample-and-update of the model
STEP_UNITS = {"grpo-lm": "GRPO steps"}


def step_unit(algorithms: list[str | None]) -> str:
    """What the ``step`` column of runs of these algorithms counts, for an axis label:
    ``STEP_UNITS``' name when all the runs share one, else environment steps (or, for a mix of
    the two, steps).

    >>> step_unit(["ppo", "dqn"]), step_unit(["grpo-lm"]), step_unit(["ppo", "grpo-lm"])
    ('environment steps', 'GRPO steps', 'steps')
    """
    units = {STEP_UNITS.get(algorithm, "environment steps") for algorithm in algorithms}
    return units.pop() if len(units) == 1 else "steps"


def evaluations(rows: list[dict]) -> list[dict]:
    """The rows that hold an evaluation, in order."""
    return [row for row in rows if row.get("eval_return_mean") is not None]


def solved_at(rows: list[dict], threshold: float | None) -> dict | None:
    """The first of SOLVED_AFTER consecutive evaluation rows with a return ≥ threshold.

    The rule of every tool ("solved" is written nowhere else): any SOLVED_AFTER evaluations in a
    row count, wherever they lie, not only the last ones.

    >>> rows = [{"step": s, "eval_return_mean": r} for s, r in
    ...         [(1, 500.0), (2, 480.0), (3, 475.0), (4, 200.0)]]
    >>> solved_at(rows, 475.0)["step"]  # solved from step 1, though the last return is 200
    1
    """
    if threshold is None:
        return None
    evals = evaluations(rows)
    for i in range(len(evals) - SOLVED_AFTER + 1):
        if all(r["eval_return_mean"] >= threshold for r in evals[i : i + SOLVED_AFTER]):
            return evals[i]
    return None


def solved_to_the_end(rows: list[dict], threshold: float | None) -> bool:
    """Solved (:func:`solved_at`) and the last evaluation still at or above the threshold: a run
    that solved and then collapsed does not count (what `rlgrad tune` validates)."""
    evals = evaluations(rows)
    return solved_at(rows, threshold) is not None and evals[-1]["eval_return_mean"] >= threshold


def curve(rows: list[dict], column: str = "eval_return_mean") -> tuple[np.ndarray, np.ndarray]:
    """The steps ``[n]`` and values ``[n]`` of the rows where ``column`` was measured."""
    points = [(row["step"], row[column]) for row in rows if row.get(column) is not None]
    if not points:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*points, strict=True)
    return np.array(steps, dtype=float), np.array(values, dtype=float)


# ----- the reader -----


def _cell(name: str, text: str | None):
    """A metrics.csv cell as the Run held it: None for empty, int for step and update."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if name in INTEGER_COLUMNS else value


def read_rows(run_dir: str | Path) -> list[dict]:
    """metrics.csv's rows, the values as the writer held them (``[]`` before the first row)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{k: _cell(k, v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def read_config(run_dir: str | Path) -> dict | None:
    """config.json: ``{"algorithm": name, "config": {field: value}}`` (None before it exists)."""
    return _read_json(Path(run_dir) / CONFIG_FILE)


def read_summary(run_dir: str | Path) -> dict | None:
    """summary.json (None until the run finishes or is stopped)."""
    return _read_json(Path(run_dir) / SUMMARY_FILE)


def finished(run_dir: str | Path) -> bool:
    """Whether the run ran to its end: summary.json exists and says neither interrupted (a
    stopped run) nor failed (a run stopped by a non-finite value: ``failed`` holds why)."""
    summary = read_summary(run_dir)
    return summary is not None and not summary["interrupted"] and not summary.get("failed")


def failed(run_dir: str | Path) -> str | None:
    """Why the run stopped on a non-finite value, or None (summary.json's ``failed``)."""
    summary = read_summary(run_dir)
    return None if summary is None else summary.get("failed")


def checkpoint_path(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """``checkpoints/latest.pt`` (None or ``"latest"``), ``checkpoints/best.pt`` (``"best"``),
    or ``checkpoint`` itself, any other path."""
    if checkpoint is None or str(checkpoint) in CHECKPOINTS:
        return Path(run_dir) / "checkpoints" / f"{checkpoint or 'latest'}.pt"
    return Path(checkpoint)


@dataclass(frozen=True)
class RunFiles:
    """A run directory read back: its config, rows and summary, and what follows from them."""

    directory: Path
    config: dict | None  # config.json's "config"; None when the run never started
    algorithm: str | None
    rows: list[dict]
    summary: dict | None  # None while the run is running (or never ran)

    @property
    def finished(self) -> bool:
        """Ran to its end: summary.json exists and says neither interrupted nor failed."""
        return (
            self.summary is not None
            and not self.summary["interrupted"]
            and not self.summary.get("failed")
        )

    @property
    def failed(self) -> str | None:
        """Why the run stopped on a non-finite value (summary.json's ``failed``), or None."""
        return None if self.summary is None else self.summary.get("failed")

    @property
    def threshold(self) -> float | None:
        """The return that counts as solved: the summary's, else the config's."""
        if self.summary is not None:
            return self.summary["threshold"]
        if self.config is None:
            return None
        if self.config.get("eval_threshold") is not None:
            return float(self.config["eval_threshold"])
        return default_threshold(self.config["env"])

    def curve(self, column: str = "eval_return_mean") -> tuple[np.ndarray, np.ndarray]:
        return curve(self.rows, column)

    @property
    def solved(self) -> dict | None:
        """The row from which the run counts as solved (:func:`solved_at`), or None."""
        return solved_at(self.rows, self.threshold)

    @property
    def solved_step(self) -> int | None:
        return None if self.solved is None else self.solved["step"]

    @property
    def solved_train_s(self) -> float | None:
        return None if self.solved is None else self.solved["train_s"]

    @property
    def solved_to_the_end(self) -> bool:
        return solved_to_the_end(self.rows, self.threshold)

    @property
    def final_return(self) -> float | None:
        evals = evaluations(self.rows)
        return evals[-1]["eval_return_mean"] if evals else None

    @property
    def best_return(self) -> float | None:
        evals = evaluations(self.rows)
        return max(r["eval_return_mean"] for r in evals) if evals else None

    @property
    def train_s(self) -> float:
        """The training seconds spent so far (0 before the first row)."""
        return self.rows[-1]["train_s"] if self.rows else 0.0


def read_run(run_dir: str | Path) -> RunFiles:
    """Everything a run directory holds so far; missing files read as None (or no rows)."""
    run_dir = Path(run_dir)
    saved = read_config(run_dir)
    return RunFiles(
        run_dir,
        saved["config"] if saved else None,
        saved["algorithm"] if saved else None,
        read_rows(run_dir),
        read_summary(run_dir),
    )


# ----- the writer: Run writes through these, and so does the LM trainer (rlgrad.lm) -----


def write_config(run_dir: str | Path, algorithm: str, fields: dict) -> None:
    """config.json: ``{"algorithm": algorithm, "config": fields}`` (what :func:`read_config`
    reads)."""
    text = json.dumps({"algorithm": algorithm, "config": fields}, indent=2)
    (Path(run_dir) / CONFIG_FILE).write_text(text + "\n")


class MetricsFile:
    """metrics.csv: ``BASE_COLUMNS`` first, then every other column in the order it first
    appears. A row is appended to the file; a row that brings a new column rewrites it. A value
    that was not measured (``None``) is an empty cell, which :func:`read_rows` reads as ``None``.

    ``rows`` (a resumed run's, up to its checkpoint) are written at once, replacing any rows a
    file held past them.
    """

    def __init__(self, run_dir: str | Path, rows: list[dict] | None = None):
        self.path = Path(run_dir) / METRICS_FILE
        self.rows: list[dict] = [] if rows is None else rows
        self.columns = list(BASE_COLUMNS)
        self._rewrite()

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if any(name not in self.columns for name in row):
            self._rewrite()
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.columns).writerow(row)

    def _rewrite(self) -> None:
        for row in self.rows:
            self.columns += [name for name in row if name not in self.columns]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns)
            writer.writeheader()
            writer.writerows(self.rows)


def summarize(
    rows: list[dict],
    *,
    algorithm: str,
    env: str,
    seed: int,
    threshold: float | None,
    train_s: float,
    wall_s: float,
    interrupted: bool,
) -> dict:
    """summary.json's fields from a run's rows: final and best evaluation, and when the run
    solved (:func:`solved_at`)."""
    evals = evaluations(rows)
    solved = solved_at(rows, threshold)
    best = max(evals, key=lambda r: r["eval_return_mean"]) if evals else None
    return {
        "algorithm": algorithm,
        "env": env,
        "seed": seed,
        "steps": rows[-1]["step"] if rows else 0,
        "train_s": round(train_s, 3),
        "wall_s": round(wall_s, 3),
        "final_eval_return_mean": evals[-1]["eval_return_mean"] if evals else None,
        "best_eval_return_mean": best["eval_return_mean"] if best else None,
        "best_eval_step": best["step"] if best else None,
        "threshold": threshold,
        "solved_step": solved["step"] if solved else None,
        "solved_train_s": solved["train_s"] if solved else None,
        "solved_wall_s": solved["wall_s"] if solved else None,
        "interrupted": interrupted,
    }


def write_summary(run_dir: str | Path, summary: dict) -> None:
    """summary.json (what :func:`read_summary` reads)."""
    (Path(run_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def default_threshold(env_id: str) -> float | None:
    import gymnasium as gym

    return gym.spec(env_id).reward_threshold
