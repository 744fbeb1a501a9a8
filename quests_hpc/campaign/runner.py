"""Run a campaign: plan, check, (re)start, process frames, summaries, learning curve.

:func:`run_campaign` is collective over ``comm`` (default ``MPI.COMM_WORLD``; a serial
run is a world of one rank).  Steps:

0. *guard*: an output that is (the same file as) an input, a reference, the campaign
   file or a frame index cache -- or whose ``.partial`` / ``.lock`` companions are -- is
   refused before anything is touched; then the output's lock
   (:mod:`quests_hpc.results.lock`) is taken and held until the end (a second run on the
   same output is refused at once, naming the holder);
1. threads per rank and the Numba warm-up (:mod:`quests_hpc.parallel.runtime`);
2. *plan*: open every input (frame indices), apply the frame selections, fingerprint the
   campaign and the input / reference files, inspect an existing output file
   (:func:`quests_hpc.results.restart.inspect_output`); complete frames of an input whose
   size or times changed are hashed again (a frame whose bytes changed refuses the
   file).  Every problem found here is collected and raised at once
   (:class:`~quests_hpc.campaign.schema.CampaignError`, exit status 2) before any work
   starts -- nothing has been removed or replaced;
3. references: descriptors computed or loaded once and shared (only when needed);
4. a new output gets its whole structure under a temporary name, then is renamed.  With
   overwrite, a refused output is kept: the new results are built (or resumed) under
   ``OUT.h5.partial`` and renamed over it only once the run has finished, so a killed
   ``--overwrite`` run leaves the old results intact;
5. every frame not yet complete: read -> content hash -> pipeline -> dH / H / D -> write
   -> flush -> attributes -> flush -> ``complete`` -> flush; one progress line per frame
   on rank 0;
6. the overlap table and the learning curve (each marked complete when written), then
   the root ``complete`` flag (and the rename of an overwrite); the ``analysis``
   section; a summary and the timing table on rank 0.
"""

import json
import os
import sys
import time
from collections import defaultdict

import numpy as np

from ..errors import QuestsInputError
from ..results import layout as L
from ..results import restart as R
from ..results.writer import ResultsWriter, choose_backend
from .schema import NOT_FINGERPRINTED, CampaignError


def _say(comm, out):
    def say(text=""):
        if comm.rank == 0:
            out(text)
    return say


def _print(text=""):
    print(text, flush=True)


