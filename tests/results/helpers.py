"""Deterministic synthetic results for writer tests (same data whatever the rank count)."""

import numpy as np

from quests_hpc.results import FramePlan, StructurePlan
from quests_hpc.results import layout as L

NATOMS = (37, 0, 101, 5)


def plan(natoms=NATOMS, descriptors=True):
    frames = [FramePlan(f"in_{i:06d}", "in", 0, "md.dump", i, 10 * i, n)
              for i, n in enumerate(natoms)]
    refs = [dict(name="r1", path="r1.xyz", sha256="1" * 64, n_environments=9, frames="all"),
            dict(name="r2", path="r2.xyz", sha256="2" * 64, n_environments=4, frames="all")]
    return StructurePlan(
        frames=frames, k=3, cutoff=4.0, bandwidths=[0.015, 0.1], threshold=0.0,
        references=refs, inputs=["in"],
        store=dict(delta_entropy=True, descriptors=descriptors, positions=True),
        entropy=True, overlap=True,
        learning_curve=dict(sizes=[2, 3, 4], repeats=2, dataset="r1", seed=0, drop=[0, 0]))


def frame_arrays(i, n):
    """Whole-frame arrays of frame ``i`` (what every backend must write)."""
    rng = np.random.default_rng(100 + i)
    ids = np.cumsum(rng.integers(1, 4, n)).astype(np.int64)
    return {
        "id": ids,
        "delta_entropy": rng.normal(size=(n, 4)),
        "descriptors": rng.random((n, 5)),
        "position": rng.random((n, 3)) * 10,
        "type": rng.integers(1, 3, n).astype(np.int32),
    }


def write_all(path, comm, backend="gather", chunk_bytes=1 << 20, natoms=NATOMS):
    """Write the synthetic campaign with ``comm`` (COMM_SELF: serial); each rank its even
    block."""
    from quests_hpc.results import ResultsWriter

    size, rank = comm.size, comm.rank
    p = plan(natoms)
    attrs = L.root_attributes(p, size, backend)
    attrs["created"] = "fixed"
    attrs = comm.bcast(attrs, root=0)
    with ResultsWriter.open(path, comm, backend=backend, mode="w", chunk_bytes=chunk_bytes) as w:
        w.create_structure(p, attrs)
        for i, fp in enumerate(p.frames):
            arrs = frame_arrays(i, fp.natoms)
            lo, hi = fp.natoms * rank // size, fp.natoms * (rank + 1) // size
            for name, a in arrs.items():
                w.write_slab(f"frames/{fp.name}/{name}", a[lo:hi])
            w.write_values([("summary/frames/natoms", i, fp.natoms),
                            ("summary/frames/dh_mean", i, np.full((2, 2), float(i)))])
            w.flush()
            w.set_attrs(f"frames/{fp.name}", {"timestep": np.int64(10 * i), "cell": np.eye(3),
                                              "pbc": np.ones(3, bool), "wall_time": 1.0,
                                              "mpi_size": np.int64(size)})
            w.flush()
            w.set_attrs(f"frames/{fp.name}", {"complete": True})
            w.flush()
        w.set_attrs("/", {"complete": True})
    return p
