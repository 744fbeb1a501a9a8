"""Style rule of issue 10: outside Numba kernels, no function is longer than 80 lines.

A function's length counts from its ``def`` line to its last line, docstring included
(decorator lines are not counted).  Functions decorated with a Numba decorator (``njit``,
``jit``, ``intrinsic``, ``vectorize``, ``guvectorize``, ``generated_jit``, ``cfunc``,
``stencil``, also as ``numba.njit``/``nb.njit(...)``) are exempt: a kernel is one loop nest
that is clearer in one piece.  Nested functions and methods are checked like any other.
"""

import ast
from pathlib import Path

import quests_hpc

MAX_LINES = 80
NUMBA_DECORATORS = {"njit", "jit", "intrinsic", "vectorize", "guvectorize", "generated_jit", "cfunc",
                    "stencil"}
PACKAGE = Path(quests_hpc.__file__).resolve().parent


def _decorator_name(node):
    """``njit`` for ``@njit``, ``@njit(...)``, ``@nb.njit`` and ``@numba.njit(...)``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _is_numba(func):
    return any(_decorator_name(d) in NUMBA_DECORATORS for d in func.decorator_list)


def long_functions(source, max_lines=MAX_LINES):
    """``(qualified name, first line, length)`` of every non-Numba function over ``max_lines``."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                length = child.end_lineno - child.lineno + 1
                if not _is_numba(child):
                    if length > max_lines:
                        found.append((name, child.lineno, length))
                    visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def test_the_checker_measures_def_to_end_and_skips_numba_kernels():
    def func(name, n_body, indent=""):
        return [f"{indent}def {name}():"] + [f"{indent}    x{i} = {i}" for i in range(n_body)]

    lines = func("long", 80)                      # lines 1-81: def + 80 = 81 lines
    lines += func("short", 79)                    # lines 82-161: exactly 80 lines, allowed
    lines += ["@nb.njit(cache=True)"] + func("kernel", 90)
    lines += ["@njit"] + func("kernel2", 90)
    lines += ["class C:"] + func("method", 81, "    ")
    method_line = lines.index("    def method():") + 1
    assert long_functions("\n".join(lines)) == [("long", 1, 81), ("C.method", method_line, 82)]


def test_no_function_outside_numba_kernels_is_longer_than_80_lines():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20
    offenders = []
    for path in modules:
        for name, line, length in long_functions(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} {name}: {length} lines")
    assert not offenders, (f"{len(offenders)} function(s) longer than {MAX_LINES} lines "
                           "(split them into focused helpers):\n" + "\n".join(offenders))
