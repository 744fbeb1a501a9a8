"""Brute-force references for the ``select`` tests: whole frames in numpy, serially.

* :func:`frame_descriptors` -- descriptors of every atom of a dump frame, by atom id;
* :func:`brute_selection` -- the greedy msc_conditional over the candidates' descriptors,
  straight from the definition (SPEC.md) with exp kernels in log space;
* :func:`brute_sphere` -- every image within R of a centre, by looping over all shifts.
"""

import h5py
import numpy as np

from quests_hpc.descriptors import descriptors_from_arrays
from quests_hpc.geometry import complete_cell, wrap_positions
from quests_hpc.io.lammps_dump import read_lammps_dump

DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "lammps"


def dump_frame(path, timestep):
    """``(ids, wrapped positions, cell, pbc)`` of the frame with ``timestep``."""
    frames = read_lammps_dump(str(path), index=":")
    (f,) = [f for f in frames if int(f.timestep) == int(timestep)]
    cell = complete_cell(f.cell, f.pbc)
    order = np.argsort(f.ids)
    pos = wrap_positions(np.asarray(f.positions)[order], cell, f.pbc)
    return np.asarray(f.ids)[order], pos, cell, np.asarray(f.pbc, bool)


def frame_descriptors(path, timestep, k=32, cutoff=5.0):
    """``{id: descriptor}`` of every atom of the frame (whole frame, serial)."""
    ids, pos, cell, pbc = dump_frame(path, timestep)
    x = descriptors_from_arrays(pos, cell, pbc, k=k, cutoff=cutoff)
    return dict(zip(ids.tolist(), x))


def results_frames(results, column=0):
    """``[(name, timestep, ids, dH column)]`` of the complete frames, in order."""
    out = []
    with h5py.File(results, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in f["summary/frames/frame"][()]]
        for n in names:
            g = f["frames"][n]
            dh = g["delta_entropy"][()]
            out.append((n, int(g.attrs["timestep"]), g["id"][()], dh if dh.ndim == 1
                        else dh[:, column]))
    return out


def brute_selection(results, dump, n_max, h=0.015, threshold=0.0, k=32, cutoff=5.0, column=0):
    """Ordered ``[(frame number, id, novelty)]`` of the greedy selection (brute force)."""
    cand = []
    for number, (_, ts, ids, dh) in enumerate(results_frames(results, column)):
        desc = frame_descriptors(dump, ts, k, cutoff)
        for i, d in zip(ids.tolist(), dh.tolist()):
            if d > threshold:
                cand.append((number, i, d, desc[i]))
    x = np.array([c[3] for c in cand])
    log_s = -np.array([c[2] for c in cand])
    alive = np.ones(len(cand), bool)
    picks = []
    while len(picks) < n_max and alive.any():
        nov = np.where(alive, -log_s, -np.inf)
        best = nov.max()
        if not best > threshold:
            break
        tied = [j for j in np.flatnonzero(nov == best)]
        j = min(tied, key=lambda j: (cand[j][0], cand[j][1]))
        picks.append((cand[j][0], cand[j][1], float(best)))
        alive[j] = False
        d2 = ((x - x[j]) ** 2).sum(axis=1)
        log_s = np.logaddexp(log_s, -d2 / (2 * h * h))
    return picks


def brute_sphere(ids, pos, cell, pbc, centre, radius, reach=3):
    """Sorted ``[(id, shift)]`` of every image within ``radius`` of ``centre``."""
    out = []
    rng = range(-reach, reach + 1)
    for n in [(a, b, c) for a in rng for b in rng for c in rng]:
        n = np.where(pbc, n, 0)
        d = pos + n @ cell - centre
        for i in np.flatnonzero((d * d).sum(axis=1) <= radius * radius):
            out.append((int(ids[i]), tuple(int(v) for v in n)))
    return sorted(set(out))
