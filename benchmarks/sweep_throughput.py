"""What `rlgrad sweep` buys on this machine: a 10-seed PPO CartPole sweep on a local Ray against
the same trials run one after another, interleaved, and Ray's cost per trial.

    python benchmarks/sweep_throughput.py [--algorithm ppo] [--env CartPole-v1] [--seeds 100-109]
                                          [--repeats 3] [--out results.json]

Three ways to run the same ten trials (the shipped preset, one torch thread each)
take turns, in a rotated order each repeat so that none always runs first:

* ``sweep``: ``rlgrad sweep ALGO --env ENV --seeds ...``, the whole command (Ray's start, its
  workers' imports, the trials, the index);
* ``cli loop``: ``rlgrad train ALGO --env ENV --seed S`` for each seed, one after another, as a
  user would without the sweep;
* ``one process``: one Python process that trains the ten trials one after another, paying the
  imports once (the cheapest serial baseline).

Ray's cost per trial is measured separately, in this process, from each task's own start and end
times (``Outcome.started``/``finished``):

* *steady state*: on a worker that runs trial after trial, the gap between one trial's end and
  the next one's start, which holds scheduling, argument transfer and the result's return;
* *amortized*: the sweep's wall time times its concurrency, less the time the tasks spent inside
  their trials, per trial: everything Ray adds, start-up included, spread over the ten trials.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlgrad.app import presets
from rlgrad.app import sweep as sweeps
from rlgrad.app.trials import TrialPool

IN_ONE_PROCESS = """
import sys
from rlgrad.app.presets import preset_config
from rlgrad.app.registry import module
algorithm, env = sys.argv[2], sys.argv[3]
for seed in map(int, sys.argv[4:]):
    config = preset_config(algorithm, env, seed=seed)
    module(algorithm).train(config, f"{sys.argv[1]}/seed{seed}")
"""


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def sweep_command(algorithm: str, env: str, seeds: str, out: Path) -> list[str]:
    rlgrad = [sys.executable, "-m", "rlgrad.app.cli"]
    options = ["--env", env, "--seeds", seeds, "--out", str(out), "--no-progress"]
    return [*rlgrad, "sweep", algorithm, *options]


def cli_loop(algorithm: str, env: str, seeds: list[int], out: Path) -> float:
    rlgrad = [sys.executable, "-m", "rlgrad.app.cli"]
    total = 0.0
    for seed in seeds:
        options = ["--env", env, "--seed", str(seed), "--run-dir", str(out / f"seed{seed}")]
        total += timed([*rlgrad, "train", algorithm, *options, "--no-progress"])
    return total


def ray_costs(algorithm: str, env: str, seeds: list[int], out: Path) -> dict:
    """Run the sweep in this process and time each task from the inside."""
    outcomes = []

    class Recording(TrialPool):
        def wait(self, timeout=1.0):
            finished = super().wait(timeout)
            outcomes.extend(outcome for _, outcome in finished)
            return finished

    started = time.time()
    pool = Recording()
    sweep = sweeps.create(out, algorithm, [env], seeds, {}, presets.SHIPPED)
    sweeps.run(sweep, pool, progress=False)
    wall = time.time() - started
    concurrency = pool.limit
    pool.shutdown()
    inside = sum(o.finished - o.started for o in outcomes)
    gaps = []
    for pid in {o.worker_pid for o in outcomes}:
        mine = sorted((o for o in outcomes if o.worker_pid == pid), key=lambda o: o.started)
        gaps += [b.started - a.finished for a, b in itertools.pairwise(mine)]
    return {
        "wall_s": wall,
        "concurrency": concurrency,
        "first_trial_start_s": min(o.started for o in outcomes) - started,
        "trial_s_median": statistics.median(o.finished - o.started for o in outcomes),
        "steady_gap_s_median": statistics.median(gaps) if gaps else None,
        "steady_gap_s_max": max(gaps) if gaps else None,
        "amortized_overhead_s_per_trial": (wall * concurrency - inside) / len(outcomes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="ppo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", default="100-109")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    seeds = sweeps.parse_seeds(args.seeds)
    times: dict[str, list[float]] = {"sweep": [], "cli loop": [], "one process": []}
    work = Path(tempfile.mkdtemp(prefix="sweep_bench_"))
    try:
        for repeat in range(args.repeats):
            contenders = list(times)
            contenders = contenders[repeat % 3 :] + contenders[: repeat % 3]
            for name in contenders:
                out = work / f"{name.replace(' ', '_')}-{repeat}"
                if name == "sweep":
                    command = sweep_command(args.algorithm, args.env, args.seeds, out)
                    times[name].append(timed(command))
                elif name == "cli loop":
                    out.mkdir()
                    times[name].append(cli_loop(args.algorithm, args.env, seeds, out))
                else:
                    seed_args = [str(s) for s in seeds]
                    command = [
                        sys.executable,
                        "-c",
                        IN_ONE_PROCESS,
                        str(out),
                        args.algorithm,
                        args.env,
                        *seed_args,
                    ]
                    times[name].append(timed(command))
                print(f"repeat {repeat}: {name:<12} {times[name][-1]:6.1f} s", flush=True)
        costs = ray_costs(args.algorithm, args.env, seeds, work / "costs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {platform.python_version()}",
        "case": f"{args.algorithm}:{args.env}",
        "trials": len(seeds),
        "seeds": args.seeds,
        "times_s": times,
        "medians_s": medians,
        "speedup_vs_cli_loop": medians["cli loop"] / medians["sweep"],
        "speedup_vs_one_process": medians["one process"] / medians["sweep"],
        "ray_costs": costs,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
