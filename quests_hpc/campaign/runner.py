"""Run a campaign: plan, check, (re)start, process frames, summaries, learning curve.

:func:`run_campaign` is collective over ``comm`` (required: ``MPI.COMM_WORLD`` for a
parallel run, ``MPI.COMM_SELF`` for a serial one).  Steps:

0. *guard*: an output that is (the same file as) an input, a reference, the campaign
   file or a frame index cache -- or whose ``.partial`` / ``.lock`` companions are -- is
   refused before anything is touched; then the output's lock
   (:mod:`quests_hpc.results.lock`) is taken and held until the end (a second run on the
   same output is refused at once, naming the holder);
1. *compile*: threads per rank and every Numba kernel the run uses, compiled or loaded
   from the cache (:mod:`.warmup`), its own stage in the table;
2. *plan* (:mod:`.plan`): open every input (frame indices), apply the frame selections,
   fingerprint the campaign and the input / reference files, inspect an existing output
   file (:func:`quests_hpc.results.restart.inspect_output`); complete frames of an input
   whose size or times changed are hashed again (a frame whose bytes changed refuses the
   file).  Every problem found here is collected and raised at once
   (:class:`~quests_hpc.campaign.schema.CampaignError`, exit status 2) before any work
   starts -- nothing has been removed or replaced;
3. references: descriptors computed or loaded once and shared (only when needed);
4. a new output gets its whole structure under a temporary name, then is renamed
   (:mod:`.output`).  With overwrite, a refused output is kept: the new results are built
   (or resumed) under ``OUT.h5.partial`` and renamed over it only once the run has
   finished, so a killed ``--overwrite`` run leaves the old results intact;
5. every frame not yet complete: read -> content hash -> pipeline -> dH / H / D -> write
   -> flush -> attributes -> flush -> ``complete`` -> flush; one progress line per frame
   on rank 0;
6. the overlap table and the learning curve (each marked complete when written), then
   the root ``complete`` flag (and the rename of an overwrite); the ``analysis``
   section; the ``compress`` section (:mod:`.compress_step`: planned and checked with
   step 2, before any work; a finished compression skipped); a summary and the stage
   table (time and peak memory per stage) on rank 0.

A campaign without inputs runs its ``compress`` section alone
(:func:`.compress_step.run_compress_only`: no results file, no lock).

Stage times and memory: one :class:`quests_hpc.timing.StageTimer` per run.
"""

import sys
import time
from dataclasses import replace

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..parallel.comm import require_comm
from ..parallel.frame_pipeline import run_frame
from ..results import layout as L
from ..results.writer import ResultsWriter
from ..timing import StageTimer
from . import compress_step as C
from . import output as O
from . import plan as P
from .schema import CampaignError


def _print(text=""):
    print(text, flush=True)


def _say(comm, out):
    def say(text=""):
        if comm.rank == 0:
            out(text)
    return say


def run_campaign(campaign, comm, *, overwrite=False, out=_print):
    """Run (or resume) a validated campaign (collective).

    Parameters
    ----------
    campaign : Campaign
        From :func:`quests_hpc.campaign.schema.load_campaign` or ``validate``.
    comm : mpi4py communicator
        Required; ``MPI.COMM_SELF`` for a serial run.
    overwrite : bool
        Replace an output written by a different campaign (also ``output.overwrite``).
        The old file stays untouched until the new results are complete (they are built
        under ``OUT.h5.partial`` and renamed over it at the end).
    out : callable
        Where rank 0's text goes (default: print to stdout).

    Returns
    -------
    dict
        On every rank: ``path``, ``frames`` (total), ``computed``, ``skipped``; with a
        ``compress`` section also ``compress`` (``"computed"`` or ``"done"``, skipped, for
        each entry).

    Raises
    ------
    CampaignError
        Problems found before any work (exit status 2 in the CLI), the output being an
        input, a reference, the campaign file or an index cache included.
    quests_hpc.results.lock.OutputLockedError
        Another run holds the output (exit status 2).
    quests_hpc.results.writer.ResultsIOError
        Writing failed (finished frames stay intact).
    """
    import shlex

    from ..results.lock import output_lock

    require_comm(comm, "run_campaign")
    if not campaign.inputs:
        return C.run_compress_only(comm, campaign, _say(comm, out))
    tasks, problems = C.plan_compressions(comm, campaign)
    dir_problems = P.guard_output(comm, campaign)
    if dir_problems:  # no lock there: setup raises, listing these with every other problem
        P.setup(comm, campaign, overwrite, problems + dir_problems)
        raise CampaignError(campaign.source, problems + dir_problems)
    with output_lock(campaign.output.path, comm, command=shlex.join(sys.argv)):
        return _run_locked(comm, campaign, overwrite, out, (tasks, problems))


