"""``results/layout.py`` owns every HDF5 path of a results file (issue 10): no other module
spells a path of the layout (``summary/frames/...``, ``summary/overlap``, ``learning_curve/...``,
``frames/<name>``, ``analysis/...``): they come from its constants and functions."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2] / "quests_hpc"
PATH = re.compile(r"^(summary|frames|analysis|learning_curve)(/|$)")
OWNER = ROOT / "results" / "layout.py"


def _layout_strings(tree):
    """(line, text) of string constants and f-strings that spell a path of the layout
    (a top-level group of a results file, then ``/``).  A bare group name is not
    flagged: it cannot be told from a dict key."""
    out = []
    for node in ast.walk(tree):
        s = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if isinstance(getattr(node, "parent", None), ast.JoinedStr):
                continue  # a piece of an f-string: the f-string is checked as a whole
            s = node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(
                node.values[0], ast.Constant):
            s = str(node.values[0].value)
        if s is not None and PATH.match(s) and "/" in s:
            out.append((node.lineno, node.col_offset, s))
    return [(line, s) for line, _, s in sorted(out)]


def _parse(path):
    tree = ast.parse(path.read_text())
    for n in ast.walk(tree):
        for c in ast.iter_child_nodes(n):
            c.parent = n
    return tree


def test_no_module_but_the_layout_spells_a_results_path():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == OWNER:
            continue
        for line, s in _layout_strings(_parse(path)):
            found.append(f"{path.relative_to(ROOT.parent)}:{line}: {s!r}")
    assert not found, "HDF5 paths spelled outside results/layout.py:\n" + "\n".join(found)


def test_the_checker_finds_a_spelled_path(tmp_path):
    p = tmp_path / "m.py"
    p.write_text('x = f["summary/frames/natoms"]\ny = f"frames/{n}"\nz = "frames" in f\n'
                 'ok = {"frames": 1}\nw = ("learning_curve/sizes", 1)\n')
    assert [s for _, s in _layout_strings(_parse(p))] == ["summary/frames/natoms", "frames/",
                                                         "learning_curve/sizes"]
