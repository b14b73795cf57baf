"""``rlgrad report``: many-seed statistics of sweeps, as Markdown and figures."""

from __future__ import annotations

import argparse

from rlgrad.app.commands.common import require_extra


def add_report(commands) -> None:
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
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    if not args.no_plots and args.output is not None:
        require_extra("matplotlib", "plots", "for the figures; or pass --no-plots")
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
