"""One frame through the MPI pipeline: the single path of every command.

Stages of one frame (names as in the end-of-run table), each collective over ``comm``:

``read``
    The source parses its rows (a LAMMPS dump: each rank its byte range) and hands them
    to :func:`route`'s owner hook, which builds the spatial decomposition
    (:func:`~quests_hpc.parallel.decomposition.build_grid`) from them; the rows then go
    straight to the ranks owning their subdomains: **one exchange of atoms in**.
``halo``
    Ghost atoms within r_c of each subdomain (:func:`~quests_hpc.parallel.halo.exchange_halo`).
``descriptors`` / ``kernel_sums``
    One cell list over owned + ghost atoms (:class:`~quests_hpc.descriptors.
    LocalEnvironments`); then, chunk by chunk of owned atoms, their descriptors and their
    kernel sums against every reference and bandwidth.  A chunk's descriptors are
    dropped once its sums are done, unless descriptors (or the frame's H and D, which
    need them all) are asked for, so memory is bounded by the chunk, not the frame.
``entropy``
    The frame's H and D (a ring pass over the distributed descriptors), when asked for.
``id_order``
    Results, ids (and positions and types when asked for) go to the rank holding their
    block of the id-sorted frame: **one exchange of atoms out**.  Ranks in order then hold
    the frame in id order in contiguous blocks, what the results writer writes at
    exclusive-scan offsets.

No rank ever holds the whole frame.  Each stage's time and the peak memory reached in it
land in :attr:`FrameOutput.timings` / :attr:`FrameOutput.memory`.
"""

from dataclasses import dataclass, field

import numpy as np

from .. import geometry
from ..descriptors import LocalEnvironments, check_parameters
from ..errors import QuestsInputError
from ..multicomponent import SpeciesEnvironments
from ..species import descriptor_width, known_symbol, n_blocks, several_elements, species_codes
from ..timing import StageTimer
from . import comm as pcomm
from . import measures
from .decomposition import OwnedAtoms, build_grid, distribute, imbalance
from .halo import exchange_halo
from .comm import collective_errors

#: Owned atoms per chunk of descriptors and kernel sums (64 Ki: 33 MB of descriptors).
CHUNK_ATOMS = 1 << 16


@dataclass(frozen=True)
class FrameRequest:
    """What to compute for a frame.

    Attributes
    ----------
    k, cutoff : int, float
        Descriptor parameters (SPEC.md).
    bandwidths : tuple of float
        Bandwidths h of the kernel sums.
    threshold : float
        dH above which an atom counts as novel in the summary.
    balance : {"uniform", "atoms"}
        Cut planes of the decomposition.
    delta_entropy, descriptors, entropy, positions : bool
        dH against every reference; descriptors in id order; the frame's H and D;
        positions and types in id order.
    chunk_atoms : int
        Owned atoms per chunk.
    precision : {"float64", "float32"}
        Arithmetic of the kernel sums (:func:`quests_hpc.information.log_kernel_sum`).
    dims : tuple of 3 int or None
        Subdomains per axis (None: chosen).
    species : tuple of str or None
        The run's species, sorted (:mod:`quests_hpc.species`): several give the
        multi-element descriptor, every atom's element checked against them.  None: the
        plain descriptor, and a frame naming several elements is refused unless
        ``ignore_species``.
    ignore_species : bool
        Treat every atom alike (the plain descriptor) whatever its element: asked for.
    """

    k: int
    cutoff: float
    bandwidths: tuple
    threshold: float = 0.0
    balance: str = "uniform"
    delta_entropy: bool = True
    descriptors: bool = False
    entropy: bool = False
    positions: bool = False
    chunk_atoms: int = CHUNK_ATOMS
    dims: tuple = None
    precision: str = "float64"
    species: tuple = None
    ignore_species: bool = False

    @property
    def width(self):
        """Descriptor length: ``2k-1``, times ``n_species + 1`` for several species."""
        return descriptor_width(self.k, self.species)


@dataclass
class FrameRows:
    """Rows of one frame as a source hands them to the pipeline (this rank's part).

    ``routed``: the rows are already at their owners (the source called the owner hook and
    exchanged them); otherwise the pipeline sends them (any split of the frame, e.g. all
    rows on rank 0 for a serial reader).  ``elements``: each row's chemical symbol, when
    the source names them (an ``element`` column, a type map, ASE symbols).
    """

    ids: np.ndarray
    positions: np.ndarray
    types: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    timestep: int
    natoms: int
    where: str = ""
    routed: bool = False
    elements: np.ndarray = None


