"""The results file of a campaign: its structure, the tables after the frames, the rename.

* :func:`create` writes the whole structure of a new output (under a temporary name,
  renamed when complete) from the plan (:class:`~quests_hpc.results.layout.StructurePlan`);
* :func:`overlap_table` and :func:`write_learning_curve` fill the tables computed after
  the frames, each marked complete when written;
* :func:`finish` puts results built aside (``OUT.h5.partial`` of an overwrite) in place.

Every function taking ``comm`` is collective.
"""

import json
import os

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..results import layout as L
from ..results import restart as R
from ..results.writer import ResultsIOError, ResultsWriter
from .schema import CampaignError


def _learning_plan(campaign, refs):
    """Sizes, repeats ... of the learning curve (None without one); sizes checked."""
    from .learning import subset_sizes

    lc = campaign.measures.learning_curve
    if lc is None:
        return None
    names = [r.name for r in campaign.references]
    n = refs[names.index(lc.dataset)].n
    sizes = list(lc.sizes) if lc.sizes else subset_sizes(n, lc.num, lc.min_size)
    if max(sizes) > n:
        raise CampaignError(campaign.source, [
            f"measures.learning_curve.sizes: {max(sizes)} exceeds the {n} environments "
            f"of reference {lc.dataset!r}"])
    return {"sizes": sizes, "repeats": lc.repeats, "dataset": lc.dataset, "seed": lc.seed,
            "drop": list(lc.drop)}


def _reference_meta(campaign, infos, refids):
    """One description per reference for the results file."""
    out = []
    for spec, info, ident in zip(campaign.references, infos, refids):
        sha = (ident[0]["sha256"] if len(ident) == 1
               else R.fingerprint([d["sha256"] for d in ident]))
        out.append({"name": spec.name, "path": ident[0]["path"] if ident else "",
                    "sha256": sha, "n_environments": int(info["n_environments"]),
                    "frames": spec.frames, "format": info["format"]})
    return out


def structure_plan(campaign, frames, refs, infos, refids):
    """The :class:`~quests_hpc.results.layout.StructurePlan` of a campaign's output."""
    meas, par = campaign.measures, campaign.parameters
    ref_meta = _reference_meta(campaign, infos, refids)
    return L.StructurePlan(
        frames=frames, k=par.k, cutoff=par.cutoff, bandwidths=list(par.bandwidth),
        threshold=par.threshold, references=ref_meta,
        inputs=[s.name for s in campaign.inputs],
        store={"delta_entropy": meas.delta_entropy, "descriptors": meas.descriptors,
               "positions": meas.positions},
        entropy=meas.entropy or meas.diversity, diversity=meas.diversity,
        overlap=meas.wants_overlap(len(campaign.references)) and bool(ref_meta),
        learning_curve=_learning_plan(campaign, refs), species=par.species_tuple(),
        type_maps={s.name: s.type_map_plain() for s in campaign.inputs})


def _root_attrs(comm, campaign, plan, expect, backend):
    """Root attributes of the file (rank 0's, broadcast)."""
    attrs = None
    if comm.rank == 0:
        attrs = L.root_attributes(plan, comm.size, backend)
        attrs.update({
            "campaign_name": campaign.name,
            "campaign_description": campaign.description,
            "campaign_yaml": campaign.yaml,
            "campaign_fingerprint": expect["campaign_fingerprint"],
            "inputs_fingerprint": expect["inputs_fingerprint"],
            "inputs": json.dumps(expect["inputs"]),
        })
    return pcomm.bcast(attrs, comm, root=0)


def create(comm, campaign, plan, expect, path, backend, opts, rename=True):
    """Create the whole file structure of ``plan`` (collective).

    ``rename``: under a temporary name, then renamed to ``path`` (a new output); else
    directly in ``path`` (already the aside name of an overwrite, renamed at the end).
    ``opts``: the writer's options (backend, chunk_bytes, fsync).
    """
    attrs = _root_attrs(comm, campaign, plan, expect, backend)
    tmp = R.partial_path(path) if rename else path
    with ResultsWriter.open(tmp, comm, mode="w", **opts) as w:
        w.create_structure(plan, attrs)
    if not rename:
        return
    err = None
    if comm.rank == 0:
        try:
            os.replace(tmp, path)
        except OSError as exc:
            err = QuestsInputError(f"cannot rename {tmp} to {path}: {exc}")
    pcomm.raise_if_any(err, comm, prefix=False, root=0)


def finish(comm, target, path):
    """Put finished results built aside (``target``) in place of ``path`` (collective)."""
    if target == path:
        return
    err = None
    if comm.rank == 0:
        try:
            os.replace(target, path)
            _fsync_dir(path)
        except OSError as exc:
            err = ResultsIOError(f"the new results are complete in {target} but could not "
                                 f"replace {path}: {exc.strerror or exc}")
    pcomm.raise_if_any(err, comm, prefix=False, root=0, keep=(ResultsIOError,))


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


def _overlap_values(w, frames, n_inputs, n_refs, n_h):
    """The overlap table's datasets from the per-frame summaries (rank 0)."""
    f = w.file
    nat = f[L.summary_path("natoms")][()]
    nov = f[L.summary_path("n_novel")][()]
    n_atoms = np.zeros((n_inputs, n_refs, n_h), dtype=np.int64)
    n_novel = np.zeros((n_inputs, n_refs, n_h), dtype=np.int64)
    for j, fp in enumerate(frames):
        n_atoms[fp.input_no] += nat[j]
        n_novel[fp.input_no] += nov[j]
    with np.errstate(invalid="ignore", divide="ignore"):
        novelty = np.where(n_atoms > 0, n_novel / np.maximum(n_atoms, 1), np.nan)
    return [(L.overlap_path("n_atoms"), Ellipsis, n_atoms),
            (L.overlap_path("n_novel"), Ellipsis, n_novel),
            (L.overlap_path("novelty"), Ellipsis, novelty),
            (L.overlap_path("overlap"), Ellipsis, 1.0 - novelty)]


def overlap_table(comm, w, frames, campaign):
    """Novelty / overlap of every input (all its frames) vs every reference (collective)."""
    vals = None
    if comm.rank == 0:
        vals = _overlap_values(w, frames, len(campaign.inputs), len(campaign.references),
                               len(campaign.parameters.bandwidth))
    w.write_values(vals or [(L.overlap_path("n_atoms"), Ellipsis, None)])
    w.flush()
    w.set_attrs(L.SUMMARY_OVERLAP, {"complete": True})
    w.flush()


def write_learning_curve(comm, w, ref, lc, hs, precision="float64"):
    """Entropy of random subsets and the asymptote fit, written and marked (collective).

    ``lc`` the campaign's :class:`~quests_hpc.campaign.model.LearningCurve`, ``hs`` the
    bandwidths; the sizes are the file's (planned when it was created).
    """
    from .learning import learning_curve, summarize

    sizes = None
    if comm.rank == 0:
        sizes = [int(s) for s in w.file[L.learning_curve_path("sizes")][()]]
    sizes = pcomm.bcast(sizes, comm, root=0)
    e = learning_curve(comm, ref, sizes, lc.repeats, lc.seed, list(hs), precision)
    s = summarize(sizes, e, fit=lc.fit, drop=lc.drop)
    w.write_values([(L.learning_curve_path("entropy"), Ellipsis, e)]
                   + [(L.learning_curve_path(k), Ellipsis, v) for k, v in s.items()])
    w.flush()
    w.set_attrs("learning_curve", {"complete": True})
    w.flush()
