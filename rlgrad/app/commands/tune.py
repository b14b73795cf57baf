"""``rlgrad tune``: an Optuna search, each trial trained on several seeds as Ray tasks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlgrad.app.commands.common import add_ray_options, new_run_start, require_extra
from rlgrad.errors import BadInputError

VALIDATION_SEED = 2000  # validation seeds: away from the tuning (1000+) and held-out (100+) ones


def add_tune(commands) -> None:
    from rlgrad.app.registry import ALGORITHMS

    tune = commands.add_parser(
        "tune",
        help="Optuna search, each trial trained on several seeds (Ray)",
        description="Search the algorithm's space (rlgrad/app/search_spaces.json) with Optuna's "
        "TPE sampler; every trial trains on K tuning seeds as Ray tasks and scores "
        "n_solved + 1/(1 + mean training s to solve / 60 s): reliability first, then speed. A "
        "median pruner stops trials that fall behind at intermediate evaluations. The study "
        "lives in a database (--storage) so it can be resumed and shared; the best config is "
        "written as a preset file for `rlgrad train --preset FILE`. Needs the ray extra.",
    )
    tune.add_argument("algorithm", choices=ALGORITHMS, metavar="ALGO")
    tune.add_argument(
        "--env",
        default=None,
        help="environment id (default: the preset file's, or the algorithm's own, CartPole-v1 "
        "or Pendulum-v1 for sac, td3 and crossq)",
    )
    tune.add_argument("--trials", type=int, default=30, help="Optuna trials (default: 30)")
    tune.add_argument(
        "--seeds-per-trial", type=int, default=5, help="tuning seeds per trial K (default: 5)"
    )
    tune.add_argument(
        "--first-seed",
        type=int,
        default=1000,
        help="tuning seeds are first-seed ... first-seed + K - 1 (default: 1000, away from the "
        "seeds people evaluate on)",
    )
    tune.add_argument("--seeds", default=None, help="explicit tuning seeds, e.g. 1000-1004")
    tune.add_argument(
        "--preset",
        metavar="FILE",
        default=None,
        help="fields not searched come from this preset file (default: the shipped preset)",
    )
    tune.add_argument("--no-preset", action="store_true", help="unsearched fields: the defaults")
    tune.add_argument("--total-steps", type=int, default=None, help="budget per seed")
    tune.add_argument("--out", default=None, help="run directories, study.db and best_preset.json")
    tune.add_argument(
        "--storage", default=None, help="Optuna storage URL (default: sqlite:///OUT/study.db)"
    )
    tune.add_argument("--study-name", default=None, help="(default: ALGO-ENV)")
    tune.add_argument("--no-prune", action="store_true", help="run every trial to the end")
    tune.add_argument(
        "--validation-seeds",
        type=int,
        default=10,
        help="then train the best --validate-top trials on this many more seeds (2000, 2001, "
        "...) and choose by the objective over all their seeds (default: 10; 0: no validation)",
    )
    tune.add_argument("--validate-top", type=int, default=3, help="trials to validate (default: 3)")
    tune.add_argument("--sampler-seed", type=int, default=0, help="the TPE sampler's seed")
    add_ray_options(tune)
    tune.set_defaults(run=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    require_extra("gymnasium", "ray")
    from rlgrad.app import sweep as sweeps
    from rlgrad.app import tune as tuning
    from rlgrad.app.trials import TrialPool, require_ray

    require_ray()
    require_extra("optuna", "ray", "rlgrad tune searches with it")
    if args.trials < 1 or args.seeds_per_trial < 1:
        raise BadInputError(
            f"--trials and --seeds-per-trial must be >= 1; got {args.trials}, "
            f"{args.seeds_per_trial}"
        )
    if args.validation_seeds < 0 or args.validate_top < 1:
        raise BadInputError(
            f"--validation-seeds must be >= 0 and --validate-top >= 1; got "
            f"{args.validation_seeds}, {args.validate_top}"
        )
    validation_seeds = list(range(VALIDATION_SEED, VALIDATION_SEED + args.validation_seeds))
    if args.seeds is not None:
        seeds = sweeps.parse_seeds(args.seeds)
    else:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds_per_trial))
    algorithm, env, base = new_run_start(
        "tune", args.algorithm, args.env, args.preset, args.no_preset
    )
    out = Path(args.out or Path("tuning") / f"{algorithm}-{env}")
    tuner = tuning.Tuner(
        algorithm,
        env,
        out,
        seeds,
        base,
        args.total_steps,
        args.storage,
        args.study_name,
        not args.no_prune,
        args.sampler_seed,
    )
    pool = TrialPool(args.address, args.cpus_per_trial, args.max_concurrent)
    ranking = None
    try:
        code = tuner.run(pool, args.trials, progress=args.progress)
        if code == 0 and validation_seeds:
            print(
                f"rlgrad tune: validating the best {args.validate_top} trials on seeds "
                f"{validation_seeds[0]}-{validation_seeds[-1]}",
                file=sys.stderr,
            )
            ranking = tuner.validate(pool, validation_seeds, args.validate_top)
    except KeyboardInterrupt:
        print(
            "\nrlgrad tune: validation stopped; run the command again to finish it", file=sys.stderr
        )
        pool.cancel(grace_s=30)
        code = 130
    finally:
        pool.shutdown()
    print(tuning.best_text(tuner, tuner.write_best(validation=ranking)))
    return code
