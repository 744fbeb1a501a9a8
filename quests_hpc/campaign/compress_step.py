"""The campaign's ``compress`` section at run time (:mod:`.compress_section` is its schema).

* :func:`plan_compressions`, before any work: every entry's data set is counted (rank 0:
  the frame index of a LAMMPS dump, the structures of a file ASE reads), its size,
  ``start`` and a descriptor-file reference's k and cutoff checked, and its outputs
  looked at.  An entry whose outputs are all missing is to compute (each name checked as
  ``quests-hpc compress`` does: its directory exists, it is no input).  One whose outputs
  all exist is *done* when its report (``/compression``, attribute ``options``) holds the
  same settings -- method, size, seed, start, reference and input files (by file name,
  as the campaign fingerprint compares paths), k, cutoff and bandwidth -- and the same
  number of structures, and the extxyz holds the structures the report chose; a rerun
  skips it.  Anything else (other settings, some outputs only, no report to check
  against) is refused, naming the files: a finished compression is never replaced.
* :func:`run_compressions` runs the entries in order, each a
  :func:`quests_hpc.dataset.compress_run.run_compression` with the campaign's k, cutoff
  and first bandwidth (collective);
* :func:`run_compress_only` is a campaign without inputs: its compress section alone.

Every function taking ``comm`` is collective and returns the same on every rank.
"""

import json
import os
from dataclasses import dataclass

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..results import layout as L
from .compress_section import entry_outputs


@dataclass(frozen=True)
class CompressTask:
    """One entry as planned: ``status`` "new" (to compute) or "done" (skipped);
    ``outputs`` ``(output, report, plot)``, None where no file is written."""

    entry: object
    outputs: tuple
    status: str
    n_structures: int
    size: int


def _count_structures(files, label):
    """Structures (frames) in ``files``: a LAMMPS dump's frame index, else ASE's read."""
    from ..io.lammps_dump import LammpsDump
    from ..io.reference import is_lammps_dump, read_structures

    n = 0
    for f in files:
        try:
            if is_lammps_dump(f):
                with LammpsDump(f) as d:
                    n += len(d)
            else:
                n += len(read_structures(f, parallel=False))  # ASE must not bcast
        except (OSError, ValueError) as exc:
            raise QuestsInputError(f"{label}: {f}: cannot be read ({exc})") from None
    return n


def _reference_problems(where, path, params):
    """A descriptor-file reference of other k or cutoff, or an empty one."""
    from ..io.reference import is_descriptor_file
    from ..results.reader import descriptor_rows

    if not is_descriptor_file(path):
        return []
    try:
        _, n = descriptor_rows(path, int(params.k), float(params.cutoff), rows=slice(0, 0),
                               species=params.species_tuple())
    except QuestsInputError as exc:
        return [f"{where}.reference: {exc}"]
    return [] if n[0] else [f"{where}.reference: {path}: the descriptor file holds 0 "
                            "environments"]


def expected_options(entry, files, params):
    """The ``options`` a report of this entry holds (what ``run_compression`` stores)."""
    opts = dict(method=entry.method, size=entry.size, seed=entry.seed, start=entry.start,
                reference=entry.reference, inputs=list(files), k=int(params.k),
                cutoff=float(params.cutoff), bandwidth=float(params.bandwidth[0]))
    if params.species_tuple():
        opts["species"] = list(params.species_tuple())
    return json.loads(json.dumps(opts, default=str))


def _comparable(opts):
    """Options with paths by file name, the input files once each, in order."""
    out = dict(opts)
    out["inputs"] = list(dict.fromkeys(os.path.basename(str(p))
                                       for p in opts.get("inputs") or []))
    if out.get("reference") is not None:
        out["reference"] = os.path.basename(str(out["reference"]))
    return out


def _extxyz_indices(path):
    from ase.io import read

    frames = read(path, index=":", format="extxyz", parallel=False)  # ASE must not bcast
    return [a.info.get("quests_index") for a in frames]