def _basenames(obj):
    """``obj`` with every absolute path replaced by its file name (for fingerprints)."""
    if isinstance(obj, dict):
        return {k: _basenames(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_basenames(v) for v in obj]
    if isinstance(obj, str) and os.path.isabs(obj):
        return os.path.basename(obj)
    return obj


def campaign_fingerprint(campaign):
    """Fingerprint of what determines the results (not ``run`` / ``output`` settings).

    Paths enter by file name only: the files' contents are fingerprinted separately
    (:func:`inputs_fingerprint`), so a campaign directory may be moved or copied and
    resumed.
    """
    core = {k: v for k, v in campaign.items()
            if k not in NOT_FINGERPRINTED and k not in ("yaml", "base_dir", "source")}
    return R.fingerprint(_basenames(core))


def inputs_fingerprint(identities):
    """Fingerprint of the contents (size, hash) of the input and reference files, in order."""
    return R.fingerprint([[d["size"], d["sha256"]] for d in identities])


class _Stages:
    """Seconds per stage on this rank."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def add(self, times):
        for k, v in times.items():
            self.seconds[k] += float(v)

    def timed(self, name):
        stages = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                stages.seconds[name] += time.perf_counter() - self.t
                return False

        return _T()


def _plan_inputs(comm, campaign):
    """Open the inputs and list the selected frames; problems are collected, not raised."""
    from .sources import InputSource

    problems, sources, frames = [], [], []
    for i, spec in enumerate(campaign["inputs"]):
        try:
            src = InputSource(spec, comm)
            sel = src.select(spec["frames"])
            if not sel:
                problems.append(f"inputs[{i}] ({spec['name']}): {src.files[0]}: the frame "
                                f"selection {spec['frames']!r} selects no frame (the file holds "
                                f"{len(src)} complete frames)")
            for idx in sel:
                frames.append(L.FramePlan(
                    name=L.frame_name(spec["name"], idx), input=spec["name"], input_no=i,
                    source_path=src.frame_file[idx], source_index=int(idx),
                    timestep=int(src.timesteps[idx]), natoms=int(src.natoms[idx])))
            sources.append(src)
        except QuestsInputError as exc:
            problems.append(f"inputs[{i}] ({spec['name']}): {exc}")
            sources.append(None)
    return sources, frames, problems


def check_inputs(campaign, comm=None):
    """Open every input and check its frame selection (``run --check``): raises
    :class:`CampaignError` listing the problems, as a run would before any work."""
    sources, _, problems = _plan_inputs(comm, campaign)
    for src in sources:
        if src is not None:
            src.close()
    if problems:
        raise CampaignError(campaign.get("source", "campaign"), problems)


def _identities(comm, campaign, sources):
    """File identities, from rank 0: uncompressed LAMMPS dumps of the inputs by a sampled
    hash (their frames carry their own content hash, see :func:`_frame_hash`), compressed
    dumps, other inputs and references by a hash of the whole file (cheaper than
    decompressing a stream a second time to hash its frames)."""
    from ..io.compressed import compression_of

    ids, err = None, None
    if comm.rank == 0:
        try:
            ins = []
            for src in sources:
                if src is not None:
                    ins.extend(R.file_identity(f, full=src.format != "lammps-dump"
                                               or compression_of(f) is not None)
                               for f in src.files)
            refs = []
            for spec in campaign["references"]:
                paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
                from ..io.lammps_dump import expand_paths

                refs.append([R.file_identity(p, full=True) for q in paths
                             for p in expand_paths(q)])
            ids = (ins, refs)
        except (OSError, QuestsInputError) as exc:
            err = str(exc)
    err, ids = comm.bcast((err, ids), root=0)
    if err:
        raise QuestsInputError(err)
    return ids


def _load_references(comm, campaign, params, stages, say):
    from .references import reference_descriptors, share_reference

    refs, infos = [], []
    run = campaign["run"]
    for spec in campaign["references"]:
        with stages.timed("reference"):
            x, info = reference_descriptors(comm, spec, params)
            refs.append(share_reference(comm, x, run["reference_layout"],
                                        run["reference_memory_gb"]))
            del x
        infos.append(info)
        say(f"reference {spec['name']}: {info['n_environments']} environments from "
            f"{info['n_frames']} frame(s) ({info['format']}), layout {refs[-1].layout}")
    return refs, infos


def run_campaign(campaign, comm=None, *, overwrite=False, out=_print):
    """Run (or resume) a validated campaign (collective).

    Parameters
    ----------
    campaign : dict
        From :func:`quests_hpc.campaign.schema.load_campaign` or ``validate``.
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.
    overwrite : bool
        Replace an output written by a different campaign (also ``output.overwrite``).
        The old file stays untouched until the new results are complete (they are built
        under ``OUT.h5.partial`` and renamed over it at the end).
    out : callable
        Where rank 0's text goes (default: print to stdout).

    Returns
    -------
    dict
        On every rank: ``path``, ``frames`` (total), ``computed``, ``skipped``.

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
    from mpi4py import MPI

    from ..results.lock import output_lock

    comm = MPI.COMM_WORLD if comm is None else comm
    path = campaign["output"]["path"]
    dir_problems = _guard_output(comm, campaign)
    if dir_problems:  # no lock there: _setup raises, listing these with every other problem
        _setup(comm, campaign, overwrite, _say(comm, out), _Stages(), dir_problems)
        raise CampaignError(campaign.get("source", "campaign"), dir_problems)
    import shlex

    with output_lock(path, comm, command=shlex.join(sys.argv)):
        return _run_locked(comm, campaign, overwrite, out)


def _protected_files(campaign):
    """``(file, what)`` of every file a run must never write: inputs, references, the
    campaign file and the frame index caches of the input and reference files."""
    from ..io.frame_index import cache_path
    from ..io.lammps_dump import expand_paths

    out = []
    src = campaign.get("source")
    if src and os.path.isfile(src):
        out.append((os.path.abspath(src), "the campaign file"))
    for kind, specs in (("input", campaign.get("inputs") or []),
                        ("reference", campaign.get("references") or [])):
        for spec in specs:
            paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
            files = []
            for q in paths:
                try:
                    files.extend(expand_paths(q))
                except QuestsInputError:
                    files.append(q)  # reported by the planning; protect the name anyway
            for f in files:
                out.append((f, f"the {kind} {spec['name']}"))
                out += [(cache_path(f, where), f"the frame index cache of {f}")
                        for where in ("beside", "user")]
    return out


def _guard_output(comm, campaign):
    """Refuse an output that is a protected file, before anything is touched (collective).

    Returns the problems of the output directory (then no lock can be taken: the caller
    lists them with every other problem); raises :class:`CampaignError` for a conflict.
    """
    path = campaign["output"]["path"]
    res = None
    if comm.rank == 0:
        try:
            res = (R.output_conflicts(path, _protected_files(campaign)),
                   R.check_output_dir(path))
        except (OSError, QuestsInputError) as exc:
            res = ([f"output {path}: {exc}"], [])
    conflicts, dir_problems = comm.bcast(res, root=0)
    if conflicts:
        raise CampaignError(campaign.get("source", "campaign"), conflicts)
    return dir_problems


class _Setup:
    """What the planning found (identical on every rank)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _on_root(comm, fn):
    """``fn()`` on rank 0; (result, problems) on every rank (an input error -> problem)."""
    res = None
    if comm.rank == 0:
        try:
            res = (fn(), [])
        except QuestsInputError as exc:
            res = (None, [str(exc)])
    return comm.bcast(res, root=0)


def _setup(comm, campaign, overwrite, say, stages, problems):
    """Threads, planning, identities, the decision about the output (collective).

    Every problem is collected and raised at once as a :class:`CampaignError`.
    """
    from ..parallel.runtime import configure_threads, warm_up

    outp, run = campaign["output"], campaign["run"]
    path = outp["path"]
    with stages.timed("setup"):
        nthreads = configure_threads(comm, run["threads"])
        warm_up(comm)
        sources, frames, more = _plan_inputs(comm, campaign)
        from .budget import input_problems  # frames that cannot fit in memory: refused now
        problems = list(problems) + more + input_problems(comm, campaign, sources, frames)
        try:
            ins, refids = _identities(comm, campaign, sources)
            known = True
        except QuestsInputError as exc:
            problems.append(str(exc))
            ins, refids, known = [], [], False
        every = ins + [d for r in refids for d in r]
        expect = {"campaign_fingerprint": campaign_fingerprint(campaign),
                  "inputs_fingerprint": inputs_fingerprint(every), "inputs": every}
        decision, target = R.ExistingOutput("new"), path
        if known:  # read-only: also when other problems were found, to list them all
            decision, target, more = _decide(comm, path, expect, overwrite or outp["overwrite"],
                                             frames, sources, ins)
            problems += more
        try:
            backend = choose_backend(outp["backend"])
        except ValueError as exc:
            problems.append(f"output.backend: {exc}")
        if problems:
            for s in sources:
                if s is not None:
                    s.close()
            raise CampaignError(campaign.get("source", "campaign"), problems)
    return _Setup(nthreads=nthreads, sources=sources, frames=frames, refids=refids,
                  expect=expect, decision=decision, target=target, backend=backend)


def _decide(comm, path, expect, overwrite, frames, sources, ins):
    """New, resume or refuse; with ``overwrite`` a refused output is kept and the new
    results go to ``OUT.h5.partial`` (resumed if a killed overwrite left it there).

    Returns ``(decision, target file, problems)`` on every rank.
    """
    dec, probs = _on_root(comm, lambda: R.inspect_output(path, expect))
    if probs:
        return R.ExistingOutput("new"), path, probs
    dec = _verified(comm, path, dec, frames, sources, ins)
    if dec.status != "refuse":
        return dec, path, []
    if not overwrite:
        return dec, path, [dec.reason + "; rerun with --overwrite (or output.overwrite: "
                                        "true) to replace it (it is kept until the new "
                                        "results are complete)"]
    tmp = R.partial_path(path)
    aside, probs = _on_root(comm, lambda: R.inspect_output(tmp, expect))
    if probs:
        return R.ExistingOutput("new"), path, probs
    aside = _verified(comm, tmp, aside, frames, sources, ins)
    if aside.status != "resume":
        aside = R.ExistingOutput("new", reason="overwrite")
    return aside, tmp, []


def _verified(comm, path, dec, frames, sources, ins):
    """``dec`` unless a complete frame of an input whose size or times changed has other
    bytes now than when it was computed: then the file is refused (collective)."""
    if dec.status != "resume":
        return dec
    changed = {n["path"]: o for o, n in zip(dec.inputs, ins)
               if n.get("hashed") == "sampled" and R.stat_changed(o, n)}
    done = set(dec.complete)
    check = [fp for fp in frames if fp.name in done and fp.source_path in changed]
    stale = []
    for fp in check:
        now = _frame_hash(comm, sources[fp.input_no], fp.source_index)
        if not now or now != dec.frame_hashes.get(fp.name):
            stale.append(f"{fp.source_path}: frame {fp.source_index} (timestep "
                         f"{fp.timestep}) has other bytes now than when {fp.name} was "
                         "computed (the file was modified in place)")
    if not stale:
        return dec
    more = f" (and {len(stale) - 3} more frames)" if len(stale) > 3 else ""
    return R.ExistingOutput("refuse", reason=(
        f"{path} was written from other input data: " + "; ".join(stale[:3]) + more))


def _frame_hash(comm, src, idx):
    """Content hash of frame ``idx``'s bytes (collective); ``""`` where there is none."""
    # compressed and ASE inputs have no byte range: a hash of the whole file identifies them
    rng = None if src.dump is None else src.dump.byte_range(int(idx))
    return R.frame_hash(comm, *rng) if rng is not None else ""


def _run_locked(comm, campaign, overwrite, out):
    """:func:`run_campaign` once the output is locked (collective)."""
    say = _say(comm, out)
    t_start = time.perf_counter()
    stages = _Stages()
    par, meas, outp, run = (campaign[k] for k in ("parameters", "measures", "output", "run"))
    params = {"k": par["k"], "cutoff": par["cutoff"], "bandwidth": list(par["bandwidth"]),
              "threshold": par["threshold"], "balance": run["balance"]}
    path = outp["path"]
    st = _setup(comm, campaign, overwrite, say, stages, [])
    sources, frames, decision, target, backend = (st.sources, st.frames, st.decision,
                                                  st.target, st.backend)
    total_atoms = sum(fp.natoms for fp in frames)
    done = set(decision.complete)
    todo = [fp for fp in frames if fp.name not in done]
    lc = meas["learning_curve"]
    need_lc = bool(lc) and not decision.flags.get("learning_curve", False)
    say(f"quests-hpc run: campaign {campaign['name']!r}: {len(frames)} frame(s), "
        f"{total_atoms} atoms, {len(campaign['references'])} reference(s); {comm.size} "
        f"rank(s) x {st.nthreads} thread(s); output {path} ({backend} writer)")
    if target != path:
        say(f"{path} was written by a different campaign: it is kept until the new results "
            f"are complete in {target}, then replaced")
    if decision.status == "resume":
        say(f"resuming: {len(done)} of {len(frames)} frame(s) already complete, "
            f"{len(todo)} to compute")
    if decision.status == "resume" and not todo and not need_lc and decision.flags.get(
            "campaign"):
        say("nothing to do: the campaign is complete")
        for s in sources:
            if s is not None:
                s.close()
        _finish(comm, target, path)
        _analyses(comm, campaign, path, stages, say)
        return {"path": path, "frames": len(frames), "computed": 0, "skipped": len(frames)}

    refs, infos = [], []
    if (todo and meas["delta_entropy"]) or need_lc:
        refs, infos = _load_references(comm, campaign, params, stages, say)

    writer_opts = dict(backend=backend, chunk_bytes=int(outp["chunk_mb"] * (1 << 20)),
                       fsync=outp["fsync"])
    if decision.status == "new":
        with stages.timed("setup"):
            _create(comm, campaign, frames, refs, infos, st.refids, st.expect, target,
                    backend, writer_opts, rename=target == path)

    with ResultsWriter.open(target, comm, mode="a", **writer_opts) as w:
        imbalance = _compute(comm, w, campaign, st, refs, params, stages, out, need_lc)
    for ref in refs:
        ref.free()
    for s in sources:
        if s is not None:
            s.close()
    _finish(comm, target, path)

    _analyses(comm, campaign, path, stages, say)
    per_rank = comm.gather(dict(stages.seconds), root=0)
    imbalance = comm.gather(imbalance, root=0)
    if comm.rank == 0:
        from ..results.reader import describe
        from .progress import timing_table

        say(f"done: {len(todo)} frame(s) computed, {len(done)} skipped (already complete); "
            f"results in {path}")
        say(describe(path, max_frames=10))
        say("")
        say(timing_table(per_rank, time.perf_counter() - t_start, imbalance[0]))
    return {"path": path, "frames": len(frames), "computed": len(todo), "skipped": len(done)}


def _compute(comm, w, campaign, st, refs, params, stages, out, need_lc):
    """Every frame not complete, the overlap table, the learning curve, the root flag
    (collective); returns the atom imbalance of every computed frame."""
    from .progress import Progress

    meas, lc, hs = campaign["measures"], campaign["measures"]["learning_curve"], params["bandwidth"]
    want = {k: meas[k] for k in ("delta_entropy", "descriptors", "entropy", "diversity")}
    frames, done = st.frames, set(st.decision.complete)
    prog = Progress(len(frames), sum(fp.natoms for fp in frames), len(done),
                    sum(fp.natoms for fp in frames if fp.name in done),
                    mode=campaign["run"]["progress"], active=comm.rank == 0,
                    stream=_Stream(out))
    imbalance = []
    for fi, fp in enumerate(frames):
        if fp.name in done:
            continue
        wall, imb = _do_frame(comm, w, fi, fp, st.sources[fp.input_no], refs, params, want,
                              meas, stages)
        imbalance.append(imb)
        prog.frame_done(fp.name, fp.natoms, wall)
    prog.close()
    todo = len(frames) - len(done)
    with stages.timed("summary"):
        if _wants_overlap(campaign) and not (st.decision.flags.get("overlap") and not todo):
            _overlap_table(comm, w, frames, campaign, hs)
    if need_lc:
        with stages.timed("learning_curve"):
            names = [r["name"] for r in campaign["references"]]
            _learning_curve(comm, w, refs[names.index(lc["dataset"])], lc, hs)
    w.set_attrs("/", {"complete": True})
    w.flush()
    return imbalance


def _wants_overlap(campaign):
    """The overlap table needs per-frame dH against a reference."""
    meas = campaign["measures"]
    return bool(meas["overlap"] and meas["delta_entropy"] and campaign["references"])


def _finish(comm, target, path):
    """Put finished results built aside (``target``) in place of ``path`` (collective)."""
    if target == path:
        return
    err = None
    if comm.rank == 0:
        try:
            os.replace(target, path)
            _fsync_dir(path)
        except OSError as exc:
            err = (f"the new results are complete in {target} but could not replace {path}: "
                   f"{exc.strerror or exc}")
    err = comm.bcast(err, root=0)
    if err:
        from ..results.writer import ResultsIOError

        raise ResultsIOError(err)


def _fsync_dir(path):
    """Make a rename in the directory of ``path`` durable (best effort)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _analyses(comm, campaign, path, stages, say):
    """The campaign's ``analysis`` section on the finished results file (collective)."""
    analysis = campaign.get("analysis")
    if analysis is None:
        return
    from ..analysis.campaign_hooks import run_analyses

    with stages.timed("analysis"):
        run_analyses(path, analysis, comm, out=say)


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


def _create(comm, campaign, frames, refs, infos, refids, expect, path, backend, opts,
            rename=True):
    """Create the whole file structure (collective).

    ``rename``: under a temporary name, then renamed to ``path`` (a new output); else
    directly in ``path`` (already the aside name of an overwrite, renamed at the end).
    """
    from .learning import subset_sizes

    meas, par = campaign["measures"], campaign["parameters"]
    lc = meas["learning_curve"]
    lcplan = None
    if lc:
        names = [r["name"] for r in campaign["references"]]
        n = refs[names.index(lc["dataset"])].n
        sizes = lc["sizes"] or subset_sizes(n, lc["num"], lc["min_size"])
        if max(sizes) > n:
            raise CampaignError(campaign.get("source", "campaign"), [
                f"measures.learning_curve.sizes: {max(sizes)} exceeds the {n} environments "
                f"of reference {lc['dataset']!r}"])
        lcplan = {"sizes": sizes, "repeats": lc["repeats"], "dataset": lc["dataset"],
                  "seed": lc["seed"], "drop": lc["drop"]}
    ref_meta = []
    for spec, info, ident in zip(campaign["references"], infos, refids):
        ref_meta.append({"name": spec["name"], "path": ident[0]["path"] if ident else "",
                         "sha256": R.fingerprint([d["sha256"] for d in ident]) if len(ident) != 1
                         else ident[0]["sha256"], "n_environments": int(info["n_environments"]),
                         "frames": spec["frames"], "format": info["format"]})
    plan = L.StructurePlan(
        frames=frames, k=par["k"], cutoff=par["cutoff"], bandwidths=list(par["bandwidth"]),
        threshold=par["threshold"], references=ref_meta,
        inputs=[s["name"] for s in campaign["inputs"]],
        store={"delta_entropy": meas["delta_entropy"], "descriptors": meas["descriptors"],
               "positions": meas["positions"]},
        entropy=meas["entropy"] or meas["diversity"], diversity=meas["diversity"],
        overlap=_wants_overlap(campaign) and bool(ref_meta), learning_curve=lcplan)
    attrs = None
    if comm.rank == 0:
        attrs = L.root_attributes(plan, comm.size, backend)
        attrs.update({
            "campaign_name": campaign["name"],
            "campaign_description": campaign.get("description", ""),
            "campaign_yaml": campaign.get("yaml", ""),
            "campaign_fingerprint": expect["campaign_fingerprint"],
            "inputs_fingerprint": expect["inputs_fingerprint"],
            "inputs": json.dumps(expect["inputs"]),
        })
    attrs = comm.bcast(attrs, root=0)
    tmp = R.partial_path(path) if rename else path
    w = ResultsWriter.open(tmp, comm, mode="w", **opts)
    with w:
        w.create_structure(plan, attrs)
    if not rename:
        return
    err = None
    if comm.rank == 0:
        try:
            os.replace(tmp, path)
        except OSError as exc:
            err = f"cannot rename {tmp} to {path}: {exc}"
    err = comm.bcast(err, root=0)
    if err:
        raise QuestsInputError(err)


def _do_frame(comm, w, fi, fp, src, refs, params, want, meas, stages):
    """Compute and write one frame; returns (wall seconds, atom imbalance)."""
    from .frames import compute_frame

    t0 = time.perf_counter()
    share = src.read(fp.source_index)
    digest = _frame_hash(comm, src, fp.source_index)
    t_read = time.perf_counter() - t0
    if share.natoms != fp.natoms:
        raise QuestsInputError(f"{fp.source_path}: frame {fp.source_index} has {share.natoms} "
                               f"atoms now, {fp.natoms} when the campaign was planned")
    fo = compute_frame(comm, share, refs, params, want, t_read)
    stages.add(fo.timings)
    t = time.perf_counter()
    base = f"frames/{fp.name}"
    w.write_slab(base + "/id", share.ids)
    if fo.dh is not None:
        w.write_slab(base + "/delta_entropy", fo.dh if fo.dh.shape[1] > 1 else fo.dh[:, 0])
    if fo.descriptors is not None:
        w.write_slab(base + "/descriptors", fo.descriptors)
    if meas["positions"]:
        w.write_slab(base + "/position", share.positions)
        types = share.types if share.types is not None else np.zeros(len(share.ids), np.int32)
        w.write_slab(base + "/type", types)
    rows = [("summary/frames/source_index", fi, fp.source_index),
            ("summary/frames/timestep", fi, share.timestep),
            ("summary/frames/natoms", fi, share.natoms)]
    if fo.dh_summary is not None:
        for col, key in (("n_novel", "n_novel"), ("novelty", "novelty"), ("overlap", "overlap"),
                         ("dh_mean", "mean"), ("dh_min", "min"), ("dh_max", "max")):
            arr = np.array([[b[key] for b in ref] for ref in fo.dh_summary])
            rows.append((f"summary/frames/{col}", fi, arr))
    if fo.entropy is not None and (meas["entropy"] or meas["diversity"]):
        rows.append(("summary/frames/entropy", fi, fo.entropy))
        if meas["diversity"]:
            rows.append(("summary/frames/diversity", fi, fo.diversity))
    w.write_values(rows)
    w.flush()
    wall = comm.bcast(time.perf_counter() - t0, root=0)
    w.write_values([("summary/frames/wall_time", fi, wall)])
    w.set_attrs(base, {"timestep": np.int64(share.timestep),
                       "cell": np.asarray(share.cell, dtype=np.float64),
                       "pbc": np.asarray(share.pbc, dtype=bool), "wall_time": wall,
                       "mpi_size": np.int64(comm.size),
                       L.FRAME_HASH_ATTR: np.array(digest.encode(), dtype="S64")})
    w.flush()
    w.set_attrs(base, {"complete": True})
    w.flush()
    stages.seconds["write"] += time.perf_counter() - t
    return wall, fo.imbalance


def _overlap_table(comm, w, frames, campaign, hs):
    """Novelty / overlap of every input (all its frames) vs every reference (collective)."""
    vals = None
    if comm.rank == 0:
        f = w.file
        nat = f["summary/frames/natoms"][()]
        nov = f["summary/frames/n_novel"][()]
        ni, nr, nh = len(campaign["inputs"]), len(campaign["references"]), len(hs)
        n_atoms = np.zeros((ni, nr, nh), dtype=np.int64)
        n_novel = np.zeros((ni, nr, nh), dtype=np.int64)
        for j, fp in enumerate(frames):
            n_atoms[fp.input_no] += nat[j]
            n_novel[fp.input_no] += nov[j]
        with np.errstate(invalid="ignore", divide="ignore"):
            novelty = np.where(n_atoms > 0, n_novel / np.maximum(n_atoms, 1), np.nan)
        vals = [("summary/overlap/n_atoms", Ellipsis, n_atoms),
                ("summary/overlap/n_novel", Ellipsis, n_novel),
                ("summary/overlap/novelty", Ellipsis, novelty),
                ("summary/overlap/overlap", Ellipsis, 1.0 - novelty)]
    w.write_values(vals or [("summary/overlap/n_atoms", Ellipsis, None)])
    w.flush()
    w.set_attrs("summary/overlap", {"complete": True})
    w.flush()


def _learning_curve(comm, w, ref, lc, hs):
    """Entropy of random subsets and the asymptote fit, written and marked (collective)."""
    from .learning import learning_curve, summarize

    sizes = None
    if comm.rank == 0:
        sizes = [int(s) for s in w.file["learning_curve/sizes"][()]]
    sizes = comm.bcast(sizes, root=0)
    e = learning_curve(comm, ref, sizes, lc["repeats"], lc["seed"], hs)
    s = summarize(sizes, e, fit=lc["fit"], drop=lc["drop"])
    w.write_values([("learning_curve/entropy", Ellipsis, e)]
                   + [(f"learning_curve/{k}", Ellipsis, v) for k, v in s.items()])
    w.flush()
    w.set_attrs("learning_curve", {"complete": True})
    w.flush()