def _load_references(comm, campaign, params, stages, say):
    """Every reference's descriptors, shared; returns (SharedReferences, infos)."""
    from .references import load_reference

    refs, infos = [], []
    run = campaign.run
    for spec in campaign.references:
        with stages("reference"):
            ref, info = load_reference(comm, spec, params, run.reference_layout,
                                       run.reference_memory_gb)
            refs.append(ref)
        infos.append(info)
        say(f"reference {spec.name}: {info['n_environments']} environments from "
            f"{info['n_frames']} frame(s) ({info['format']}), layout {refs[-1].layout}")
    return refs, infos


def _announce(comm, campaign, st, todo, say):
    """The run's first lines (rank 0)."""
    frames, path, done = st.frames, campaign.output.path, st.decision.complete
    say(f"quests-hpc run: campaign {campaign.name!r}: {len(frames)} frame(s), "
        f"{sum(fp.natoms for fp in frames)} atoms, {len(campaign.references)} reference(s); "
        f"{comm.size} rank(s) x {st.nthreads} thread(s); output {path} ({st.backend} writer)")
    if st.target != path:
        say(f"{path} was written by a different campaign: it is kept until the new results "
            f"are complete in {st.target}, then replaced")
    if st.decision.status == "resume":
        say(f"resuming: {len(done)} of {len(frames)} frame(s) already complete, "
            f"{len(todo)} to compute")


def _run_locked(comm, campaign, overwrite, out, compress):
    """:func:`run_campaign` once the output is locked (collective); ``compress``: the
    planned compressions and their problems."""
    say = _say(comm, out)
    stages = StageTimer()
    params = campaign.frame_request()
    path = campaign.output.path
    with stages("compile"):  # every kernel of the run: later stages compile nothing
        from ..parallel.runtime import configure_threads
        from .warmup import compile_for

        configure_threads(comm, campaign.run.threads)
        compile_for(comm, campaign.analysis)
    tasks, problems = compress
    with stages("setup"):
        st = P.setup(comm, campaign, overwrite, problems)
    done = set(st.decision.complete)
    todo = [fp for fp in st.frames if fp.name not in done]
    need_lc = (campaign.measures.learning_curve is not None
               and not st.decision.flags.get("learning_curve", False))
    _announce(comm, campaign, st, todo, say)
    result = {"path": path, "frames": len(st.frames), "computed": len(todo),
              "skipped": len(done)}
    if (st.decision.status == "resume" and not todo and not need_lc
            and st.decision.flags.get("campaign")):
        say("nothing to do: the campaign is complete")
        P.close_sources(st.sources)
        O.finish(comm, st.target, path)
        _analyses(comm, campaign, stages, say)
        _compressions(comm, campaign, tasks, stages, say, result)
        _report(comm, campaign, stages, [], 0, len(st.frames), say)
        return dict(result, computed=0, skipped=len(st.frames))
    imbalance = _compute_all(comm, campaign, st, params, stages, out, need_lc, say)
    _analyses(comm, campaign, stages, say)
    _compressions(comm, campaign, tasks, stages, say, result)
    _report(comm, campaign, stages, imbalance, len(todo), len(done), say)
    return result


