"""``rlgrad course``: the course module E.3 as interactive notebooks, served on localhost."""

from __future__ import annotations

import argparse
import sys

from rlgrad.app.commands.common import add_serving_options, require_extra, serving_port

DEFAULT_PORT = 2718  # marimo's own default


def add_course(commands) -> None:
    course = commands.add_parser(
        "course",
        help="the course module E.3 (calculus and optimization for RL) as interactive notebooks",
        description="Serves the course module E.3 on localhost: one interactive page per course "
        "page (E.3.1, the practice page, E.3.4, E.3.5, E.3.6), every number computed live by "
        "rlgrad's functions. Needs pip install 'rlgrad[course]'.",
    )
    add_serving_options(course, DEFAULT_PORT, "the course")
    course.add_argument(
        "--list",
        action="store_true",
        help="print the chapters and their notebook files (each runs as `python FILE`) and exit",
    )
    course.set_defaults(run=run_course)


def run_course(args: argparse.Namespace) -> int:
    from rlgrad.course import CHAPTERS

    if args.list:
        for each in CHAPTERS:
            print(f"{each.section:<9} {each.title}\n          {each.path}")
        return 0
    require_extra("marimo", "course", "rlgrad course serves marimo notebooks")
    from rlgrad.course.server import serve

    port = serving_port(args.host, args.port, DEFAULT_PORT)

    def announce(address: str) -> None:
        print(f"The course module E.3 is at {address}  (Ctrl-C stops it)")
        for each in CHAPTERS:
            print(f"  {each.section:<9} {address}{each.slug}/")
        sys.stdout.flush()
        if args.open:
            import webbrowser

            webbrowser.open(address)

    serve(args.host, port, announce)
    return 0
