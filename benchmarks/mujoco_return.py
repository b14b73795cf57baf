"""Return after a fixed budget on MuJoCo, rlgrad against Stable-Baselines3, side by side.

    python benchmarks/mujoco_return.py [--cases sac:HalfCheetah-v5,sac:Hopper-v5]
                                       [--seeds 3] [--first-seed 100] [--total-steps 100000]
                                       [--eval-every 5000] [--out results.json]
                                       [--plot curves.png]
    python benchmarks/mujoco_return.py --plot-only results.json --plot curves.png

MuJoCo tasks have no "solved" return, and a run of 100k steps takes a quarter of an hour here,
so this compares what each library reaches after the same number of environment steps. Each
(case, seed) starts the rlgrad run and the SB3 run at the same time, each in its own process of
``vs_sb3.py --worker`` with one torch thread: on a 2-core machine the two share it evenly, and
a slower machine slows both. Both use that script's protocol (10 deterministic evaluation
episodes on fixed seeds every ``--eval-every`` steps and at the end; evaluation time excluded
from the training clock); rlgrad runs its preset for the environment (``presets.json``, else the
trainer's defaults), SB3 the rl-baselines3-zoo hyperparameters stored in ``vs_sb3.py``.

The summary gives, per library, the final evaluation of every seed, their mean and the mean of
the last three evaluations (steadier than one), and the difference of the means with a 95%
bootstrap interval (seeds resampled within each library). ``--plot`` draws the evaluation curves
of both libraries in one figure per environment: each seed thin, the mean thick.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_sb3  # (the workers and the zoo's hyperparameters live there)

LIBRARIES = ("rlgrad", "sb3")
DEFAULT_CASES = "sac:HalfCheetah-v5,sac:Hopper-v5"


def side_by_side(algorithm: str, env_id: str, seed: int, args) -> list[dict]:
    """Both libraries' runs of one seed, started together, each in its own process."""
    with ThreadPoolExecutor(max_workers=len(LIBRARIES)) as pool:
        futures = [
            pool.submit(vs_sb3.run_worker, library, algorithm, env_id, seed, args)
            for library in LIBRARIES
        ]
        return [future.result() for future in futures]


def last_mean(run: dict, count: int) -> float | None:
    """The mean of a run's last ``count`` evaluation means."""
    evals = run.get("evals") or []
    if not evals:
        return None
    tail = [e["mean"] for e in evals[-count:]]
    return sum(tail) / len(tail)


def summarize(algorithm: str, env_id: str, runs: list[dict]) -> dict:
    """Per library: final and last-three evaluation means per seed and over seeds; the
    rlgrad − SB3 difference of the final means with a 95% bootstrap interval."""
    import numpy as np

    row: dict = {"case": f"{algorithm}:{env_id}"}
    finals = {}
    for library in LIBRARIES:
        mine = [r for r in runs if r["library"] == library and "error" not in r]
        finals[library] = np.array([r["final_eval_mean"] for r in mine], dtype=float)
        last3 = [last_mean(r, 3) for r in mine]
        row[library] = {
            "seeds": [r["seed"] for r in mine],
            "failed": sum(r["library"] == library and "error" in r for r in runs),
            "final": finals[library].tolist(),
            "final_mean": float(finals[library].mean()) if len(mine) else None,
            "last3_mean": float(np.mean(last3)) if len(mine) else None,
            "steps_per_s": float(np.median([r["steps"] / r["train_s"] for r in mine]))
            if mine
            else None,
        }
    if all(len(f) for f in finals.values()):
        rng = np.random.default_rng(0)
        draws = {
            lib: f[rng.integers(0, len(f), size=(4000, len(f)))].mean(axis=1)
            for lib, f in finals.items()
        }
        difference = draws["rlgrad"] - draws["sb3"]
        row["difference"] = row["rlgrad"]["final_mean"] - row["sb3"]["final_mean"]
        row["difference_ci"] = [
            float(np.percentile(difference, 2.5)),
            float(np.percentile(difference, 97.5)),
        ]
    return row