@dataclass
class FrameOutput:
    """Results of one frame on this rank: its block of the id-sorted frame.

    Attributes
    ----------
    ids : ndarray (n_local,)
    dh : ndarray (n_local, n_refs * n_h) or None
        Column ``r * n_h + b``: reference ``r``, bandwidth ``b``.
    descriptors : ndarray (n_local, 2k-1) or None
    positions, types : ndarray or None
        With ``request.positions``.
    dh_summary : list or None
        On rank 0: per reference, per bandwidth, a dict ``n``, ``n_novel``, ``novelty``,
        ``overlap``, ``mean``, ``min``, ``max``.
    entropy, diversity : ndarray (n_h,) or None
    timestep, natoms, cell, pbc, where
        Of the frame.
    imbalance : float
        Owned atoms, max / mean over ranks.
    n_owned, n_ghosts : int
        Atoms this rank owned and ghosts it received in the decomposition.
    dims : list of 3 int
        Subdomains per axis of the decomposition.
    timings, cpu : dict
        Wall and CPU seconds per stage on this rank.
    memory : dict
        Peak resident bytes of this process during each stage
        (:class:`quests_hpc.timing.StageTimer`).
    """

    ids: np.ndarray
    timestep: int
    natoms: int
    cell: np.ndarray
    pbc: np.ndarray
    where: str = ""
    dh: np.ndarray = None
    descriptors: np.ndarray = None
    positions: np.ndarray = None
    types: np.ndarray = None
    dh_summary: list = None
    entropy: np.ndarray = None
    diversity: np.ndarray = None
    imbalance: float = 1.0
    n_owned: int = 0
    n_ghosts: int = 0
    dims: list = None
    timings: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)


class ArraySource:
    """A frame given as arrays (any split of its atoms over the ranks): for the Python
    API, tests and benchmarks.  ``read_rows(0, owner)`` hands the rows to the pipeline."""

    def __init__(self, ids, positions, cell, pbc, types=None, timestep=0, where="",
                 elements=None):
        self.rows = (ids, positions, types)
        self.elements = None if elements is None else np.asarray(elements)
        self.cell = np.asarray(cell, dtype=np.float64)
        self.pbc = geometry.as_pbc(pbc)
        self.timestep, self.where_text = int(timestep), where

    def where(self, index):
        return self.where_text

    def read_rows(self, comm, index, owner=None):
        ids, pos, types = self.rows
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        natoms = int(pcomm.allreduce(np.array([len(ids)], np.int64), "sum", comm)[0])
        return FrameRows(ids, pos, types, self.cell, self.pbc, self.timestep, natoms,
                         self.where_text, routed=False, elements=self.elements)


class DumpSource:
    """A :class:`~quests_hpc.parallel.dump_reader.ParallelDump` as a pipeline source: each
    rank parses its byte range and the reader sends the rows straight to their owners."""

    def __init__(self, dump):
        self.dump = dump

    def where(self, index):
        return self.dump.where(int(index) % len(self.dump))

    def read_rows(self, comm, index, owner=None):
        fr = self.dump.read(int(index), owner=owner if comm.size > 1 else None)
        types = None if fr.types is None else np.asarray(fr.types, dtype=np.int32)
        return FrameRows(fr.ids, fr.positions, types, np.asarray(fr.cell, dtype=float),
                         np.asarray(fr.pbc, dtype=bool), int(fr.timestep), int(fr.natoms),
                         self.where(index), routed=True, elements=fr.elements)


def _owner_hook(comm, request, holder):
    """The owner map a reader calls with its parsed rows (collective, every rank)."""

    def owner(header, ids, positions):
        grid = build_grid(comm, positions, header.cell, header.pbc, dims=request.dims,
                          balance=request.balance)
        holder["grid"] = grid
        if len(positions) == 0:
            return np.empty(0, dtype=np.int64)
        wrapped = geometry.wrap_positions(positions, grid.cell, grid.pbc)
        return grid.owner(grid.fractional(wrapped))

    return owner


