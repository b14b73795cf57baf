"""Many seeds in one process against a sweep of single-seed trials: wall time and results.

    python benchmarks/many_seeds.py [--algorithm ppo] [--env CartPole-v1] [--seeds 100-163]
                                    [--threads 2] [--backends gymnasium,torch] [--out DIR]
                                    [--repeats 1]

The same trials (the shipped preset on held-out seeds: no preset was tuned on 100 and up) run
two ways, each as the whole command a user types, timed from start to the last seed's end:

* ``sweep``: ``rlgrad sweep ALGO --env ENV --seeds ... --seeds-per-task 1``, one trial per Ray
  task, two at a time on two cores (today's way to train many seeds);
* ``one process``: ``rlgrad train ALGO --env ENV --seeds ...``, every seed a slice of one
  seed-batched computation, with ``--config.threads`` torch threads (two: the cores the sweep
  uses), on each environment backend in ``--backends``.

The runs of either way are ordinary run directories, read by ``rlgrad report``'s functions:
solved counts with Wilson intervals, the steps-to-solve distribution (the probability that a
one-process seed solves sooner than a sweep seed; 0.5 is no difference) and the final returns.
With ``--repeats`` above 1 the ways take turns, in a rotated order each repeat.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rlgrad.app import sweep as sweeps
from rlgrad.app.report import read_runs
from rlgrad.app.statistics import iqm, probability_of_improvement, wilson_interval
from rlgrad.app.trials import DONE, FAILED


def commands(args, out: Path) -> dict[str, list[str]]:
    rlgrad = [sys.executable, "-m", "rlgrad.app.cli"]
    found = {
        "sweep": [
            *rlgrad,
            "sweep",
            args.algorithm,
            "--env",
            args.env,
            "--seeds",
            args.seeds,
            "--seeds-per-task",
            "1",
            "--max-concurrent",
            "2",
            "--out",
            str(out / "sweep"),
            "--no-progress",
        ]
    }
    for backend in args.backends.split(","):
        found[f"one process, {backend}"] = [
            *rlgrad,
            "train",
            args.algorithm,
            "--env",
            args.env,
            "--seeds",
            args.seeds,
            "--run-dir",
            str(out / f"batched-{backend}"),
            f"--config.threads={args.threads}",
            f"--config.env_backend={backend}",
            "--no-progress",
        ]
    return found


def results(directory: Path) -> dict:
    runs = [r for r in read_runs([directory]) if r.state in (DONE, FAILED)]  # failed: unsolved
    solved = [r for r in runs if r.solved]
    steps = np.array([r.files.solved_step for r in solved], dtype=float)
    finals = np.array([r.final_return for r in runs if r.final_return is not None])
    interval = wilson_interval(len(solved), len(runs))
    low, high = float(interval.low), float(interval.high)
    return {
        "runs": len(runs),
        "solved": len(solved),
        "solved_interval": [low, high],
        "steps_to_solve": steps.tolist(),
        "median_steps_to_solve": float(np.median(steps)) if len(steps) else None,
        "final_return_iqm": float(iqm(finals)) if len(finals) else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="ppo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", default="100-163")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="gymnasium,torch")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    sweeps.parse_seeds(args.seeds)  # fail early on a bad list
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="many-seeds-"))
    walls: dict[str, list[float]] = {}
    outcome: dict[str, dict] = {}
    ways = list(commands(args, root / "r0"))
    for repeat in range(args.repeats):
        out = root / f"r{repeat}"
        order = ways[repeat % len(ways) :] + ways[: repeat % len(ways)]
        for way in order:
            command = commands(args, out)[way]
            started = time.perf_counter()
            finished = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if finished.returncode not in (0, 1):  # 1: a sweep with a failed trial
                print(finished.stderr[-2000:], file=sys.stderr)
                return finished.returncode
            walls.setdefault(way, []).append(wall)
            print(f"{way}: {wall:.1f} s", flush=True)
        for way in ways:
            directory = out / ("sweep" if way == "sweep" else f"batched-{way.split(', ')[1]}")
            outcome.setdefault(way, results(directory))
    base = outcome["sweep"]
    print(f"\n{args.algorithm} {args.env}, seeds {args.seeds}, {args.repeats} repeat(s)")
    print(
        "| way | wall s (median) | vs sweep | solved | median steps to solve | "
        "P(solves sooner than sweep) | final return IQM |"
    )
    print("|---|---|---|---|---|---|---|")
    for way in ways:
        result, wall = outcome[way], float(np.median(walls[way]))
        ratio = float(np.median(walls["sweep"])) / wall
        sooner = (
            probability_of_improvement(
                [np.array(base["steps_to_solve"])], [np.array(result["steps_to_solve"])]
            )
            if result["steps_to_solve"] and base["steps_to_solve"]
            else None
        )
        low, high = result["solved_interval"]
        print(
            f"| {way} | {wall:.1f} | {ratio:.2f}× | {result['solved']}/{result['runs']} "
            f"({low:.0%}–{high:.0%}) | {result['median_steps_to_solve']:,.0f} | "
            f"{'-' if sooner is None else f'{sooner:.2f}'} | {result['final_return_iqm']:.1f} |"
        )
    (root / "many_seeds.json").write_text(
        json.dumps({"args": vars(args), "walls": walls, "results": outcome}, indent=1)
    )
    print(f"\nruns and many_seeds.json in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
