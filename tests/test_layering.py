"""Layers import downward only, and no module imports another in a cycle (issue 10).

Every module of ``quests_hpc`` is parsed with :mod:`ast` (no import happens): every
``import x`` and ``from x import y`` counts, at module level and inside functions,
absolute and relative; ``from pkg import y`` is an import of the submodule ``pkg.y`` when
that module exists, else of ``pkg`` (its ``__init__``).  A package's ``__init__`` is a
node of its own, named as the package; its imports of modules inside the package
(re-exports) are left out of the cycle check, so a facade ``__init__`` is no false cycle.

``LAYERS`` below is the one table of the layers (lower number = lower layer).  A module
may import modules of its own layer or lower ones; a new module must be added to it.
"""

import ast
import pathlib
import textwrap
from collections import defaultdict

import pytest

PACKAGE = "quests_hpc"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE

#: Module (or package: every module under it) -> layer.  The longest matching name wins.
#:
#: 0 base        errors, the version, Numba threads, stage timers, species bookkeeping
#: 1 numerics    pure functions on arrays: no files, no MPI
#: 2 io          file formats (no mpi4py, no quests_hpc.parallel)
#: 3 parallel    the MPI layer: the only place that calls collectives
#: 4 results     the HDF5 layout (every path in the file), writer, reader, restart, lock
#: 5 outputs     figures (arrays -> matplotlib figure) and per-frame files for OVITO:
#:               below the analyses that call them, never importing them
#: 6 app-core    campaigns and the analyses of a results file (analysis never imports
#:               campaign: enforced below in FORBIDDEN)
#: 7 app-top     the command line, the example job, the package's public API facade
LAYERS = {
    "quests_hpc.errors": 0,
    "quests_hpc._version": 0,
    "quests_hpc.threads": 0,
    "quests_hpc.timing": 0,
    "quests_hpc.species": 0,
    "quests_hpc.geometry": 1,
    "quests_hpc.cell_list": 1,
    "quests_hpc._descriptor_kernels": 1,
    "quests_hpc.descriptors": 1,
    "quests_hpc.multicomponent": 1,
    "quests_hpc._kernel_sums": 1,
    "quests_hpc._kernel_sums_f32": 1,
    "quests_hpc._fold_kernels": 1,
    "quests_hpc._ordered_products": 1,
    "quests_hpc._sort_network32": 1,
    "quests_hpc._block_groups": 1,
    "quests_hpc.information": 1,
    "quests_hpc._export_kernels": 1,
    "quests_hpc.io": 2,
    "quests_hpc.parallel": 3,
    "quests_hpc.results": 4,
    "quests_hpc.plotting": 5,
    "quests_hpc.export": 5,
    "quests_hpc.campaign": 6,
    "quests_hpc.analysis": 6,
    "quests_hpc.dataset": 6,
    "quests_hpc.insitu": 6,
    "quests_hpc.cli": 7,
    "quests_hpc.commands": 7,
    "quests_hpc.example": 7,
    "quests_hpc": 7,  # the package __init__ only (the public API facade)
}

#: Imports within a layer that are still forbidden: (importer prefix, imported prefix).
FORBIDDEN = [("quests_hpc.analysis", "quests_hpc.campaign"),
             ("quests_hpc.dataset", "quests_hpc.campaign")]

#: Layers that must not import mpi4py.
NO_MPI_BELOW = 3


def module_name(path, root=ROOT, package=PACKAGE):
    rel = path.relative_to(root).with_suffix("")
    parts = [package, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root=ROOT, package=PACKAGE):
    """``{module name: path}`` of every module (``pkg/__init__.py`` is named ``pkg``)."""
    return {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}


