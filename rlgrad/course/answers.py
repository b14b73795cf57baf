"""Checking a learner's typed answer against the value rlgrad computes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Verdict:
    """What the page says about an answer: ``status`` is 'empty', 'unreadable', 'right' or
    'wrong'; ``message`` is the sentence shown to the learner."""

    status: str
    message: str

    @property
    def right(self) -> bool:
        return self.status == "right"


def read_number(text: str) -> float | None:
    """A typed number: ``1.2``, ``-0.4``, ``3/4``, ``1e-3``, ``√5`` or ``sqrt(5)``; ``None`` if
    the text is none of these."""
    text = text.strip().replace("−", "-").replace(" ", "")
    if not text:
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    for root in ("√", "sqrt(", "sqrt"):
        if body.startswith(root):
            inner = body[len(root) :].rstrip(")")
            value = read_number(inner)
            return None if value is None or value < 0 else sign * math.sqrt(value)
    try:
        return sign * float(Fraction(body))
    except (ValueError, ZeroDivisionError, OverflowError):  # OverflowError: 1e400
        return None


def check_answer(text: str, expected: float, places: int = 2) -> Verdict:
    """Whether ``text`` reads as ``expected`` to ``places`` decimal places.

    The tolerance is half a unit in the last place asked for, |answer − expected| ≤ ½·10^−places,
    so 1.34 is right for √5-based 1.3416 at two places and 1.3 is not.
    """
    value = read_number(text)
    if not text.strip():
        return Verdict("empty", "Type your answer, then press Enter.")
    if value is None:
        return Verdict("unreadable", f"{text.strip()!r} is not a number rlgrad can read.")
    if abs(value - expected) <= 0.5 * 10.0**-places + 1e-12:
        return Verdict("right", f"Right: rlgrad computes {expected:.{places + 2}g}.")
    return Verdict("wrong", f"Not yet: {value:g} is not it. Check the formula and try again.")