def _compressions(comm, campaign, tasks, stages, say, result):
    """The campaign's ``compress`` section after the frames (collective); each entry's
    status goes to ``result["compress"]``."""
    if not tasks:
        return
    with stages("compress"):
        result["compress"] = C.run_compressions(comm, campaign, tasks, say)


def _compute_all(comm, campaign, st, params, stages, out, need_lc, say):
    """References, the output's structure, every frame, the tables, the rename
    (collective); returns the atom imbalance of every computed frame."""
    refs, infos = [], []
    if (len(st.frames) > len(st.decision.complete) and campaign.measures.delta_entropy) \
            or need_lc:
        refs, infos = _load_references(comm, campaign, params, stages, say)
    outp = campaign.output
    writer_opts = dict(backend=st.backend, chunk_bytes=int(outp.chunk_mb * (1 << 20)),
                       fsync=outp.fsync)
    if st.decision.status == "new":
        with stages("setup"):
            plan = O.structure_plan(campaign, st.frames, refs, infos, st.refids)
            O.create(comm, campaign, plan, st.expect, st.target, st.backend, writer_opts,
                     rename=st.target == outp.path)
    with ResultsWriter.open(st.target, comm, mode="a", **writer_opts) as w:
        imbalance = _compute(comm, w, campaign, st, refs, params, stages, out, need_lc)
    for ref in refs:  # collective (shared memory windows): not on an error path
        ref.free()
    P.close_sources(st.sources)
    O.finish(comm, st.target, outp.path)
    return imbalance


def _report(comm, campaign, stages, imbalance, computed, skipped, say):
    """The summary and the stage table on rank 0 (collective: gathers every rank's)."""
    records = pcomm.gather(stages.record(), comm, root=0)
    imbalance = pcomm.gather(imbalance, comm, root=0)
    if comm.rank == 0:
        from ..results.reader import describe
        from .progress import timing_table

        path = campaign.output.path
        say(f"done: {computed} frame(s) computed, {skipped} skipped (already complete); "
            f"results in {path}")
        say(describe(path, max_frames=10))
        say("")
        say(timing_table(records, stages.total(), imbalance[0]))


def _compute(comm, w, campaign, st, refs, params, stages, out, need_lc):
    """Every frame not complete, the overlap table, the learning curve, the root flag
    (collective); returns the atom imbalance of every computed frame."""
    from .progress import Progress

    meas = campaign.measures
    frames, done = st.frames, set(st.decision.complete)
    prog = Progress(len(frames), sum(fp.natoms for fp in frames), len(done),
                    sum(fp.natoms for fp in frames if fp.name in done),
                    mode=campaign.run.progress, active=comm.rank == 0, stream=_Stream(out))
    imbalance = []
    for fi, fp in enumerate(frames):
        if fp.name in done:
            continue
        wall, imb = _do_frame(comm, w, fi, fp, st.sources[fp.input_no], refs, params,
                              meas, stages)
        imbalance.append(imb)
        prog.frame_done(fp.name, fp.natoms, wall)
    prog.close()
    todo = len(frames) - len(done)
    with stages("summary"):
        if meas.wants_overlap(len(campaign.references)) and not (
                st.decision.flags.get("overlap") and not todo):
            O.overlap_table(comm, w, frames, campaign)
    if need_lc:
        with stages("learning_curve"):
            lc = meas.learning_curve
            names = [r.name for r in campaign.references]
            O.write_learning_curve(comm, w, refs[names.index(lc.dataset)], lc,
                                   campaign.parameters.bandwidth, campaign.parameters.precision)
    w.set_attrs("/", {"complete": True})
    w.flush()
    return imbalance


def _analyses(comm, campaign, stages, say):
    """The campaign's ``analysis`` section on the finished results file (collective)."""
    if campaign.analysis is None:
        return
    from ..analysis.campaign_hooks import run_analyses

    with stages("analysis"):
        run_analyses(campaign.output.path, campaign.analysis, comm, out=say)


