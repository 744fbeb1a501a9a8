"""The ``compile`` stage: every Numba kernel a run uses, compiled or loaded from the cache.

Numba compiles a kernel the first time it is called with a new signature (seconds per
kernel) and keeps the machine code in its cache (``cache=True``; see
docs/compile-cache.md).  :func:`run_warmups` lists tiny calls that reach every kernel of a
command's run -- the frame pipeline's (:func:`quests_hpc.parallel.runtime.default_warmups`:
reader, descriptors, halo, redistribution, kernel sums) and, only when the campaign's
``analysis`` section asks for them, the cluster and export kernels -- so that
:func:`compile_for` (collective: the rank-0-first waves of
:func:`~quests_hpc.parallel.runtime.warm_up`) runs them before any other stage, and later
stages contain no compile time.

``python -m quests_hpc.campaign.warmup`` (what ``scripts/setup.sh`` runs) compiles every
kernel of every command into the cache (the data-set commands' too: :func:`_datasets`),
in two processes where two cores are free, and prints one line with the seconds it took.
"""

import os
import sys
import tempfile
import time

import numpy as np

#: FCC Cu lattice constant (A) of the tiny warm-up structures.
_A = 3.615


def _fcc(n=2):
    g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return (g[:, None, :] + basis[None]).reshape(-1, 3) * _A, np.eye(3) * n * _A


def _clusters():
    """Clusters (with and without their biconnected parts) of a tiny FCC crystal,
    serially; the edge kernels also on a sparse cloud (the sparse cell-list path)."""
    from mpi4py import MPI

    from ..analysis.clusters import find_clusters
    from ..analysis.edges import local_components, local_edges

    pos, cell = _fcc(2)
    ids = np.arange(1, len(pos) + 1, dtype=np.int64)
    dh = np.where(np.arange(len(pos)) % 3 == 0, 1.0, -1.0)
    for bicon in (len(pos), None):
        find_clusters(ids, pos, dh, cell, True, comm=MPI.COMM_SELF, threshold=0.0,
                      r_edge=3.0, biconnected_max_size=bicon)
    sparse = np.vstack([pos[:4], pos[:4] + 80.0])  # a grid of > 8 n cells
    for pts in (pos, sparse):
        local_edges(pts, len(pts) // 2, 3.0)
        local_components(pts, len(pts) // 2, ids[:len(pts) // 2], 3.0)


def _export():
    """A tiny frame written as a LAMMPS dump and as extended XYZ (the row formatters)."""
    from mpi4py import MPI

    from ..export import export_frame

    pos, cell = _fcc(1)
    ids = np.arange(1, len(pos) + 1, dtype=np.int64)
    cols = {"dH": np.linspace(-1.0, 1.0, len(pos)), "cluster": np.arange(len(pos))}
    with tempfile.TemporaryDirectory(prefix="quests-hpc-warm-") as d:
        for name in ("f.lammpstrj.gz", "f.xyz"):
            export_frame(os.path.join(d, name), ids, pos, cell, True, columns=cols,
                         types=np.ones(len(pos), np.int32), elements=["Cu"], comm=MPI.COMM_SELF)


def _datasets():
    """msc and k_means of a tiny data set (the lazy msc's ordered products and folds,
    the k-means kernels), serially."""
    from ase import Atoms
    from ase.io import write
    from mpi4py import MPI

    from ..dataset.compress import compress
    from ..dataset.structures import load_dataset

    pos, cell = _fcc(2)
    rng = np.random.default_rng(0)
    frames = [Atoms("Cu" * len(pos), positions=pos + rng.normal(0, 0.1, pos.shape),
                    cell=cell, pbc=True) for _ in range(4)]
    with tempfile.TemporaryDirectory(prefix="quests-hpc-warm-") as d:
        path = os.path.join(d, "set.extxyz")
        write(path, frames, parallel=False)
        data = load_dataset(MPI.COMM_SELF, path)
        for method in ("msc", "k_means"):
            compress(MPI.COMM_SELF, data, method, 2)


def analysis_kinds(analysis):
    """The analyses of a campaign's ``analysis`` section that run Numba kernels."""
    a = analysis or {}
    return [k for k in ("clusters", "export") if a.get(k) is not None]


def run_warmups(size, kinds=()):
    """Warm-up calls for a run on ``size`` ranks with the analyses ``kinds``
    (``"clusters"``, ``"export"``): the pipeline's, then each analysis's."""
    from ..parallel.runtime import default_warmups

    extra = {"clusters": _clusters, "export": _export}
    return default_warmups(size) + [extra[k] for k in kinds]


def compile_for(comm, analysis=None):
    """Compile or cache-load every kernel of a run with this ``analysis`` section
    (collective; a group already warmed by this process is skipped)."""
    from ..parallel.runtime import warm_up

    kinds = analysis_kinds(analysis)
    # covers the planning step's own warm-up ("default") too: that one is then skipped
    warm_up(comm, run_warmups(comm.size, kinds), name=("default", "+".join(["run", *kinds])))


#: The set-up's warm-up in two processes (two cores: about half the time); kernels shared
#: by several calls (``neighbour_bins``: descriptors and cluster edges) stay in one part,
#: so no two processes write the same cache index at once.
_SECOND_PART = ("redistribute", "_read_dumps", "_route")


def _run_part(part):
    for fn in run_warmups(1, ("clusters", "export")) + [_datasets]:
        if (getattr(fn, "__name__", "") in _SECOND_PART) == (part == "b"):
            fn()


def _since_start(fallback):
    """Seconds since this process started (Linux ``/proc``: the package import, which
    compiles the kernel sums, included); elsewhere since ``fallback``."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - fallback


def main(argv=None):
    """Compile every kernel of every command into Numba's cache (serial, or in two
    processes where two cores are free); print the time as ``LABEL: compiled Numba
    kernels in N s`` (LABEL: the first argument, default ``quests-hpc``).

    The kernel sums are compiled when this module's package is imported, before the
    second process starts (it then loads them from the cache).
    """
    import subprocess

    from ..parallel.runtime import cores_available

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--part"]:  # the second process
        _run_part(args[1])
        return 0
    t0 = time.perf_counter()
    child = None
    if cores_available() > 1:
        child = subprocess.Popen([sys.executable, "-m", "quests_hpc.campaign.warmup",
                                  "--part", "b"])
    _run_part("a")
    if child is None:
        _run_part("b")
    elif child.wait() != 0:
        raise SystemExit(f"quests-hpc: the warm-up's second process failed ({child.returncode})")
    label = args[0] if args else "quests-hpc"
    print(f"{label}: compiled Numba kernels in {_since_start(t0):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
