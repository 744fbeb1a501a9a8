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
"""

import hashlib
import json
import os
from dataclasses import dataclass, field

from ..errors import QuestsInputError
from . import layout as L

PARTIAL_SUFFIX = ".partial"
_BLOCK = 1 << 16
_SAMPLES = 16


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
        ``{"path", "size", "sha256", "hashed": "full" | "sampled"}``
    """
    size = os.path.getsize(path)
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
    return {"path": str(path), "size": int(size), "sha256": h.hexdigest(), "hashed": how}


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
    """

    status: str
    complete: list = field(default_factory=list)
    total: int = 0
    reason: str = ""
    flags: dict = field(default_factory=dict)


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
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
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
        if a.get("campaign_fingerprint") != expect["campaign_fingerprint"]:
            problems.append("the campaign (YAML or command-line parameters) differs from the "
                            "one that wrote it")
        if a.get("inputs_fingerprint") != expect["inputs_fingerprint"]:
            try:
                old = json.loads(a.get("inputs", "[]"))
            except ValueError:
                old = []
            detail = _changes(old, expect["inputs"]) or ["input files differ"]
            problems.append("inputs changed: " + "; ".join(detail))
        if problems:
            return ExistingOutput("refuse", reason=(
                f"{path} was written by a different campaign: " + "; ".join(problems)))
        from .reader import complete_frames, frame_names

        done = complete_frames(f)
        flags = {
            "overlap": bool(f["summary/overlap"].attrs["complete"]) if "summary/overlap" in f
            else False,
            "learning_curve": bool(f["learning_curve"].attrs["complete"])
            if "learning_curve" in f else False,
            "campaign": bool(a.get("complete", False)),
        }
        return ExistingOutput("resume", complete=done, total=len(frame_names(f)), flags=flags)


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
        os.remove(probe)
    except OSError as exc:
        return [f"output directory {d} is not writable ({exc.strerror or exc})"]
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return [f"output file {path} is not writable"]
    return []


def remove_output(path):
    """Delete an output file and its ``.partial`` companion (for overwrite)."""
    for p in (str(path), partial_path(path)):
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise QuestsInputError(f"cannot remove {p} to overwrite it: {exc}") from None
