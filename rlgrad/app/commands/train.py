"""``rlgrad train``, ``rlgrad eval`` and ``rlgrad presets``: one run at a time."""

from __future__ import annotations

import argparse
import dataclasses

from rlgrad.app.commands.common import Parser, new_run_start, require_extra
from rlgrad.errors import BadInputError


def add_train(commands) -> None:
    from rlgrad.app.registry import ALGORITHMS, module
    from rlgrad.support import configs

    train = commands.add_parser(
        "train",
        help="train an agent (ppo, a2c, reinforce, dqn, grpo, sac, td3, crossq, trpo) on a "
        "Gymnasium environment",
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
    train.set_defaults(run=run_train, algorithm=None)
    algorithms = train.add_subparsers(dest="algorithm", metavar="ALGO", parser_class=Parser)
    for algorithm in ALGORITHMS:
        trainer = module(algorithm)
        first_line = (trainer.__doc__ or "").strip().splitlines()[0]
        sub = algorithms.add_parser(algorithm, help=first_line, description=first_line)
        sub.add_argument(
            "--env",
            default=None,
            help="environment id (default: the preset file's, or the algorithm's own: "
            "CartPole-v1, Pendulum-v1 for sac, td3 and crossq)",
        )
        sub.add_argument("--seed", type=int, default=None, help="random seed")
        batched = hasattr(trainer, "train_seeds")
        sub.add_argument(
            "--seeds",
            default=None,
            metavar="SEEDS",
            help="train many seeds in this one process, as one batched computation "
            "(e.g. 0-63 or 1,5,9); each seed writes RUN_DIR/seed{s}"
            + ("" if batched else f" (not {algorithm}: use `rlgrad sweep`)"),
        )
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


def run_train(args: argparse.Namespace) -> int:
    require_extra("gymnasium", "gym")
    from rlgrad.app import presets, registry

    def given(name: str):  # an option given after ALGO, or before it (`rlgrad train --preset F`)
        value = getattr(args, name, None)
        return value if value is not None else getattr(args, f"top_{name}")

    if args.resume is not None:
        if args.algorithm is not None or given("preset") is not None:
            raise BadInputError("give either ALGO or --preset FILE (a new run) or --resume RUN_DIR")
        seed_dirs = registry.seed_run_dirs(args.resume)
        if seed_dirs:
            histories = registry.resume_seeds(args.resume, seed_dirs, progress=args.progress)
            print(seeds_summary_text(histories))
            return 130 if any(h.summary["interrupted"] for h in histories) else 0
        history = registry.resume(args.resume, checkpoint=args.checkpoint, progress=args.progress)
        print(summary_text(history))
        return 130 if history.summary["interrupted"] else 0
    algorithm, env, base = new_run_start(
        "train",
        args.algorithm,
        getattr(args, "env", None),
        given("preset"),
        getattr(args, "no_preset", False),
    )
    overrides = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("config.")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for name in ("seed", "total_steps"):
        if given(name) is not None:
            overrides[name] = given(name)
    config = presets.build_config(
        algorithm, env, presets.base_fields(algorithm, env, base), overrides
    )
    trainer = registry.module(algorithm)
    seeds = getattr(args, "seeds", None)
    if seeds is not None:
        from rlgrad.app.sweep import parse_seeds

        if given("seed") is not None:
            raise BadInputError("give either --seed or --seeds")
        if not hasattr(trainer, "train_seeds"):
            raise BadInputError(
                f"{algorithm} trains one seed per process; got --seeds {seeds} (use "
                f"`rlgrad sweep {algorithm} --seeds {seeds}` to train them side by side)"
            )
        histories = trainer.train_seeds(
            config, parse_seeds(seeds), given("run_dir"), progress=args.progress
        )
        print(seeds_summary_text(histories))
        return 130 if any(h.summary["interrupted"] for h in histories) else 0
    history = trainer.train(config, given("run_dir"), progress=args.progress)
    print(summary_text(history))
    return 130 if history.summary["interrupted"] else 0


def seeds_summary_text(histories) -> str:
    """What ``rlgrad train --seeds`` prints: a line per seed, then the count that solved."""
    import numpy as np

    lines = []
    solved_steps = []
    for history in histories:
        s = history.summary
        if "failed" in s:
            state = "failed (diverged)"
        elif s["solved_step"] is not None:
            state = f"solved at step {s['solved_step']:,}"
            solved_steps.append(s["solved_step"])
        else:
            state = "not solved"
        final = s["final_eval_return_mean"]
        final_text = "-" if final is None else f"{final:.1f}"
        lines.append(f"  seed {s['seed']:<6} final eval {final_text:>8}   {state}")
    first = histories[0].summary
    head = (
        f"{first['algorithm']} on {first['env']}: {len(histories)} seeds in one process, "
        f"{max(h.summary['wall_s'] for h in histories):.1f} s"
    )
    tail = f"  {len(solved_steps)}/{len(histories)} solved"
    if solved_steps:
        tail += f", median step to solve {int(np.median(solved_steps)):,}"
    directories = sorted({str(h.run_dir.parent) for h in histories})
    tail += f"\n  run directories under {', '.join(directories)}; compare them with `rlgrad report`"
    return "\n".join([head, *lines, tail])


def summary_text(history) -> str:
    """What ``rlgrad train`` prints at the end of a run, from the run's ``summary.json``."""
    from rlgrad.support.run_format import SOLVED_AFTER

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


def add_eval(commands) -> None:
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
    evaluate.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    require_extra("gymnasium", "gym")
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


def add_presets(commands) -> None:
    listing = commands.add_parser("presets", help="list the tuned presets")
    listing.set_defaults(run=run_presets)


def run_presets(args: argparse.Namespace) -> int:
    from rlgrad.app.presets import all_presets

    for algorithm, envs in all_presets().items():
        for env, fields in envs.items():
            shown = ", ".join(f"{k}={v}" for k, v in fields.items())
            print(f"{algorithm:<10} {env:<16} {shown}")
    return 0