class _Stream:
    """File-like adapter over the ``out`` callable (for :class:`Progress`)."""

    def __init__(self, out):
        self.out = out
        self._buf = ""

    def write(self, text):
        if self.out is _print:
            sys.stdout.write(text)
            return
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self.out(line.replace("\r", ""))

    def flush(self):
        if self.out is _print:
            sys.stdout.flush()

    def isatty(self):
        return self.out is _print and sys.stdout.isatty()


def _do_frame(comm, w, fi, fp, src, refs, params, meas, stages):
    """Compute and write one frame; returns (wall seconds, atom imbalance)."""
    t0 = time.perf_counter()
    with stages("hash"):
        digest = P.frame_hash(comm, src, fp.source_index)
    request = replace(
        params, delta_entropy=bool(meas.delta_entropy), descriptors=bool(meas.descriptors),
        entropy=bool(meas.entropy or meas.diversity), positions=bool(meas.positions))
    # lead: pipeline call
    fo = run_frame(comm, src, fp.source_index, refs, request)
    if fo.natoms != fp.natoms:
        raise QuestsInputError(f"{fp.source_path}: frame {fp.source_index} has {fo.natoms} "
                               f"atoms now, {fp.natoms} when the campaign was planned")
    stages.add(fo.timings, fo.cpu, fo.memory)
    with stages("write"):
        wall = _write_frame(comm, w, fi, fp, fo, meas, digest, t0)
    return wall, fo.imbalance


def _frame_rows(fi, fp, fo, meas):
    """The frame's rows of the per-frame summary tables."""
    rows = [(L.summary_path("source_index"), fi, fp.source_index),
            (L.summary_path("timestep"), fi, fo.timestep),
            (L.summary_path("natoms"), fi, fo.natoms)]
    if fo.dh_summary is not None:
        for col, key in (("n_novel", "n_novel"), ("novelty", "novelty"), ("overlap", "overlap"),
                         ("dh_mean", "mean"), ("dh_min", "min"), ("dh_max", "max")):
            arr = np.array([[b[key] for b in ref] for ref in fo.dh_summary])
            rows.append((L.summary_path(col), fi, arr))
    if fo.entropy is not None and (meas.entropy or meas.diversity):
        rows.append((L.summary_path("entropy"), fi, fo.entropy))
        if meas.diversity:
            rows.append((L.summary_path("diversity"), fi, fo.diversity))
    return rows


def _write_frame(comm, w, fi, fp, fo, meas, digest, t0):
    """Per-atom arrays -> flush -> summaries and attributes -> flush -> ``complete``
    -> flush (collective); ``fo`` the frame's result on this rank (its block of the
    id-ordered frame); returns the frame's wall time since ``t0`` (rank 0's)."""
    base = L.frame_path(fp.name)
    w.write_slab(base + "/id", fo.ids)
    if fo.dh is not None:
        w.write_slab(base + "/delta_entropy", fo.dh if fo.dh.shape[1] > 1 else fo.dh[:, 0])
    if fo.descriptors is not None:
        w.write_slab(base + "/descriptors", fo.descriptors)
    if meas.positions:
        w.write_slab(base + "/position", fo.positions)
        types = fo.types if fo.types is not None else np.zeros(len(fo.ids), np.int32)
        w.write_slab(base + "/type", types)
    w.write_values(_frame_rows(fi, fp, fo, meas))
    w.flush()
    wall = pcomm.bcast(time.perf_counter() - t0, comm, root=0)
    w.write_values([(L.summary_path("wall_time"), fi, wall)])
    w.set_attrs(base, {"timestep": np.int64(fo.timestep),
                       "cell": np.asarray(fo.cell, dtype=np.float64),
                       "pbc": np.asarray(fo.pbc, dtype=bool), "wall_time": wall,
                       "mpi_size": np.int64(comm.size),
                       L.FRAME_HASH_ATTR: np.array(digest.encode(), dtype="S64")})
    w.flush()
    w.set_attrs(base, {"complete": True})
    w.flush()
    return wall
