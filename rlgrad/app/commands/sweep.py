"""``rlgrad sweep``: every (environment, config, seed) trial as a Ray task."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rlgrad.app.commands.common import add_ray_options, new_run_start, require_extra
from rlgrad.errors import BadInputError


def add_sweep(commands) -> None:
    from rlgrad.app.registry import ALGORITHMS

    sweep = commands.add_parser(
        "sweep",
        help="train every (environment, config, seed) trial as a Ray task",
        description="Train every (environment, config, seed) combination, each trial an ordinary "
        "run directory under OUT/runs/, indexed in OUT/sweep.json. Runs on a local Ray unless "
        "--address (or RAY_ADDRESS) names a cluster. A trial whose worker dies is retried from "
        "its last checkpoint; Ctrl-C stops cleanly and --resume OUT runs what is left. Needs "
        "the ray extra: pip install 'rlgrad[ray]'.",
    )
    sweep.add_argument("algorithm", nargs="?", choices=ALGORITHMS, metavar="ALGO")
    sweep.add_argument(
        "--env",
        default=None,
        help="environment ids, comma-separated (default: the preset file's, or the algorithm's "
        "own, CartPole-v1 or Pendulum-v1 for sac, td3 and crossq)",
    )
    sweep.add_argument("--seeds", default="0-9", help="e.g. 0-9, 0,3,7 or 0-4,10-14 (default: 0-9)")
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="config.FIELD=V1,V2",
        help="a config field and the values to sweep; several --set give their Cartesian product",
    )
    sweep.add_argument(
        "--preset",
        "--config",
        dest="preset",
        metavar="FILE",
        default=None,
        help="start every config from this preset file or run config.json (default: the shipped "
        "preset of each environment)",
    )
    sweep.add_argument("--no-preset", action="store_true", help="start from the trainer defaults")
    sweep.add_argument("--total-steps", type=int, default=None, help="environment steps per trial")
    sweep.add_argument(
        "--out", default=None, help="the sweep directory (default: sweeps/ALGO-TIME)"
    )
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="run what a sweep has not finished")
    sweep.add_argument(
        "--retry-failed", action="store_true", help="with --resume: also rerun failed trials"
    )
    sweep.add_argument(
        "--seeds-per-task",
        type=int,
        default=None,
        metavar="N",
        help="train N seeds of a config together in one task, as one batched computation "
        "(default: split each config's seeds evenly over the concurrent tasks; 1: one seed a "
        "task; trainers without many-seed training always run one)",
    )
    add_ray_options(sweep)
    sweep.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    require_extra("gymnasium", "ray")
    from rlgrad.app import sweep as sweeps
    from rlgrad.app.trials import TrialPool, require_ray

    require_ray()  # before anything is written
    if args.resume is not None:
        if args.algorithm is not None:
            raise BadInputError("give either ALGO (a new sweep) or --resume SWEEP_DIR, not both")
        sweep = sweeps.Sweep.load(args.resume)
    else:
        algorithm, env_list, base = new_run_start(
            "sweep", args.algorithm, args.env, args.preset, args.no_preset
        )
        envs = [e.strip() for e in env_list.split(",") if e.strip()]
        out = args.out or Path("sweeps") / f"{algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"
        sweep = sweeps.create(
            out,
            algorithm,
            envs,
            sweeps.parse_seeds(args.seeds),
            sweeps.parse_grid(args.set),
            base,
            args.total_steps,
        )
    pool = TrialPool(args.address, args.cpus_per_trial, args.max_concurrent)
    try:
        if args.seeds_per_task is not None and args.seeds_per_task < 1:
            raise BadInputError(f"--seeds-per-task must be >= 1; got {args.seeds_per_task}")
        code = sweeps.run(
            sweep,
            pool,
            retry_failed=args.retry_failed,
            progress=args.progress,
            seeds_per_task=args.seeds_per_task,
        )
    finally:
        pool.shutdown()
    print(sweeps.summary_text(sweep))
    return code
