"""What several chapters of the course need on their pages: the numbers the browser tests read,
the learner's typed rewards, and the course's worked examples as rlgrad recomputes them."""

from __future__ import annotations

import math

from rlgrad.course.answers import read_number


def number_span(element_id: str, value, digits: int = 6) -> str:
    """``value`` as plain digits in a span with an id: what a page shows and a test reads."""
    value = value.detach() if hasattr(value, "detach") else value
    return f'<span id="{element_id}">{float(value):.{digits}f}</span>'


def read_rewards(text: str, default) -> tuple[list[float], str]:
    """The comma-separated rewards a learner typed, and a note on what could not be used.

    Pieces that are not finite numbers are skipped and named in the note; fewer than two usable
    rewards make no group, so ``default`` (the course's group) is shown instead.
    """
    pieces = [piece.strip() for piece in text.split(",") if piece.strip()]
    values = [read_number(piece) for piece in pieces]
    usable = [value is not None and math.isfinite(value) for value in values]
    rewards = [value for value, ok in zip(values, usable, strict=True) if ok]
    skipped = [piece for piece, ok in zip(pieces, usable, strict=True) if not ok]
    note = ""
    if skipped:
        note = f"Skipped what is not a finite number: {', '.join(map(repr, skipped))}. "
    if len(rewards) < 2:
        shown = ", ".join(f"{value:g}" for value in default)
        note += f"A group needs at least two rewards; showing the course's [{shown}]."
        rewards = list(default)
    return rewards, note.strip()


def worked_example(title: str):
    """The course's worked example with this title (an ``rlgrad.tour.examples.Example``, the
    object ``rlgrad examples`` prints)."""
    from rlgrad.tour.examples import EXAMPLES

    return next(each for each in EXAMPLES if each.title == title)
