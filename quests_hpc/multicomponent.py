"""Multi-element QUESTS descriptors (SPEC.md, "Several elements"; layout in :mod:`.species`).

An atom's descriptor is its plain descriptor over all neighbours, then, for every
species, its descriptor within that species' sub-structure (zero for atoms of other
species).  Every block is the single-element kernel of :mod:`.descriptors` on a subset
of one point cloud, so what holds there holds here: any boundary condition (periodic,
slab, none), right- or left-handed triclinic cells, cells narrower than ``2 r_c``,
linear cost, threads; and under MPI the halo of r_c is enough (a same-species neighbour
within r_c is a neighbour within r_c), provided the ghosts carry their species.

* :class:`SpeciesEnvironments` -- the chunked interface of
  :class:`~quests_hpc.descriptors.LocalEnvironments` over owned + ghost points with
  species codes (what the MPI pipeline uses);
* :func:`multicomponent_from_arrays` -- one structure as arrays;
* :func:`get_descriptors_multicomponent` -- drop-in for upstream's function of that name;
* :func:`structure_descriptors` -- one structure under a run's species setting (what
  references and data sets of small structures use).
"""

import numpy as np

from .descriptors import DEFAULT_CUTOFF, DEFAULT_K, LocalEnvironments, check_parameters, \
    point_cloud
from .errors import QuestsInputError
from .species import block_columns, n_blocks, several_elements, species_codes, species_list


class SpeciesEnvironments:
    """Multi-element descriptors of the first ``n_centres`` points, chunk by chunk.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Centres first, then neighbours only (images, ghosts).
    n_centres : int
    codes : array_like of int, shape (N,)
        Species code of every point (0 .. n_species-1).
    n_species : int
    k, cutoff, labels
        As for :class:`~quests_hpc.descriptors.LocalEnvironments`.

    ``chunk`` and ``all`` give rows of width ``(2k-1)(n_species+1)`` (plain ``2k-1`` for
    one species) in the same centre order as the plain environments would.
    """

    def __init__(self, points, n_centres, codes, n_species, k=DEFAULT_K,
                 cutoff=DEFAULT_CUTOFF, labels=None):
        points = np.asarray(points, dtype=np.float64)
        codes = np.asarray(codes, dtype=np.int64).reshape(-1)
        if len(codes) != len(points):
            raise QuestsInputError(f"codes ({len(codes)}) and points ({len(points)}) differ "
                                   "in length")
        self.full = LocalEnvironments(points, n_centres, k, cutoff, labels)
        self.k, self.cutoff, self.n_centres = self.full.k, self.full.cutoff, self.full.n_centres
        self.n_block = n_blocks(range(int(n_species)))
        self.width = self.full.width * self.n_block
        self.rows = self.full.rows
        self._codes = codes[:self.n_centres]
        self._subs, self._slot = [], np.zeros(self.n_centres, dtype=np.int64)
        if self.n_block == 1:
            return
        lab = np.arange(len(points)) if labels is None else np.asarray(labels)
        for s in range(int(n_species)):
            idx = np.flatnonzero(codes == s)  # ascending: this species' centres come first
            nc = int(np.searchsorted(idx, self.n_centres))
            self._slot[idx[:nc]] = np.arange(nc)
            self._subs.append(LocalEnvironments(points[idx], nc, k, cutoff, lab[idx])
                              if nc else None)

    def __len__(self):
        return self.n_centres

    def n_chunks(self, size):
        return self.full.n_chunks(size)

    def chunk(self, c, size, out=None):
        """``(rows, descriptors)`` of chunk ``c``, as :meth:`LocalEnvironments.chunk`."""
        rows, plain = self.full.chunk(c, size)
        m = len(rows)
        desc = np.empty((m, self.width)) if out is None else out[:m]
        self._assemble(rows, plain, desc)
        return rows, desc

    def all(self):
        """Descriptors of every centre, rows in the caller's order of the centres."""
        out = np.empty((self.n_centres, self.width))
        rows = np.arange(self.n_centres, dtype=np.int64)
        plain = np.empty((self.n_centres, self.full.width))
        self._assemble(rows, self.full.descriptors_of(rows, plain), out)
        return out

    def _assemble(self, rows, plain, out):
        """Fill ``out`` (rows of the centres ``rows``) from their plain descriptors and
        their descriptors in their own species' sub-structure."""
        k, nb = self.k, self.n_block
        if nb == 1:
            out[:] = plain
            return
        out[:] = 0.0
        c1, c2 = block_columns(k, nb, 0)
        out[:, c1], out[:, c2] = plain[:, :k], plain[:, k:]
        codes = self._codes[rows]
        for s, sub in enumerate(self._subs):
            mine = np.flatnonzero(codes == s)
            if sub is None or len(mine) == 0:
                continue
            d = sub.descriptors_of(self._slot[rows[mine]], np.empty((len(mine), 2 * k - 1)))
            c1, c2 = block_columns(k, nb, s + 1)
            out[mine, c1], out[mine, c2] = d[:, :k], d[:, k:]


