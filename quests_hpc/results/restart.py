"""Restart bookkeeping: what an existing results file holds, and whether it may be resumed.

The protocol (carried out by :mod:`quests_hpc.campaign.runner`):

1. A new file is built under a temporary name (``OUT.h5.partial``): every group, dataset
   and attribute of the whole campaign is created, flushed and closed, then the file is
   renamed to ``OUT.h5`` (an atomic rename).  So ``OUT.h5`` always has its complete
   structure; a leftover ``.partial`` file (killed during set-up) is simply replaced.
2. A frame is written as: data into its pre-allocated datasets and summary row, flush,
   fixed-size attributes (timestep, cell, ...), flush, **then** ``complete = True``, flush
   (and ``fsync``).  Only raw data and in-place attribute values change after step 1, so
   a kill at any moment leaves a readable file whose ``complete`` flags are true only for
   frames whose data are on disk.
3. A rerun compares the file's fingerprints (campaign and inputs) with the current ones
   (:func:`inspect_output`): equal -> resume, recomputing only frames not marked
   complete; different -> refused unless the user asks to overwrite.
4. Inputs are identified by size and a *sampled* hash (multi-GB dumps), so an edit in
   bytes the samples miss would go unnoticed.  Each frame therefore stores the content
   hash of its own bytes (:func:`frame_hash`, attribute ``content_sha256``) when it is
   computed (compressed dumps, whose frames would have to be decompressed a second time,
   and ASE inputs are identified by a hash of the whole file instead); when an input's
   size, modification time or inode change time differs from the recorded one (a same-size
   edit with the modification time put back still changes the latter), every complete
   frame of that input is hashed again before it is reused, and a frame whose bytes
   changed makes the file refused (as any changed input).
5. Overwriting never deletes first: with ``--overwrite`` an output that would be refused
   stays untouched while the new results are built aside (``OUT.h5.partial``, resumable
   if that run is killed too) and replaces it by an atomic rename only once the new run
   has finished.  An output that is (the same file as) an input, a reference, the
   campaign file, an index cache, or whose companions are, is refused before anything is
   touched (:func:`output_conflicts`).  Runs hold :mod:`~quests_hpc.results.lock` on
   the output for their whole duration.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field

from ..errors import QuestsInputError
from ..parallel.comm import allgather, raise_if_any, require_comm
from . import layout as L

PARTIAL_SUFFIX = ".partial"
_BLOCK = 1 << 16
_SAMPLES = 16
#: Bytes per block of :func:`frame_hash` (blocks are hashed in parallel over the ranks).
FRAME_HASH_BLOCK = 1 << 22


def partial_path(path):
    """Temporary name of a file whose structure is being created."""
    return str(path) + PARTIAL_SUFFIX


def file_identity(path, full=False):
    """Size and a content hash of a file.

    Parameters
    ----------
    path : str
    full : bool
        Hash the whole file (references: exact identity).  Otherwise hash 16 blocks of
        64 KiB spread evenly over the file plus its last block (inputs: multi-GB dumps are
        identified by about 1 MB of reads).

    Returns
    -------
    dict
        ``{"path", "size", "sha256", "hashed": "full" | "sampled", "mtime_ns", "ctime_ns"}``
        (the times are not part of any fingerprint: they only decide whether the frames of
        a sampled file are verified again at a resume).
    """
    st = os.stat(path)
    size = st.st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if full or size <= _BLOCK * (_SAMPLES + 1):
            for blk in iter(lambda: f.read(1 << 22), b""):
                h.update(blk)
            how = "full"
        else:
            for i in range(_SAMPLES):
                f.seek((size - _BLOCK) * i // (_SAMPLES - 1))
                h.update(f.read(_BLOCK))
            f.seek(size - _BLOCK)
            h.update(f.read(_BLOCK))
            how = "sampled"
    h.update(str(size).encode())
    return {"path": str(path), "size": int(size), "sha256": h.hexdigest(), "hashed": how,
            "mtime_ns": int(st.st_mtime_ns), "ctime_ns": int(st.st_ctime_ns)}


def stat_changed(old, new):
    """Whether a file may have changed since identity ``old`` was taken (size or times)."""
    return any(old.get(k) != new.get(k) for k in ("size", "mtime_ns", "ctime_ns"))


def fingerprint(obj):
    """SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class ExistingOutput:
    """What :func:`inspect_output` found.

    Attributes
    ----------
    status : {"new", "resume", "refuse"}
    complete : list of str
        Frames marked complete (``"resume"``).
    total : int
        Frames in the file.
    reason : str
        Why a file is refused, or a note.
    flags : dict
        ``overlap``, ``learning_curve``, ``campaign``: whether those parts are complete.
    frame_hashes : dict
        Frame name -> stored content hash (complete frames; ``""`` when none was stored).
    inputs : list of dict
        The file identities recorded in the file.
    """

    status: str
    complete: list = field(default_factory=list)
    total: int = 0
    reason: str = ""
    flags: dict = field(default_factory=dict)
    frame_hashes: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)