def route(comm, source, index, request):
    """Rows of frame ``index`` of ``source``, at their spatial owners (one exchange).

    Returns ``(frame_rows, grid, owned)``; ``owned`` holds wrapped positions.
    """
    holder = {}
    rows = source.read_rows(comm, index, owner=_owner_hook(comm, request, holder))
    codes = species_of_rows(comm, rows, request)
    if rows.routed:
        grid = holder.get("grid")
        if grid is None:  # one rank: the reader does not ask for owners
            grid = build_grid(comm, rows.positions, rows.cell, rows.pbc, dims=request.dims,
                              balance=request.balance)
        pos = rows.positions
        if len(pos):  # the serial core wraps the same way (idempotent on wrapped input)
            pos = geometry.wrap_positions(pos, grid.cell, grid.pbc)
        owned = OwnedAtoms(ids=np.ascontiguousarray(rows.ids, dtype=np.int64),
                           positions=np.ascontiguousarray(pos), types=rows.types,
                           species=codes)
    else:
        grid = build_grid(comm, rows.positions, rows.cell, rows.pbc, dims=request.dims,
                          balance=request.balance)
        owned = distribute(comm, grid, rows.ids, rows.positions, rows.types, species=codes)
    rows.ids = rows.positions = rows.types = rows.elements = None  # the owned copies stay
    return rows, grid, owned


def species_of_rows(comm, rows, request):
    """Species codes of this rank's rows for a multi-element run, else None (collective).

    With ``request.species`` every row's element must be named and in the list; without
    it a frame naming several elements is refused (unless ``request.ignore_species``):
    the plain descriptor would silently mix them.
    """
    species = request.species
    where = rows.where or "frame"
    codes, span = None, np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).max], np.int64)
    with collective_errors(comm):
        n = len(rows.ids)
        if species is not None and n and rows.elements is None:
            raise QuestsInputError(
                f"{where}: the atoms' elements are not named (no `element` column and no "
                f"type map); give a type map (e.g. --type-map 1=Ni,2=Al) for the species "
                f"{list(species)}")
        if species is not None:
            codes = species_codes(rows.elements if n else [], species, where)
        elif rows.elements is not None and n and not request.ignore_species:
            span = _element_span(rows.elements, where)
    if species is None and not request.ignore_species:
        lo, hi = pcomm.allreduce(span, "min", comm)
        hi = -hi
        if lo != np.iinfo(np.int64).max and lo != hi:
            from ase.data import chemical_symbols

            raise several_elements(where, sorted({chemical_symbols[lo], chemical_symbols[hi]}))
    return codes if species is not None and n_blocks(species) > 1 else None


def _element_span(elements, where):
    """``[min Z, -max Z]`` of the elements (for one ``min`` reduction); unknown refused."""
    from ase.data import atomic_numbers

    uniq = np.unique(np.asarray(elements).astype(str))
    bad = [str(u) for u in uniq if not known_symbol(str(u))]
    if bad:
        raise QuestsInputError(f"{where}: unknown element(s) {bad}; expected chemical symbols")
    z = [atomic_numbers[str(u)] for u in uniq]
    return np.array([min(z), -max(z)], dtype=np.int64)


def _environments(comm, owned, ghosts, request):
    """The cell list of owned + ghost atoms (collective: a failure fails every rank)."""
    with collective_errors(comm):
        points = np.concatenate([owned.positions, ghosts.positions])
        labels = np.concatenate([owned.ids, ghosts.ids])
        if owned.species is None:
            return LocalEnvironments(points, len(owned), request.k, request.cutoff,
                                     labels=labels)
        codes = np.concatenate([owned.species, ghosts.species])
        return SpeciesEnvironments(points, len(owned), codes, len(request.species), request.k,
                                   request.cutoff, labels=labels)


