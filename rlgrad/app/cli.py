"""The ``rlgrad`` command line: the top-level parser and :func:`main`.

Each command's parser and handler live together in :mod:`rlgrad.app.commands`. ``main`` reports
an input rlgrad refuses on purpose (:class:`rlgrad.BadInputError`) as one line with exit status 2,
and a training run that stopped on a non-finite loss as one line with status 1; a reader that
closes the output early (``rlgrad presets | head -3``) ends it quietly with status 141; every
other exception is a bug and surfaces with its traceback.
"""

from __future__ import annotations

import argparse
import os
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
    try:
        try:
            return _main(argv)
        finally:
            # Flush here, inside the try: output still buffered when main returns (or when
            # --help exits) would otherwise meet the closed pipe at interpreter exit, which
            # prints "Exception ignored ... BrokenPipeError" that no except clause can catch.
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed our stdout early (`rlgrad presets | head -3`): it has what it wanted
        # and nothing more can be written, which is no error worth a traceback. stdout now
        # points at devnull so that Python's own flush at exit cannot fail again (the recipe of
        # the Python docs, signal module, "Note on SIGPIPE"). Status 141 = 128 + SIGPIPE is what
        # a C tool killed by the same closed pipe gives (`seq 100000 | head -1` under pipefail),
        # and does not pass for rlgrad's own failures, 1 (a stopped training run) and 2 (bad
        # input); Python's recipe suggests 1, which would.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # stdout replaced by an object with no fd
            pass
        return 141


def _main(argv: list[str] | None) -> int:
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
