"""The documentation site: the strict build, its API and CLI reference, offline, `rlgrad docs`.

The site is built once per module (about ten seconds) into a temporary directory, never into the
checkout's site/.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import rlgrad
from rlgrad.app.cli import build_parser
from rlgrad.app.commands import docs as docs_command
from rlgrad.app.commands.common import serving_port
from rlgrad.errors import BadInputError

for module in docs_command.BUILD_MODULES:
    pytest.importorskip(module, reason="the docs extra (mkdocs) is not installed")

ROOT = Path(__file__).resolve().parents[1]
BUILD_SECONDS = 300  # a loaded 2-core machine; a build takes about ten seconds alone


def mkdocs_build(config_dir: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=config_dir,
        env={**os.environ, "PYTHONPATH": str(config_dir), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    done = mkdocs_build(ROOT, site)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return site


def html(site: Path, page: str) -> str:
    return (site / page).read_text(encoding="utf-8")


def test_the_strict_build_succeeds(site):
    for page in ("index.html", "formulas.html", "cli.html", "benchmarks.html", "api/returns.html"):
        assert (site / page).is_file(), page


def test_every_public_name_of_rlgrad_is_in_the_api_reference(site):
    api = "".join(html(site, f"api/{p.name}") for p in (site / "api").glob("*.html"))
    missing = []
    for name in rlgrad.__all__:
        module = getattr(rlgrad, name).__module__
        if f'id="{module}.{name}"' not in api and f'id="rlgrad.{name}"' not in api:
            missing.append(name)
    assert not missing, f"not in the API reference: {missing}"


def test_the_api_reference_renders_docstrings_not_their_source_markup(site):
    page = html(site, "api/returns.html")
    # gae's equation, as its docstring writes it
    assert "A_t = δ_t + γλ(1 − term_t)(1 − trunc_t)·A_{t+1}" in page
    # the doctest under "Example (γ = 0.5, λ = 1, ...):" is a code block, not a quote
    assert "<blockquote>" not in page
    assert '<span class="gp">&gt;&gt;&gt; </span><span class="n">gae</span>' in page
    # reST roles became code spans
    assert ":func:" not in html(site, "api/trust_region.html")
    # rlgrad.tabular.soft's table: π(a|s) stays in its cell, V*(s) is no emphasis
    soft = html(site, "api/tabular.html")
    assert "<td>H_π[s] = −Σ_a π(a|s) log π(a|s)  (0 log 0 = 0)</td>" in soft
    assert "<td>V∗(s) = α log Σ_a exp(Q∗(s, a)/α)</td>" in soft
    assert "<em>(s)" not in soft


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_cli_reference_lists_every_command_with_its_help(site):
    page = html(site, "cli.html")
    commands = subcommands(build_parser())
    assert {"train", "eval", "course", "docs", "sweep"} <= set(commands)
    for name, command in commands.items():
        assert f'id="rlgrad-{name}"' in page, name
        for algorithm in subcommands(command):
            assert f'id="rlgrad-{name}-{algorithm}"' in page, (name, algorithm)
    # each command's options, e.g. `rlgrad docs --port`, `rlgrad train ppo --config.clip_eps`
    assert "--port PORT" in page
    assert "--config.clip_eps" in page


def test_the_benchmarks_page_holds_benchmarks_md(site):
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    page = html(site, "benchmarks.html")
    assert headings
    for heading in headings:
        # the heading's words, as the page shows them (code spans become <code>)
        words = re.sub(r"`", "", heading).split()[0]
        assert words in page, heading
    assert len(re.findall(r"<h2 ", page)) >= len(headings)


EXTERNAL = re.compile(r"""^(https?:)?//""", re.IGNORECASE)


def test_no_page_loads_anything_from_the_network(site):
    loads = re.compile(r"""<(script|link|img|iframe)\b[^>]*?\b(src|href)=["']([^"']+)["']""")
    offending = []
    for page in site.rglob("*.html"):
        for tag, _, url in loads.findall(page.read_text(encoding="utf-8")):
            if EXTERNAL.match(url):
                offending.append(f"{page.relative_to(site)}: <{tag}> {url}")
    for sheet in site.rglob("*.css"):
        for url in re.findall(r"""(?:url\(|@import\s+)["']?([^"')\s]+)""", sheet.read_text()):
            if EXTERNAL.match(url):
                offending.append(f"{sheet.relative_to(site)}: {url}")
    assert not offending, "\n".join(offending)


