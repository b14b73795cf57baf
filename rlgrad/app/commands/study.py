"""``rlgrad study``: sampled policy-gradient estimators against the exact gradient."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlgrad.app.commands.common import require_extra
from rlgrad.errors import BadInputError


def add_study(commands) -> None:
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
    study.set_defaults(run=run_study)


def run_study(args: argparse.Namespace) -> int:
    if args.plots:
        require_extra("matplotlib", "plots", "--plots draws with it")
    if args.natural:
        return run_natural_study(args)
    from rlgrad.tabular.estimators import render_study, study
    from rlgrad.tabular.zoo import ZOO, make_logits

    mdp = ZOO[args.mdp](gamma=args.gamma)
    logits = make_logits(mdp, args.theta, seed=args.seed)
    try:
        lams = tuple(float(x) for x in args.lams.split(","))
    except ValueError:
        raise BadInputError(
            f"--lams must be comma-separated numbers in [0, 1]; got {args.lams!r}"
        ) from None
    result = study(mdp, logits, args.episodes, lams, args.critic_noise, args.seed, args.horizon)
    print(render_study(result))
    if args.plots:
        from rlgrad.tabular.plots import plot_study

        for path in plot_study(result, args.plots):
            print(f"  wrote {path}")
    return 0


def run_natural_study(args: argparse.Namespace) -> int:
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
