"""Selection from big MD snapshots for labelling (``quests-hpc select``).

From a dH results file (``quests-hpc dh`` or a campaign), choose up to N novel atoms
(dH > threshold) that are also novel to each other, and carve around each one a
structure a DFT code can label (:mod:`quests_hpc.dataset.carve`).

The choice is msc_conditional over single environments (SPEC.md "Dataset compression and
selection"; an environment's own entropy is 0), conditioned on the reference set: the
coverage of a candidate x starts as ``log S(x) = -dH(x)``, the stored dH (with several
references in the file, their union: ``log S = logsumexp_r(-dH_r)``); the candidate with
the largest novelty ``-log S`` is chosen, ``K(x, chosen)`` is added to every remaining
candidate's ``S`` (``np.logaddexp`` of :func:`quests_hpc.information.log_kernel_sum`),
and so on up to N picks or until no candidate's novelty exceeds the threshold.  Ties go
to the lowest (frame, atom id), frame counted in the results file's order.

Distributed: the candidates' descriptors, which the results file does not keep, are
recomputed from the input dump by the frame pipeline
(:func:`~quests_hpc.parallel.frame_pipeline.run_frame`): each rank keeps its block of the
id-sorted frame (positions, types) and only its own candidates' descriptors.  Each step
is one :func:`~quests_hpc.parallel.comm.argmax_with_key` (score, frame, id) and one
broadcast of the chosen descriptor from its owner, so the choice is the same for any
rank count.  For carving, each rank contributes its atoms near each chosen centre; only
those pieces go to rank 0, which writes the extxyz.  All functions taking ``comm`` are
collective.
"""

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import QuestsInputError
from ..information import log_kernel_sum
from ..parallel import comm as pcomm
from ..parallel.frame_pipeline import FrameRequest, run_frame
from . import carve
from .select_input import open_frame_source, read_dh_block, read_plan


@dataclass
class Candidates:
    """This rank's candidates over all selected frames and its block of every frame."""

    desc: list = field(default_factory=list)
    log_s: list = field(default_factory=list)
    frame: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    dh: list = field(default_factory=list)
    blocks: list = field(default_factory=list)  # per frame: ids, positions, types, cell, pbc
    n_candidates: int = 0

    def stack(self, width):
        """Concatenate the per-frame lists into arrays (in place)."""
        def cat(parts, shape, dtype):
            return np.concatenate(parts) if parts else np.empty(shape, dtype)
        self.desc = cat(self.desc, (0, width), np.float64)
        self.log_s = cat(self.log_s, (0,), np.float64)
        self.frame = cat(self.frame, (0,), np.int64)
        self.ids = cat(self.ids, (0,), np.int64)
        self.dh = cat(self.dh, (0,), np.float64)


def frame_candidates(comm, plan, fp, number, input_path, threshold, into):
    """Recompute frame ``fp``'s descriptors through the pipeline; keep this rank's block
    (ids, positions, types) and its candidates (dH > threshold) in ``into``."""
    source, index, close = open_frame_source(comm, plan, fp, input_path)
    request = FrameRequest(k=plan.k, cutoff=plan.cutoff, bandwidths=(), delta_entropy=False,
                           descriptors=True, positions=True, species=plan.species,
                           ignore_species=plan.species is None)
    try:
        out = run_frame(comm, source, index, [], request)
    finally:
        close()
    ids, dh = read_dh_block(comm, plan, fp, out)
    keep = np.flatnonzero(dh > threshold)
    into.desc.append(np.ascontiguousarray(out.descriptors[keep]))
    out.descriptors = None  # only the candidates' rows stay
    into.log_s.append(-dh[keep])
    into.dh.append(dh[keep])
    into.ids.append(ids[keep])
    into.frame.append(np.full(len(keep), number, dtype=np.int64))
    from .. import geometry

    cell = geometry.complete_cell(out.cell, out.pbc)
    into.blocks.append((out.ids, out.positions, out.types, cell, np.asarray(out.pbc, bool)))