def copy_of_the_site_sources(destination: Path, link_package: bool) -> Path:
    """mkdocs.yml, docs/, BENCHMARKS.md and the rlgrad package (linked or copied)."""
    destination.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", destination)
    shutil.copy(ROOT / "BENCHMARKS.md", destination)
    shutil.copytree(ROOT / "docs", destination / "docs")
    if link_package:
        (destination / "rlgrad").symlink_to(ROOT / "rlgrad")
    else:
        shutil.copytree(
            ROOT / "rlgrad", destination / "rlgrad", ignore=shutil.ignore_patterns("__pycache__")
        )
    return destination


def test_a_broken_internal_link_fails_the_strict_build(tmp_path):
    sources = copy_of_the_site_sources(tmp_path / "src", link_package=True)
    index = sources / "docs" / "index.md"
    index.write_text(index.read_text() + "\nSee [a page](no-such-page.md).\n")
    done = mkdocs_build(sources, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr


def read_address(process: subprocess.Popen) -> tuple[str, list[str]]:
    """The address `rlgrad docs` prints, and the lines before it."""
    before = []
    for line in process.stdout:
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if match:
            return match.group(1), before
        before.append(line)
    raise AssertionError("rlgrad docs printed no address:\n" + "".join(before))


def test_rlgrad_docs_builds_a_missing_site_then_serves_it(tmp_path):
    # a checkout of its own (the package copied, so that it finds this mkdocs.yml), no site/ yet
    checkout = copy_of_the_site_sources(tmp_path / "checkout", link_package=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "rlgrad.app.cli", "docs", "--port", "0"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(checkout), "NO_MKDOCS_2_WARNING": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        address, before = read_address(process)
        assert any("Building the documentation site" in line for line in before), before
        assert (checkout / "site" / "index.html").is_file()
        with urllib.request.urlopen(address, timeout=30) as response:
            assert response.status == 200
            index = response.read().decode()
        assert "<title>rlgrad</title>" in index
        with urllib.request.urlopen(address + "formulas.html", timeout=30) as response:
            assert "group_advantages" in response.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_rlgrad_docs_serves_a_built_site_on_a_free_port(site):
    process = subprocess.Popen(
        [sys.executable, "-m", "rlgrad.app.cli", "docs", "--port", "0", "--site", str(site)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        address, before = read_address(process)
        assert not before  # the site was built: nothing to do before serving
        assert not address.endswith(f":{docs_command.DEFAULT_PORT}/")
        with urllib.request.urlopen(address + "index.html", timeout=30) as response:
            assert response.read() == (site / "index.html").read_bytes()
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_docs(*argv: str) -> int:
    args = build_parser().parse_args(["docs", *argv])
    return args.run(args)


def test_without_a_checkout_rlgrad_docs_says_how_to_get_the_site(tmp_path, monkeypatch):
    monkeypatch.setattr(docs_command, "checkout_root", lambda: tmp_path)  # a wheel install
    with pytest.raises(BadInputError, match=r"git clone .* && make docs"):
        run_docs()


def test_without_mkdocs_rlgrad_docs_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "mkdocs.yml").write_text("site_name: x\n")
    monkeypatch.setattr(docs_command, "checkout_root", lambda: tmp_path)
    monkeypatch.setitem(sys.modules, "mkdocs", None)  # import mkdocs raises ImportError
    with pytest.raises(BadInputError, match=re.escape("pip install 'rlgrad[docs]'")):
        run_docs()
    assert not (tmp_path / "site").exists()


def test_bad_ports_and_sites_are_one_line_errors(tmp_path):
    with pytest.raises(BadInputError, match="--port: expected 0 to 65535, got 70000"):
        run_docs("--port", "70000")
    with pytest.raises(BadInputError, match="--site: expected a built site"):
        run_docs("--site", str(tmp_path))


def test_a_taken_port_is_an_error_and_a_taken_default_port_is_replaced(tmp_path):
    import socket

    (tmp_path / "index.html").write_text("<title>x</title>")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BadInputError, match=f"--port: cannot serve on 127.0.0.1:{port}"):
            run_docs("--port", str(port), "--site", str(tmp_path))
        # the default port taken: another free one (what `rlgrad course` does too)
        assert serving_port("127.0.0.1", None, default=port) not in (port, 0)


@pytest.mark.parametrize("page", ["index.md", "formulas.md", "tabular.md"])
def test_the_python_examples_of_a_page_run(page):
    # the pages whose examples are self-contained (the trainer and LM pages need a run or a model)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(), re.DOTALL)
    assert blocks
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, f"docs/{page}", "exec"), namespace)
    if page == "tabular.md":  # the values the page states
        assert namespace["V"].tolist() == pytest.approx([3.625, 3.875])
        assert float(namespace["d"].sum()) == pytest.approx(1 / (1 - namespace["mdp"].gamma))
