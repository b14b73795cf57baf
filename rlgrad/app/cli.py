"""The ``rlgrad`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look, not a usage dump."""

    def error(self, message: str):
        print(f"{self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _require(module: str, extra: str, why: str | None = None) -> None:
    """A one-line ValueError naming what to install when an optional dependency is missing, so
    a command fails before it starts rather than with a traceback halfway through."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        because = f" ({why})" if why else ""
        raise ValueError(
            f"{module} is not installed{because}: pip install 'rlgrad[{extra}]'"
        ) from None


def _examples(args: argparse.Namespace) -> int:
    from rlgrad.tour.examples import EXAMPLES, render

    chosen = [e for e in EXAMPLES if args.section is None or e.section.startswith(args.section)]
    if not chosen:
        print(f"rlgrad examples: no section matches {args.section!r}", file=sys.stderr)
        return 2
    print(render(chosen))
    return 0


def _study(args: argparse.Namespace) -> int:
    if args.plots:
        _require("matplotlib", "plots", "--plots draws with it")
    if args.natural:
        return _natural_study(args)
    from rlgrad.tabular.estimators import render_study, study
    from rlgrad.tabular.zoo import ZOO, make_logits

    mdp = ZOO[args.mdp](gamma=args.gamma)
    logits = make_logits(mdp, args.theta, seed=args.seed)
    try:
        lams = tuple(float(x) for x in args.lams.split(","))
    except ValueError:
        raise ValueError(
            f"--lams must be comma-separated numbers in [0, 1]; got {args.lams!r}"
        ) from None
    result = study(mdp, logits, args.episodes, lams, args.critic_noise, args.seed, args.horizon)
    print(render_study(result))
    if args.plots:
        from rlgrad.tabular.plots import plot_study

        for path in plot_study(result, args.plots):
            print(f"  wrote {path}")
    return 0


def _natural_study(args: argparse.Namespace) -> int:
    from rlgrad.tabular.natural import compare_ascents, misled_logits
    from rlgrad.tabular.zoo import chain, random_mdp

    races = []
    lines = [
        "| MDP | J* | method | α | iterations to 99% of the way to J* |",
        "|---|---|---|---|---|",
    ]
    for title, mdp in (
        (f"chain(), γ = {args.gamma:g}", chain(gamma=args.gamma)),
        (
            f"random_mdp(seed={args.seed}), γ = {args.gamma:g}",
            random_mdp(seed=args.seed, gamma=args.gamma),
        ),
    ):
        optimum, runs = compare_ascents(mdp, misled_logits(mdp), args.natural_steps)
        races.append((title, optimum, runs))
        for run in runs:
            reached = run.iterations if run.iterations is not None else f"> {args.natural_steps}"
            lines.append(f"| {title} | {optimum:.4f} | {run.method} | {run.lr:g} | {reached} |")
    print(
        "Exact ascent from θ = −2 on the optimal actions (misled_logits): vanilla θ + α∇J, "
        "natural θ + αF⁺∇J"
    )
    print("\n".join(lines))
    if args.plots:
        from rlgrad.tabular.plots import plot_natural

        print(f"  wrote {plot_natural(races, Path(args.plots) / 'study_natural.png')}")
    return 0


def _tour(args: argparse.Namespace) -> int:
    if args.plots:
        _require("matplotlib", "plots", "--plots draws with it")
    from rlgrad.tour.tour import run_tour

    return run_tour(plots=args.plots, step=args.step)


def _train(args: argparse.Namespace) -> int:
    _require("gymnasium", "gym")
    from rlgrad.app import presets, registry

    def given(name: str):  # an option given after ALGO, or before it (`rlgrad train --preset F`)
        value = getattr(args, name, None)
        return value if value is not None else getattr(args, f"top_{name}")

    preset_file = given("preset")
    if args.resume is not None:
        if args.algorithm is not None or preset_file is not None:
            raise ValueError("give either ALGO or --preset FILE (a new run) or --resume RUN_DIR")
        history = registry.resume(args.resume, checkpoint=args.checkpoint, progress=args.progress)
        print(_summary_text(history))
        return 130 if history.summary["interrupted"] else 0
    algorithm, env, base = args.algorithm, getattr(args, "env", None), presets.SHIPPED
    if preset_file is not None:
        file_algorithm, file_env, _ = presets.read_preset_file(preset_file)
        if algorithm not in (None, file_algorithm):
            raise ValueError(
                f"--preset {preset_file} is a {file_algorithm} preset, not {algorithm}"
            )
        algorithm, env, base = file_algorithm, env or file_env, preset_file
    if algorithm is None:
        raise ValueError("name an algorithm (rlgrad train ppo --env CartPole-v1) or --resume")
    env = env or registry.module(algorithm).Config().env
    if getattr(args, "no_preset", False):
        if preset_file is not None:
            raise ValueError("give --preset FILE or --no-preset, not both")
        base = presets.DEFAULTS
    overrides = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("config.")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for name in ("seed", "total_steps"):
        if given(name) is not None:
            overrides[name] = given(name)
    config = presets.build_config(
        algorithm, env, presets.base_fields(algorithm, env, base), overrides
    )
    history = registry.module(algorithm).train(config, given("run_dir"), progress=args.progress)
    print(_summary_text(history))
    return 130 if history.summary["interrupted"] else 0


def _sweep(args: argparse.Namespace) -> int:
    _require("gymnasium", "ray")
    from rlgrad.app import presets, registry
    from rlgrad.app import sweep as sweeps
    from rlgrad.app.trials import TrialPool, require_ray

    require_ray()  # before anything is written
    if args.resume is not None:
        if args.algorithm is not None:
            raise ValueError("give either ALGO (a new sweep) or --resume SWEEP_DIR, not both")
        sweep = sweeps.Sweep.load(args.resume)
    else:
        if args.algorithm is None:
            raise ValueError("name an algorithm (rlgrad sweep ppo --env CartPole-v1) or --resume")
        if args.no_preset and args.preset is not None:
            raise ValueError("give --preset FILE or --no-preset, not both")
        base = presets.DEFAULTS if args.no_preset else args.preset or presets.SHIPPED
        env_list = args.env or registry.module(args.algorithm).Config().env
        envs = [e.strip() for e in env_list.split(",") if e.strip()]
        out = args.out or Path("sweeps") / f"{args.algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"
        sweep = sweeps.create(
            out,
            args.algorithm,
            envs,
            sweeps.parse_seeds(args.seeds),
            sweeps.parse_grid(args.set),
            base,
            args.total_steps,
        )
    pool = TrialPool(args.address, args.cpus_per_trial, args.max_concurrent)
    try:
        code = sweeps.run(sweep, pool, retry_failed=args.retry_failed, progress=args.progress)
    finally:
        pool.shutdown()
    print(sweeps.summary_text(sweep))
    return code


def _report(args: argparse.Namespace) -> int:
    if not args.no_plots and args.output is not None:
        _require("matplotlib", "plots", "for the figures; or pass --no-plots")
    from rlgrad.app.report import report
    from rlgrad.app.report_files import write_report

    if args.output is None:
        text, written = report(args.dirs, args.baseline, args.reps)[0], []
    else:
        plots = not args.no_plots
        text, written = write_report(args.dirs, args.output, args.baseline, args.reps, plots)
    print(text, end="")
    for path in written:
        print(f"  wrote {path}")
    return 0


VALIDATION_SEED = 2000  # validation seeds: away from the tuning (1000+) and held-out (100+) ones


def _tune(args: argparse.Namespace) -> int:
    _require("gymnasium", "ray")
    from rlgrad.app import presets, registry
    from rlgrad.app import sweep as sweeps
    from rlgrad.app import tune as tuning
    from rlgrad.app.trials import TrialPool, require_ray

    require_ray()
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ValueError("rlgrad tune needs Optuna: pip install 'rlgrad[ray]'") from None
    if args.trials < 1 or args.seeds_per_trial < 1:
        raise ValueError(
            f"--trials and --seeds-per-trial must be >= 1; got {args.trials}, "
            f"{args.seeds_per_trial}"
        )
    if args.validation_seeds < 0 or args.validate_top < 1:
        raise ValueError(
            f"--validation-seeds must be >= 0 and --validate-top >= 1; got "
            f"{args.validation_seeds}, {args.validate_top}"
        )
    validation_seeds = list(range(VALIDATION_SEED, VALIDATION_SEED + args.validation_seeds))
    if args.seeds is not None:
        seeds = sweeps.parse_seeds(args.seeds)
    else:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds_per_trial))
    if args.no_preset and args.preset is not None:
        raise ValueError("give --preset FILE or --no-preset, not both")
    base = presets.DEFAULTS if args.no_preset else args.preset or presets.SHIPPED
    env = args.env or registry.module(args.algorithm).Config().env
    out = Path(args.out or Path("tuning") / f"{args.algorithm}-{env}")
    tuner = tuning.Tuner(
        args.algorithm,
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


def _summary_text(history) -> str:
    from rlgrad.support.runs import SOLVED_AFTER

    s = history.summary
    lines = [f"{s['algorithm']} on {s['env']} (seed {s['seed']}): {s['steps']:,} steps"]
    lines.append(f"  training time   {s['train_s']:.1f} s ({s['wall_s']:.1f} s with evaluation)")
    if s["final_eval_return_mean"] is not None:
        lines.append(
            f"  final eval      {s['final_eval_return_mean']:.1f}  "
            f"(best {s['best_eval_return_mean']:.1f} at step {s['best_eval_step']:,})"
        )
    if s["threshold"] is not None:
        if s["solved_step"] is not None:
            lines.append(
                f"  solved          {SOLVED_AFTER} evals >= {s['threshold']:g} from step "
                f"{s['solved_step']:,}, "
                f"after {s['solved_train_s']:.1f} s of training"
            )
        else:
            lines.append(f"  not solved      (threshold {s['threshold']:g})")
    lines.append(f"  run directory   {history.run_dir}")
    if (history.run_dir / "learning_curve.png").exists():
        lines.append(f"  learning curve  {history.run_dir / 'learning_curve.png'}")
    if s["interrupted"]:
        lines.append(f"  interrupted: resume with `rlgrad train --resume {history.run_dir}`")
    return "\n".join(lines)


def _eval(args: argparse.Namespace) -> int:
    _require("gymnasium", "gym")
    import numpy as np

    from rlgrad.app.agents import load_agent
    from rlgrad.app.registry import saved_config
    from rlgrad.support.evaluation import evaluate

    _, config = saved_config(args.run_dir)
    agent = load_agent(args.run_dir, args.checkpoint)
    returns = evaluate(
        agent.network,
        config.env,
        args.episodes,
        config.seed if args.seed is None else args.seed,
        obs_stats=agent.obs_stats.state_dict(),
        normalize_obs=agent.normalize_obs,
        deterministic=not args.stochastic,
    )
    print(
        f"{agent.algorithm} on {config.env}: {args.episodes} episodes, return "
        f"{np.mean(returns):.1f} ± {np.std(returns):.1f} (min {np.min(returns):.1f}, "
        f"max {np.max(returns):.1f})"
    )
    return 0


def _plot(args: argparse.Namespace) -> int:
    _require("matplotlib", "plots")
    from rlgrad.support.plots import learning_curve

    for run_dir in args.run_dirs:
        if not (Path(run_dir) / "metrics.csv").exists():
            raise ValueError(f"{run_dir!r} is not a run directory (no metrics.csv)")
    print(f"wrote {learning_curve(args.run_dirs, args.output, args.column)}")
    return 0


def _taylor(args: argparse.Namespace) -> int:
    from rlgrad.app.taylor_plots import logged_diagnostics, taylor_figure

    logged_diagnostics(args.run_dir)  # a clear error before matplotlib is needed
    _require("matplotlib", "plots")
    output = args.output if args.output is not None else Path(args.run_dir) / "taylor.png"
    print(f"wrote {taylor_figure(args.run_dir, output)}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from rlgrad.app.presets import all_presets

    for algorithm, envs in all_presets().items():
        for env, fields in envs.items():
            shown = ", ".join(f"{k}={v}" for k, v in fields.items())
            print(f"{algorithm:<10} {env:<16} {shown}")
    return 0


def _grpo_demo(args) -> int:
    try:
        import transformers
    except ImportError:
        raise ValueError("grpo-demo needs transformers: pip install 'rlgrad[lm]'") from None
    from rlgrad.lm import demo

    if args.lora:
        _require("peft", "peft", "--lora trains adapters with it")
    transformers.logging.set_verbosity_error()
    changes = {"output_dir": args.output_dir}
    if args.steps is not None:
        if args.steps <= 0:
            raise ValueError(f"--steps must be a positive number of GRPO steps; got {args.steps}")
        changes["max_steps"] = args.steps
    if args.lr is not None:
        changes["learning_rate"] = args.lr
    result = demo.run(seed=args.seed, progress=args.progress, lora=args.lora, **changes)
    trained = "LoRA adapters" if args.lora else "all weights"
    print(
        f"grpo-demo (seed {args.seed}, {trained}): greedy accuracy "
        f"{result['accuracy_before']:.2f} after the warm-up ({result['warm_up_s']:.1f} s), "
        f"{result['accuracy_after']:.2f} after {len(result['history'])} GRPO steps "
        f"({result['grpo_s']:.1f} s)"
    )
    return 0


def _add_train(commands) -> None:
    from rlgrad.app.registry import ALGORITHMS, module
    from rlgrad.support import configs

    train = commands.add_parser(
        "train",
        help="train an agent (ppo, a2c, reinforce, dqn, grpo, sac, td3, trpo) on a Gymnasium "
        "environment",
        description="Train an agent; `rlgrad train ALGO --help` lists every config field.",
    )
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint")
    train.add_argument("--checkpoint", metavar="PATH", help="with --resume: this checkpoint")
    train.add_argument(
        "--preset",
        dest="top_preset",
        metavar="FILE",
        help="train the algorithm and environment of this preset file (as `rlgrad tune` writes)",
    )
    train.add_argument("--seed", dest="top_seed", type=int, help="with --preset: random seed")
    train.add_argument("--total-steps", dest="top_total_steps", type=int, help="with --preset")
    train.add_argument("--run-dir", dest="top_run_dir", help="with --preset: where to write")
    train.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    train.set_defaults(run=_train, algorithm=None)
    algorithms = train.add_subparsers(dest="algorithm", metavar="ALGO", parser_class=_Parser)
    for algorithm in ALGORITHMS:
        trainer = module(algorithm)
        first_line = (trainer.__doc__ or "").strip().splitlines()[0]
        sub = algorithms.add_parser(algorithm, help=first_line, description=first_line)
        sub.add_argument(
            "--env",
            default=None,
            help="environment id (default: the preset file's, or the algorithm's own: "
            "CartPole-v1, Pendulum-v1 for sac and td3)",
        )
        sub.add_argument("--seed", type=int, default=None, help="random seed")
        sub.add_argument("--total-steps", type=int, default=None, help="environment steps")
        sub.add_argument("--run-dir", default=None, help="where to write (default: runs/...)")
        sub.add_argument(
            "--no-preset", action="store_true", help="start from the defaults, not the preset"
        )
        sub.add_argument(
            "--preset",
            metavar="FILE",
            help="start from this preset file instead of the shipped preset",
        )
        sub.add_argument(
            "--no-progress", dest="progress", action="store_false", help="no progress bar"
        )
        docs = configs.field_docs(trainer.Config)
        defaults = trainer.Config()
        for field in dataclasses.fields(trainer.Config):
            doc = docs.get(field.name, "").replace("%", "%%")
            sub.add_argument(
                f"--config.{field.name}",
                dest=f"config.{field.name}",
                metavar="VALUE",
                default=None,
                help=f"{doc} (default: {getattr(defaults, field.name)!r})",
            )


def _add_ray_options(parser) -> None:
    parser.add_argument(
        "--address",
        default=None,
        help="a Ray cluster to run on (default: $RAY_ADDRESS, else a local Ray on this machine)",
    )
    parser.add_argument(
        "--cpus-per-trial", type=float, default=1.0, help="CPUs Ray reserves per trial (default: 1)"
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials in flight at once (default: the cluster's CPUs / --cpus-per-trial)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def _add_sweep(commands) -> None:
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
        help="environment ids, comma-separated (default: the algorithm's own, CartPole-v1 or "
        "Pendulum-v1 for sac and td3)",
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
    _add_ray_options(sweep)
    sweep.set_defaults(run=_sweep)


def _add_tune(commands) -> None:
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
        help="environment id (default: the algorithm's own, CartPole-v1 or Pendulum-v1 for sac "
        "and td3)",
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
    _add_ray_options(tune)
    tune.set_defaults(run=_tune)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rlgrad",
        description="The calculus of RL optimization as exact PyTorch functions.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    examples = commands.add_parser(
        "examples",
        help="recompute every worked example of the seed pages with rlgrad's functions",
        description="Every worked example and exercise answer of the seeds (E.3.1-E.3.6), "
        "recomputed by rlgrad's functions and grouped by section.",
    )
    examples.add_argument(
        "--section", help="only sections starting with this, e.g. E.3.4", default=None
    )
    examples.set_defaults(run=_examples)

    study = commands.add_parser(
        "study",
        help="measure sampled policy-gradient estimators against the exact gradient",
        description="Sample N episodes on a small MDP and report the bias and variance, against "
        "the exact policy gradient, of REINFORCE, baselines, the exact advantage, GAE(λ) with the "
        "exact V, and GAE(λ) with a noisy critic.",
    )
    study.add_argument(
        "--mdp",
        choices=["two_state", "chain", "random"],
        default="two_state",
        help="the MDP (default: two_state)",
    )
    study.add_argument("--gamma", type=float, default=0.9, help="the discount γ (default: 0.9)")
    study.add_argument(
        "--theta",
        default="zeros",
        help="logits: 'zeros' (uniform policy), 'random', or S·A comma-separated "
        "numbers, state by state (default: zeros)",
    )
    study.add_argument(
        "--episodes", type=int, default=2000, help="number of sampled episodes N (default: 2000)"
    )
    study.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="steps per episode H (default: smallest H with γ^H <= 1e-4)",
    )
    study.add_argument(
        "--lams",
        default="0,0.5,0.9,0.95,1",
        help="comma-separated GAE λ values (default: 0,0.5,0.9,0.95,1)",
    )
    study.add_argument(
        "--critic-noise",
        type=float,
        default=1.0,
        help="RMS size of the noisy critic's error V̂ − V (default: 1.0)",
    )
    study.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    study.add_argument(
        "--plots", metavar="DIR", default=None, help="also write PNG figures into DIR"
    )
    study.add_argument(
        "--natural",
        action="store_true",
        help="instead: exact natural against vanilla policy-gradient ascent on chain() and "
        "random_mdp(seed=--seed), from a start that avoids the optimal actions; iterations "
        "each needs to come 99%% of the way to J* (figure: study_natural.png)",
    )
    study.add_argument(
        "--natural-steps",
        type=int,
        default=1500,
        help="with --natural: iterations of each ascent (default: 1500)",
    )
    study.set_defaults(run=_study)

    tour = commands.add_parser(
        "tour",
        help="a guided walk through rlgrad: calculus, policy gradients, TD, GAE, PPO, GRPO",
        description="Each step computes its numbers with rlgrad's functions; with --plots DIR it "
        "also writes a figure per step.",
    )
    tour.add_argument("--plots", metavar="DIR", default=None, help="write PNG figures into DIR")
    tour.add_argument(
        "--step", default=None, help="only steps whose name starts with this, e.g. 'gae'"
    )
    tour.set_defaults(run=_tour)

    _add_train(commands)
    evaluate = commands.add_parser(
        "eval", help="evaluate a trained run", description="Run a trained agent's episodes."
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes (default: 10)")
    evaluate.add_argument("--seed", type=int, default=None, help="evaluation seed")
    evaluate.add_argument(
        "--checkpoint",
        default="latest",
        help="latest (where the run stopped), best (its best evaluation's weights) or a "
        "checkpoint file (default: %(default)s)",
    )
    evaluate.add_argument("--stochastic", action="store_true", help="sample actions")
    evaluate.set_defaults(run=_eval)

    plot = commands.add_parser(
        "plot",
        help="plot learning curves of one or more runs",
        description="Plot runs against environment steps; runs of the same algorithm and "
        "environment (several seeds) are drawn as a mean with a band.",
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("-o", "--output", default="learning_curves.png", help="the PNG to write")
    plot.add_argument(
        "--column", default="eval_return_mean", help="metrics.csv column (default: %(default)s)"
    )
    plot.set_defaults(run=_plot)

    taylor = commands.add_parser(
        "taylor",
        help="plot a run's Taylor diagnostics (trained with --config.taylor_every N)",
        description="Draw the Taylor diagnostics a PPO or TRPO run logged every N updates "
        "(--config.taylor_every N): each update's KL against its quadratic model ½ΔθᵀFΔθ, its "
        "surrogate change against the linear model gᵀΔθ, and how far the probability ratios "
        "strayed from their first- and second-order models.",
    )
    taylor.add_argument("run_dir", metavar="RUN_DIR")
    taylor.add_argument(
        "-o", "--output", default=None, help="the PNG to write (default: RUN_DIR/taylor.png)"
    )
    taylor.set_defaults(run=_taylor)

    _add_sweep(commands)
    report = commands.add_parser(
        "report",
        help="many-seed statistics of sweeps: success rates, IQMs with 95%% CIs, figures",
        description="Aggregate the runs of one or more sweep directories (or folders of run "
        "directories) per (algorithm, environment, config): success rate with its Wilson "
        "interval; steps and seconds to solve; final-return IQM, median and mean and the "
        "optimality gap with stratified-bootstrap 95%% intervals (Agarwal et al. 2021); the "
        "probability of improvement over a baseline config; learning curves, performance "
        "profiles and interval estimates as PNGs.",
    )
    report.add_argument("dirs", nargs="+", metavar="SWEEP_DIR")
    report.add_argument("-o", "--output", default=None, help="write report.md and PNGs here")
    report.add_argument("--baseline", default=None, help="config label to compare against")
    report.add_argument(
        "--reps", type=int, default=2000, help="bootstrap resamples (default: %(default)s)"
    )
    report.add_argument("--no-plots", action="store_true", help="only the Markdown")
    report.set_defaults(run=_report)
    _add_tune(commands)
    presets = commands.add_parser("presets", help="list the tuned presets")
    presets.set_defaults(run=_presets)

    demo = commands.add_parser(
        "grpo-demo",
        help="GRPO on a tiny GPT-2 learning addition mod 10 (CPU, a minute, no download)",
        description="Warm up a tiny GPT-2 on the answer format, then train it with GRPO on "
        "single-digit addition mod 10; prints greedy accuracy on all 100 prompts before and "
        "after. Needs the lm extra (transformers).",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the demo's)")
    demo.add_argument("--lr", type=float, default=None, help="learning rate (0: a control run)")
    demo.add_argument(
        "--lora",
        action="store_true",
        help="train LoRA adapters (r 8 on every linear layer) instead of all weights; needs the "
        "peft extra",
    )
    demo.add_argument("--output-dir", default=None, help="write checkpoints and metrics here")
    demo.add_argument("--no-progress", dest="progress", action="store_false")
    demo.set_defaults(run=_grpo_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rlgrad.support.runs import TrainingError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    try:
        if unknown:
            field = next((u for u in unknown if u.startswith("--config.")), None)
            if field is None or args.command != "train" or args.algorithm is None:
                parser.error(f"unrecognized arguments: {' '.join(unknown)}")
            from rlgrad.app.registry import module
            from rlgrad.support import configs

            name = field.split("=", 1)[0].removeprefix("--config.")
            raise configs.unknown_field(module(args.algorithm).Config, name, args.algorithm)
        return args.run(args)
    except ValueError as error:
        # Bad input from the command line deserves one line that says what to fix, not a
        # traceback; the library's errors already name the function, argument and value.
        print(f"rlgrad {args.command}: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"rlgrad {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
