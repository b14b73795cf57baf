"""Every shipped preset on held-out seeds: success rate, time to solve, final return.

    python benchmarks/presets_heldout.py [--cases ppo:CartPole-v1,...] [--seeds 100-119]
                                         [--out heldout/] [--reps 2000]

For each (algorithm, environment) preset, a `rlgrad sweep` of the preset on ``--seeds`` (100-119
by default: no preset was tuned on them; `rlgrad tune` uses 1000 and up) on a local Ray, two
trials at a time on two cores, then one Markdown row from `rlgrad report`'s statistics. A sweep
directory that already exists is resumed, not rerun, so the table can be rebuilt at no cost.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlgrad.app import presets
from rlgrad.app import sweep as sweeps
from rlgrad.app.report import (
    format_interval,
    format_number,
    group_runs,
    group_statistics,
    read_runs,
)
from rlgrad.app.trials import TrialPool


def all_cases() -> list[tuple[str, str]]:
    return [(a, e) for a, envs in presets.all_presets().items() for e in envs]


def row(algorithm: str, env: str, directory: Path, reps: int) -> str:
    (group,) = group_runs(read_runs([directory]))
    result = group_statistics(group, reps)
    finished = len(group.finished)
    solved = sum(r.solved for r in group.finished)
    # solved, and the last evaluation of the full budget still at the threshold: a preset that
    # solves and then collapses is not one a user can stop at any step
    held = sum(r.solved and r.files.solved_to_the_end for r in group.finished)
    success = result.success
    budget = group.finished[0].fields["total_steps"]
    return (
        f"| {algorithm} | {env} | {budget:,} | {solved}/{finished} "
        f"({success.low:.0%}–{success.high:.0%}) | {held}/{finished} | "
        f"{format_interval(result.seconds_to_solve)} | "
        f"{format_interval(result.steps_to_solve)} | "
        f"{format_interval(result.returns.get('IQM'))} | "
        f"{format_number(result.best_return_mean)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=None, help="algorithm:env pairs (default: all)")
    parser.add_argument("--seeds", default="100-119")
    parser.add_argument("--out", default="heldout")
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    cases = [tuple(c.split(":", 1)) for c in args.cases.split(",")] if args.cases else all_cases()
    rows = []
    for algorithm, env in cases:
        directory = Path(args.out) / f"{algorithm}-{env}"
        if (directory / sweeps.INDEX).exists():
            sweep = sweeps.Sweep.load(directory)
        else:
            seeds = sweeps.parse_seeds(args.seeds)
            sweep = sweeps.create(directory, algorithm, [env], seeds, {}, presets.SHIPPED)
        pool = TrialPool()
        try:
            sweeps.run(sweep, pool, progress=True)
        finally:
            pool.shutdown()
        rows.append(row(algorithm, env, directory, args.reps))
        print(rows[-1], flush=True)
    print(
        "\n| algorithm | env | budget (steps) | solved (95% CI) | solved, held to the end | "
        "training s to solve, IQM "
        "[95% CI] | steps to solve, IQM [95% CI] | final return, IQM [95% CI] | best return |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
