"""A data set of structures spread over the ranks: descriptors and entropy per structure.

A data set is every frame of one or more files (LAMMPS text dumps, or anything ASE
reads), each frame a structure ``s`` with its environments' descriptors ``X_s`` and its
own entropy ``H_s = H(X_s)``.  :func:`load_dataset` deals the structures to the ranks in
contiguous blocks of about equal numbers of environments (rank ``r`` holds structures
``bounds[r] .. bounds[r+1]-1``), so no rank holds the environments of the whole set,
and each structure lives whole on one rank.

* LAMMPS dumps: every rank opens the dump (the reader's frame index) and reads only its
  own frames;
* other files: ASE is serial, so rank 0 reads the structures and sends each rank the
  positions, cells and boundary conditions of its block.

Descriptors and entropies are computed by the serial core on the owning rank, so they do
not depend on the number of ranks.  All functions taking ``comm`` are collective.
"""

import glob
import os
from dataclasses import dataclass, field

import numpy as np

from ..descriptors import check_parameters
from ..errors import QuestsInputError
from ..multicomponent import structure_descriptors
from ..species import descriptor_width, species_list
from ..information import DEFAULT_BANDWIDTH, entropy
from ..parallel import comm as pcomm
from ..threads import get_num_threads, set_num_threads

#: Structures with fewer atoms are described on one thread (the cost of starting the
#: threads is larger than the work: 7 ms against 18 ms per 108-atom frame on 2 threads);
#: run one rank per core for data sets of small structures.
SMALL_STRUCTURE = 4096


@dataclass
class Dataset:
    """This rank's share of a data set (see the module doc).

    Attributes
    ----------
    counts : ndarray (n_structures,) of int64
        Environments of every structure (the same on every rank).
    bounds : ndarray (size + 1,) of int64
        Rank ``r`` holds structures ``bounds[r]:bounds[r+1]``.
    x : list of ndarray
        This rank's structures' descriptors, in order.
    entropies : ndarray
        ``H_s`` of this rank's structures.
    where : list of str
        ``"file, frame i"`` of every structure (every rank), for messages and outputs.
    files, frames : list
        The file and frame number in it of every structure (every rank).
    species : tuple of str or None
        The species of the descriptors (multi-element for several).
    """

    counts: np.ndarray
    bounds: np.ndarray
    x: list
    entropies: np.ndarray
    where: list
    files: list
    frames: list
    k: int
    cutoff: float
    h: float
    rank: int = 0
    formats: dict = field(default_factory=dict)
    species: tuple = None

    @property
    def width(self):
        """Descriptor length (:func:`quests_hpc.species.descriptor_width`)."""
        return descriptor_width(self.k, self.species)

    @property
    def n_structures(self):
        return len(self.counts)

    @property
    def n_environments(self):
        return int(self.counts.sum())

    @property
    def lo(self):
        """Index of this rank's first structure."""
        return int(self.bounds[self.rank])

    @property
    def hi(self):
        return int(self.bounds[self.rank + 1])

    def owner(self, s):
        """The rank holding structure ``s``."""
        return int(np.searchsorted(self.bounds, s, side="right") - 1)

    def local(self, s):
        """The descriptors of structure ``s`` (held by this rank)."""
        return self.x[s - self.lo]