def _local_best(c):
    """Index of this rank's most novel live candidate (ties: lowest frame, id), or -1."""
    if len(c.log_s) == 0:
        return -1
    nov = -c.log_s
    top = nov.max()
    if not np.isfinite(top) and top < 0:
        return -1
    tied = np.flatnonzero(nov == top)
    return int(tied[np.lexsort((c.ids[tied], c.frame[tied]))[0]])


def greedy(comm, c, h, max_picks, threshold):
    """msc_conditional over single environments (collective); see the module doc.

    Returns
    -------
    list of dict
        ``frame`` (number in the selection), ``id``, ``dh`` (stored), ``novelty`` (at the
        moment chosen), ``position`` of each pick, in choice order; the same on every rank.
    """
    picks = []
    while len(picks) < max_picks:
        i = _local_best(c)
        score = -np.inf if i < 0 else float(-c.log_s[i])
        key = (np.iinfo(np.int64).max, np.iinfo(np.int64).max) if i < 0 else (
            int(c.frame[i]), int(c.ids[i]))
        best, (frame, atom), owner = pcomm.argmax_with_key(score, key, comm)
        if not best > threshold:
            break
        mine = None
        if comm.rank == owner:
            blk = c.blocks[frame]
            row = int(np.searchsorted(blk[0], atom))
            mine = (c.desc[i].copy(), blk[1][row].copy(), float(c.dh[i]))
            c.log_s[i] = np.inf  # chosen: never again
        x, pos, dh = pcomm.bcast(mine, comm, root=owner)
        picks.append({"frame": frame, "id": atom, "dh": dh, "novelty": best, "position": pos})
        if len(c.log_s):  # every row, no copy: a chosen row stays at +inf
            c.log_s = np.logaddexp(c.log_s, log_kernel_sum(c.desc, x[None], h))
    return picks


def carve_pieces(comm, c, picks, kind, size):
    """Every rank's atoms near each pick, gathered on rank 0 (collective).

    Returns (rank 0; None elsewhere) a dict of arrays over all pieces: ``pick``, ``ids``,
    ``types``, ``shifts``, ``offsets`` (vector from the centre).
    """
    fn = carve.sphere if kind == "cluster" else carve.box
    parts = {"pick": [], "ids": [], "types": [], "shifts": [], "offsets": []}
    for p, pick in enumerate(picks):
        ids, pos, types, cell, pbc = c.blocks[pick["frame"]]
        if len(ids) == 0:
            continue
        rows, shifts, offsets = fn(pos, cell, pbc, np.asarray(pick["position"]), size)
        parts["pick"].append(np.full(len(rows), p, dtype=np.int64))
        parts["ids"].append(ids[rows])
        t = types[rows] if types is not None else np.zeros(len(rows), np.int32)
        parts["types"].append(t.astype(np.int64))
        parts["shifts"].append(shifts.astype(np.int64))
        parts["offsets"].append(offsets)
    shapes = {"pick": (0,), "ids": (0,), "types": (0,), "shifts": (0, 3), "offsets": (0, 3)}
    out = {}
    for name, chunks in parts.items():
        dtype = np.float64 if name == "offsets" else np.int64
        local = np.concatenate(chunks) if chunks else np.empty(shapes[name], dtype)
        out[name] = pcomm.gather_rows(np.ascontiguousarray(local, dtype=dtype), comm, root=0)
    return out if comm.rank == 0 else None


