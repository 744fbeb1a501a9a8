"""Reference (training) sets for a campaign: descriptors computed or loaded once, shared.

A reference is any of

* a results file with descriptors (``quests-hpc descriptors ... -o ref.h5`` or a campaign
  with ``measures.descriptors: true``), ``k``/``cutoff`` checked;
* a LAMMPS dump: every selected frame goes through the frame pipeline
  (:func:`quests_hpc.parallel.frame_pipeline.run_frame`, distributed descriptors);
* anything ASE reads: large frames through the same pipeline, small frames dealt in
  contiguous blocks of frames to the ranks.

Every rank ends with some reference rows and their numbers in the (frame, atom id) order,
whatever the number of ranks.  :func:`load_reference` then builds the
:class:`~quests_hpc.parallel.shared_reference.SharedReference`:

* ``"shared"`` (one copy per node): the rows are gathered to rank 0 in that order and
  copied into the node's shared window;
* ``"sharded"`` (over the memory budget): the rows are exchanged once into contiguous
  blocks of that order, rank ``r`` holding rows ``[r n/P, (r+1) n/P)``, and never meet on
  one rank.

So the reference rows, and everything computed from them, do not depend on the number
of ranks.  All functions are collective.
"""

from dataclasses import replace

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..parallel.frame_pipeline import run_frame
from ..parallel.shared_reference import SharedReference
from ..results.reader import descriptor_rows
from .sources import InputSource, detect_format

#: Frames of ASE references at least this large are computed by the frame pipeline.
PIPELINE_MIN_ATOMS = 20000


def _balanced_blocks(counts, parts):
    """Contiguous blocks of items with about equal total ``counts``: block bounds."""
    c = np.concatenate([[0], np.cumsum(counts)])
    targets = c[-1] * np.arange(parts + 1) / parts
    b = np.searchsorted(c, targets, side="left")
    b[0], b[-1] = 0, len(counts)
    return np.maximum.accumulate(b)


def load_reference(comm, spec, params, layout="auto", memory_gb=None):
    """The reference ``spec`` as a :class:`SharedReference`, and its description.

    Parameters
    ----------
    comm : mpi4py communicator
    spec : quests_hpc.campaign.model.Source
        The reference entry (``name``, ``path``, ``frames``, ``format`` ...).
    params : quests_hpc.parallel.frame_pipeline.FrameRequest
        ``k``, ``cutoff`` and ``balance`` are used.
    layout : {"auto", "shared", "sharded"}
    memory_gb : float, optional
        Memory per node the reference may take; above it ``"auto"`` shards.

    Returns
    -------
    reference : SharedReference
    info : dict
        ``n_environments``, ``n_frames``, ``format`` (same on every rank).
    """
    budget = None if memory_gb is None else int(float(memory_gb) * 1e9)
    path = spec.paths[0]
    fmt = detect_format(path, spec.format)
    if fmt == "descriptors":
        return _descriptor_reference(comm, spec, path, params, layout, budget)
    src = InputSource(replace(spec, format=fmt), comm)
    try:
        sel = _selected(src, spec, params.species)
        n = int(src.natoms[sel].sum())
        width = params.width
        chosen = SharedReference._choose(layout, n * width * 8, budget)
        rows, index = _local_rows(comm, src, sel, params, spec)
    finally:
        src.close()
    info = {"n_environments": n, "n_frames": len(sel), "format": src.format}
    if chosen == "sharded":
        local = _contiguous_block(comm, rows, index, n)
        return SharedReference.from_shards(comm, local, layout="sharded"), info
    x = _gather_in_order(comm, rows, index)
    return SharedReference.from_root(comm, x, root=0, layout="shared"), info


def _selected(src, spec, species=None):
    """The selected frames of a reference (none, or none with atoms, is refused; so are
    dump frames naming no elements in a run with species)."""
    sel = src.select(spec.frames)
    unnamed = src.unnamed_elements(sel, species)
    if unnamed:
        raise QuestsInputError(f"reference {spec.name}: {unnamed}")
    if not sel:
        raise QuestsInputError(f"reference {spec.name}: {src.files[0]}: the frame selection "
                               f"{spec.frames!r} selects no frame (the file holds "
                               f"{len(src)} complete frames)")
    require_environments(src, sel, spec.frames, f"reference {spec.name}")
    return sel


