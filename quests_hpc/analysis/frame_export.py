"""Per-frame files of a results file for OVITO: dH and cluster labels per atom.

:func:`export_results` (collective) writes one LAMMPS dump or extended XYZ file per
complete frame with :func:`quests_hpc.export.export_frame`, after checking that it
replaces no file it did not write itself: ``.quests-hpc-export.json`` in the directory
records which results file each exported file came from.
"""

import json
import os

from ..errors import QuestsInputError
from ..export import export_frame
from ..parallel import comm as pcomm
from ..results.writer import ResultsIOError
from . import results_io as rio
from .common import root_call

#: In an export directory: which results file each exported file was written from.
EXPORT_MANIFEST = ".quests-hpc-export.json"


def export_results(path, directory, *, comm, frames=None, fmt="lammps-dump", compress=True,
                   column=None, elements=None):
    """One file per frame with per-atom ``dH`` and ``cluster`` columns (collective).

    Returns the list of files written (on every rank).
    """
    names = pcomm.bcast(root_call(comm, rio.analysed_frames, path, frames), comm, root=0)
    root_call(comm, _make_export_dir, directory)
    ext = (".lammpstrj" if fmt == "lammps-dump" else ".xyz") + (".gz" if compress else "")
    io_error = root_call(comm, _claim_export_files, path, directory, [n + ext for n in names])
    # a full disk is not bad input: exit status 1, on every rank
    pcomm.raise_if_any(ResultsIOError(io_error) if io_error else None, comm, prefix=False,
                       root=0, keep=(ResultsIOError,))
    written = []
    for name in names:
        share = rio.read_frame_share(path, name, comm, column)
        cols = {"dH": share["dh"]}
        lab = rio.read_frame_labels(path, name, share)
        if lab is not None:
            cols["cluster"] = lab
        p = os.path.join(directory, name + ext)
        export_frame(p, share["ids"], share["positions"], share["cell"], share["pbc"],
                     columns=cols, types=share["types"], elements=elements,
                     timestep=share["timestep"], fmt=fmt, comm=comm)
        written.append(p)
    return written


def _make_export_dir(directory):
    """Create the export directory (rank 0); a file in its place or an OSError is bad input."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise QuestsInputError(f"export directory {directory} exists and is not a directory; "
                               "name a directory (it is created if missing)")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise QuestsInputError(f"cannot create the export directory {directory}: "
                               f"{exc.strerror or exc}") from None


def _claim_export_files(path, directory, files):
    """Refuse to replace files that were not exported from the results file ``path``
    (rank 0, before any file is written); then record ``files`` as exported from it.
    Returns None, or the message of an I/O failure writing the record.

    An export replaces its own earlier files (the same results file exported again, or
    rewritten by a campaign with ``--overwrite``), never another results file's export,
    an input or any other file that happens to have an exported file's name.
    """
    source = os.path.realpath(path)
    manifest = os.path.join(directory, EXPORT_MANIFEST)
    try:
        with open(manifest) as f:
            known = json.load(f)
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    foreign = [f for f in files if os.path.lexists(os.path.join(directory, f))
               and known.get(f) != source]
    if foreign:
        whose = {known.get(f) for f in foreign} - {None}
        raise QuestsInputError(
            f"export directory {directory}: {len(foreign)} file(s) to write already exist "
            f"and were not exported from {path} ({', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}"
            f"{'; exported from ' + ', '.join(sorted(whose)) if whose else ''}); they are "
            "kept: export into another directory, or move them away first")
    known.update({f: source for f in files})
    return _write_manifest(manifest, known)


def _write_manifest(manifest, known):
    tmp = f"{manifest}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(known, f, indent=1, sort_keys=True)
        os.replace(tmp, manifest)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        return f"cannot write {manifest}: {exc.strerror or exc}; no exported file was written"
    return None
