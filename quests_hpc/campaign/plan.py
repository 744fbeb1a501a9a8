"""Planning a campaign run, before any work: inputs, fingerprints, the output decision.

* :func:`plan_inputs` opens every input and lists the selected frames
  (:class:`~quests_hpc.results.layout.FramePlan`); :func:`check_inputs` is ``run --check``;
* :func:`campaign_fingerprint` / :func:`inputs_fingerprint`: what a resume compares;
* :func:`guard_output` refuses an output that is an input, a reference, the campaign
  file or a frame index cache (before anything is touched);
* :func:`setup` collects every problem (inputs, memory estimate, identities, the existing
  output) and raises them at once as a :class:`CampaignError`, or returns a :class:`Setup`.

Every function taking ``comm`` is collective and returns the same on every rank.
"""

import os
from dataclasses import dataclass

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..parallel.comm import require_comm
from ..results import layout as L
from ..results import restart as R
from .schema import NOT_FINGERPRINTED, CampaignError


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

    Over the normalised dict (:meth:`Campaign.as_dict`), so it is the one results files
    written before carry.  Paths enter by file name only: the files' contents are
    fingerprinted separately (:func:`inputs_fingerprint`), so a campaign directory may be
    moved or copied and resumed.
    """
    core = {k: v for k, v in campaign.as_dict().items()
            if k not in NOT_FINGERPRINTED and k not in ("yaml", "base_dir", "source")}
    params = core.get("parameters")
    if isinstance(params, dict):
        # defaults are left out: results written before the keys existed still resume
        core["parameters"] = {k: v for k, v in params.items()
                              if not (k == "precision" and v == "float64")
                              and not (k == "species" and v is None)}
    return R.fingerprint(_basenames(core))


def inputs_fingerprint(identities):
    """Fingerprint of the contents (size, hash) of the input and reference files, in order."""
    return R.fingerprint([[d["size"], d["sha256"]] for d in identities])


def close_sources(sources):
    """Close the opened inputs (None for one that failed to open)."""
    for s in sources:
        if s is not None:
            s.close()


def _plan_input(comm, i, spec, species=None):
    """(source, frames, problems) of input ``i``."""
    from .sources import InputSource

    src = InputSource(spec, comm)
    sel = src.select(spec.frames)
    problems = []
    if not sel:
        problems.append(f"inputs[{i}] ({spec.name}): {src.files[0]}: the frame selection "
                        f"{spec.frames!r} selects no frame (the file holds {len(src)} "
                        "complete frames)")
    unnamed = src.unnamed_elements(sel, species)
    if unnamed:
        problems.append(f"inputs[{i}] ({spec.name}): {unnamed}")
    frames = [L.FramePlan(name=L.frame_name(spec.name, idx), input=spec.name, input_no=i,
                          source_path=src.frame_file[idx], source_index=int(idx),
                          timestep=int(src.timesteps[idx]), natoms=int(src.natoms[idx]))
              for idx in sel]
    return src, frames, problems


def plan_inputs(comm, campaign):
    """Open the inputs and list the selected frames; problems are collected, not raised.

    Returns ``(sources, frames, problems)`` (a source is None where opening failed).
    """
    problems, sources, frames = [], [], []
    for i, spec in enumerate(campaign.inputs):
        try:
            src, more, probs = _plan_input(comm, i, spec, campaign.parameters.species_tuple())
        except QuestsInputError as exc:
            problems.append(f"inputs[{i}] ({spec.name}): {exc}")
            sources.append(None)
            continue
        sources.append(src)
        frames += more
        problems += probs
    return sources, frames, problems


def check_inputs(campaign, comm):
    """Open every input and check its frame selection, and plan the compress section
    (``run --check``): raises :class:`CampaignError` listing the problems, as a run would
    before any work."""
    from .compress_step import plan_compressions

    require_comm(comm, "check_inputs")
    sources, _, problems = plan_inputs(comm, campaign)
    close_sources(sources)
    problems += plan_compressions(comm, campaign)[1]
    if problems:
        raise CampaignError(campaign.source, problems)


def _expanded(spec):
    """Files of an input / reference entry (globs expanded)."""
    from ..io.lammps_dump import expand_paths

    return [p for q in spec.paths for p in expand_paths(q)]


def _root_identities(campaign, sources):
    ins = []
    for src in sources:
        if src is not None:
            from ..io.compressed import compression_of

            ins.extend(R.file_identity(f, full=src.format != "lammps-dump"
                                       or compression_of(f) is not None) for f in src.files)
    refs = [[R.file_identity(p, full=True) for p in _expanded(spec)]
            for spec in campaign.references]
    return ins, refs


def identities(comm, campaign, sources):
    """File identities, from rank 0: uncompressed LAMMPS dumps of the inputs by a sampled
    hash (their frames carry their own content hash, see :func:`frame_hash`), compressed
    dumps, other inputs and references by a hash of the whole file (cheaper than
    decompressing a stream a second time to hash its frames).

    Returns ``(input identities, [identities of each reference])``.
    """
    ids, err = None, None
    if comm.rank == 0:
        try:
            ids = _root_identities(campaign, sources)
        except (OSError, QuestsInputError) as exc:
            err = QuestsInputError(str(exc))
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    return pcomm.bcast(ids, comm, root=0)


def _protected_files(campaign):
    """``(file, what)`` of every file a run must never write: inputs, references, the
    campaign file and the frame index caches of the input and reference files."""
    from ..io.frame_index import cache_path
    from ..io.lammps_dump import expand_paths

    out = []
    if campaign.source and os.path.isfile(campaign.source):
        out.append((os.path.abspath(campaign.source), "the campaign file"))
    for kind, specs in (("input", campaign.inputs), ("reference", campaign.references)):
        for spec in specs:
            files = []
            for q in spec.paths:
                try:
                    files.extend(expand_paths(q))
                except QuestsInputError:
                    files.append(q)  # reported by the planning; protect the name anyway
            for f in files:
                out.append((f, f"the {kind} {spec.name}"))
                out += [(cache_path(f, where), f"the frame index cache of {f}")
                        for where in ("beside", "user")]
    return out


def guard_output(comm, campaign):
    """Refuse an output that is a protected file, before anything is touched (collective).

    Returns the problems of the output directory (then no lock can be taken: the caller
    lists them with every other problem); raises :class:`CampaignError` for a conflict.
    """
    path = campaign.output.path
    res = None
    if comm.rank == 0:
        try:
            res = (R.output_conflicts(path, _protected_files(campaign)),
                   R.check_output_dir(path))
        except (OSError, QuestsInputError) as exc:
            res = ([f"output {path}: {exc}"], [])
    conflicts, dir_problems = pcomm.bcast(res, comm, root=0)
    if conflicts:
        raise CampaignError(campaign.source, conflicts)
    return dir_problems


@dataclass(frozen=True)
class Setup:
    """What the planning found (identical on every rank).

    ``target`` is where the results are built: the output, or ``OUT.h5.partial`` for an
    overwrite (renamed over the output at the end).
    """

    nthreads: int
    sources: list
    frames: list
    refids: list
    expect: dict
    decision: R.ExistingOutput
    target: str
    backend: str


def _on_root(comm, fn):
    """``fn()`` on rank 0; (result, problems) on every rank (an input error -> problem)."""
    res = None
    if comm.rank == 0:
        try:
            res = (fn(), [])
        except QuestsInputError as exc:
            res = (None, [str(exc)])
    return pcomm.bcast(res, comm, root=0)


def _plan(comm, campaign, problems):
    """Threads, inputs, memory estimate, identities; problems appended to ``problems``."""
    from ..parallel.runtime import configure_threads, warm_up
    from .budget import input_problems  # frames that cannot fit in memory: refused now

    nthreads = configure_threads(comm, campaign.run.threads)
    warm_up(comm)
    sources, frames, more = plan_inputs(comm, campaign)
    problems += more + input_problems(comm, campaign, sources, frames)
    try:
        ins, refids = identities(comm, campaign, sources)
    except QuestsInputError as exc:
        problems.append(str(exc))
        ins, refids = None, []
    return nthreads, sources, frames, ins, refids


def setup(comm, campaign, overwrite, problems):
    """Threads, planning, identities, the decision about the output (collective).

    ``problems`` found before (the output directory's) are listed with every other; all
    are raised at once as a :class:`CampaignError`.
    """
    from ..results.writer import choose_backend

    problems = list(problems)
    nthreads, sources, frames, ins, refids = _plan(comm, campaign, problems)
    every = (ins or []) + [d for r in refids for d in r]
    expect = {"campaign_fingerprint": campaign_fingerprint(campaign),
              "inputs_fingerprint": inputs_fingerprint(every), "inputs": every}
    decision, target, backend = R.ExistingOutput("new"), campaign.output.path, None
    if ins is not None:  # read-only: also when other problems were found, to list them all
        decision, target, more = _decide(comm, campaign.output.path, expect,
                                         overwrite or campaign.output.overwrite, frames,
                                         sources, ins)
        problems += more
    try:
        backend = choose_backend(campaign.output.backend)
    except ValueError as exc:
        problems.append(f"output.backend: {exc}")
    if problems:
        close_sources(sources)
        raise CampaignError(campaign.source, problems)
    return Setup(nthreads=nthreads, sources=sources, frames=frames, refids=refids,
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
    stale = []
    for fp in frames:
        if fp.name not in done or fp.source_path not in changed:
            continue
        now = frame_hash(comm, sources[fp.input_no], fp.source_index)
        if not now or now != dec.frame_hashes.get(fp.name):
            stale.append(f"{fp.source_path}: frame {fp.source_index} (timestep "
                         f"{fp.timestep}) has other bytes now than when {fp.name} was "
                         "computed (the file was modified in place)")
    if not stale:
        return dec
    more = f" (and {len(stale) - 3} more frames)" if len(stale) > 3 else ""
    return R.ExistingOutput("refuse", reason=(
        f"{path} was written from other input data: " + "; ".join(stale[:3]) + more))


def frame_hash(comm, src, idx):
    """Content hash of frame ``idx``'s bytes (collective); ``""`` where there is none."""
    # compressed and ASE inputs have no byte range: a hash of the whole file identifies them
    rng = None if src.dump is None else src.dump.byte_range(int(idx))
    return R.frame_hash(comm, *rng) if rng is not None else ""
