"""`rlgrad examples`: every result is computed by the library, so changing an input changes it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlgrad.app.cli import build_parser, main
from rlgrad.app.registry import ALGORITHMS
from rlgrad.tour.examples import EXAMPLES, SECTIONS, format_value, render

try:
    import fcntl
except ImportError:  # Windows: the pipe test below is skipped
    fcntl = None


def test_every_seed_section_has_examples():
    assert {e.section for e in EXAMPLES} == set(SECTIONS)
    assert len(EXAMPLES) >= 25


def test_examples_print_the_seed_numbers(capsys):
    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    for expected in [
        "θ_k = [0.2, 0.32, 0.416]",
        "∇J(θ₀) = [2, 4]",
        "θ₁ = [0.2, 0.4]",
        "dL/dθ = -18",
        "order 1 = 9.6",
        "order 2 = 9.61",
        "σ = 2.2361",
        "μ = 5.3333",
        "r·Â = 4.5",
        "clipped = 3.6",
        "δ = 2.4",
        "J'(1.0) = -0.4",
    ]:
        assert expected in out, expected
    for section in SECTIONS:
        assert section in out


def test_section_filter_and_unknown_section(capsys):
    assert main(["examples", "--section", "E.3.6"]) == 0
    out = capsys.readouterr().out
    assert "Exercise 3" in out and "Taylor" not in out
    assert main(["examples", "--section", "E.9"]) == 2
    assert "no section matches" in capsys.readouterr().err


def shifted(value):
    if isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        return value * 0.8 + 0.05  # stays in [0, 1] for γ, λ and ε
    # Shifts that differ per entry, so no symmetry of an example can cancel them.
    if isinstance(value, tuple) and value and isinstance(value[0], float):
        return tuple(v + 0.37 * (i + 1) for i, v in enumerate(value))
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return tuple(
            tuple(v + 0.37 * (i + 2 * j + 1) for i, v in enumerate(row))
            for j, row in enumerate(value)
        )
    return None


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.title)
def test_changing_an_input_changes_the_output(example):
    # Some inputs legitimately leave a result unchanged (a ratio deeper inside PPO's flat
    # region), so each example needs at least one input that moves its printed numbers.
    before = {k: format_value(v) for k, v in example.results().items()}
    moved = []
    for name, value in example.inputs.items():
        if shifted(value) is None:
            continue
        after = {k: format_value(v) for k, v in example.results(**{name: shifted(value)}).items()}
        moved.append(after != before)
    assert any(moved), f"{example.title}: no input change moved the output"


def test_results_are_tensors_from_the_library_not_strings():
    for example in EXAMPLES:
        for value in example.results().values():
            assert isinstance(value, torch.Tensor), example.title


def test_render_is_stable_text():
    text = render()
    assert text == render()
    assert all(len(line) <= 88 for line in text.splitlines())


def test_console_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "rlgrad.app.cli", "examples", "--section", "E.3.4"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Â = [-1.3416, -0.4472, 0.4472, 1.3416]" in result.stdout
    help_text = subprocess.run(
        [sys.executable, "-m", "rlgrad.app.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "examples" in help_text


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["study", "--theta", "1,2"], "4 numbers"),
        (["study", "--gamma", "1.5"], "'gamma' must lie in [0, 1]"),
        (["study", "--lams", "0,abc"], "--lams must be comma-separated"),
        (["study", "--episodes", "0"], "'num_episodes'"),
    ],
)
def test_bad_command_line_input_gives_one_line_and_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.startswith(f"rlgrad {argv[0]}: ")
    assert len(err.strip().splitlines()) == 1


COMMANDS = [
    "examples",
    "study",
    "tour",
    "train",
    "eval",
    "plot",
    "taylor",
    "sweep",
    "report",
    "tune",
    "presets",
    "grpo-demo",
]


def test_every_command_and_algorithm_has_its_help(capsys):
    # each command module adds its own parser: all of them are listed, in this order, and each
    # (and each algorithm of `train`) answers --help
    listing = build_parser().format_help()
    places = [listing.index(f"\n    {name}") for name in COMMANDS]
    assert places == sorted(places)
    for argv in [[name] for name in COMMANDS] + [["train", a] for a in ALGORITHMS]:
        with pytest.raises(SystemExit) as stopped:
            main([*argv, "--help"])
        text = capsys.readouterr().out
        assert stopped.value.code == 0 and text.startswith(f"usage: rlgrad {' '.join(argv)}")
        assert len(text.splitlines()) > 3, argv


@pytest.mark.skipif(
    fcntl is None or not hasattr(fcntl, "F_SETPIPE_SZ"),
    reason="shrinking a pipe to one page needs Linux",
)
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_reader_that_closes_after_one_line_gets_no_traceback(unbuffered):
    """`rlgrad examples | head -1`: once the reader has gone, rlgrad exits quietly with 141.

    The pipe is shrunk to one page (4,096 bytes) and the examples are 7 kB, so rlgrad is still
    blocked writing when the reader closes after its first line: the write is bound to fail with
    EPIPE (no race). Block-buffered, the 7 kB wait in the buffer for main's final flush;
    unbuffered (PYTHONUNBUFFERED=1), print itself meets the closed pipe: both paths are covered.
    """
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": unbuffered}
    process = subprocess.Popen(
        [sys.executable, "-m", "rlgrad.app.cli", "examples"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb", buffering=0) as reader:  # `head -1`: one line, then close
        first = b""
        while not first.endswith(b"\n"):
            first += reader.read(1)
    _, stderr = process.communicate(timeout=120)
    assert first == b"\n"  # the examples open with a blank line
    assert stderr.decode() == ""  # no "Traceback", no "Exception ignored ... BrokenPipeError"
    assert process.returncode == 141  # 128 + SIGPIPE: stopped by the closed pipe, not an error
