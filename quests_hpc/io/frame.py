"""The frame object returned by the readers, and the type -> element map."""

from dataclasses import dataclass, field

import numpy as np

from ..errors import QuestsInputError


@dataclass
class Frame:
    """One snapshot (or, in an MPI read, this rank's share of it).

    Attributes
    ----------
    timestep : int
    natoms : int
        Atoms in the whole frame (all ranks together).
    cell : ndarray (3, 3)
        Rows are the cell vectors (ASE convention).
    origin : ndarray (3,)
        Lower corner of the cell (LAMMPS ``xlo ylo zlo`` or the general triclinic origin).
    pbc : ndarray (3,) of bool
    ids : ndarray (n,) of int64
        Atom ids, sorted ascending.
    positions : ndarray (n, 3) of float64
        Cartesian, wrapped into the cell along periodic axes.
    types : ndarray (n,) of int32 or None
        LAMMPS atom types (None when the dump has no ``type`` column).
    elements : ndarray (n,) of str or None
        From an ``element`` column, else from ``types`` through a type map, else None.
    arrays : dict of str -> ndarray
        Extra per-atom columns that were asked for (``(n,)`` each).
    columns : tuple of str
        All per-atom columns of the dump frame.
    first : int
        Position of this share's first atom in the whole frame sorted by id (0 serially).
    index : int
        Frame number in its source.
    source : str
        File the frame comes from.
    units, time : str or None, float or None
        From ``ITEM: UNITS`` / ``ITEM: TIME`` when present.
    boundary : tuple of str
        LAMMPS boundary flags, e.g. ``("pp", "pp", "fs")``.
    box_style : str
        ``"orthogonal"``, ``"restricted"`` or ``"general"`` triclinic.
    """

    timestep: int
    natoms: int
    cell: np.ndarray
    origin: np.ndarray
    pbc: np.ndarray
    ids: np.ndarray
    positions: np.ndarray
    types: np.ndarray = None
    elements: np.ndarray = None
    arrays: dict = field(default_factory=dict)
    columns: tuple = ()
    first: int = 0
    index: int = 0
    source: str = ""
    units: str = None
    time: float = None
    boundary: tuple = ("pp", "pp", "pp")
    box_style: str = "orthogonal"

    def __len__(self):
        return len(self.ids)

    @property
    def n_local(self):
        """Atoms held here (equals ``natoms`` in a serial read)."""
        return len(self.ids)

    def __repr__(self):
        share = "" if self.n_local == self.natoms else f", local {self.n_local} from {self.first}"
        return (f"Frame(timestep={self.timestep}, natoms={self.natoms}{share}, "
                f"pbc={self.pbc.tolist()}, source={self.source!r}, index={self.index})")

    def symbols(self, type_map=None):
        """Per-atom chemical symbols: the ``element`` column, or ``types`` mapped."""
        if self.elements is not None and type_map is None:
            return self.elements
        if self.types is None:
            raise QuestsInputError(f"{self.source}: frame {self.index} has neither element nor "
                                   "type column")
        return map_types(self.types, type_map, self.source)

    def to_ase(self, type_map=None):
        """An :class:`ase.Atoms` of the atoms held here (ids in ``arrays['id']``).

        Symbols come from the ``element`` column or ``type_map``; without either the
        LAMMPS types are used as atomic numbers (as ASE's own dump reader does).
        """
        from ase import Atoms

        if self.elements is not None or type_map is not None:
            kw = dict(symbols=list(self.symbols(type_map)))
        elif self.types is not None:
            kw = dict(numbers=self.types)
        else:
            kw = dict(numbers=np.zeros(len(self.ids), dtype=int))
        atoms = Atoms(positions=self.positions, cell=self.cell, pbc=self.pbc,
                      celldisp=self.origin, **kw)
        atoms.new_array("id", self.ids)
        if self.types is not None:
            atoms.new_array("type", self.types)
        for k, v in self.arrays.items():
            atoms.new_array(k, v)
        atoms.info["timestep"] = self.timestep
        return atoms


def normalize_type_map(type_map):
    """``{type: symbol}`` from a dict, a sequence (type 1 first) or a string ``"Cu Ni"``."""
    if type_map is None:
        return None
    if isinstance(type_map, str):
        type_map = type_map.replace(",", " ").split()
    if isinstance(type_map, dict):
        try:
            return {int(k): str(v) for k, v in type_map.items()}
        except (TypeError, ValueError):
            raise QuestsInputError(f"type map keys must be integers, got {type_map!r}") from None
    return {i + 1: str(s) for i, s in enumerate(type_map)}


def map_types(types, type_map, where=""):
    """Symbols of LAMMPS ``types`` through ``type_map`` (see :func:`normalize_type_map`)."""
    tm = normalize_type_map(type_map)
    if tm is None:
        raise QuestsInputError(f"{where}: no element column and no type map to name the types")
    uniq, inv = np.unique(types, return_inverse=True)
    missing = [int(t) for t in uniq if int(t) not in tm]
    if missing:
        raise QuestsInputError(f"{where}: atom type(s) {missing} not in the type map {tm}")
    names = np.array([tm[int(t)] for t in uniq])
    return names[inv]


def decode_codes(codes):
    """Strings from the packed 8-byte codes of the row parser (see :mod:`._kernels`)."""
    uniq, inv = np.unique(codes, return_inverse=True)
    names = [int(c).to_bytes(8, "little").rstrip(b"\0").decode("ascii", "replace") for c in uniq]
    width = max([len(s) for s in names] + [1])
    return np.array(names, dtype=f"<U{width}")[inv]
