"""The layers point one way: app → trainers (and lm, tabular, tour, course) → support (and envs)
→ formulas.

Every import of every module counts, those inside function bodies too: a lazy import is still an
arrow. A module may import its own layer or a lower one, never a higher one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rlgrad

PACKAGE = Path(rlgrad.__file__).parent
LAYERS = {
    "app": 3,
    "trainers": 2,
    "lm": 2,
    "tabular": 2,
    "tour": 2,
    "course": 2,
    "support": 1,
    "envs": 1,
}
NAMES = {0: "the formula layer", 1: "support/envs", 2: "trainers/lm/tabular/tour/course", 3: "app"}


def layer_of(module: str) -> int:
    """rlgrad.app.* → 3, ..., rlgrad.support.* → 1, any other rlgrad module → 0."""
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every rlgrad import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module
            found.append((node.lineno, name))
            # `from rlgrad import app` imports rlgrad.app
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names if name == "rlgrad"]
    return [(line, name) for line, name in found if name.split(".")[0] == "rlgrad"]


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("rlgrad", *path.relative_to(PACKAGE).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        own = layer_of(module)
        for line, name in imported_modules(path, module):
            if name == "rlgrad":  # the formula layer's re-exports
                continue
            if layer_of(name) > own:
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} ({NAMES[own]}) imports "
                    f"{name} ({NAMES[layer_of(name)]})"
                )
    assert not upward, "imports that point upwards:\n" + "\n".join(upward)


def test_the_checker_sees_an_import_inside_a_function(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from rlgrad.app import cli\n    from rlgrad import app\n")
    found = imported_modules(source, "rlgrad.support.m")
    assert (2, "rlgrad.app") in found and (3, "rlgrad.app") in found
    assert max(layer_of(name) for _, name in found) == 3 > layer_of("rlgrad.support.m")


def test_import_rlgrad_loads_only_the_formula_layer():
    code = (
        "import sys, rlgrad\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('rlgrad.') and "
        "m.split('.')[1] in ('app', 'trainers', 'support', 'lm', 'tabular', 'tour'))\n"
        "print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_imports_another_modules_private_names():
    # `from rlgrad.x import _helper` couples two modules through a name that promises nothing;
    # private *modules* (rlgrad._checks) are the package's own shared internals and allowed
    borrowed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("rlgrad"):
                continue
            for alias in node.names:
                target = PACKAGE.parent / Path(*node.module.split("."), alias.name)
                is_module = target.with_suffix(".py").exists() or target.is_dir()
                if alias.name.startswith("_") and not is_module:
                    borrowed.append(
                        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {alias.name}"
                    )
    assert not borrowed, "private names imported from another module:\n" + "\n".join(borrowed)
