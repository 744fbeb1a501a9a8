"""Reference (training) sets for a campaign: descriptors computed or loaded once, shared.

A reference is any of

* a results file with descriptors (``quests-hpc descriptors ... -o ref.h5`` or a campaign
  with ``measures.descriptors: true``): loaded on rank 0, ``k``/``cutoff`` checked;
* a LAMMPS dump: every selected frame goes through the MPI pipeline (distributed
  descriptors), rows gathered to rank 0 in id order;
* anything ASE reads: frames read on rank 0 and dealt in contiguous blocks of frames to
  the ranks, whose descriptors are gathered back in frame order.

So the reference rows are always in (frame, atom id) order whatever the number of ranks,
and dH does not depend on it.  The array is then shared with
:class:`quests_hpc.parallel.shared_reference.SharedReference` (one copy per node, or
sharded over the ranks above a memory budget).  All functions are collective.
"""

import numpy as np

from ..errors import QuestsInputError
from .sources import InputSource, detect_format

#: Frames of ASE references at least this large are computed by the MPI pipeline.
PIPELINE_MIN_ATOMS = 20000


def _balanced_blocks(counts, parts):
    """Contiguous blocks of items with about equal total ``counts``: block bounds."""
    c = np.concatenate([[0], np.cumsum(counts)])
    targets = c[-1] * np.arange(parts + 1) / parts
    b = np.searchsorted(c, targets, side="left")
    b[0], b[-1] = 0, len(counts)
    return np.maximum.accumulate(b)


def reference_descriptors(comm, spec, params):
    """Descriptors of a reference on rank 0 (None elsewhere) and its description.

    Parameters
    ----------
    comm : mpi4py communicator
    spec : dict
        A normalised ``references`` entry: ``name``, ``path``, ``frames``, ``format`` ...
    params : dict
        ``k``, ``cutoff``, ``balance``.

    Returns
    -------
    x : ndarray (n, 2k-1) on rank 0, None elsewhere
    info : dict
        ``n_environments``, ``n_frames``, ``format`` (same on every rank).
    """
    from ..parallel.comm import gather_rows

    k, cutoff = params["k"], params["cutoff"]
    path = spec["path"][0] if isinstance(spec["path"], list) else spec["path"]
    fmt = detect_format(path, spec.get("format", "auto"))
    if fmt == "descriptors":
        x, err, n = None, None, None
        if comm.rank == 0:
            try:
                x, n = _descriptor_file(path, k, cutoff)
            except QuestsInputError as exc:
                err = str(exc)
        if err is None and n is not None and n[0] == 0:
            err = (f"{path}: the descriptor file holds 0 environments; a reference needs at "
                   "least one")
        err, n = comm.bcast((err, n), root=0)
        if err:
            raise QuestsInputError(f"reference {spec['name']}: {err}")
        return x, {"n_environments": n[0], "n_frames": n[1], "format": fmt}

    src = InputSource(dict(spec, format=fmt), comm)
    try:
        sel = src.select(spec.get("frames", "all"))
        if not sel:
            raise QuestsInputError(f"reference {spec['name']}: {src.files[0]}: the frame selection "
                                   f"{spec.get('frames')!r} selects no frame (the file holds "
                                   f"{len(src)} complete frames)")
        require_environments(src, sel, spec.get("frames", "all"), f"reference {spec['name']}")
        big = [i for i in sel if src.format == "lammps-dump" or src.natoms[i] >= PIPELINE_MIN_ATOMS
               and comm.size > 1]
        small = [i for i in sel if i not in set(big)]
        from .budget import check_source

        for part, serial in ((big, False), (small, True)):  # before any descriptor
            check_source(comm, src, part, params, serial, f"reference {spec['name']}")
        parts = {}
        from .frames import frame_descriptors_in_order

        for i in big:  # distributed: every rank computes its part, gathered in id order
            share = src.read(i)
            d, _ = frame_descriptors_in_order(comm, share, params)
            parts[i] = gather_rows(d, comm, root=0)
        if small:
            parts.update(_small_frames(comm, src, small, k, cutoff))
        x = np.concatenate([parts[i] for i in sel]) if comm.rank == 0 else None
    finally:
        src.close()
    n = int(src.natoms[sel].sum())
    return x, {"n_environments": n, "n_frames": len(sel), "format": src.format}


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


def _descriptor_file(path, k, cutoff):
    """Rows of a descriptor file: a results file (``quests-hpc descriptors``) or the
    descriptor-file format of :mod:`quests_hpc.io.reference`; ``k``/``cutoff`` checked.

    Returns ``(x, (n_rows, n_frames))``.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except OSError as exc:
        raise QuestsInputError(f"{path}: unreadable HDF5 file ({exc})") from None
    if fmt == "quests-hpc-descriptors":
        from ..io.reference import read_descriptors

        x, info = read_descriptors(path, k, cutoff)
        n_struct = len(np.unique(info["structure"])) if "structure" in info else 1
        return x, (len(x), n_struct)
    from ..results.reader import load_descriptors

    x, meta = load_descriptors(path, k, cutoff)
    return x, (len(x), len(meta["frames"]))


def _small_frames(comm, src, frames, k, cutoff):
    """Descriptors of small ASE frames: contiguous blocks of frames per rank (collective)."""
    from ..descriptors import descriptors_from_arrays
    from ..parallel.comm import gather_rows

    bounds = _balanced_blocks(src.natoms[frames], comm.size)
    # rank 0 holds the atoms; send every rank its block of frames
    mine = None
    if comm.rank == 0:
        blocks = []
        for r in range(comm.size):
            blk = []
            for i in frames[bounds[r]:bounds[r + 1]]:
                a = src._atoms[i]
                blk.append((a.get_positions(), a.cell.array.copy(), a.pbc.copy()))
            blocks.append(blk)
        mine = comm.scatter(blocks, root=0)
    else:
        mine = comm.scatter(None, root=0)
    err, rows = None, []
    try:
        for pos, cell, pbc in mine:
            rows.append(descriptors_from_arrays(pos, cell, pbc, k=k, cutoff=cutoff))
    except QuestsInputError as exc:
        err = str(exc)
    errs = [e for e in comm.allgather(err) if e]
    if errs:
        raise QuestsInputError(f"{src.files[0]}: {errs[0]}")
    local = np.concatenate(rows) if rows else np.empty((0, 2 * k - 1))
    allrows = gather_rows(local, comm, root=0)
    if comm.rank != 0:
        return {}
    out, a = {}, 0
    for i in frames:
        out[i] = allrows[a:a + int(src.natoms[i])]
        a += int(src.natoms[i])
    return out


def share_reference(comm, x, layout="auto", memory_gb=None):
    """A :class:`SharedReference` from the array on rank 0 (collective)."""
    from ..parallel.shared_reference import SharedReference

    budget = None if memory_gb is None else int(float(memory_gb) * 1e9)
    return SharedReference.from_root(comm, x, root=0, layout=layout, memory_budget=budget)
