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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
