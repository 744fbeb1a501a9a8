"""Writing results files, collectively (parallel HDF5) or through rank 0.

Two back ends, one interface (:class:`ResultsWriter`); every method is collective over
the communicator (all ranks call it, in the same order, whatever their data):

``"mpio"``
    h5py built with MPI (``h5py.get_config().mpi``): every rank opens the file with the
    ``mpio`` driver; structure and attributes are created by all ranks with identical
    values; each rank writes its own slab of rows at the offset given by an exclusive
    scan of the row counts, with collective MPI-IO transfers (ranks without rows take
    part with an empty selection).  Large slabs go in pieces of at most ``chunk_bytes``
    (same number of collective calls on every rank).
``"gather"``
    Any h5py: only rank 0 opens the file; the other ranks send their slabs to rank 0 in
    messages of at most ``chunk_bytes``, which rank 0 writes at their offsets, so rank 0
    never holds more than its own slab plus one chunk.

``"auto"`` picks ``"mpio"`` when h5py has MPI, else ``"gather"``.  Both back ends write
byte-for-byte the same data.

Crash safety: :meth:`ResultsWriter.create_structure` creates every group, dataset
(contiguous, allocated at creation) and attribute up front; afterwards only raw data are
written into place and fixed-size attributes are changed in place
(``attrs.modify``).  The order of a frame's write (data, flush, then ``complete``, flush)
is the caller's (:mod:`quests_hpc.campaign.runner`).

Errors: a failure while writing (disk full, quota, permissions) raises
:class:`ResultsIOError` on every rank, after every rank has left the collective step
(rank 0 keeps draining the chunks it is sent even after a failed write).
"""

import os

import numpy as np

from ..parallel.comm import (allgather, bcast, raise_if_any, recv_array_into, require_comm,
                             send_array)
from . import layout as L

DEFAULT_CHUNK_BYTES = 64 << 20
_TAG = 4242
BACKENDS = ("auto", "mpio", "gather")


class ResultsIOError(RuntimeError):
    """Writing the results file failed (disk full, quota, permissions, ...)."""


def h5py_has_mpi():
    """True when the installed h5py was built with MPI (parallel HDF5)."""
    import h5py

    return bool(h5py.get_config().mpi)


