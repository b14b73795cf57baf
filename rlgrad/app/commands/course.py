"""``rlgrad course``: the course module E.3 as interactive notebooks, served on localhost."""

from __future__ import annotations

import argparse
import sys

from rlgrad.app.commands.common import require_extra


def add_course(commands) -> None:
    course = commands.add_parser(
        "course",
        help="the course module E.3 (calculus and optimization for RL) as interactive notebooks",
        description="Serves the course module E.3 on localhost: one interactive page per course "
        "page (E.3.1, the practice page, E.3.4, E.3.5, E.3.6), every number computed live by "
        "rlgrad's functions. Needs pip install 'rlgrad[course]'.",
    )
    course.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: %(default)s)"
    )
    course.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: 2718, or a free one if 2718 is taken; 0 picks a free one)",
    )
    course.add_argument(
        "--open", action="store_true", help="also open the course in the default web browser"
    )
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
    from rlgrad.course.server import DEFAULT_PORT, free_port, serve
    from rlgrad.errors import BadInputError

    if args.port is None:
        port = free_port(args.host, DEFAULT_PORT)
    elif args.port == 0:
        port = free_port(args.host, 0)
    else:
        if free_port(args.host, args.port) != args.port:
            raise BadInputError(f"--port: {args.port} is in use; give another or leave it out")
        port = args.port

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
