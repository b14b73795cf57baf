"""``rlgrad plot`` and ``rlgrad taylor``: figures of runs that have finished (or are running)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlgrad.app.commands.common import require_extra
from rlgrad.errors import BadInputError


def add_plot(commands) -> None:
    plot = commands.add_parser(
        "plot",
        help="plot learning curves of one or more runs",
        description="Plot runs against their steps (environment steps; GRPO steps for "
        "grpo-demo runs); runs of the same algorithm and environment (several seeds) are drawn "
        "as a mean with a band.",
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("-o", "--output", default="learning_curves.png", help="the PNG to write")
    plot.add_argument(
        "--column", default="eval_return_mean", help="metrics.csv column (default: %(default)s)"
    )
    plot.set_defaults(run=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    require_extra("matplotlib", "plots")
    from rlgrad.support.plots import learning_curve

    for run_dir in args.run_dirs:
        if not (Path(run_dir) / "metrics.csv").exists():
            raise BadInputError(f"{run_dir!r} is not a run directory (no metrics.csv)")
    print(f"wrote {learning_curve(args.run_dirs, args.output, args.column)}")
    return 0


def add_taylor(commands) -> None:
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
    taylor.set_defaults(run=run_taylor)


def run_taylor(args: argparse.Namespace) -> int:
    from rlgrad.app.taylor_plots import logged_diagnostics, taylor_figure

    logged_diagnostics(args.run_dir)  # a clear error before matplotlib is needed
    require_extra("matplotlib", "plots")
    output = args.output if args.output is not None else Path(args.run_dir) / "taylor.png"
    print(f"wrote {taylor_figure(args.run_dir, output)}")
    return 0