def _changes(old_inputs, new_inputs):
    """Which input/reference files differ between two identity lists (matched by order)."""
    out = []
    for i in range(max(len(old_inputs), len(new_inputs))):
        if i >= len(old_inputs):
            out.append(f"{new_inputs[i]['path']} is new")
        elif i >= len(new_inputs):
            out.append(f"{old_inputs[i]['path']} is no longer used")
        else:
            o, n = old_inputs[i], new_inputs[i]
            if o["sha256"] != n["sha256"] or o["size"] != n["size"]:
                out.append(f"{n['path']} changed (size {o['size']} -> {n['size']} bytes)")
    return out


def inspect_output(path, expect):
    """Decide whether an existing results file can be resumed by this campaign.

    Parameters
    ----------
    path : str
    expect : dict
        ``campaign_fingerprint``, ``inputs_fingerprint`` and ``inputs`` (the list of file
        identities) of the campaign about to run.

    Returns
    -------
    ExistingOutput
    """
    import h5py

    if not os.path.exists(path):
        return ExistingOutput("new")
    if os.path.isdir(path):
        raise QuestsInputError(f"output {path} is a directory; name a file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise QuestsInputError(
                f"output {path} is open for writing in another program (HDF5: {exc}); close "
                "it there and rerun") from None
        return ExistingOutput("refuse", reason=(
            f"{path} exists but is not a readable HDF5 file ({exc})"))
    with f:
        a = f.attrs
        if a.get("format") != L.FORMAT:
            return ExistingOutput("refuse", reason=(
                f"{path} exists and is not a quests-hpc results file"))
        if not bool(a.get("layout_complete", False)):
            return ExistingOutput("new", reason="structure was never completed")
        problems = []
        try:
            old = json.loads(a.get("inputs", "[]"))
        except ValueError:
            old = []
        if a.get("campaign_fingerprint") != expect["campaign_fingerprint"]:
            problems.append("the campaign (YAML or command-line parameters) differs from the "
                            "one that wrote it")
        if a.get("inputs_fingerprint") != expect["inputs_fingerprint"]:
            detail = _changes(old, expect["inputs"]) or ["input files differ"]
            problems.append("inputs changed: " + "; ".join(detail))
        if problems:
            return ExistingOutput("refuse", reason=(
                f"{path} was written by a different campaign: " + "; ".join(problems)))
        from .reader import complete_frames, frame_names

        done = complete_frames(f)
        flags = {
            "overlap": bool(f[L.SUMMARY_OVERLAP].attrs["complete"]) if L.SUMMARY_OVERLAP in f
            else False,
            "learning_curve": bool(f[L.LEARNING_CURVE].attrs["complete"])
            if L.LEARNING_CURVE in f else False,
            "campaign": bool(a.get("complete", False)),
        }
        hashes = {n: _text(f[L.FRAMES][n].attrs.get(L.FRAME_HASH_ATTR, b"")) for n in done}
        return ExistingOutput("resume", complete=done, total=len(frame_names(f)), flags=flags,
                              frame_hashes=hashes, inputs=old)


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(getattr(v, "item", lambda: v)())


