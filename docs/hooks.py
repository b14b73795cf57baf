"""mkdocs hooks: pages whose content comes from the code, so that they never go stale.

* ``cli.md``: every ``rlgrad`` command's ``--help``, taken from :func:`rlgrad.app.cli.build_parser`
  at build time, in place of the marker ``<!-- rlgrad-cli-reference -->``.
* ``benchmarks.md``: BENCHMARKS.md from the repository root (the one place that holds the
  numbers), in place of ``<!-- include BENCHMARKS.md -->``; its links to ``docs/...`` are made
  relative to the site, and links to other files of the repository become plain text.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

CLI_MARKER = "<!-- rlgrad-cli-reference -->"
BENCHMARKS_MARKER = "<!-- include BENCHMARKS.md -->"
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
HELP_WIDTH = 88  # fits the page's code blocks without a scroll bar


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    # argparse wraps to $COLUMNS: a fixed width, whatever the terminal that runs the build
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)
    try:
        return parser.format_help().rstrip()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def cli_reference() -> str:
    """Markdown: ``rlgrad --help``, then a section per command (and per algorithm of ``train``)."""
    from rlgrad.app.cli import build_parser

    parser = build_parser()
    parts = ["## rlgrad", "", "```text", _help(parser), "```", ""]
    for name, command in _subcommands(parser).items():
        parts += [f"## rlgrad {name}", "", "```text", _help(command), "```", ""]
        for sub, subparser in _subcommands(command).items():
            parts += [f"### rlgrad {name} {sub}", "", "```text", _help(subparser), "```", ""]
    return "\n".join(parts)


def benchmarks(root: Path, docs_dir: Path) -> str:
    """BENCHMARKS.md with its links made to work from ``docs/benchmarks.md``."""
    text = (root / "BENCHMARKS.md").read_text(encoding="utf-8")
    # the page has its own title
    text = re.sub(r"\A# [^\n]*\n", "", text)

    def relink(match: re.Match) -> str:
        bang, label, target = match.groups()
        if re.match(r"[a-z]+:|#", target):
            return match.group(0)
        if target.startswith("docs/") and (root / target.split("#")[0]).exists():
            return f"{bang}[{label}]({target.removeprefix('docs/')})"
        return label if label.startswith("`") else f"`{label}`"

    return LINK.sub(relink, text)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if BENCHMARKS_MARKER in markdown:
        root = Path(config["config_file_path"]).parent
        markdown = markdown.replace(BENCHMARKS_MARKER, benchmarks(root, Path(config["docs_dir"])))
    return markdown
