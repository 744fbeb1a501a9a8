"""Run a campaign: plan, check, (re)start, process frames, summaries, learning curve.

:func:`run_campaign` is collective over ``comm`` (default ``MPI.COMM_WORLD``; a serial
run is a world of one rank).  Steps:

1. threads per rank and the Numba warm-up (:mod:`quests_hpc.parallel.runtime`);
2. *plan*: open every input (frame indices), apply the frame selections, fingerprint the
   campaign and the input / reference files, inspect an existing output file
   (:func:`quests_hpc.results.restart.inspect_output`).  Every problem found here is
   collected and raised at once (:class:`~quests_hpc.campaign.schema.CampaignError`,
   exit status 2) before any work starts;
3. references: descriptors computed or loaded once and shared (only when needed);
4. a new output gets its whole structure under a temporary name, then is renamed;
5. every frame not yet complete: read -> pipeline -> dH / H / D -> write -> flush ->
   attributes -> flush -> ``complete`` -> flush; one progress line per frame on rank 0;
6. the overlap table and the learning curve (each marked complete when written), then
   the root ``complete`` flag; a summary and the timing table on rank 0.
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
                problems.append(f"inputs[{i}] ({spec['name']}): frame selection "
                                f"{spec['frames']!r} selects no frame")
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


def _identities(comm, campaign, sources):
    """File identities of inputs (sampled hash) and references (full hash), from rank 0."""
    ids, err = None, None
    if comm.rank == 0:
        try:
            ins = []
            for src in sources:
                if src is not None:
                    ins.extend(R.file_identity(f) for f in src.files)
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
    out : callable
        Where rank 0's text goes (default: print to stdout).

    Returns
    -------
    dict
        On every rank: ``path``, ``frames`` (total), ``computed``, ``skipped``.

    Raises
    ------
    CampaignError
        Problems found before any work (exit status 2 in the CLI).
    quests_hpc.results.writer.ResultsIOError
        Writing failed (finished frames stay intact).
    """
    from mpi4py import MPI

    from ..parallel.runtime import configure_threads, warm_up

    comm = MPI.COMM_WORLD if comm is None else comm
    say = _say(comm, out)
    t_start = time.perf_counter()
    stages = _Stages()
    par, meas, outp, run = (campaign[k] for k in ("parameters", "measures", "output", "run"))
    params = {"k": par["k"], "cutoff": par["cutoff"], "bandwidth": list(par["bandwidth"]),
              "threshold": par["threshold"], "balance": run["balance"]}
    overwrite = overwrite or outp["overwrite"]
    path = outp["path"]
    source = campaign.get("source", "campaign")

    with stages.timed("setup"):
        nthreads = configure_threads(comm, run["threads"])
        warm_up(comm)
        sources, frames, problems = _plan_inputs(comm, campaign)
        try:
            ins, refids = _identities(comm, campaign, sources)
        except QuestsInputError as exc:
            problems.append(str(exc))
            ins, refids = [], []
        every = ins + [d for r in refids for d in r]
        expect = {"campaign_fingerprint": campaign_fingerprint(campaign),
                  "inputs_fingerprint": inputs_fingerprint(every), "inputs": every}
        decision = None
        if comm.rank == 0:
            # Rank 0 alone looks at the output; whatever it finds (an error included)
            # reaches every rank through the bcast below, so no rank is left waiting.
            try:
                probs = R.check_output_dir(path)
                decision = (R.inspect_output(path, expect) if not probs
                            else R.ExistingOutput("new"))
                if decision.status == "refuse":
                    if overwrite:
                        R.remove_output(path)
                        decision = R.ExistingOutput("new", reason="overwritten")
                    else:
                        probs.append(decision.reason + "; rerun with --overwrite (or "
                                     "output.overwrite: true) to replace it")
            except QuestsInputError as exc:
                probs, decision = [str(exc)], R.ExistingOutput("new")
            problems += probs
        decision, problems = comm.bcast((decision, problems), root=0)
        try:
            backend = choose_backend(outp["backend"])
        except ValueError as exc:
            problems.append(f"output.backend: {exc}")
        if problems:
            raise CampaignError(source, problems)

    total_atoms = sum(fp.natoms for fp in frames)
    done = set(decision.complete)
    todo = [fp for fp in frames if fp.name not in done]
    lc = meas["learning_curve"]
    need_lc = bool(lc) and not decision.flags.get("learning_curve", False)
    say(f"quests-hpc run: campaign {campaign['name']!r}: {len(frames)} frame(s), "
        f"{total_atoms} atoms, {len(campaign['references'])} reference(s); {comm.size} "
        f"rank(s) x {nthreads} thread(s); output {path} ({backend} writer)")
    if decision.status == "resume":
        say(f"resuming: {len(done)} of {len(frames)} frame(s) already complete, "
            f"{len(todo)} to compute")
    if decision.status == "resume" and not todo and not need_lc and decision.flags.get(
            "campaign"):
        say("nothing to do: the campaign is complete")
        for s in sources:
            if s is not None:
                s.close()
        _analyses(comm, campaign, path, stages, say)
        return {"path": path, "frames": len(frames), "computed": 0, "skipped": len(frames)}

    refs, infos = [], []
    if (todo and meas["delta_entropy"]) or need_lc:
        refs, infos = _load_references(comm, campaign, params, stages, say)

    writer_opts = dict(backend=backend, chunk_bytes=int(outp["chunk_mb"] * (1 << 20)),
                       fsync=outp["fsync"])
    if decision.status == "new":
        with stages.timed("setup"):
            _create(comm, campaign, frames, refs, infos, refids, expect, path, backend,
                    writer_opts)

    hs = params["bandwidth"]
    want = {k: meas[k] for k in ("delta_entropy", "descriptors", "entropy", "diversity")}
    with ResultsWriter.open(path, comm, mode="a", **writer_opts) as w:
        from .progress import Progress

        prog = Progress(len(frames), total_atoms, len(done),
                        sum(fp.natoms for fp in frames if fp.name in done),
                        mode=run["progress"], active=comm.rank == 0, stream=_Stream(out))
        imbalance = []
        for fi, fp in enumerate(frames):
            if fp.name in done:
                continue
            wall, imb = _do_frame(comm, w, fi, fp, sources[fp.input_no], refs, params, want,
                                  meas, stages)
            imbalance.append(imb)
            prog.frame_done(fp.name, fp.natoms, wall)
        prog.close()
        with stages.timed("summary"):
            if meas["overlap"] and campaign["references"] and not (
                    decision.flags.get("overlap") and not todo):
                _overlap_table(comm, w, frames, campaign, hs)
        if need_lc:
            with stages.timed("learning_curve"):
                names = [r["name"] for r in campaign["references"]]
                _learning_curve(comm, w, refs[names.index(lc["dataset"])], lc, hs)
        w.set_attrs("/", {"complete": True})
        w.flush()
    for ref in refs:
        ref.free()
    for s in sources:
        if s is not None:
            s.close()

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


def _create(comm, campaign, frames, refs, infos, refids, expect, path, backend, opts):
    """Create the whole file structure under a temporary name, then rename it (collective)."""
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
        overlap=meas["overlap"] and bool(ref_meta), learning_curve=lcplan)
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
    tmp = R.partial_path(path)
    if comm.rank == 0 and os.path.exists(tmp):
        os.remove(tmp)
    comm.Barrier()
    w = ResultsWriter.open(tmp, comm, mode="w", **opts)
    with w:
        w.create_structure(plan, attrs)
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
                       "mpi_size": np.int64(comm.size)})
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