def print_report(summaries: list[dict], runs: list[dict], command: str) -> None:
    print(f"command: {command}")
    for row in summaries:
        print(f"\n{row['case']}:")
        for library in LIBRARIES:
            mine = row[library]
            finals = ", ".join(f"{v:.0f}" for v in mine["final"])
            print(
                f"  {library:>6}: final per seed [{finals}]"
                f"  mean {vs_sb3.fmt(mine['final_mean'], 0)}"
                f"  last-3 mean {vs_sb3.fmt(mine['last3_mean'], 0)}"
                f"  {vs_sb3.fmt(mine['steps_per_s'], 0)} steps/s (median, side by side)"
            )
        if "difference" in row:
            low, high = row["difference_ci"]
            print(f"  rlgrad − SB3: {row['difference']:+.0f} [{low:+.0f}, {high:+.0f}]")
    failed = [r for r in runs if "error" in r]
    for r in failed:
        print(f"FAILED {r['library']} {r['algorithm']}:{r['env']} seed {r['seed']}: {r['error']}")


def summarize_cases(cases: list[tuple[str, str]], runs: list[dict]) -> list[dict]:
    """:func:`summarize` of each (algorithm, env) case on its own runs."""
    return [
        summarize(a, e, [r for r in runs if (r["algorithm"], r["env"]) == (a, e)]) for a, e in cases
    ]


def plot(runs: list[dict], path: str) -> None:
    """Evaluation return against environment steps, one panel per case, both libraries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cases = sorted({(r["algorithm"], r["env"]) for r in runs if "error" not in r})
    figure, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.6), squeeze=False)
    colors = {"rlgrad": "tab:blue", "sb3": "tab:orange"}
    for axis, (algorithm, env_id) in zip(axes[0], cases, strict=True):
        for library in LIBRARIES:
            mine = [
                r
                for r in runs
                if (r["algorithm"], r["env"], r["library"]) == (algorithm, env_id, library)
                and "error" not in r
            ]
            curves = [
                (
                    np.array([e["step"] for e in r["evals"]]),
                    np.array([e["mean"] for e in r["evals"]]),
                )
                for r in mine
            ]
            for steps, means in curves:
                axis.plot(steps, means, color=colors[library], alpha=0.3, linewidth=0.8)
            if curves:
                grid = curves[0][0]
                mean = np.mean([np.interp(grid, s, m) for s, m in curves], axis=0)
                axis.plot(
                    grid,
                    mean,
                    color=colors[library],
                    linewidth=2,
                    label=f"{library} ({len(curves)} seeds)",
                )
        axis.set_title(f"{algorithm.upper()} {env_id}")
        axis.set_xlabel("environment steps")
        axis.set_ylabel("evaluation return")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help="algorithm:env pairs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per case")
    parser.add_argument("--first-seed", type=int, default=100, help="held-out seeds start here")
    parser.add_argument("--total-steps", type=int, default=100_000, help="budget of both")
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=vs_sb3.EVAL_EPISODES)
    parser.add_argument("--out", help="write every raw result to this JSON file")
    parser.add_argument("--plot", help="draw the curves into this PNG")
    parser.add_argument("--plot-only", metavar="RESULTS", help="redraw from a --out file")
    args = parser.parse_args()
    args.sb3_max_steps = args.total_steps  # read by vs_sb3.run_worker
    if args.plot_only:
        runs = json.loads(Path(args.plot_only).read_text())["runs"]
        if args.plot:
            plot(runs, args.plot)
        cases = sorted({(r["algorithm"], r["env"]) for r in runs})
        print_report(summarize_cases(cases, runs), runs, "(from " + args.plot_only + ")")
        return
    command = shlex.join([sys.executable, *sys.argv])
    cases = vs_sb3.parse_cases(args.cases)
    runs: list[dict] = []
    # seeds outermost: an interrupted benchmark has every case on its first seeds
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for algorithm, env_id in cases:
            started = time.perf_counter()
            pair = side_by_side(algorithm, env_id, seed, args)
            runs += pair
            finals = ", ".join(
                f"{r['library']} {vs_sb3.fmt(r.get('final_eval_mean'), 0)}" for r in pair
            )
            print(
                f"{algorithm}:{env_id} seed {seed}: {finals} "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            if args.out:  # after every pair, so that an interrupted benchmark keeps its data
                data = {"command": command, "machine": vs_sb3.machine(), "runs": runs}
                Path(args.out).write_text(json.dumps(vs_sb3.jsonable(data), indent=1) + "\n")
    summaries = summarize_cases(cases, runs)
    print_report(summaries, runs, command)
    if args.out:
        data = {"command": command, "machine": vs_sb3.machine(), "runs": runs, "summary": summaries}
        Path(args.out).write_text(json.dumps(vs_sb3.jsonable(data), indent=1) + "\n")
    if args.plot:
        plot(runs, args.plot)


if __name__ == "__main__":
    main()
