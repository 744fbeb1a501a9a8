"""One compression from files to files: what ``quests-hpc compress`` and
:func:`quests_hpc.compress` run.

Read the data set (:func:`.structures.load_dataset`) and the reference set (structures,
or a descriptor file read in fixed chunks by every rank), choose
(:func:`.compress.compress`), then write the outputs (:mod:`.compress_output`): every
output name is checked before any work, and every file is new.  Collective.
"""

import os
import time


from ..errors import QuestsInputError
from ..species import species_list
from ..parallel import comm as pcomm
from ..results.new_file import check_new
from ..results.reader import descriptor_rows
from . import compress_output as out
from .compress import compress
from .reference_rows import dataset_chunks, file_chunks
from .structures import expand_inputs, load_dataset, read_atoms

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def default_outputs(output, report=None, plot=None):
    """``(report, plot)`` beside ``output``: ``OUT.h5`` and ``OUT_curve.png`` by default
    ("none" leaves one out)."""
    stem = os.path.splitext(os.fspath(output))[0]
    report = stem + ".h5" if report is None else report
    plot = stem + "_curve.png" if plot is None else plot
    return (None if str(report).lower() == "none" else report,
            None if str(plot).lower() == "none" else plot)


def _is_hdf5(path):
    try:
        with open(path, "rb") as f:
            return f.read(8) == _HDF5_MAGIC
    except OSError:
        return False


def reference_chunks(comm, path, k, cutoff, h, species=None, type_map=None):
    """The reference set's rows in fixed chunks (a generator every rank iterates) and its
    size ``(n_structures, n_environments)``; ``species`` as for :func:`load_dataset`."""
    if not _is_hdf5(path):
        ref = load_dataset(comm, path, k=k, cutoff=cutoff, h=h, label=f"reference {path}",
                           species=species, type_map=type_map)
        return dataset_chunks(comm, ref), (ref.n_structures, ref.n_environments)
    err, n = None, None
    sp = None if species in (None, "ignore") else species_list(species)
    if comm.rank == 0:
        try:
            _, n = descriptor_rows(path, k, cutoff, rows=slice(0, 0), species=sp)
            if n[0] == 0:
                raise QuestsInputError(f"{path}: the descriptor file holds 0 environments")
        except QuestsInputError as exc:
            err = QuestsInputError(f"reference: {exc}")
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    n_rows, n_frames = pcomm.bcast(n, comm)
    rows = lambda sl: descriptor_rows(path, k, cutoff, rows=sl, species=sp)[0]  # noqa: E731
    return file_chunks(rows, n_rows), (n_frames, n_rows)


def check_outputs(comm, outputs, inputs):
    """Refuse outputs that exist, are inputs or lack a directory, before any work."""
    err = None
    if comm.rank == 0:
        try:
            ins = expand_inputs(inputs, "dataset")
            check_new(outputs, ins)
        except QuestsInputError as exc:
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)


def run_compression(comm, inputs, output, *, method="msc", size=0.5, reference=None,
                    report=None, plot=None, k=32, cutoff=5.0, h=0.015, seed=0, start=None,
                    log=print, species=None, type_map=None):
    """Compress the data set ``inputs`` into ``output`` (extxyz) and its report and curve.

    ``species`` / ``type_map``: as for :func:`~quests_hpc.dataset.structures.load_dataset`
    (the reference too).

    Returns ``(Compression, Dataset, seconds)`` (``seconds``: wall time of each stage).
    """
    report, plot = default_outputs(output, report, plot)
    outs = [(output, "-o"), (report, "--report"), (plot, "--plot")]
    check_outputs(comm, outs, list(inputs) + ([reference] if reference else []))
    seconds = {}
    t = time.perf_counter()
    data = load_dataset(comm, inputs, k=k, cutoff=cutoff, h=h, species=species,
                        type_map=type_map)
    chunks, ref_size = (None, None)
    if reference is not None:
        chunks, ref_size = reference_chunks(comm, reference, k, cutoff, h, species, type_map)
    seconds["read and describe"] = time.perf_counter() - t
    result = compress(comm, data, method, size, reference_chunks=chunks, seed=seed,
                      start=start)
    seconds.update(result.seconds)
    t = time.perf_counter()
    if comm.rank == 0:
        for line in out.report_lines(result, data):
            log(line)
        if ref_size:
            log(f"  reference {reference}: {ref_size[0]} structures, {ref_size[1]} "
                "environments")
    options = dict(method=method, size=size, seed=seed, start=start, reference=reference,
                   inputs=list(dict.fromkeys(str(p) for p in data.files)), k=k, cutoff=cutoff,
                   bandwidth=h)
    if data.species:  # reports of one-element runs keep their options as before
        options["species"] = list(data.species)
    written = _write(comm, result, data, output, report, plot, options)
    seconds["write"] = time.perf_counter() - t
    if comm.rank == 0:
        for p in written:
            log(f"wrote {p}")
    return result, data, seconds


def _write(comm, result, data, output, report, plot, options):
    """Write the outputs on rank 0; an error reaches every rank."""
    err, written = None, []
    if comm.rank == 0:
        try:
            atoms = out.tagged_atoms(read_atoms(data, result.indices), result, data)
            written.append(out.write_structures(output, atoms))
            if report:
                written.append(out.write_report(report, result, data, options, comm.size))
            if plot:
                written.append(out.write_curve(plot, result))
        except Exception as exc:  # noqa: BLE001 (reaches every rank, then re-raised)
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    return written