def choose_backend(backend="auto"):
    """Resolve ``"auto"`` to ``"mpio"`` or ``"gather"``; check that ``"mpio"`` is possible."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "mpio" if h5py_has_mpi() else "gather"
    if backend == "mpio" and not h5py_has_mpi():
        raise ValueError("backend 'mpio' needs h5py built with MPI (h5py.get_config().mpi is "
                         "False); see scripts/setup_phdf5.sh, or use backend 'gather'")
    return backend


def _fail_message(path, exc):
    msg = f"writing {path} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) or "No space" in str(exc) or "errno" in str(exc).lower():
        msg += ("; frames marked complete before this one are intact -- free space (or fix "
                "the file system) and rerun the same command to resume")
    return msg


class ResultsWriter:
    """An open results file (see the module docstring).

    Use :meth:`open`; close with :meth:`close` (or as a context manager).

    Attributes
    ----------
    path : str
    backend : {"mpio", "gather"}
    comm : mpi4py communicator (``MPI.COMM_SELF`` for a serial run)
    file : h5py.File or None
        Open on every rank (``"mpio"``) or on rank 0 only (``"gather"``).
    """

    def __init__(self, path, comm, backend, file, chunk_bytes, fsync):
        self.path = str(path)
        self.comm = comm
        self.backend = backend
        self.file = file
        self.chunk_bytes = int(chunk_bytes)
        self.fsync = bool(fsync)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path, comm, backend="auto", mode="a", chunk_bytes=DEFAULT_CHUNK_BYTES,
             fsync=True):
        """Open (``mode="a"``) or create (``mode="w"``) a results file (collective).

        Parameters
        ----------
        path : str or os.PathLike
        comm : mpi4py communicator
            ``MPI.COMM_SELF`` for a serial run.
        backend : {"auto", "mpio", "gather"}
            On one rank ``"mpio"`` is written as ``"gather"`` (the same bytes, no MPI-IO).
        mode : {"a", "w"}
        chunk_bytes : int
            Largest piece of a slab sent to rank 0 or written in one collective call.
        fsync : bool
            After each :meth:`flush`, also ask the OS to put the file on stable storage
            (``os.fsync`` on rank 0; ``MPI_File_sync`` through HDF5 with ``mpio``).
        """
        require_comm(comm, "ResultsWriter.open")
        backend = choose_backend(backend)
        if backend == "mpio" and comm.size == 1:
            backend = "gather"  # one rank: rank 0 writes the same bytes directly
        err, f = None, None
        try:
            if backend == "mpio":
                f = _open_file(path, mode, comm)
            elif comm.rank == 0:
                f = _open_file(path, mode, None)
        except Exception as exc:
            err = exc
        w = cls(path, comm, backend, f, chunk_bytes, fsync)
        w._check(err, mode="all" if backend == "mpio" else "root")
        return w

    def close(self):
        """Close the file (collective)."""
        err = None
        if self.file is not None:
            try:
                self.file.close()
            except Exception as exc:
                err = exc
            self.file = None
        self._check(err, mode="all" if self.backend == "mpio" else "root")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:  # already failing: close quietly, keep the original error
            try:
                if self.file is not None:
                    self.file.close()
            except Exception:
                pass
            self.file = None
        return False

    # ------------------------------------------------------------------ errors

    def _check(self, err, mode):
        """Collective: raise :class:`ResultsIOError` everywhere if the step failed.

        ``mode="root"``: only rank 0's error counts (it alone touched the file);
        ``mode="all"``: any rank's.
        """
        failure = None
        if err is not None:
            failure = ResultsIOError(_fail_message(self.path, err))
            failure.__cause__ = err
        raise_if_any(failure, self.comm, prefix=False, root=0 if mode == "root" else None,
                     keep=(ResultsIOError,))

    def _on_writer(self, fn):
        """Run ``fn(file)`` where the file is open (all ranks for mpio, rank 0 otherwise)."""
        err, out = None, None
        if self.file is not None:
            try:
                out = fn(self.file)
            except Exception as exc:
                err = exc
        self._check(err, mode="all" if self.backend == "mpio" else "root")
        return out

    # ------------------------------------------------------------------ structure

    def create_structure(self, plan, root_attrs):
        """Create every group, dataset and attribute of ``plan`` (collective).

        ``root_attrs`` must be identical on every rank (build on rank 0 and broadcast).
        Finishes by setting ``layout_complete = True`` after a flush.
        """

        def make(f):
            import h5py

            for k, v in root_attrs.items():
                f.attrs[k] = v
            f.attrs["layout_complete"] = False
            f.attrs["complete"] = False
            dcpl_args = _early_dcpl
            frames = f.create_group("frames")
            cols = plan.dh_columns()
            for fp in plan.frames:
                g = frames.create_group(fp.name)
                for name, (shape, dtype) in plan.frame_datasets(fp).items():
                    ds = g.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl_args())
                    if name == "delta_entropy":
                        ds.attrs["columns"] = np.array(cols, dtype=h5py.string_dtype())
                g.attrs["input"] = fp.input
                g.attrs["source"] = f"{fp.source_path}#{fp.source_index}"
                g.attrs["source_path"] = fp.source_path
                g.attrs["source_index"] = np.int64(fp.source_index)
                g.attrs["natoms"] = np.int64(fp.natoms)
                g.attrs["timestep"] = np.int64(fp.timestep)
                g.attrs["cell"] = np.zeros((3, 3))
                g.attrs["pbc"] = np.zeros(3, dtype=bool)
                g.attrs["wall_time"] = np.float64(np.nan)
                g.attrs["mpi_size"] = np.int64(0)
                g.attrs[L.FRAME_HASH_ATTR] = np.array(b"", dtype="S64")
                g.attrs["complete"] = False
            s = f.create_group(L.SUMMARY_FRAMES)
            s.attrs["references"] = np.array([r["name"] for r in plan.references],
                                             dtype=h5py.string_dtype())
            s.attrs["bandwidths"] = np.asarray(plan.bandwidths, dtype=np.float64)
            width = max([len(fp.name) for fp in plan.frames] + [1])
            s.create_dataset("frame", data=np.array([fp.name for fp in plan.frames],
                                                    dtype=f"S{width}"))
            iw = max([len(fp.input) for fp in plan.frames] + [1])
            s.create_dataset("input", data=np.array([fp.input for fp in plan.frames],
                                                    dtype=f"S{iw}"))
            _make_columns(s, L.summary_columns(plan))
            if plan.overlap and plan.references:
                o = f.create_group(L.SUMMARY_OVERLAP)
                o.attrs["inputs"] = np.array(plan.inputs, dtype=h5py.string_dtype())
                o.attrs["references"] = s.attrs["references"]
                o.attrs["bandwidths"] = s.attrs["bandwidths"]
                o.attrs["complete"] = False
                _make_columns(o, L.overlap_columns(plan))
            if plan.learning_curve:
                lc = plan.learning_curve
                g = f.create_group("learning_curve")
                g.attrs["dataset"] = str(lc["dataset"])
                g.attrs["seed"] = np.int64(lc["seed"])
                g.attrs["repeats"] = np.int64(lc["repeats"])
                g.attrs["drop"] = np.asarray(lc["drop"], dtype=np.int64)
                g.attrs["bandwidths"] = s.attrs["bandwidths"]
                g.attrs["model"] = "H(N) = a - b exp(-c (log N)^2); fit columns a, b, c"
                g.attrs["complete"] = False
                _make_columns(g, L.learning_curve_columns(plan))
                g["sizes"][...] = np.asarray(lc["sizes"], dtype=np.int64)
            f.flush()

        self._on_writer(make)
        self.flush()
        self.set_attrs("/", {"layout_complete": True})
        self.flush()

    # ------------------------------------------------------------------ data

    def write_slab(self, dset, local, offset=None):
        """Write this rank's rows ``local`` into dataset ``dset`` (collective).

        Parameters
        ----------
        dset : str
            Path of the dataset.
        local : ndarray, shape (n_local, ...)
            This rank's rows (may be empty); rows of rank ``r`` go after those of ranks
            ``< r`` (an exclusive scan of the counts), unless ``offset`` is given.
        offset : int, optional
            First row of this rank's slab.
        """
        local = np.ascontiguousarray(local)
        counts = allgather((len(local), local.shape[1:], local.dtype.str, offset), self.comm)
        n = np.array([c[0] for c in counts], dtype=np.int64)
        offs = np.concatenate([[0], np.cumsum(n)[:-1]])
        if any(c[3] is not None for c in counts):
            offs = np.array([c[3] for c in counts], dtype=np.int64)
        if not n.sum():
            return  # nothing to write (a frame without atoms): no HDF5 call on any rank
        if self.backend == "mpio":
            self._write_mpio(dset, local, int(offs[self.comm.rank]), n)
        else:
            self._write_gather(dset, local, counts, n, offs)

    def _write_gather(self, dset, local, counts, n, offs):
        comm = self.comm
        # 1. rank 0 checks the shapes (so nobody sends what will not be received) and
        #    tells everyone the dataset's row type, which fixes the chunk size
        err, meta = None, None
        if comm.rank == 0:
            try:
                ds = self.file[dset]
                for r, (cnt, tail, _, _) in enumerate(counts):
                    if cnt and tuple(tail) != ds.shape[1:]:
                        raise ValueError(f"rank {r} rows have shape {tail}, dataset {dset} "
                                         f"{ds.shape[1:]}")
                    if cnt and offs[r] + cnt > ds.shape[0]:
                        raise ValueError(f"rank {r} rows [{offs[r]}, {offs[r] + cnt}) exceed "
                                         f"dataset {dset} of {ds.shape[0]} rows")
                meta = (ds.dtype.str, ds.shape[1:])
            except Exception as exc:
                err = exc
        self._check(err, mode="root")
        dtype, tail = bcast(meta, comm, root=0)
        dtype = np.dtype(dtype)
        local = np.ascontiguousarray(local, dtype=dtype)
        width = max(1, int(np.prod(tail, dtype=np.int64)) * dtype.itemsize)
        rows = max(1, self.chunk_bytes // width)
        # 2. transfer in bounded chunks; rank 0 writes (or, after a failure, drains)
        if comm.rank == 0:
            ds = self.file[dset]
            try:
                for a in range(0, len(local), rows):
                    m = min(rows, len(local) - a)
                    ds[offs[0] + a: offs[0] + a + m] = local[a:a + m]
            except Exception as exc:
                err = exc
            for r in range(1, comm.size):
                if not n[r]:
                    continue
                buf = np.empty((min(rows, int(n[r])),) + tuple(tail), dtype=dtype)
                for a in range(0, int(n[r]), rows):
                    m = min(rows, int(n[r]) - a)
                    recv_array_into(buf[:m], r, comm, tag=_TAG)
                    if err is None:
                        try:
                            ds[offs[r] + a: offs[r] + a + m] = buf[:m]
                        except Exception as exc:
                            err = exc
        else:
            for a in range(0, len(local), rows):
                send_array(local[a:a + rows], 0, comm, tag=_TAG)
        self._check(err, mode="root")

    def _write_mpio(self, dset, local, offset, n):
        import h5py

        err = None
        try:
            ds = self.file[dset]
            tail = ds.shape[1:]
            width = int(np.prod(tail, dtype=np.int64)) * ds.dtype.itemsize
            rows = max(1, self.chunk_bytes // max(1, width))
            calls = max(1, int(max(-(-int(c) // rows) for c in n)))
            dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
            dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
            data = np.ascontiguousarray(local, dtype=ds.dtype)
            for c in range(calls):
                a = c * rows
                m = max(0, min(rows, len(data) - a))
                fspace = ds.id.get_space()
                if m:
                    fspace.select_hyperslab((offset + a,) + (0,) * len(tail), (m,) + tail)
                    piece = data[a:a + m]
                    mspace = h5py.h5s.create_simple(piece.shape)
                else:
                    fspace.select_none()
                    piece = np.zeros((1,) + tail, dtype=ds.dtype)
                    mspace = h5py.h5s.create_simple(piece.shape)
                    mspace.select_none()
                ds.id.write(mspace, fspace, piece, dxpl=dxpl)
        except Exception as exc:
            err = exc
        self._check(err, mode="all")

    def write_values(self, rows):
        """Write small values given on rank 0 (collective): ``[(dset, index, value), ...]``.

        For summary tables: every rank opens the datasets rank 0 names, rank 0 alone writes
        (independent I/O).  ``index`` may be ``Ellipsis`` for a whole dataset.  The rows
        passed on other ranks are ignored.
        """
        names = bcast([r[0] for r in rows] if self.comm.rank == 0 else None, self.comm, root=0)

        def put(f):
            dsets = [f[n] for n in names]
            if self.comm.rank == 0:
                for ds, (_, index, value) in zip(dsets, rows):
                    ds[index] = value

        self._on_writer(put)

    def write_value(self, dset, index, value):
        """Write one value given on rank 0 at ``dset[index]`` (collective)."""
        self.write_values([(dset, index, value)])

    def set_attrs(self, obj, attrs):
        """Change existing fixed-size attributes of ``obj`` in place (collective).

        The values must be identical on every rank (broadcast them first).
        """

        def put(f):
            a = f[obj].attrs
            for k, v in attrs.items():
                a.modify(k, v)

        self._on_writer(put)

    def flush(self):
        """Flush HDF5 buffers to the file (and to stable storage with ``fsync``)."""

        def fl(f):
            f.flush()
            if self.fsync and self.backend == "gather":
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

        self._on_writer(fl)


def _open_file(path, mode, comm):
    """``h5py.File`` with the raw-data sieve buffer off (``mpio`` on ``comm`` unless None).

    HDF5 buffers small writes to contiguous datasets in a "sieve" buffer that is written
    when the dataset is closed -- where h5py ignores errors.  A full disk could then go
    unnoticed and a frame be marked complete without its data; with no sieve buffer every
    write reaches the file (or fails) in the call that makes it.
    """
    import h5py

    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    fapl.set_sieve_buf_size(0)
    if comm is not None:
        from mpi4py import MPI

        fapl.set_fapl_mpio(comm, MPI.INFO_NULL)
    name = os.fsencode(os.fspath(path))
    if mode == "w":
        fid = h5py.h5f.create(name, h5py.h5f.ACC_TRUNC, fapl=fapl)
    elif mode == "a":
        fid = h5py.h5f.open(name, h5py.h5f.ACC_RDWR, fapl=fapl)
    else:
        raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
    return h5py.File(fid)


def _early_dcpl():
    """Dataset creation properties: contiguous, allocated at creation, never filled."""
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def _make_columns(group, columns):
    """Small table columns, filled with their placeholder at creation."""
    for name, (shape, dtype, fill) in columns.items():
        group.create_dataset(name, data=np.full(shape, fill, dtype=dtype))