def multicomponent_from_arrays(positions, symbols, species, cell=None, pbc=False,
                               k=DEFAULT_K, cutoff=DEFAULT_CUTOFF):
    """Multi-element descriptors of one structure given as arrays.

    Parameters
    ----------
    positions : array_like, shape (N, 3)
    symbols : sequence of str, length N
        Element of each atom; each must be in ``species``.
    species : sequence of str
        The run's species (sorted here).
    cell, pbc, k, cutoff
        As for :func:`~quests_hpc.descriptors.descriptors_from_arrays`; slabs and
        non-periodic structures are handled (upstream assumes full periodicity).

    Returns
    -------
    ndarray, shape (N, (2k-1)(n_species+1)); ``(N, 2k-1)`` for one species
    """
    k, cutoff = check_parameters(k, cutoff)
    species = species_list(species)
    if len(symbols) != len(positions):
        raise QuestsInputError(f"symbols ({len(symbols)}) and positions ({len(positions)}) "
                               "differ in length")
    codes = species_codes(symbols, species)
    points, n, source = point_cloud(positions, cell, pbc, cutoff)
    env = SpeciesEnvironments(points, n, codes[source], len(species), k, cutoff,
                              labels=source)
    return env.all()


def get_descriptors_multicomponent(dset, k=DEFAULT_K, cutoff=DEFAULT_CUTOFF, species=None,
                                   concat=True, dtype="float64"):
    """Drop-in for upstream ``quests.descriptor.get_descriptors_multicomponent``.

    Parameters
    ----------
    dset : ase.Atoms or sequence of ase.Atoms
        Frames are stacked in order; each frame's ``pbc`` and ``cell`` are honoured.
    k, cutoff : int, float
    species : sequence of str, optional
        The species blocks (sorted by symbol); default: every element in ``dset``.  An
        atom of an element outside ``species`` is refused (upstream silently gives it
        zeros in every species block).
    concat : bool
        One array ``[X1_all, X1_A, ..., X2_all, X2_A, ...]``; if False the tuple
        ``(X1, X2)`` of the ``X1_*`` and ``X2_*`` columns.
    dtype : str or dtype

    Returns
    -------
    ndarray (N, (2k-1)(n+1)) or tuple of (N, k(n+1)) and (N, (k-1)(n+1)) arrays (plain
    widths for one species)
    """
    frames = [dset] if hasattr(dset, "get_positions") else list(dset)
    if not frames:
        raise QuestsInputError("dset is empty: give an ase.Atoms or a non-empty list of them")
    if species is None:
        species = sorted({s for a in frames for s in a.get_chemical_symbols()})
    species = species_list(species)
    parts = []
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise QuestsInputError(f"dset frame {i} has no atoms")
        try:
            parts.append(multicomponent_from_arrays(
                atoms.get_positions(), atoms.get_chemical_symbols(), species,
                atoms.cell.array, atoms.pbc, k=k, cutoff=cutoff))
        except QuestsInputError as exc:
            raise QuestsInputError(f"dset frame {i}: {exc}") from None
    x = np.concatenate(parts).astype(dtype, copy=False)
    if concat:
        return x
    split = int(k) * n_blocks(species)
    return x[:, :split].copy(), x[:, split:].copy()


def structure_descriptors(positions, cell, pbc, k, cutoff, symbols=None, species=None,
                          ignore_species=False, where="structure"):
    """Descriptors of one structure under a run's species setting.

    ``species`` (several): the multi-element descriptor, every atom's element in the list;
    one species: the plain descriptor, elements checked.  ``species=None``: the plain
    descriptor, and a structure whose ``symbols`` name several elements is refused unless
    ``ignore_species`` (it would silently mix them).
    """
    if species is not None:
        if symbols is None:
            raise QuestsInputError(f"{where}: the atoms' elements are not named; the run's "
                                   f"species are {list(species)}")
        return multicomponent_from_arrays(positions, symbols, species, cell, pbc, k, cutoff)
    found = sorted(set(np.asarray(symbols).tolist())) if symbols is not None else []
    if len(found) > 1 and not ignore_species:
        raise several_elements(where, found)
    from .descriptors import descriptors_from_arrays

    return descriptors_from_arrays(positions, cell, pbc, k=k, cutoff=cutoff)