def build_structures(pieces, picks, plan, frames, kind, size, elements=None,
                     vacuum=carve.DEFAULT_VACUUM):
    """ASE ``Atoms`` of every pick from the gathered pieces (rank 0; serial)."""
    from ase import Atoms
    from ase.data import atomic_numbers

    cell, pbc, middle = carve.carved_cell(kind, size, vacuum)
    out = []
    for p, pick in enumerate(picks):
        sel = np.flatnonzero(pieces["pick"] == p)
        ids, types = pieces["ids"][sel], pieces["types"][sel]
        shifts, offsets = pieces["shifts"][sel], pieces["offsets"][sel]
        order = carve.structure_order(offsets, ids, shifts)
        ids, types, shifts, offsets = ids[order], types[order], shifts[order], offsets[order]
        centre = (ids == pick["id"]) & (shifts == 0).all(axis=1)
        assert centre[0] and centre.sum() == 1, "the centre is the first atom"
        numbers = _numbers(types, elements, plan.types_are_numbers, atomic_numbers)
        a = Atoms(numbers=numbers, positions=offsets + middle, cell=cell, pbc=pbc)
        a.arrays["quests_id"] = ids
        a.arrays["type"] = types
        a.arrays["quests_centre"] = centre
        fp = frames[pick["frame"]]
        a.info.update({"quests_frame": int(fp.source_index), "quests_timestep": int(fp.timestep),
                       "quests_results_frame": fp.name, "quests_input": fp.input,
                       "quests_id": int(pick["id"]), "quests_dh": float(pick["dh"]),
                       "quests_novelty": float(pick["novelty"]), "quests_pick": p,
                       "quests_carve": f"{kind} {size:g}"})
        out.append(a)
    return out


def _numbers(types, elements, types_are_numbers, atomic_numbers):
    """Atomic numbers of the carved atoms: ``elements`` by type (1-based), the types
    themselves for an ASE input (atomic numbers), else 0 (``X``)."""
    if elements:
        bad = types[(types < 1) | (types > len(elements))]
        if len(bad):
            raise QuestsInputError(f"--elements names {len(elements)} type(s), the frame has "
                                   f"atom type {int(bad[0])}")
        table = np.array([atomic_numbers[e] for e in elements], dtype=np.int64)
        return table[types - 1]
    return types if types_are_numbers else np.zeros(len(types), np.int64)


def check_output(comm, path):
    """Refuse an output that exists already or whose directory is missing (collective)."""
    err = None
    if comm.rank == 0:
        d = os.path.dirname(os.path.abspath(path))
        if os.path.lexists(path):
            err = QuestsInputError(f"{path}: exists; select never replaces a file (move it "
                                   "away or choose another -o)")
        elif not os.path.isdir(d):
            err = QuestsInputError(f"{path}: directory {d} does not exist")
    pcomm.raise_if_any(err, comm, prefix=False, root=0)


def extxyz_text(structures):
    """Extended XYZ of the carved structures with every float at full precision (``repr``:
    read back bit for bit, so the centre's descriptor survives the file; ASE's writer
    keeps 8 decimals).  Columns: species, pos, quests_id, type, quests_centre."""
    def value(v):
        if isinstance(v, (bool, np.bool_)):
            return "T" if v else "F"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return repr(float(v))
        return '"' + str(v).replace('"', "'") + '"'

    lines = []
    for a in structures:
        lattice = " ".join(repr(float(x)) for x in a.cell.array.reshape(-1))
        info = " ".join(f"{k}={value(v)}" for k, v in a.info.items())
        pbc = " ".join("T" if p else "F" for p in a.pbc)
        lines.append(str(len(a)))
        lines.append(f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:quests_id:I:1:'
                     f'type:I:1:quests_centre:L:1 {info} pbc="{pbc}"')
        for s, (x, y, z), i, t, c in zip(a.get_chemical_symbols(), a.positions,
                                         a.arrays["quests_id"], a.arrays["type"],
                                         a.arrays["quests_centre"]):
            lines.append(f"{s} {float(x)!r} {float(y)!r} {float(z)!r} {int(i)} {int(t)} "
                         f"{'T' if c else 'F'}")
    return "\n".join(lines) + "\n" if lines else ""


def write_structures(comm, path, structures):
    """Write the structures as extxyz from rank 0, aside then published without replacing
    anything (:func:`quests_hpc.results.new_file.write_new`; collective)."""
    from ..results.new_file import write_new

    err = None
    if comm.rank == 0:
        def put(tmp):
            with open(tmp, "w") as f:
                f.write(extxyz_text(structures))
        try:
            write_new(path, put)
        except Exception as exc:  # noqa: BLE001 (reaches every rank, then re-raised)
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)


