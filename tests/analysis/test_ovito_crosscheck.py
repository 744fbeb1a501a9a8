"""Cluster sizes equal OVITO's ClusterAnalysisModifier on real frames (1, 2, 3 ranks).

Real data: frames of the bundled Cu melt (examples/cu_nucleation, LAMMPS with the Mishin
EAM), dH of every atom against the bundled FCC Cu reference at 400 K.  Atoms with
dH <= 0 are selected; OVITO 3.17's ClusterAnalysisModifier (cutoff = r_edge,
only_selected) runs in a subprocess (OVITO_THREAD_COUNT=1, so it does not compete with
the MPI ranks) and reports its cluster count, largest size, the size of every cluster
(``output_table=True``, the legacy table; 3.17 moved the list to a particle system) and
each atom's cluster index.  The two partitions must be identical.

Run: ``mpiexec -n N python -m pytest --with-mpi -m mpi tests/analysis`` (N = 1, 2, 3).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ovito")
MPI = pytest.importorskip("mpi4py.MPI")

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLE = os.path.join(ROOT, "examples", "cu_nucleation")
MELT = os.path.join(EXAMPLE, "cu_melt_600K.lammpstrj.gz")
REFERENCE = os.path.join(EXAMPLE, "cu_fcc_400K.lammpstrj.gz")
FRAMES = (6, 13)  # before the largest cluster takes off, and while it grows
R_EDGE = 3.0

OVITO_CODE = """
import json, sys
import numpy as np
from ovito.io import import_file
from ovito.modifiers import ClusterAnalysisModifier, ExpressionSelectionModifier

dump, npz, r_edge = sys.argv[1], sys.argv[2], float(sys.argv[3])
z = np.load(npz)
out = {}
for frame in z["frames"]:
    ids, dh = z[f"ids_{frame}"], z[f"dh_{frame}"]
    pipe = import_file(dump)

    def add_dh(frame_no, data, ids=ids, dh=dh):
        pid = np.asarray(data.particles["Particle Identifier"])
        data.particles_.create_property("dH", data=dh[np.searchsorted(ids, pid)])

    pipe.modifiers.append(add_dh)
    pipe.modifiers.append(ExpressionSelectionModifier(expression="dH <= 0"))
    pipe.modifiers.append(ClusterAnalysisModifier(cutoff=r_edge, only_selected=True,
                                                  sort_by_size=True, output_table=True))
    d = pipe.compute(int(frame))
    pid = np.asarray(d.particles["Particle Identifier"])
    order = np.argsort(pid)
    out[str(frame)] = {
        "timestep": int(d.attributes["Timestep"]),
        "count": int(d.attributes["ClusterAnalysis.cluster_count"]),
        "largest": int(d.attributes["ClusterAnalysis.largest_size"]),
        "sizes": np.asarray(d.tables["clusters"]["Cluster Size"]).astype(int).tolist(),
        "cluster": np.asarray(d.particles["Cluster"])[order].astype(int).tolist(),
    }
print(json.dumps(out))
"""


def _real_frames():
    """ids, positions, cell, pbc and dH (vs the 400 K reference) of the test frames."""
    from quests_hpc import information
    from quests_hpc.descriptors import descriptors_from_arrays
    from quests_hpc.io import read_lammps_dump

    ref = read_lammps_dump(REFERENCE, "all")
    x = np.concatenate([descriptors_from_arrays(f.positions, f.cell, f.pbc) for f in ref])
    out = {}
    for i in FRAMES:
        f = read_lammps_dump(MELT, i)
        y = descriptors_from_arrays(f.positions, f.cell, f.pbc)
        out[i] = dict(ids=f.ids, positions=f.positions, cell=f.cell, pbc=f.pbc,
                      timestep=f.timestep, dh=information.delta_entropy(y, x, 0.015))
    return out


def _ovito(frames, tmpdir):
    npz = os.path.join(tmpdir, "dh.npz")
    arrays = {"frames": np.array(FRAMES)}
    for i, f in frames.items():
        arrays[f"ids_{i}"], arrays[f"dh_{i}"] = f["ids"], f["dh"]
    np.savez(npz, **arrays)
    env = dict(os.environ, OVITO_THREAD_COUNT="1")
    run = subprocess.run([sys.executable, "-c", OVITO_CODE, MELT, npz, str(R_EDGE)],
                         capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.mpi
def test_cluster_sizes_equal_ovito(mpi_tmp_path):
    from quests_hpc.analysis.clusters import find_clusters

    comm = MPI.COMM_WORLD
    frames = _real_frames() if comm.rank == 0 else None
    frames = comm.bcast(frames, root=0)
    ovito = _ovito(frames, str(mpi_tmp_path)) if comm.rank == 0 else None
    ovito = comm.bcast(ovito, root=0)
    problems = []
    for i, f in frames.items():
        owner = np.random.default_rng(i).integers(0, comm.size, len(f["ids"]))
        mine = owner == comm.rank
        r = find_clusters(f["ids"][mine], f["positions"][mine], f["dh"][mine], f["cell"],
                          f["pbc"], r_edge=R_EDGE, comm=comm)
        labels = np.zeros(len(f["ids"]), np.int64)
        for sel, lab in comm.allgather((np.flatnonzero(mine), r.labels)):
            labels[sel] = lab
        o = ovito[str(i)]
        ours = np.sort(np.unique(labels[labels > 0], return_counts=True)[1])
        if o["timestep"] != f["timestep"]:
            problems.append(f"frame {i}: OVITO read timestep {o['timestep']}")
        if (r.n_clusters, r.largest) != (o["count"], o["largest"]):
            problems.append(f"frame {i}: ours {r.n_clusters} clusters, largest {r.largest}; "
                            f"OVITO {o['count']}, {o['largest']}")
        if ours.tolist() != sorted(o["sizes"]):
            problems.append(f"frame {i}: cluster sizes differ from OVITO's")
        # Same partition: (our label, OVITO cluster index) pairs form a bijection.
        oc = np.asarray(o["cluster"])
        node = labels > 0
        if not ((oc >= 0) == node).all():
            problems.append(f"frame {i}: selected atoms differ from OVITO's")
        pairs = np.unique(np.stack([labels[node], oc[node]]), axis=1)
        if len(np.unique(pairs[0])) != pairs.shape[1] or len(np.unique(pairs[1])) != pairs.shape[1]:
            problems.append(f"frame {i}: partition differs from OVITO's")
        if r.n_clusters < 20 or r.largest < 30:
            problems.append(f"frame {i}: too few clusters for a meaningful check")
    assert not problems, problems