def chunked_sums(comm, env, references, request, timer, keep):
    """Descriptors and dH of the owned atoms, chunk by chunk (collective).

    Every rank runs the same number of chunks (the largest count over ranks), so the
    sharded references' ring passes, which are collective, pair up.

    Returns
    -------
    dh : ndarray (n_owned, n_refs * n_h) or None
    desc : ndarray (n_owned, 2k-1) or None
        With ``keep``.
    """
    hs = list(request.bandwidths)
    n, nh = len(env), len(hs)
    size = int(request.chunk_atoms)
    n_chunks = int(pcomm.allreduce(np.array([env.n_chunks(size)], np.int64), "max", comm)[0])
    refs = references if request.delta_entropy else []
    dh = np.empty((n, len(refs) * nh)) if refs else None
    desc = np.empty((n, env.width)) if keep else None
    buf = np.empty((min(size, n), env.width))
    blocks = (request.k, n_blocks(request.species)) if n_blocks(request.species) > 1 else None

    def add(r, ref, rows, d):
        dh[rows, r * nh:(r + 1) * nh] = np.atleast_2d(
            -ref.log_kernel_sum(d, hs, precision=request.precision, blocks=blocks)).T

    for c in range(n_chunks):
        # what can fail on one rank alone (coincident atoms, a bandwidth too small for
        # these descriptors) fails every rank before the next collective
        with collective_errors(comm):
            with timer("descriptors"):
                rows, d = env.chunk(c, size, out=buf)
            with timer("kernel_sums"):
                for r, ref in enumerate(refs):
                    if ref.layout != "sharded":
                        add(r, ref, rows, d)
        with timer("kernel_sums"):  # ring passes: collective, checked on every rank inside
            for r, ref in enumerate(refs):
                if ref.layout == "sharded":
                    add(r, ref, rows, d)
        if keep:
            desc[rows] = d
    return dh, desc


def run_frame(comm, source, index, references, request):
    """Read, decompose, describe and score frame ``index`` of ``source`` (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        ``MPI.COMM_SELF`` for a serial run.
    source
        Anything with ``read_rows(comm, index, owner) -> FrameRows`` and ``where(index)``
        (the frame named in messages): a campaign input
        (:class:`quests_hpc.campaign.sources.InputSource`) or an :class:`ArraySource`.
    index : int
        Frame number in the source.
    references : list of SharedReference
    request : FrameRequest

    Returns
    -------
    FrameOutput
        This rank's block of the id-sorted frame.

    Raises
    ------
    QuestsInputError
        Bad input found on any rank (e.g. two atoms at the same position), on every rank,
        prefixed with the frame (file, frame index, timestep).
    """
    check_parameters(request.k, request.cutoff)
    timer = StageTimer()
    try:
        out = _run(comm, source, index, references, request, timer)
    except QuestsInputError as exc:  # raised on every rank alike (collective stages)
        raise QuestsInputError(in_frame(source.where(index), exc)) from None
    out.timings, out.cpu, out.memory = dict(timer.seconds), dict(timer.cpu), dict(
        timer.peak_memory)
    return out


def _run(comm, source, index, references, request, timer):
    with timer("read"):
        rows, grid, owned = route(comm, source, index, request)
    with timer("halo"):
        ghosts = exchange_halo(comm, grid, owned, request.cutoff)
    n_ghosts = len(ghosts)
    with timer("descriptors"):
        env = _environments(comm, owned, ghosts, request)
    del ghosts
    keep = request.descriptors or request.entropy
    dh, desc = chunked_sums(comm, env, references, request, timer, keep)
    del env
    out = FrameOutput(ids=None, timestep=rows.timestep, natoms=rows.natoms, cell=rows.cell,
                      pbc=rows.pbc, where=rows.where, n_owned=len(owned), n_ghosts=n_ghosts,
                      dims=grid.dims.tolist())
    out.imbalance = float(imbalance(comm, len(owned))[1])
    if dh is not None:
        nh = len(request.bandwidths)
        sums = [measures.summarize_dh(comm, dh[:, r * nh:(r + 1) * nh].T, request.threshold,
                                      root=0) for r in range(len(references))]
        out.dh_summary = sums if comm.rank == 0 else None
    if request.entropy:
        with timer("entropy"):
            H, D = measures.entropy_and_diversity(comm, desc, list(request.bandwidths),
                                                  precision=request.precision)
        out.entropy, out.diversity = np.atleast_1d(H), np.atleast_1d(D)
    with timer("id_order"):
        names, arrays = _outgoing(owned, dh, desc if request.descriptors else None,
                                  request.positions)
        dest = id_order_owners(comm, owned.ids, rows.natoms)
        del owned, dh, desc  # each array is freed once sent (redistribute drops the list's)
        got = dict(zip(names, pcomm.redistribute(arrays, dest, comm)))
        order = np.argsort(got["ids"], kind="stable")
        for name in names:
            setattr(out, name, np.ascontiguousarray(got.pop(name)[order]))
    return out


