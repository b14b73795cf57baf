"""The course module E.3 (calculus and optimization for RL) as interactive notebooks.

Each page of the course is a `marimo <https://marimo.io>`_ notebook in
``rlgrad/course/notebooks/``: a plain Python file that ``rlgrad course`` serves on localhost,
that ``python FILE`` runs as a script, and that ``marimo edit FILE`` opens for editing. Every
number on a page is computed by rlgrad's own functions when the page runs; moving a slider
recomputes it.

Why marimo rather than Jupyter with ipywidgets: a marimo notebook is a Python module (it diffs,
lints and imports like one, so the test suite runs it as a script), it is reactive (moving γ
reruns exactly the cells that read γ, never a stale cell), and ``marimo run`` serves it as an app
with no kernel manager or notebook server to configure. Jupyter's ``.ipynb`` is the more common
format; ``marimo export ipynb FILE`` writes one from any page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).parent / "notebooks"


@dataclass(frozen=True)
class Chapter:
    """One page of the course module E.3, served at ``/<slug>/``."""

    slug: str
    section: str
    title: str
    filename: str

    @property
    def path(self) -> Path:
        return NOTEBOOK_DIR / self.filename


# In the course's own order.
CHAPTERS = (
    Chapter(
        "e3-1",
        "E.3.1",
        "Calculus basics: derivatives, gradients and the chain rule",
        "e3_1_calculus_basics.py",
    ),
    Chapter(
        "practice",
        "Practice",
        "Calculus for RL: practice questions and graded exercises",
        "practice_calculus_for_rl.py",
    ),
    Chapter(
        "e3-4",
        "E.3.4",
        "Derivations: the log-derivative trick, Taylor expansion, GRPO normalization",
        "e3_4_derivations.py",
    ),
    Chapter(
        "e3-5",
        "E.3.5",
        "Complete formulas: policy gradient theorem, DQN, GAE, PPO, GRPO",
        "e3_5_complete_formulas.py",
    ),
    Chapter(
        "e3-6",
        "E.3.6",
        "Formula reference and exercises",
        "e3_6_reference_and_exercises.py",
    ),
)

HOME = NOTEBOOK_DIR / "home.py"


def chapter(slug: str) -> Chapter:
    """The chapter served at ``/<slug>/``."""
    from rlgrad.errors import BadInputError

    for each in CHAPTERS:
        if slug in (each.slug, each.section):
            return each
    known = ", ".join(c.slug for c in CHAPTERS)
    raise BadInputError(f"course chapter: expected one of {known}, got {slug!r}")
