"""``rlgrad docs``: the documentation site, built from a checkout and served on localhost.

The site is static HTML (``mkdocs build`` writes it to ``site/`` beside ``mkdocs.yml``), so
serving it is Python's own ``http.server``: nothing leaves the machine, and the site carries its
own fonts, scripts and search index.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import subprocess
import sys
from pathlib import Path

from rlgrad.app.commands.common import add_serving_options, require_extra, serving_port
from rlgrad.errors import BadInputError

DEFAULT_PORT = 8000
CLONE = "git clone https://github.com/rlgrad/rlgrad && cd rlgrad && make docs"
# the modules `mkdocs build` needs for this site (the `docs` extra)
BUILD_MODULES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def checkout_root() -> Path:
    """The directory above the ``rlgrad`` package: a checkout's root when mkdocs.yml is there."""
    return Path(__file__).resolve().parents[3]


def add_docs(commands) -> None:
    docs = commands.add_parser(
        "docs",
        help="serve rlgrad's documentation site on localhost (offline)",
        description="Serves the documentation site on localhost, offline. In a checkout it "
        "builds the site first when site/ is missing (or with --build); that needs pip install "
        "'rlgrad[docs]'.",
    )
    add_serving_options(docs, DEFAULT_PORT, "the site")
    docs.add_argument("--build", action="store_true", help="rebuild the site before serving it")
    docs.add_argument(
        "--site",
        metavar="DIR",
        default=None,
        help="serve this built site instead of the checkout's site/ (e.g. mkdocs build -d DIR)",
    )
    docs.set_defaults(run=run_docs)


def build_site(root: Path) -> None:
    """``mkdocs build`` in the checkout ``root``, its output shown only when it fails."""
    for module in BUILD_MODULES:
        require_extra(module, "docs", "rlgrad docs builds the site with mkdocs")
    print(f"Building the documentation site into {root / 'site'} (mkdocs build) ...", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--quiet"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise BadInputError(
            f"mkdocs build failed with status {done.returncode} (above); `make docs` in {root} "
            "shows the same"
        )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # one line per request would bury the address
        pass


def make_server(host: str, port: int, site: Path) -> http.server.ThreadingHTTPServer:
    """A quiet static server of ``site`` on ``host:port``."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    return http.server.ThreadingHTTPServer((host, port), handler)


def run_docs(args: argparse.Namespace) -> int:
    # chosen before a build, so that a bad --port is refused before minutes of mkdocs
    port = serving_port(args.host, args.port, DEFAULT_PORT)
    if args.site is not None:
        site = Path(args.site)
        if not (site / "index.html").is_file():
            raise BadInputError(f"--site: expected a built site with an index.html; got {site}")
        if args.build:
            raise BadInputError("--build rebuilds the checkout's site/; leave out --site")
        return serve(args, site, port)
    root = checkout_root()
    site = root / "site"
    if not (root / "mkdocs.yml").is_file():
        raise BadInputError(
            "the documentation site is built from a checkout of rlgrad, and this install has "
            f"none: {CLONE} (the build needs pip install 'rlgrad[docs]'), then `rlgrad docs` there"
        )
    if args.build or not (site / "index.html").is_file():
        build_site(root)
    return serve(args, site, port)


def serve(args: argparse.Namespace, site: Path, port: int) -> int:
    server = make_server(args.host, port, site)
    address = f"http://{args.host}:{server.server_address[1]}/"
    print(f"The rlgrad documentation is at {address}  (Ctrl-C stops it)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(address)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0
