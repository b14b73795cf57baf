"""An LM GRPO run in the run-directory format every rlgrad trainer writes, so that ``rlgrad plot``
and ``rlgrad report`` read it (one run, or a folder of runs: several seeds give an IQM curve).

    output_dir/config.json    {"algorithm": "grpo-lm", "config": {GRPOConfig's fields, "env"}}
    output_dir/metrics.csv    one row per GRPO step: BASE_COLUMNS first, then train()'s metrics
    output_dir/summary.json   written when train() returns: final and best evaluation

The columns are those of :mod:`rlgrad.support.runs` (``BASE_COLUMNS``), read for a language
model as follows: ``step`` and ``update`` count GRPO steps (one sample-and-update each, not
environment steps); ``episode_return_mean`` is the step's mean training reward (a completion is
a one-step episode whose return is its weighted reward, penalty included) and
``episode_length_mean`` its mean completion length in tokens; ``eval_return_mean`` and
``eval_return_std`` are ``eval_reward_mean`` and ``eval_reward_std`` on the steps that evaluate
(``eval_steps``), empty on the others; ``wall_s`` adds up the steps' and evaluations' seconds,
``train_s`` the steps' alone, and ``sps`` is GRPO steps per training second. ``env`` in
config.json is ``GRPOConfig.task``; ``output_dir`` is left out of it (a run's directory is not
part of its config: seeds of one config in different directories form one group in the report).

This writer is the LM trainer's own for now; it keeps the shared format's columns and file names
so that it can be replaced by the shared run-directory writer without changing what is on disk.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

ALGORITHM = "grpo-lm"
BASE_COLUMNS = (  # rlgrad.support.runs.BASE_COLUMNS (a test keeps the two equal)
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


def write_config(output_dir: str | Path, config) -> None:
    """config.json: the algorithm and the config's fields, with ``env`` = ``config.task`` and
    without ``output_dir``."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    fields.pop("output_dir")
    fields["env"] = config.task
    text = json.dumps({"algorithm": ALGORITHM, "config": fields}, indent=2)
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(text + "\n")


def metric_row(row: dict, previous: dict | None) -> dict:
    """One ``train()`` row in the run directory's columns (BASE_COLUMNS, then every metric);
    ``previous`` is the step before's, in these columns (none at the first step)."""
    train_s = (previous["train_s"] if previous else 0.0) + row["step_time"]
    wall_s = (previous["wall_s"] if previous else 0.0) + row["step_time"]
    wall_s += row.get("eval_time", 0.0)
    return {
        "step": row["step"],
        "update": row["step"],
        "wall_s": round(wall_s, 4),
        "train_s": round(train_s, 4),
        "sps": round(row["step"] / max(train_s, 1e-9), 3),
        "episode_return_mean": row["reward"],
        "episode_length_mean": row["completions/mean_length"],
        "eval_return_mean": row.get("eval_reward_mean", ""),
        "eval_return_std": row.get("eval_reward_std", ""),
        **{name: value for name, value in row.items() if name not in BASE_COLUMNS},
    }


class MetricsFile:
    """output_dir/metrics.csv, written from the run's rows so far (a resumed run's history,
    which ends at its checkpoint), then a row per step: appended, or the whole file rewritten
    when a row brings new columns (the first evaluation's)."""

    def __init__(self, output_dir: str | Path, history: list[dict]):
        self.path = Path(output_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a summary from an earlier train() in this directory would mark the run finished
        (self.path.parent / "summary.json").unlink(missing_ok=True)
        self.rows: list[dict] = []
        for row in history:
            self.rows.append(metric_row(row, self.rows[-1] if self.rows else None))
        self.columns = list(BASE_COLUMNS)
        self._rewrite()

    def append(self, row: dict) -> None:
        self.rows.append(metric_row(row, self.rows[-1] if self.rows else None))
        if any(name not in self.columns for name in self.rows[-1]):
            self._rewrite()
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.columns, restval="").writerow(self.rows[-1])

    def _rewrite(self) -> None:
        for row in self.rows:
            self.columns += [name for name in row if name not in self.columns]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)


def write_summary(output_dir: str | Path, config, rows: list[dict]) -> dict:
    """summary.json from the run's rows in metrics.csv's columns, with the keys of every
    trainer's summary: an LM run has no threshold, so it is never solved."""
    evals = [row for row in rows if row["eval_return_mean"] != ""]
    best = max(evals, key=lambda row: row["eval_return_mean"]) if evals else None
    summary = {
        "algorithm": ALGORITHM,
        "env": config.task,
        "seed": config.seed,
        "steps": rows[-1]["step"] if rows else 0,
        "train_s": round(rows[-1]["train_s"], 3) if rows else 0.0,
        "wall_s": round(rows[-1]["wall_s"], 3) if rows else 0.0,
        "final_eval_return_mean": evals[-1]["eval_return_mean"] if evals else None,
        "best_eval_return_mean": best["eval_return_mean"] if best else None,
        "best_eval_step": best["step"] if best else None,
        "threshold": None,
        "solved_step": None,
        "solved_train_s": None,
        "solved_wall_s": None,
        "interrupted": False,
    }
    (Path(output_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
