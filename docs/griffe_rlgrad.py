"""A griffe extension that lets rlgrad's docstrings render as Markdown.

rlgrad's docstrings are Google-style sections (Args, Returns, Raises) around reST-flavoured
prose. Before mkdocstrings parses a docstring, this extension rewrites what Markdown or the
Google parser would misread; the source files are left as they are:

- ``:func:`name``` and the other roles become code spans, ```text <url>`_`` a Markdown link, and
  a ``::`` that opens a literal block a colon;
- every doctest becomes a fenced ``pycon`` block (a heading such as ``Example (γ = 0.5):`` is
  no section griffe knows, and it reads ``Example:`` as an admonition: either way Markdown would
  show the ``>>>`` lines as nested quotes);
- math such as ``[Q − α log π](s, a)`` is kept from reading as a link, the star of ``Q*(s, a)``
  from reading as an emphasis (it becomes ∗), and the bar of ``π(a|s)`` in a table row from
  splitting the cell;
- a Raises section written as a sentence becomes a paragraph, and wrapped Raises items are
  indented; ``low, high: ...`` in Args becomes one item per parameter.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):`~?([^`]+)`")
REST_LINK = re.compile(r"`([^`<]+?)\s*<(https?://[^>]+)>`_")
# an item of a Raises section: "ValueError: ...", "TypeError / ValueError: ...", "NonFiniteError: "
RAISES_ITEM = re.compile(r"^[A-Z]\w*(\s*(/|,|or)\s*[A-Z]\w*)*:(\s|$)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def raises_sections(lines: list[str]) -> list[str]:
    """Raises sections in the shape the Google parser reads.

    Several docstrings wrap an item's description without indenting the next line, or write the
    section as one sentence ("The errors of ...; ValueError for ..."). An item's unindented
    continuation lines are indented under it; a section that does not start with an exception
    name becomes a paragraph, so no word of it is lost.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != "Raises:":
            out.append(line)
            i += 1
            continue
        header = _indent(line)
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > header):
            end += 1
        while end > i + 1 and not lines[end - 1].strip():
            end -= 1
        body = [each for each in lines[i + 1 : end] if each.strip()]
        if not body:
            out.append(line)
            i += 1
            continue
        item = min(_indent(each) for each in body)
        if RAISES_ITEM.match(body[0].strip()):
            out.append(line)
            for each in body:
                starts = _indent(each) == item and RAISES_ITEM.match(each.strip())
                deeper = " " * (item + 4) if _indent(each) == item and not starts else ""
                out.append(deeper + each if deeper else each)
        else:
            out.append(" " * header + "*Raises:* " + " ".join(each.strip() for each in body))
        i = end
    return out


CODE_SPAN = re.compile(r"(``.*?``|`[^`\n]*`)")


EMPHASIS = re.compile(r"(?<![\w*])\*[^\s*][^*]*?(?<=[^\s*])\*(?![\w*])")
# the star of Q*, V*(s), π*_α: written after a symbol, never the start of an emphasis
MATH_STAR = re.compile(r"(?<=[\w)\]′])\*(?!\*)")


def _stars(text: str) -> str:
    """Math stars as ∗ (U+2217), which Markdown leaves alone; ``*word*`` stays an emphasis."""
    parts = EMPHASIS.split(text)
    kept = EMPHASIS.findall(text)
    out = [MATH_STAR.sub("∗", parts[0])]
    for emphasis, rest in zip(kept, parts[1:], strict=True):
        out += [emphasis, MATH_STAR.sub("∗", rest)]
    return "".join(out)


def not_links(line: str) -> str:
    """Math such as ``[Q − α log π](s, a)`` or ``Q*(s, a)/V*(s)`` kept from reading as a
    Markdown link or an emphasis."""
    parts = CODE_SPAN.split(line)
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        parts[i] = _stars(re.sub(r"\]\((?!https?://)", r"]\\(", parts[i]))
    return "".join(parts)


TABLE_RULE = re.compile(r"^\s*\|[-:| ]+\|\s*$")


def table_pipes(lines: list[str]) -> list[str]:
    """In a column-aligned Markdown table, a ``|`` that is no column border (π(a|s)) escaped."""
    out = list(lines)
    for i in range(1, len(lines)):
        if not TABLE_RULE.match(lines[i]) or not lines[i - 1].lstrip().startswith("|"):
            continue
        borders = {j for j, char in enumerate(lines[i]) if char == "|"}
        end = i + 1
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        for k in (i - 1, *range(i + 1, end)):
            row = lines[k]
            if not borders <= {j for j, char in enumerate(row) if char == "|"}:
                continue  # not aligned: leave the row as written
            out[k] = "".join(
                "\\|" if char == "|" and j not in borders else char for j, char in enumerate(row)
            )
    return out


GROUPED_ARGS = re.compile(r"^(\s*)(\w+(?:,\s*\w+)+):(.*)$")


def grouped_args(lines: list[str]) -> list[str]:
    """``low, high: the action box`` in an Args section, as one item per parameter."""
    out: list[str] = []
    in_args, header = False, 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args, header = True, _indent(line)
        elif line.strip() and _indent(line) <= header:
            in_args = False
        match = GROUPED_ARGS.match(line) if in_args else None
        if match is None:
            out.append(line)
            i += 1
            continue
        indent, names, first = match.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() and _indent(lines[end]) > len(indent):
            end += 1
        for name in (each.strip() for each in names.split(",")):
            out += [f"{indent}{name}:{first}", *lines[i + 1 : end]]
        i = end
    return out


def markdown_docstring(text: str) -> str:
    """The docstring ``text`` with reST roles, ``::`` and free-standing doctests made Markdown."""
    text = ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    text = REST_LINK.sub(lambda m: f"[{m.group(1)}]({m.group(2)})", text)
    lines = table_pipes(grouped_args(raises_sections(text.split("\n"))))
    out: list[str] = []
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or line.lstrip().startswith("```"):
            out.append(line)
            i += 1
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith(">>>"):
            line = line.rstrip()[:-1]
        if not line.lstrip().startswith(">>>"):
            out.append(not_links(line))
            i += 1
            continue
        indent = _indent(line)
        end = i
        while end < len(lines) and lines[end].strip() and _indent(lines[end]) >= indent:
            end += 1
        if out and out[-1].strip():
            out.append("")
        out += ["```pycon", *(each[indent:] for each in lines[i:end]), "```", ""]
        i = end
    return "\n".join(out)


class RlgradDocstrings(Extension):
    """Rewrites every docstring of the loaded objects with :func:`markdown_docstring`."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