def check_output_dir(path):
    """Problems with writing ``path`` (a list of messages; empty when writable).

    Tries to create (and removes) a file in the directory: ``os.access`` is not enough for
    root, read-only mounts or network file systems.
    """
    d = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(d):
        return [f"output directory {d} does not exist"]
    probe = os.path.join(d, f".quests-hpc-write-test-{os.getpid()}")
    try:
        with open(probe, "wb") as fh:
            fh.write(b"x")
    except OSError as exc:
        return [f"output directory {d} is not writable ({exc.strerror or exc})"]
    finally:  # created but not written (disk full, quota): leave no stray probe behind
        try:
            os.remove(probe)
        except OSError:
            pass
    if os.path.isdir(path):
        return [f"output {path} is a directory; name a file"]
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return [f"output file {path} is not writable"]
    return []


def output_companions(path):
    """The files a run writes for output ``path``: itself, its ``.partial``, its locks."""
    from .lock import lock_path

    lock = lock_path(os.path.realpath(path))  # see lock.output_lock
    return [str(path), partial_path(path), lock, lock + ".takeover"]


def output_conflicts(path, protected):
    """Why the run may not write ``path``: it (or a companion) is a protected file.

    "Is" means the same file: the same resolved path (symlinks followed; also for files
    not there yet, such as an index cache still to be written) or the same inode (hard
    links).  One ``stat`` per protected file at most (long dump sequences).

    Parameters
    ----------
    path : str
        The output file.
    protected : list of (str, str)
        ``(file, what it is)``: inputs, references, the campaign file, index caches.

    Returns
    -------
    list of str
        One message per conflict (empty: no conflict).  Nothing is advised about
        ``--overwrite``: a run never writes over these files.
    """
    by_real, by_inode = {}, {}
    for comp in output_companions(path):
        real = os.path.realpath(comp)
        by_real.setdefault(real, comp)
        try:
            st = os.stat(real)
            by_inode.setdefault((st.st_dev, st.st_ino), comp)
        except OSError:
            pass
    out, seen = [], set()
    for p, label in protected:
        real = os.path.realpath(p)
        comp = by_real.get(real)
        if comp is None and by_inode:
            try:
                st = os.stat(real)
                comp = by_inode.get((st.st_dev, st.st_ino))
            except OSError:
                pass
        if comp is None or comp in seen:
            continue
        seen.add(comp)
        if comp == str(path):
            out.append(f"output {path} is {label} ({p}); a run never writes over its "
                       "inputs: choose another output file")
        else:
            out.append(f"output {path}: the run would write {comp}, which is {label} "
                       f"({p}); choose another output file")
    return out


def frame_hash(comm, path, start, end):
    """Content hash of bytes ``[start, end)`` of the uncompressed file ``path`` (collective
    over ``comm``; ``MPI.COMM_SELF`` for a serial run).

    Blocks of :data:`FRAME_HASH_BLOCK` bytes are hashed (SHA-256) round-robin over the
    ranks and the block digests hashed together with the length, so the value does not
    depend on the rank count.

    Returns
    -------
    str
        Hex digest (64 characters).
    """
    rank, size = require_comm(comm, "frame_hash").rank, comm.size
    nblk = -(-(end - start) // FRAME_HASH_BLOCK)
    mine, err = {}, None
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            for j in range(rank, nblk, size):
                a = start + j * FRAME_HASH_BLOCK
                data = os.pread(fd, min(FRAME_HASH_BLOCK, end - a), a)
                mine[j] = hashlib.sha256(data).digest()
        finally:
            os.close(fd)
    except OSError as exc:
        err = QuestsInputError(f"{path}: cannot read bytes {start}-{end} to verify them "
                               f"({exc.strerror or exc})")
    raise_if_any(err, comm, prefix=False)
    digests = {}
    for m in allgather(mine, comm):
        digests.update(m)
    h = hashlib.sha256()
    for j in range(nblk):
        h.update(digests[j])
    h.update(str(int(end - start)).encode())
    return h.hexdigest()
