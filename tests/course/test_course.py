"""The course as a whole: the CLI, the home page, every chapter as a script and in the browser."""

from __future__ import annotations

import runpy
import subprocess
import sys

import pytest

from rlgrad.app.cli import main
from rlgrad.course import CHAPTERS, HOME, chapter
from rlgrad.course.answers import check_answer, read_number
from rlgrad.errors import BadInputError


def test_chapters_follow_the_course_order_and_exist():
    assert [c.section for c in CHAPTERS] == ["E.3.1", "Practice", "E.3.4", "E.3.5", "E.3.6"]
    for each in (*CHAPTERS, type("Home", (), {"path": HOME})):
        assert each.path.is_file(), each.path
    assert chapter("E.3.4").slug == "e3-4"
    with pytest.raises(BadInputError, match="course chapter: expected one of e3-1"):
        chapter("e3-9")


@pytest.mark.parametrize("each", CHAPTERS, ids=lambda c: c.slug)
def test_every_chapter_runs_as_a_script(each):
    # python FILE: marimo runs every cell with the widgets at their defaults; a cell that
    # raises makes the process fail with its traceback
    done = subprocess.run([sys.executable, str(each.path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_list_prints_every_chapter_file(capsys):
    assert main(["course", "--list"]) == 0
    printed = capsys.readouterr().out
    for each in CHAPTERS:
        assert each.section in printed and str(each.path) in printed


def test_home_runs_as_a_script():
    runpy.run_path(str(HOME), run_name="__main__")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.2", 1.2),
        (" -0.4 ", -0.4),
        ("−0.4", -0.4),
        ("3/4", 0.75),
        ("1e-3", 1e-3),
        ("√5", 5**0.5),
        ("sqrt(5)", 5**0.5),
        ("-√4", -2.0),
        ("abc", None),
        ("1/0", None),
        ("1e400", None),
        ("", None),
    ],
)
def test_read_number(text, value):
    read = read_number(text)
    assert read == pytest.approx(value) if value is not None else read is None


def test_check_answer_tolerates_half_a_unit_in_the_last_place():
    assert check_answer("1.34", 3 / 5**0.5).right
    assert not check_answer("1.3", 3 / 5**0.5).right
    assert check_answer("1.3", 3 / 5**0.5, places=1).right
    assert check_answer("", 1.0).status == "empty"
    assert check_answer("one", 1.0).status == "unreadable"
    assert check_answer("2", 1.0).status == "wrong"


def test_home_page_lists_every_chapter(open_chapter):
    home = open_chapter("", "course-home")
    for each in CHAPTERS:
        link = home.page.get_by_role("link", name=each.title)
        assert link.get_attribute("href").rstrip("/").endswith(each.slug)
    home.assert_no_errors()
    home.screenshot()


def test_without_the_extra_one_line_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "marimo", None)  # import marimo now raises ImportError
    assert main(["course"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'rlgrad[course]'" in err


@pytest.mark.parametrize("each", CHAPTERS, ids=lambda c: c.slug)
def test_every_chapter_exports_to_a_jupyter_notebook(each, tmp_path):
    # the docs promise `marimo export ipynb FILE` for learners who prefer Jupyter
    nbformat = pytest.importorskip("nbformat")
    target = tmp_path / f"{each.slug}.ipynb"
    marimo_cli = [sys.executable, "-m", "marimo", "export", "ipynb", str(each.path)]
    done = subprocess.run([*marimo_cli, "-o", str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    notebook = nbformat.read(target, as_version=4)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) >= 5 and any("rlgrad" in source for source in code)


def test_a_taken_port_is_refused_in_one_line(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["course", "--port", str(port)]) == 2
    assert f"--port: cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["course", "--port", "70000"]) == 2
