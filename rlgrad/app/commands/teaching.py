"""``rlgrad examples`` and ``rlgrad tour``: the course's numbers, recomputed by rlgrad."""

from __future__ import annotations

import argparse

from rlgrad.app.commands.common import require_extra
from rlgrad.errors import BadInputError


def add_examples(commands) -> None:
    examples = commands.add_parser(
        "examples",
        help="recompute every worked example of course module E.3 with rlgrad's functions",
        description="Every worked example and exercise answer of the course module E.3 (calculus "
        "and optimization for RL, pages E.3.1-E.3.6), recomputed by rlgrad's functions and "
        "grouped by course page.",
    )
    examples.add_argument(
        "--section", help="only sections starting with this, e.g. E.3.4", default=None
    )
    examples.set_defaults(run=run_examples)


def run_examples(args: argparse.Namespace) -> int:
    from rlgrad.tour.examples import EXAMPLES, render

    chosen = [e for e in EXAMPLES if args.section is None or e.section.startswith(args.section)]
    if not chosen:
        raise BadInputError(f"no section matches {args.section!r}")
    print(render(chosen))
    return 0


def add_tour(commands) -> None:
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
    tour.set_defaults(run=run_tour)


def run_tour(args: argparse.Namespace) -> int:
    if args.plots:
        require_extra("matplotlib", "plots", "--plots draws with it")
    from rlgrad.tour.tour import run_tour as walk

    return walk(plots=args.plots, step=args.step)