def _local_rows(comm, src, sel, params, spec):
    """This rank's descriptor rows of the selected frames and their row numbers in the
    (frame, atom id) order of the whole reference (collective)."""
    from .budget import check_source

    big = [i for i in sel if src.format == "lammps-dump" or src.natoms[i] >= PIPELINE_MIN_ATOMS
           and comm.size > 1]
    small = [i for i in sel if i not in set(big)]
    label = f"reference {spec.name}"
    for part, serial in ((big, False), (small, True)):  # before any descriptor
        check_source(comm, src, part, params, serial, label, keep_descriptors=True)
    offsets = dict(zip(sel, np.concatenate([[0], np.cumsum(src.natoms[sel])[:-1]]).tolist()))
    request = replace(params, bandwidths=(), delta_entropy=False, descriptors=True,
                      entropy=False, positions=False)
    rows, index = [], []
    for i in big:  # distributed: this rank's block of the id-sorted frame
        out = run_frame(comm, src, i, [], request)
        first = int(pcomm.even_bounds(int(src.natoms[i]), comm.size)[comm.rank])
        rows.append(out.descriptors)
        index.append(offsets[i] + first + np.arange(len(out.descriptors), dtype=np.int64))
    if small:
        r, ix = _small_frames(comm, src, small, params, offsets)
        rows.append(r)
        index.append(ix)
    if not rows:
        return np.empty((0, params.width)), np.empty(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(index)


def _gather_in_order(comm, rows, index):
    """All rows on rank 0 in the order of their numbers (None elsewhere)."""
    x = pcomm.gather_rows(rows, comm, root=0)
    ix = pcomm.gather_rows(index, comm, root=0)
    if comm.rank != 0:
        return None
    return x[np.argsort(ix, kind="stable")]


def _contiguous_block(comm, rows, index, n):
    """Rows ``[r n/P, (r+1) n/P)`` of the reference on rank ``r`` (one exchange): the
    sharded layout, the same rows on each rank whatever the frames' decomposition."""
    bounds = pcomm.even_bounds(n, comm.size)
    dest = np.searchsorted(bounds[1:-1], index, side="right").astype(np.int64)
    got_rows, got_index = pcomm.redistribute([rows, index], dest, comm)
    return np.ascontiguousarray(got_rows[np.argsort(got_index, kind="stable")])


def require_environments(src, sel, selection, label):
    """Refuse a data set whose selected frames hold no atom (dH would be +inf everywhere,
    H and D undefined).  ``src`` an InputSource, ``sel`` its selected frame numbers."""
    if int(src.natoms[sel].sum()) > 0:
        return
    files = sorted({src.frame_file[i] for i in sel})
    raise QuestsInputError(
        f"{label}: {', '.join(files)}: the frame selection {selection!r} ({len(sel)} frame(s): "
        f"{', '.join(str(int(i)) for i in sel[:5])}{' ...' if len(sel) > 5 else ''}) holds 0 "
        "atoms; a data set needs at least one environment")


def _descriptor_reference(comm, spec, path, params, layout, budget):
    """A descriptor file as a reference: read on rank 0 for the shared layout; in the
    sharded layout every rank reads its rows ``[r n/P, (r+1) n/P)`` of the file."""
    k, cutoff, species = params.k, params.cutoff, params.species
    label = f"reference {spec.name}"
    err, n = None, None
    if comm.rank == 0:  # the file's row count (no data read)
        try:
            _, n = descriptor_rows(path, k, cutoff, rows=slice(0, 0), species=species)
            if n[0] == 0:
                err = QuestsInputError(f"{label}: {path}: the descriptor file holds 0 "
                                       "environments; a reference needs at least one")
        except QuestsInputError as exc:
            err = QuestsInputError(f"{label}: {exc}")
        except Exception as exc:  # noqa: BLE001 - whatever fails here reaches every rank
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    n_rows, n_frames = pcomm.bcast(n, comm)
    info = {"n_environments": n_rows, "n_frames": n_frames, "format": "descriptors"}
    chosen = SharedReference._choose(layout, n_rows * params.width * 8, budget)
    x, err = None, None
    if chosen == "sharded":
        lo, hi = (int(v) for v in pcomm.even_bounds(n_rows, comm.size)[comm.rank:comm.rank + 2])
        try:
            x, _ = descriptor_rows(path, k, cutoff, rows=slice(lo, hi), species=species)
        except QuestsInputError as exc:
            err = QuestsInputError(f"{label}: {exc}")
        except Exception as exc:  # noqa: BLE001 - whatever fails here reaches every rank
            err = exc
        pcomm.raise_if_any(err, comm, prefix=False)
        return SharedReference.from_shards(comm, x, layout="sharded"), info
    if comm.rank == 0:
        try:
            x, _ = descriptor_rows(path, k, cutoff, species=species)
        except QuestsInputError as exc:
            err = QuestsInputError(f"{label}: {exc}")
        except Exception as exc:  # noqa: BLE001 - whatever fails here reaches every rank
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    return SharedReference.from_root(comm, x, root=0, layout="shared"), info


def _small_frames(comm, src, frames, params, offsets):
    """Descriptors of small ASE frames: contiguous blocks of frames per rank (collective).

    Returns this rank's rows and their row numbers in the whole reference.
    """
    from ..multicomponent import structure_descriptors

    bounds = _balanced_blocks(src.natoms[frames], comm.size)
    blocks = None
    if comm.rank == 0:  # rank 0 holds the atoms; every rank gets its block of frames
        blocks = [[(i, a.get_positions(), a.cell.array.copy(), a.pbc.copy(),
                    a.get_chemical_symbols())
                   for i, a in ((i, src.atoms(i)) for i in frames[bounds[r]:bounds[r + 1]])]
                  for r in range(comm.size)]
    mine = pcomm.scatter(blocks, comm, root=0)
    err, rows, index = None, [], []
    try:
        for i, pos, cell, pbc, symbols in mine:
            rows.append(structure_descriptors(
                pos, cell, pbc, params.k, params.cutoff, symbols, params.species,
                params.ignore_species, where=src.where(i)))
            index.append(offsets[i] + np.arange(len(pos), dtype=np.int64))
    except QuestsInputError as exc:
        err = QuestsInputError(exc if str(exc).startswith(src.files[0]) else
                               f"{src.files[0]}: {exc}")
    pcomm.raise_if_any(err, comm, prefix=False)
    if not rows:
        return np.empty((0, params.width)), np.empty(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(index)
