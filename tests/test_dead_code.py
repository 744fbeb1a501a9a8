"""No dead code: every top-level function and class of the package is used by the package
or by a script in ``scripts/`` (issue 10: "remove functions only tests call").

A name counts as used when it appears, as a whole word, anywhere in the package's source
besides its own definition (calls, imports, re-exports in an ``__init__``, the public API
facade) or in a script.  Names only the tests mention are dead code: a test-only helper
belongs in the tests.
"""

import ast
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "quests_hpc"


def _top_level_names(path):
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("__")]


def unused(package_dir, script_dir):
    """Top-level names defined in ``package_dir`` and mentioned nowhere else."""
    files = sorted(package_dir.rglob("*.py"))
    source = "\n".join(p.read_text() for p in files)
    scripts = "\n".join(p.read_text() for p in sorted(script_dir.rglob("*.py"))) \
        if script_dir.exists() else ""
    defined = {}
    for p in files:
        for name in _top_level_names(p):
            defined.setdefault(name, []).append(p)
    out = []
    for name, where in sorted(defined.items()):
        word = re.compile(r"\b%s\b" % re.escape(name))
        if len(word.findall(source)) <= len(where) and not word.search(scripts):
            out.extend(f"{p.relative_to(package_dir.parent)}: {name}" for p in where)
    return out


def test_every_function_and_class_is_used_outside_the_tests():
    dead = unused(PACKAGE, REPO / "scripts")
    assert not dead, "defined but used only by tests (or not at all):\n" + "\n".join(dead)


def test_the_checker_finds_an_unused_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("def used():\n    pass\n\ndef dead():\n    pass\n\n"
                              "class Kept:\n    pass\n")
    (pkg / "b.py").write_text("from .a import used\n\nused()\n")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "s.py").write_text("from pkg.a import Kept\n")
    assert unused(pkg, scripts) == ["pkg/a.py: dead"]
