"""Users know rlgrad's specification as the course module E.3 (calculus and optimization for RL),
so nothing a user reads may call it "the seeds" or "the seed pages".

Scanned: every parser's ``--help`` text of the ``rlgrad`` command line, every string literal in
``rlgrad/**/*.py`` and ``benchmarks/*.py`` (docstrings, help and description strings,
config-field docstrings that become ``--help``, the text the tour and ``rlgrad examples``
print) and README.md and BENCHMARKS.md.

"Seed" meaning a random seed is everywhere in RL and stays: the patterns below match only the
phrasings that name the course (``seed page``, ``seed E.3.4``, ``the seeds'``, ...), and
``test_random_seeds_are_not_flagged`` keeps them from matching the ordinary uses.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from rlgrad.app.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

COURSE_AS_SEEDS = re.compile(
    "|".join(
        [
            r"\bseed[- ]pages?\b",  # "the seed pages", "seed page E.3.4"
            r"\bseed[- ]sections?\b",  # "grouped by seed section"
            r"\bseeds?\s+E\.3",  # "seed E.3.4", "seeds E.3.2, E.3.5"
            r"\bseed\s+exercises?\b",  # "(seed exercise: ...)"
            r"\bthe\s+seeds'",  # "the seeds' two-state example", "the seeds' loss"
            r"\bthe\s+seeds\s+\(E\.3",  # "of the seeds (E.3.1-E.3.6)"
            r"\b(?:order|examples?|answers?|pages?|exercises?|formulas?)\s+of\s+the\s+seeds\b",
            r"\bthe\s+seed's\s+(?:answer|code|table|example|exercise|formula|text)",
            r"\bthe\s+seed\s+prints\b",
            r"\bseed\s+examples?\b",
        ]
    ),
    re.IGNORECASE,
)


def offending(text: str) -> list[str]:
    """The course-as-seeds phrases in ``text``, each with a little context."""
    flat = " ".join(text.split())  # wrapped help and docstrings: a phrase may span a line break
    return [flat[max(m.start() - 30, 0) : m.end() + 30] for m in COURSE_AS_SEEDS.finditer(flat)]


def help_texts(parser: argparse.ArgumentParser, name: str = "rlgrad"):
    """(command, formatted --help) of a parser and of every subcommand under it."""
    yield name, parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # the one-line help in the command list
                yield f"{name} {choice.dest}", choice.help or ""
            for sub_name, sub in action.choices.items():
                yield from help_texts(sub, f"{name} {sub_name}")


def python_strings(path: Path) -> str:
    """Every string literal of a module (adjacent literals already joined by the parser)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return "\n".join(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def test_the_pattern_catches_the_old_wording():
    # Sentences rlgrad used to print or document (git history), each naming the course a seed.
    old = [
        "recompute every worked example of the seed pages with rlgrad's functions",
        "Every worked example and exercise answer of the seeds (E.3.1-E.3.6), recomputed",
        "The calculus toolbox of seed E.3.1: gradients, Hessians",
        "Returns and advantages (seeds E.3.2, E.3.4, E.3.5): TD errors",
        "TD loss: 'mse' is ½(Q − y)² (the seeds' loss), 'huber' is Huber",
        "rlgrad examples prints them grouped by seed section.",
        "a guided walk through rlgrad, in the order of the seeds.",
        "0.609 for π(a) = 0.2 (the seed's code prints 2.609",
        "the seed prints ≈ 2.609, which is −log π(a) + 1",
        "Policy distributions: log-probabilities, entropies (seed exercises)",
        "Two of the seed\npages' printed answers are arithmetic slips",
    ]
    for sentence in old:
        assert offending(sentence), sentence


def test_random_seeds_are_not_flagged():
    fine = [
        "rlgrad sweep ppo --env CartPole-v1 --seeds 100-119",
        "tuning seeds (1000, 1001, ... by default, kept away from the seeds people evaluate on)",
        "the mean training seconds to solve over the seeds that solved",
        "Seeds prompt order, sampling and dropout.",
        "held-out seeds 100–119 that no preset was tuned on; seed 104's late start",
        "one fresh reset seed per group; the seed's evaluation environments differ",
        "the worked examples of course page E.3.4, recomputed",
        "Below the tuning seeds' 3,200 and 2,054: two seeds are not a selection.",
    ]
    for sentence in fine:
        assert not offending(sentence), sentence


def test_cli_help_names_the_course_not_the_seeds():
    found = {cmd: hits for cmd, text in help_texts(build_parser()) if (hits := offending(text))}
    assert not found, found


def test_examples_help_names_the_course():
    texts = dict(help_texts(build_parser()))
    assert "course module E.3" in " ".join(texts["rlgrad examples"].split())


PY_FILES = sorted((ROOT / "rlgrad").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", PY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_package_strings_name_the_course_not_the_seeds(path):
    assert not offending(python_strings(path)), path


@pytest.mark.parametrize("name", ["README.md", "BENCHMARKS.md"])
def test_user_documents_name_the_course_not_the_seeds(name):
    assert not offending((ROOT / name).read_text(encoding="utf-8")), name