def expand_inputs(paths, label="dataset"):
    """The files of ``paths`` (a path, a glob or a list of them), in order, each checked."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise QuestsInputError(f"{label}: no input file given")
    files = []
    for p in map(str, paths):
        hits = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        if not hits:
            raise QuestsInputError(f"{label}: {p}: the pattern matches no file")
        for f in hits:
            if not os.path.isfile(f):
                raise QuestsInputError(f"{label}: {f}: no such file")
        files.extend(hits)
    return files


def _is_dump(path):
    from ..io.reference import is_lammps_dump

    return is_lammps_dump(path)


def _index_files(files, label, kept, type_map=None):
    """``(files, frames, counts, formats)`` of every structure of ``files`` (rank 0); the
    structures of the files ASE reads are kept in ``kept`` (file -> list of frames)."""
    from ..io.lammps_dump import LammpsDump
    from ..io.reference import read_structures

    out_f, out_i, out_n, formats = [], [], [], {}
    for f in files:
        if _is_dump(f):
            with LammpsDump(f) as d:
                d.check_readable(range(len(d)))
                n = np.asarray(d.natoms, dtype=np.int64)
            formats[f] = "lammps-dump"
        else:
            kept[f] = read_structures(f, type_map=type_map, parallel=False)  # no ASE bcast
            n = np.array([len(fr) for fr in kept[f]], dtype=np.int64)
            formats[f] = "ase"
        if len(n) == 0:
            raise QuestsInputError(f"{label}: {f}: the file holds no structure")
        empty = np.flatnonzero(n == 0)
        if len(empty):
            raise QuestsInputError(f"{label}: {f}, frame {int(empty[0])}: the structure has "
                                   "no atoms; every structure of a data set needs at least one")
        out_f += [f] * len(n)
        out_i += list(range(len(n)))
        out_n.append(n)
    return out_f, out_i, np.concatenate(out_n), formats


def balanced_bounds(counts, parts):
    """Contiguous blocks of structures with about equal numbers of environments."""
    c = np.concatenate([[0], np.cumsum(counts)])
    b = np.searchsorted(c, c[-1] * np.arange(parts + 1) / parts, side="left")
    b[0], b[-1] = 0, len(counts)
    return np.maximum.accumulate(b).astype(np.int64)


def _read_block(comm, files, frames, formats, bounds, kept, type_map=None):
    """``(positions, cell, pbc, elements)`` of this rank's structures (``kept``: the
    structures of the files ASE reads, on rank 0; ``elements`` None where not named)."""
    from ..io.lammps_dump import LammpsDump

    lo, hi = int(bounds[comm.rank]), int(bounds[comm.rank + 1])
    mine = []
    dumps = {}
    try:
        for s in range(lo, hi):
            if formats[files[s]] != "lammps-dump":
                continue
            d = dumps.get(files[s]) or dumps.setdefault(files[s], LammpsDump(
                files[s], type_map=type_map))
            fr = d.read(frames[s])
            mine.append((s, fr.positions, fr.cell, fr.pbc, fr.elements))
    finally:
        for d in dumps.values():
            d.close()
    blocks = None
    if comm.rank == 0 and any(v == "ase" for v in formats.values()):
        blocks = [[] for _ in range(comm.size)]
        for f, structures in kept.items():
            first = files.index(f)
            for i, fr in enumerate(structures):
                s = first + i
                r = int(np.searchsorted(bounds, s, side="right") - 1)
                blocks[r].append((s, fr.positions, fr.cell, fr.pbc, fr.elements))
    if any(v == "ase" for v in formats.values()):
        mine += pcomm.scatter(blocks, comm, root=0)
    return [m[1:] for m in sorted(mine, key=lambda m: m[0])]


def load_dataset(comm, paths, *, k=32, cutoff=5.0, h=DEFAULT_BANDWIDTH, label="dataset",
                 species=None, type_map=None):
    """Read and describe a data set: this rank's :class:`Dataset` (collective).

    ``species``: the run's elements (several: the multi-element descriptor), ``"ignore"``
    (every atom alike) or None (structures naming several elements are refused);
    ``type_map`` names the types of dumps without an ``element`` column.

    Raises :class:`QuestsInputError` (on every rank) for a missing or unreadable file, a
    file without structures or a structure without atoms.
    """
    check_parameters(k, cutoff)
    ignore = species == "ignore"
    species = None if species in (None, "ignore") else species_list(species, label)
    err, index, kept = None, None, {}
    if comm.rank == 0:
        try:
            files = expand_inputs(paths, label)
            index = _index_files(files, label, kept, type_map)
        except QuestsInputError as exc:
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    files, frames, counts, formats = pcomm.bcast(index, comm)
    bounds = balanced_bounds(counts, comm.size)
    where = [f"{f}, frame {i}" for f, i in zip(files, frames)]
    err, x, ent = None, [], []
    threads = get_num_threads()
    try:
        block = _read_block(comm, files, frames, formats, bounds, kept, type_map)
        for s, (pos, cell, pbc, elements) in enumerate(block, start=int(bounds[comm.rank])):
            set_num_threads(1 if len(pos) < SMALL_STRUCTURE else threads)
            x.append(structure_descriptors(pos, cell, pbc, k, cutoff, elements, species, ignore,
                                           where[s]))
            ent.append(float(entropy(x[-1], h)))
    except QuestsInputError as exc:
        err = QuestsInputError(f"{label}: {exc}")
    finally:
        set_num_threads(threads)
    pcomm.raise_if_any(err, comm, prefix=False)
    return Dataset(counts=counts, bounds=bounds, x=x, entropies=np.array(ent), where=where,
                   files=files, frames=frames, k=int(k), cutoff=float(cutoff), h=float(h),
                   rank=comm.rank, formats=formats, species=species)


def read_atoms(dataset, indices):
    """ASE ``Atoms`` of the structures ``indices`` (in that order), read anew from their
    files (on the calling rank only: the writer's).  Dump frames keep their positions as
    written (not wrapped) and every per-atom column."""
    from ..io.lammps_dump import LammpsDump
    from ..io.reference import read_structures

    want = {}
    for s in indices:
        want.setdefault(dataset.files[s], []).append(int(s))
    got = {}
    for f, ss in want.items():
        if dataset.formats[f] == "lammps-dump":
            with LammpsDump(f, columns="all", wrap=False) as d:
                for s in ss:
                    got[s] = d.read(dataset.frames[s]).to_ase()
        else:
            frames = set(dataset.frames[s] for s in ss)
            first = dataset.files.index(f)
            for i, fr in enumerate(read_structures(f, parallel=False)):
                if i in frames:
                    got[first + i] = fr.to_ase()
    return [got[int(s)] for s in indices]