def finished_problem(report, output, expected, n_structures):
    """Why ``report`` and ``output`` are not this entry's finished compression (None when
    they are)."""
    import h5py

    try:
        with h5py.File(report, "r") as f:
            g = f.get(L.compression_path())
            if g is None or "options" not in g.attrs:
                return f"{report} is not a compression report (no {L.compression_path()})"
            got = json.loads(g.attrs["options"])
            n_was = int(g.attrs["n_structures"])
            chosen = [int(i) for i in g["chosen/index"][()]]
    except (OSError, KeyError, ValueError) as exc:
        return f"{report}: unreadable as a compression report ({exc})"
    a, b = _comparable(got), _comparable(expected)
    diff = [f"{k}: {a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]
    if diff:
        return f"{report} holds a compression with other settings ({'; '.join(diff)})"
    if n_was != n_structures:
        return (f"{report} chose from {n_was} structures; the data set holds "
                f"{n_structures} now")
    try:
        got_idx = _extxyz_indices(output)
    except Exception as exc:  # noqa: BLE001 (any reader failure: not the finished output)
        return f"{output}: unreadable as extxyz ({exc})"
    if got_idx != chosen:
        return (f"{output} does not hold the structures its report {report} chose "
                "(quests_index differs)")
    return None


def _output_state(where, outputs, expected, n, protected):
    """``(status, problems)`` of an entry's outputs (see the module doc)."""
    from ..results.new_file import check_new

    output, report, _ = outputs
    named = [(p, f"{where}.{k}") for p, k in zip(outputs, ("output", "report", "plot"))]
    inputs = {os.path.realpath(p) for p in protected}
    clash = [f"{k} {p}: is one of the inputs (or the campaign file); an output never "
             "replaces one" for p, k in named if p is not None and os.path.realpath(p) in inputs]
    if clash:
        return None, clash
    present = [p for p in outputs if p is not None and os.path.lexists(p)]
    if not present:
        try:
            check_new(named, protected)
        except QuestsInputError as exc:
            return None, [str(exc)]
        return "new", []
    never = ("a finished compression is never replaced: move its files away (or change "
             "`output`) to compute it anew")
    if report is None:
        return None, [f"{where}: {', '.join(present)} exists, and with report: none it "
                      f"cannot be recognised as this entry's result; {never}"]
    why = finished_problem(report, output, expected, n) if report in present else None
    missing = [p for p in outputs if p is not None and p not in present]
    if why is None and missing:
        why = (f"{', '.join(present)} exist(s) but {', '.join(missing)} not (an "
               "interrupted run?)")
    return ("done", []) if why is None else (None, [f"{where}: {why}; {never}"])


def _protected(campaign):
    """Files no compression output may be: the campaign file, every input and
    reference of the campaign and of every compression."""
    from ..dataset.structures import expand_inputs

    out = [campaign.source] if campaign.source and os.path.isfile(campaign.source) else []
    pats = [p for s in campaign.inputs + campaign.references for p in s.paths]
    pats += [p for e in campaign.compress for p in e.paths + ((e.reference,)
                                                               if e.reference else ())]
    for p in pats:
        try:
            out += expand_inputs([p])
        except QuestsInputError:
            pass  # reported where it is read
    return out


def _plan_entry(i, e, params, protected):
    """``(task or None, problems)`` of entry ``i`` (rank 0)."""
    from ..dataset.compress import resolve_size
    from ..dataset.structures import expand_inputs

    where = f"compress[{i}]"
    try:
        files = expand_inputs(list(e.paths), f"{where}.dataset")
        n = _count_structures(files, f"{where}.dataset")
    except QuestsInputError as exc:
        return None, [str(exc)]
    problems, size = [], None
    try:
        size = resolve_size(e.size, n, label=f"{where}.size")
    except QuestsInputError as exc:
        problems.append(str(exc))
    if e.start is not None and e.start >= n:
        problems.append(f"{where}.start: structure {e.start} does not exist (the data set "
                        f"holds {n}, numbered from 0)")
    if e.reference:
        problems += _reference_problems(where, e.reference, params)
    outputs = entry_outputs(e.output, e.report, e.plot)
    status, more = _output_state(where, outputs, expected_options(e, files, params), n,
                                 protected)
    problems += more
    if problems:
        return None, problems
    return CompressTask(entry=e, outputs=outputs, status=status, n_structures=n,
                        size=size), []


def plan_compressions(comm, campaign):
    """``(tasks, problems)`` of the compress section, on every rank (collective; checked
    on rank 0, before any work); no entries: ``([], [])`` without communicating."""
    if not campaign.compress:
        return [], []
    err, res = None, None
    if comm.rank == 0:
        try:
            protected = _protected(campaign)
            tasks, problems = [], []
            for i, e in enumerate(campaign.compress):
                task, more = _plan_entry(i, e, campaign.parameters, protected)
                tasks.append(task)
                problems += more
            res = (tasks, problems)
        except Exception as exc:  # noqa: BLE001 (reaches every rank, then re-raised)
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    return pcomm.bcast(res, comm, root=0)


def run_compressions(comm, campaign, tasks, say):
    """Every planned compression in order, a done one skipped (collective); returns
    each entry's ``"computed"`` or ``"done"``."""
    from ..dataset.compress_run import run_compression

    p = campaign.parameters
    out = []
    for t in tasks:
        e, (_, report, plot) = t.entry, t.outputs
        if t.status == "done":
            say(f"compress {e.name}: done ({e.method}, {t.size} of {t.n_structures} "
                f"structures in {e.output}, its report matching); skipped")
            out.append("done")
            continue
        say(f"compress {e.name}: {e.method}, {t.size} of {t.n_structures} structures "
            f"(k {p.k}, cutoff {p.cutoff:g}, bandwidth {p.bandwidth[0]:g}) -> {e.output}")
        run_compression(comm, list(e.paths), e.output, method=e.method, size=e.size,
                        reference=e.reference, report=report or "none",
                        plot=plot or "none", k=int(p.k), cutoff=float(p.cutoff),
                        h=float(p.bandwidth[0]), seed=e.seed, start=e.start, log=say,
                        species=p.species)
        out.append("computed")
    return out


def run_compress_only(comm, campaign, say):
    """A campaign without inputs: its compress section, checked then run, and the
    stage table (collective); returns the runner's result dict (no results file)."""
    from ..parallel.runtime import configure_threads, warm_up
    from ..timing import StageTimer
    from .progress import timing_table
    from .schema import CampaignError

    stages = StageTimer()
    with stages("setup"):
        tasks, problems = plan_compressions(comm, campaign)
    if problems:
        raise CampaignError(campaign.source, problems)
    with stages("compile"):
        nthreads = configure_threads(comm, campaign.run.threads)
        warm_up(comm)
    say(f"quests-hpc run: campaign {campaign.name!r}: {len(tasks)} compression(s), no "
        f"results file; {comm.size} rank(s) x {nthreads} thread(s)")
    with stages("compress"):
        status = run_compressions(comm, campaign, tasks, say)
    records = pcomm.gather(stages.record(), comm, root=0)
    say(f"done: {status.count('computed')} compression(s) computed, "
        f"{status.count('done')} skipped (already done)")
    if comm.rank == 0:
        say(timing_table(records, stages.total()))
    return {"path": None, "frames": 0, "computed": 0, "skipped": 0, "compress": status}