def select_environments(comm, results, max_picks, radius=None, output=None, *, threshold=None,
                        box=None, frames="all", input_path=None, bandwidth=None,
                        elements=None, vacuum=carve.DEFAULT_VACUUM, out=None):
    """Choose up to ``max_picks`` novel environments and carve them (collective).

    Parameters
    ----------
    comm : mpi4py communicator
    results : str
        A dH results file.
    max_picks : int
        At most this many picks (>= 1).
    radius : float
        Cluster radius (>= the file's cutoff); ignored with ``box``.
    output : str or None
        The extxyz to write (must not exist); None: no file.
    threshold : float, optional
        Novelty threshold (default: the results file's).
    box : float, optional
        Carve periodic cubic boxes of this side (> 2 cutoff) instead of clusters.
    frames : str
        Frames of the results file (positions among its complete frames, SEL syntax).
    input_path : str, optional
        The input dump, overriding the path recorded in the results file.
    bandwidth : float, optional
        One of the file's bandwidths (default: its first).
    elements : list of str, optional
        Element of each atom type, in type order.
    out : callable, optional
        Prints the report on rank 0.

    Returns
    -------
    dict
        ``n_candidates``, ``picks`` (list of dicts), ``structures`` (rank 0), ``plan``.
    """
    plan, specs = _prepare(comm, results, max_picks, radius, box, frames, bandwidth, output,
                           input_path)
    thr = plan.threshold if threshold is None else float(threshold)
    kind, size = ("box", plan.box) if box is not None else ("cluster", plan.radius)
    c = Candidates()
    for number, fp in enumerate(specs):
        frame_candidates(comm, plan, fp, number, input_path, thr, c)
    c.stack(plan.width)
    n_cand = int(pcomm.allreduce(np.array([len(c.ids)], np.int64), "sum", comm)[0])
    picks = greedy(comm, c, plan.bandwidth, int(max_picks), thr)
    pieces = carve_pieces(comm, c, picks, kind, size)
    structures = None
    if comm.rank == 0:
        structures = build_structures(pieces, picks, plan, specs, kind, size, elements, vacuum)
    if output is not None:
        write_structures(comm, output, structures)
    if out is not None and comm.rank == 0:
        _report(out, plan, specs, n_cand, picks, structures, thr, output, kind, size)
    return {"n_candidates": n_cand, "picks": picks, "structures": structures, "plan": plan,
            "threshold": thr}


def _prepare(comm, results, max_picks, radius, box, frames, bandwidth, output, input_path):
    """Checked plan and frame specs, the same on every rank (collective)."""
    err, got = None, None
    if comm.rank == 0:
        try:
            if isinstance(max_picks, bool) or int(max_picks) != max_picks or max_picks < 1:
                raise QuestsInputError(f"--max must be an integer >= 1, got {max_picks!r}")
            plan, specs = read_plan(results, frames, bandwidth, input_path)
            if box is not None:
                plan.box = carve.check_box(box, plan.cutoff)
            else:
                if radius is None:
                    raise QuestsInputError("--radius is required (or --box L)")
                plan.radius = carve.check_radius(radius, plan.cutoff)
            got = (plan, specs)
        except QuestsInputError as exc:
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    if output is not None:
        check_output(comm, output)
    return pcomm.bcast(got, comm, root=0)


def _report(out, plan, specs, n_cand, picks, structures, thr, output, kind, size):
    out(f"{plan.path}: {len(specs)} frame(s), {n_cand} candidate(s) with dH > {thr:g} "
        f"(h = {plan.bandwidth:g} 1/A, {plan.reference_text})")
    out(f"chosen {len(picks)} environment(s) (msc_conditional), carved as {kind} "
        f"{'radius' if kind == 'cluster' else 'side'} {size:g} A:")
    for p, (pick, a) in enumerate(zip(picks, structures)):
        fp = specs[pick["frame"]]
        out(f"  {p + 1:4d}  {fp.name}  id {pick['id']:>9d}  dH {pick['dh']:9.4f}  novelty "
            f"{pick['novelty']:9.4f}  {len(a)} atoms")
    if output is not None:
        out(f"wrote {output}")

