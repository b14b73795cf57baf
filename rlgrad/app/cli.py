"""The ``rlgrad`` command line: the top-level parser and :func:`main`.

Each command's parser and handler live together in :mod:`rlgrad.app.commands`. ``main`` reports
an input rlgrad refuses on purpose (:class:`rlgrad.BadInputError`) as one line with exit status 2,
and a training run that stopped on a non-finite loss as one line with status 1; every other
exception is a bug and surfaces with its traceback.
"""

from __future__ import annotations

import argparse
import sys

from rlgrad.app.commands import ADDERS
from rlgrad.app.commands.common import Parser
from rlgrad.errors import BadInputError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rlgrad",
        description="The calculus of RL optimization as exact PyTorch functions.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for add in ADDERS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rlgrad.support.runs import TrainingError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    try:
        if unknown:
            # only `train ALGO` takes --config.FIELD; name the closest field of a mistyped one
            field = next((u for u in unknown if u.startswith("--config.")), None)
            if field is None or args.command != "train" or args.algorithm is None:
                parser.error(f"unrecognized arguments: {' '.join(unknown)}")
            from rlgrad.app.registry import module
            from rlgrad.support import configs

            name = field.split("=", 1)[0].removeprefix("--config.")
            raise configs.unknown_field(module(args.algorithm).Config, name, args.algorithm)
        return args.run(args)
    except BadInputError as error:
        # The message already names the field or argument, what it must be and what it got; a
        # traceback would bury it. Any other ValueError is a bug and keeps its traceback.
        print(f"rlgrad {args.command}: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"rlgrad {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
