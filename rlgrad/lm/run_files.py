"""An LM GRPO run in the run-directory format every rlgrad trainer writes, so that ``rlgrad plot``
and ``rlgrad report`` read it (one run, or a folder of runs: several seeds give an IQM curve).

    output_dir/config.json    {"algorithm": "grpo-lm", "config": {GRPOConfig's fields, "env"}}
    output_dir/metrics.csv    one row per GRPO step: BASE_COLUMNS first, then train()'s metrics
    output_dir/summary.json   written when train() returns: final and best evaluation

The columns are those of :mod:`rlgrad.support.runs` (``BASE_COLUMNS``), read for a language
model as follows: ``step`` and ``update`` count GRPO steps (one sample-and-update each, not
environment steps; the axis label of ``rlgrad plot``, ``run_format.STEP_UNITS``);
``episode_return_mean`` is the step's mean training reward (a completion is a one-step episode
whose return is its weighted reward, penalty included) and ``episode_length_mean`` its mean
completion length in tokens; ``eval_return_mean`` and ``eval_return_std`` are
``eval_reward_mean`` and ``eval_reward_std`` on the steps that evaluate (``eval_steps``), empty
on the others; ``wall_s`` adds up the steps' and evaluations' seconds, ``train_s`` the steps'
alone, and ``sps`` is GRPO steps per training second. ``env`` in config.json is
``GRPOConfig.task``; ``output_dir`` is left out of it (a run's directory is not part of its
config: seeds of one config in different directories form one group in the report).

The files are written by :mod:`rlgrad.support.runs`' writer, as for every other trainer; this
module only says what an LM step's row holds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rlgrad.support import run_format

ALGORITHM = "grpo-lm"


def write_config(output_dir: str | Path, config) -> None:
    """config.json: the algorithm and the config's fields, with ``env`` = ``config.task`` and
    without ``output_dir``."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    fields.pop("output_dir")
    fields["env"] = config.task
    # model_init_kwargs may hold objects JSON has no form for (torch_dtype=torch.bfloat16): their
    # text stands in for them
    plain = (str, int, float, bool, type(None))
    options = fields.get("model_init_kwargs") or {}
    fields["model_init_kwargs"] = {
        key: value if isinstance(value, plain) else str(value) for key, value in options.items()
    } or None
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    run_format.write_config(directory, ALGORITHM, fields)


def metric_row(row: dict, previous: dict | None) -> dict:
    """One ``train()`` row in the run directory's columns (``BASE_COLUMNS``, then every metric;
    ``None`` where a step did not evaluate); ``previous`` is the step before's, in these
    columns (none at the first step)."""
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
        "eval_return_mean": row.get("eval_reward_mean"),
        "eval_return_std": row.get("eval_reward_std"),
        **{name: value for name, value in row.items() if name not in run_format.BASE_COLUMNS},
    }


class MetricsFile(run_format.MetricsFile):
    """output_dir/metrics.csv from ``train()``'s rows: the run's rows so far (a resumed run's
    history, which ends at its checkpoint), then a row per step."""

    def __init__(self, output_dir: str | Path, history: list[dict]):
        directory = Path(output_dir)
        directory.mkdir(parents=True, exist_ok=True)
        # a summary from an earlier train() in this directory would mark the run finished
        (directory / run_format.SUMMARY_FILE).unlink(missing_ok=True)
        rows: list[dict] = []
        for row in history:
            rows.append(metric_row(row, rows[-1] if rows else None))
        super().__init__(directory, rows)

    def append(self, row: dict) -> None:
        super().append(metric_row(row, self.rows[-1] if self.rows else None))


def write_summary(output_dir: str | Path, config, rows: list[dict]) -> dict:
    """summary.json from the run's rows in metrics.csv's columns: an LM run has no threshold,
    so it is never solved."""
    summary = run_format.summarize(
        rows,
        algorithm=ALGORITHM,
        env=config.task,
        seed=config.seed,
        threshold=None,
        train_s=rows[-1]["train_s"] if rows else 0.0,
        wall_s=rows[-1]["wall_s"] if rows else 0.0,
        interrupted=False,
    )
    run_format.write_summary(output_dir, summary)
    return summary
