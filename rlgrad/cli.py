"""The ``rlgrad`` command line."""

from __future__ import annotations

import argparse
import sys


def _examples(args: argparse.Namespace) -> int:
    from rlgrad.tour.examples import EXAMPLES, render

    chosen = [e for e in EXAMPLES if args.section is None or e.section.startswith(args.section)]
    if not chosen:
        print(f"rlgrad examples: no section matches {args.section!r}", file=sys.stderr)
        return 2
    print(render(chosen))
    return 0


def _study(args: argparse.Namespace) -> int:
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


def _tour(args: argparse.Namespace) -> int:
    from rlgrad.tour.tour import run_tour

    return run_tour(plots=args.plots, step=args.step)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlgrad",
        description="The calculus of RL optimization as exact PyTorch functions.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        # Bad input from the command line deserves one line that says what to fix, not a
        # traceback; the library's errors already name the function, argument and value.
        print(f"rlgrad {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