def _outgoing(owned, dh, desc, positions):
    """Names and arrays (rows of the owned atoms) that go back to id order."""
    names, arrays = ["ids"], [owned.ids]
    for name, a in (("dh", dh), ("descriptors", desc)):
        if a is not None:
            names.append(name)
            arrays.append(a)
    if positions:
        types = owned.types if owned.types is not None else np.zeros(len(owned), np.int32)
        names += ["positions", "types"]
        arrays += [owned.positions, np.ascontiguousarray(types)]
    return names, arrays


def id_order_owners(comm, ids, natoms):
    """Rank holding each id in the even split of the id-sorted frame (collective).

    Rank ``r`` holds sorted positions ``[r N/P, (r+1) N/P)``.  Dense ids (``max - min + 1
    == N``, the LAMMPS default) are placed arithmetically; others by a collective bisection
    on id values (:func:`_splitters`).
    """
    size = comm.size
    ids = np.asarray(ids, dtype=np.int64)
    mn = int(ids.min()) if len(ids) else np.iinfo(np.int64).max
    mx = int(ids.max()) if len(ids) else np.iinfo(np.int64).min + 1  # -mx fits an int64
    ext = pcomm.allreduce(np.array([mn, -mx], dtype=np.int64), "min", comm)
    gmin, gmax = int(ext[0]), -int(ext[1])
    bounds = pcomm.even_bounds(natoms, size)
    if size == 1 or natoms == 0:
        return np.zeros(len(ids), dtype=np.int64)
    if gmax - gmin + 1 == natoms:
        return np.searchsorted(bounds[1:-1] + gmin, ids, side="right").astype(np.int64)
    split = _splitters(comm, np.sort(ids), bounds, gmin, gmax)
    return np.searchsorted(split, ids, side="right").astype(np.int64)


def _splitters(comm, sorted_ids, bounds, gmin, gmax):
    """Smallest id of the blocks of ranks 1..P-1: the smallest ``v`` with
    ``count(ids <= v) >= bounds[r] + 1`` over all ranks (collective bisection)."""
    targets = bounds[1:-1] + 1
    lo = np.full(len(targets), gmin, dtype=np.int64)
    hi = np.full(len(targets), gmax + 1, dtype=np.int64)
    while True:
        active = lo < hi
        mid = lo + (hi - lo) // 2
        c = np.searchsorted(sorted_ids, mid, side="right").astype(np.int64)
        c = pcomm.allreduce(np.append(c, np.int64(active.any())), "sum", comm)
        if c[-1] == 0:
            return lo
        ok = c[:-1] >= targets
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)


def in_frame(where, exc):
    """The message of ``exc`` (raised while computing a frame) prefixed with the frame.

    The same text on every rank: the rank that failed holds the error itself, the others
    an error whose message is ``"<Type>: <message>"`` of the failed rank (the type is
    dropped).  Coincident atoms are named by their atom ids (points are labelled by id).
    """
    import re

    failures = getattr(exc, "failures", None)
    msg = failures[0][1] if failures else str(exc)
    if failures:
        head, sep, rest = msg.partition(": ")
        if sep and head.isidentifier():
            msg = rest
    msg = re.sub(r"^atoms (\S+) and (\S+) are at the same position", r"atom ids \1 and \2 are at "
                 "the same position", msg)
    return f"{where}: {msg}" if where and not msg.startswith(where) else msg


def frame_summary(comm, out, root=0):
    """Counts and memory of a frame over the ranks, on ``root`` (None elsewhere)."""
    owned = comm.gather(int(out.n_owned), root=root)
    ghosts = comm.gather(int(out.n_ghosts), root=root)
    peak = comm.gather(int(max(out.memory.values(), default=0)), root=root)
    times = comm.gather(dict(out.timings), root=root)
    if comm.rank != root:
        return None
    return {"n_atoms": int(sum(owned)), "ranks": comm.size, "dims": out.dims, "atoms": owned,
            "ghosts": ghosts,
            "imbalance": out.imbalance, "peak_memory": peak, "timings": times,
            "timings_max": {s: max(t.get(s, 0.0) for t in times) for s in times[0]},
            "timings_min": {s: min(t.get(s, 0.0) for t in times) for s in times[0]}}
