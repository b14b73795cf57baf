"""What several commands share: the one-line parser, the missing-extra check, where a new run's
fields start (the preset rule), and the Ray options of ``sweep`` and ``tune``."""

from __future__ import annotations

import argparse
import importlib
import sys

from rlgrad.errors import BadInputError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look, not a usage dump."""

    def error(self, message: str):
        print(f"{self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def require_extra(module: str, extra: str, why: str | None = None) -> None:
    """A one-line BadInputError naming what to install when an optional dependency is missing,
    so a command fails before it starts rather than with a traceback halfway through."""
    try:
        importlib.import_module(module)
    except ImportError:
        because = f" ({why})" if why else ""
        raise BadInputError(
            f"{module} is not installed{because}: pip install 'rlgrad[{extra}]'"
        ) from None


def new_run_start(
    command: str, algorithm: str | None, env: str | None, preset_file: str | None, no_preset: bool
) -> tuple[str, str, str]:
    """``(algorithm, env, base)`` of a new run (or of every trial of a sweep or a tuning study).

    The one rule of ``train``, ``sweep`` and ``tune``: the fields start from the trainer's
    defaults with ``--no-preset``, from ``--preset FILE`` when given, else from the shipped
    preset of the environment (``base`` is ``presets.DEFAULTS``, the file's path or
    ``presets.SHIPPED``, as :func:`rlgrad.app.presets.base_fields` takes it). A preset file
    names its algorithm, so ALGO may be left out, and gives the environment when ``--env`` does
    not; otherwise the environment is the trainer's default one.
    """
    from rlgrad.app import presets, registry

    if no_preset and preset_file is not None:
        raise BadInputError("give --preset FILE or --no-preset, not both")
    if preset_file is not None:
        file_algorithm, file_env, _ = presets.read_preset_file(preset_file)
        if algorithm not in (None, file_algorithm):
            raise BadInputError(
                f"--preset {preset_file} is a {file_algorithm} preset, not {algorithm}"
            )
        algorithm, env, base = file_algorithm, env or file_env, preset_file
    elif algorithm is None:
        raise BadInputError(
            f"name an algorithm (rlgrad {command} ppo --env CartPole-v1) or --resume"
        )
    else:
        base = presets.DEFAULTS if no_preset else presets.SHIPPED
    return algorithm, env or registry.module(algorithm).Config().env, base


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """Where and how wide ``sweep`` and ``tune`` run their trials."""
    parser.add_argument(
        "--address",
        default=None,
        help="a Ray cluster to run on (default: $RAY_ADDRESS, else a local Ray on this machine)",
    )
    parser.add_argument(
        "--cpus-per-trial", type=float, default=1.0, help="CPUs Ray reserves per trial (default: 1)"
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials in flight at once (default: the cluster's CPUs / --cpus-per-trial)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def add_serving_options(parser: argparse.ArgumentParser, default_port: int, what: str) -> None:
    """``--host``, ``--port`` and ``--open`` of a command that serves ``what`` on localhost."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port (default: {default_port}, or a free one if it is taken; 0 picks a free one)",
    )
    parser.add_argument(
        "--open", action="store_true", help=f"also open {what} in the default web browser"
    )


def serving_port(host: str, requested: int | None, default: int) -> int:
    """The port to serve on: ``default`` when ``requested`` is None (a free one if ``default`` is
    taken), a free one the system picks for 0, else ``requested``, refused in one line when it is
    out of range or taken. The port is probed here and bound by the server just after: another
    program could take it in between, as with any server that is told a port."""
    import socket

    if requested is not None and not 0 <= requested <= 65535:
        raise BadInputError(f"--port: expected 0 to 65535, got {requested}")
    wanted = default if requested is None else requested
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, wanted))
        except OSError as error:
            if requested is not None:
                raise BadInputError(
                    f"--port: cannot serve on {host}:{requested} ({error.strerror}); give "
                    "another port or leave it out"
                ) from None
            probe.bind((host, 0))
        return probe.getsockname()[1]
