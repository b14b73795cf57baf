"""Serving the course: one marimo app per chapter under one local address."""

from __future__ import annotations

from rlgrad.course import CHAPTERS, HOME


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
