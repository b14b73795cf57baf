"""Serving the course: one marimo app per chapter under one local address."""

from __future__ import annotations

import socket

from rlgrad.course import CHAPTERS, HOME

DEFAULT_PORT = 2718


def free_port(host: str, port: int) -> int:
    """``port`` if nothing listens on it, else one the system picks (``port`` 0 always picks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            probe.bind((host, 0))
        return probe.getsockname()[1]


def build_app():
    """The ASGI app: the course's home page at ``/`` and each chapter at ``/<slug>/``."""
    import marimo

    app = marimo.create_asgi_app(quiet=True)
    for each in CHAPTERS:
        app = app.with_app(path=f"/{each.slug}", root=str(each.path))
    return app.with_app(path="", root=str(HOME)).build()


def serve(host: str, port: int, announce) -> None:
    """Serve until interrupted; ``announce(address)`` is called just before the server starts
    (a client that connects at once may have to retry for a moment)."""
    import uvicorn

    app = build_app()
    announce(f"http://{host}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="warning")