def _resolve(name, modules):
    """The module ``name`` names: itself, or its longest prefix that is a module."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) if parts else None


def imports_of(name, path, modules, package=PACKAGE):
    """``[(imported module, line)]`` of every package-internal import, and the external
    top-level names as ``[(name, line)]``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    internal, external = [], []

    def add(target, line):
        if target == package or target.startswith(package + "."):
            mod = _resolve(target, modules)
            if mod is not None and mod != name:
                internal.append((mod, line))
        else:
            external.append((target.split(".")[0], line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            for a in node.names:
                sub = f"{base}.{a.name}"
                add(sub if sub in modules else base, node.lineno)
    by_line = lambda e: (e[1], e[0])  # noqa: E731
    return sorted(set(internal), key=by_line), sorted(set(external), key=by_line)


def import_graph(root=ROOT, package=PACKAGE):
    """``modules, edges, external``: edges ``{importer: [(imported, line)]}``."""
    modules = find_modules(root, package)
    edges, external = {}, {}
    for name, path in modules.items():
        edges[name], external[name] = imports_of(name, path, modules, package)
    return modules, edges, external


def layer_of(name):
    if name in LAYERS:
        return LAYERS[name]
    parts = name.split(".")
    for n in range(len(parts) - 1, 1, -1):  # never the bare package: it is the facade only
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def _under(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def upward_imports(edges):
    bad = []
    for importer, targets in edges.items():
        li = layer_of(importer)
        for imported, line in targets:
            lj = layer_of(imported)
            if li is None or lj is None:
                continue
            if lj > li:
                bad.append(f"{importer} (layer {li}) imports {imported} (layer {lj}), line {line}")
            elif any(_under(importer, a) and _under(imported, b) for a, b in FORBIDDEN):
                bad.append(f"{importer} imports {imported} (forbidden), line {line}")
    return bad


def cycle_edges(edges, modules):
    """Edges used in the cycle check: an ``__init__``'s imports of its own package left out."""
    out = {}
    for importer, targets in edges.items():
        own = modules[importer].name == "__init__.py"
        out[importer] = sorted({t for t, _ in targets
                                if not (own and t.startswith(importer + "."))})
    return out


def strongly_connected(graph):
    """Tarjan's strongly connected components of ``{node: [node]}`` (iterative)."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(graph.get(w, ()))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    comps.append(sorted(comp))
    return comps


def import_cycles(edges, modules):
    graph = cycle_edges(edges, modules)
    out = []
    for comp in strongly_connected(graph):
        if len(comp) < 2:
            continue
        members = set(comp)
        inside = [f"{a} -> {b} (line {ln})" for a in comp for b, ln in edges[a]
                  if b in members and b in graph[a]]
        out.append(f"cycle of {len(comp)} modules {comp}: " + "; ".join(inside))
    return out


def _fail(problems, what):
    if problems:
        pytest.fail(f"{len(problems)} {what}:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_module_has_a_layer(graph):
    modules, _, _ = graph
    _fail([f"{m} ({modules[m].relative_to(ROOT.parent)}): add it to LAYERS in "
           "tests/test_layering.py" for m in modules if layer_of(m) is None],
          "module(s) without a layer")


def test_no_upward_imports(graph):
    _, edges, _ = graph
    _fail(upward_imports(edges), "upward import(s)")


def test_no_import_cycles(graph):
    modules, edges, _ = graph
    _fail(import_cycles(edges, modules), "import cycle(s)")


def test_no_mpi4py_below_the_parallel_layer(graph):
    modules, _, external = graph
    _fail([f"{m} (layer {layer_of(m)}) imports mpi4py, line {line}"
           for m, names in external.items() for name, line in names
           if name == "mpi4py" and layer_of(m) is not None and layer_of(m) < NO_MPI_BELOW],
          "mpi4py import(s) below the parallel layer")


def _write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))


def test_the_checker_sees_every_kind_of_import(tmp_path):
    """Function-level, relative, ``from pkg import submodule``, re-exporting ``__init__``."""
    root = tmp_path / "pkg"
    _write(root, "__init__.py", "from .low import f\nfrom .sub import a\n")
    _write(root, "low.py", "def f():\n    from .sub import a  # upward, in a function\n")
    _write(root, "sub/__init__.py", "from . import a\n")
    _write(root, "sub/a.py", "import pkg.low\nfrom .. import low\nfrom pkg.sub import b\n")
    _write(root, "sub/b.py", "from ..sub import a\nfrom mpi4py import MPI\n")
    modules, edges, external = import_graph(root, "pkg")
    assert sorted(modules) == ["pkg", "pkg.low", "pkg.sub", "pkg.sub.a", "pkg.sub.b"]
    assert edges["pkg.low"] == [("pkg.sub.a", 2)]
    assert edges["pkg.sub.a"] == [("pkg.low", 1), ("pkg.low", 2), ("pkg.sub.b", 3)]
    assert edges["pkg.sub.b"] == [("pkg.sub.a", 1)]
    assert external["pkg.sub.b"] == [("mpi4py", 2)]
    cycles = import_cycles(edges, modules)
    assert len(cycles) == 1  # low <-> sub.a and sub.a <-> sub.b; the __init__ edges are not
    assert "['pkg.low', 'pkg.sub.a', 'pkg.sub.b']" in cycles[0]
    assert "pkg.low -> pkg.sub.a (line 2)" in cycles[0]


def test_the_table_covers_the_layers_of_the_plan():
    by_layer = defaultdict(set)
    for name, layer in LAYERS.items():
        by_layer[layer].add(name)
    assert sorted(by_layer) == list(range(8))
    assert layer_of("quests_hpc.io.lammps_dump") == 2
    assert layer_of("quests_hpc.parallel.dump_reader") == 3
    assert layer_of("quests_hpc") == 7
    assert layer_of("quests_hpc.nonexistent") is None
