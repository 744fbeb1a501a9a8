"""Reference / training sets: structures in any format, and descriptor files (HDF5).

* :func:`read_structures` -- a list of :class:`~quests_hpc.io.frame.Frame` from a LAMMPS
  dump (our reader), or from anything ASE reads (extxyz with per-frame cell and pbc,
  LAMMPS data files, VASP, CIF, ...).
* :func:`write_descriptors` / :func:`read_descriptors` -- precomputed descriptors in an
  HDF5 file that records ``k``, ``cutoff`` and the software version, so a reference is
  computed once and reused.  Reading with the run's ``k`` / ``cutoff`` refuses a file
  made with other values.
* :func:`load_reference` -- descriptors of a reference given as either: read from a
  descriptor file, or computed from structures (and optionally saved).

Descriptor file layout (``format = "quests-hpc-descriptors"``, version 1)::

    /descriptors        float64 (n, 2k-1)
    /structure          int64 (n,)   index of the structure each row comes from (optional)
    /species            str (n,)     element of each row's atom (optional)
    attributes: format, format_version, k, cutoff, descriptor_length, software,
                software_version, created (UTC, ISO 8601), sources (JSON list),
                species_list (JSON list, multi-element descriptors only),
                descriptor_layout (text, see :func:`quests_hpc.species.layout_text`)

h5py here has no MPI; in an MPI run read on one rank and broadcast (or let every rank
read its own ``rows``: read-only access from several processes is safe).
"""

import datetime
import json
import math
import os

import numpy as np

from ..errors import QuestsInputError
from ..species import check_file_species, descriptor_width, layout_key, layout_text
from .frame import Frame, normalize_type_map

FORMAT = "quests-hpc-descriptors"
FORMAT_VERSION = 1
_DUMP_SUFFIXES = (".lammpstrj", ".dump")
_H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _software_version():
    try:
        from .._version import __version__
    except ImportError:  # pragma: no cover
        return "unknown"
    return __version__


def is_descriptor_file(path):
    """True when ``path`` is an HDF5 file (by signature)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == _H5_SIGNATURE
    except OSError:
        return False


def is_lammps_dump(path, format=None):
    """True for ``format="lammps-dump-text"``, dump-like names, or files starting with ``ITEM:``."""
    if format is not None:
        return format in ("lammps-dump-text", "lammps-dump", "lammpstrj")
    p = str(path)
    base = os.path.basename(p)
    for suf in ("", ".gz", ".bz2", ".xz", ".zst"):
        if suf and not p.endswith(suf):
            continue
        stem = p[: len(p) - len(suf)] if suf else p
        if stem.endswith(_DUMP_SUFFIXES) or base.startswith("dump."):
            return True
    if any(c in p for c in "*?["):
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(5) == b"ITEM:"
    except OSError:
        return False


def frame_from_atoms(atoms, index=0, source=""):
    """A :class:`Frame` from an ASE ``Atoms`` (ids 1..n in ASE order, or its ``id`` array)."""
    n = len(atoms)
    ids = np.asarray(atoms.arrays["id"], dtype=np.int64) if "id" in atoms.arrays else \
        np.arange(1, n + 1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    types = atoms.arrays.get("type")
    pos = np.ascontiguousarray(atoms.positions[order], dtype=np.float64)
    cell = np.array(atoms.cell[:], dtype=np.float64)
    pbc = np.array(atoms.pbc, dtype=bool)
    origin = np.array(atoms.get_celldisp(), dtype=np.float64).reshape(3)
    if pbc.any() and abs(np.linalg.det(cell)) > 0:
        from . import _kernels as K

        K.wrap_inplace(pos, origin, cell, np.linalg.inv(cell), pbc)
    elif pbc.any():
        raise QuestsInputError(f"{source}: structure {index} is periodic but its cell is singular")
    return Frame(timestep=int(atoms.info.get("timestep", index)), natoms=n, cell=cell,
                 origin=origin, pbc=pbc, ids=ids[order], positions=pos,
                 types=None if types is None else np.asarray(types, dtype=np.int32)[order],
                 elements=np.array(atoms.get_chemical_symbols())[order], index=index,
                 source=str(source), boundary=tuple("pp" if p else "ff" for p in pbc),
                 box_style="orthogonal" if np.count_nonzero(cell - np.diag(np.diag(cell))) == 0
                 else "general")


def read_structures(path, index=":", format=None, type_map=None, **kwargs):
    """Structures of a reference / training set as a list of :class:`Frame`.

    Parameters
    ----------
    path : str or os.PathLike (or a list / glob for LAMMPS dumps)
    index : str, int or slice
        Which structures (:mod:`.selection` syntax for dumps, ASE's for the rest).
    format : str, optional
        ASE format name; ``"lammps-dump-text"`` for dumps.  Guessed when omitted (dumps
        by name or content, the rest by ASE).
    type_map : dict, sequence or str, optional
        LAMMPS type -> element, for dumps and LAMMPS data files.
    **kwargs
        Passed to :func:`.lammps_dump.read_lammps_dump` (dumps) or :func:`ase.io.read`
        (e.g. ``atom_style="atomic"`` for LAMMPS data files).
    """
    if is_lammps_dump(path, format):
        from .lammps_dump import read_lammps_dump

        frames = read_lammps_dump(path, index, type_map=type_map, **kwargs)
        return frames if isinstance(frames, list) else [frames]
    import ase.io

    if not os.path.exists(str(path)):
        raise QuestsInputError(f"{path}: no such file")
    tm = normalize_type_map(type_map)
    if format == "lammps-data" or (format is None and str(path).endswith((".data", ".lmp"))):
        format = "lammps-data"
        if tm is not None and "Z_of_type" not in kwargs:
            from ase.data import atomic_numbers

            try:
                kwargs["Z_of_type"] = {t: atomic_numbers[s] for t, s in tm.items()}
            except KeyError as exc:
                raise QuestsInputError(f"type map {tm}: unknown element {exc}") from None
        kwargs.setdefault("atom_style", "atomic")
    from ase.io.formats import UnknownFileTypeError

    try:
        images = ase.io.read(str(path), index=index, format=format, **kwargs)
    except (ValueError, KeyError, IndexError, OSError, StopIteration,
            UnknownFileTypeError) as exc:
        raise QuestsInputError(f"{path}: cannot read as {format or 'an ASE format'} "
                               f"({type(exc).__name__}: {exc})") from None
    if not isinstance(images, list):
        images = [images]
    return [frame_from_atoms(a, i, path) for i, a in enumerate(images)]


def write_descriptors(path, descriptors, k, cutoff, structure=None, species=None, sources=(),
                      attrs=None, overwrite=False, species_list=None):
    """Write descriptors to an HDF5 descriptor file.

    Parameters
    ----------
    path : str
    descriptors : array_like, shape (n, 2k-1)
    k : int
    cutoff : float
    structure : array_like of int, shape (n,), optional
        Structure index of each row.
    species : array_like of str, shape (n,), optional
    sources : sequence of str
        Files the descriptors were computed from (recorded as JSON).
    attrs : dict, optional
        Further scalar attributes.
    overwrite : bool
    species_list : sequence of str, optional
        The species of multi-element descriptors (recorded; width ``(2k-1)(n+1)``).
    """
    import h5py

    x = np.ascontiguousarray(descriptors, dtype=np.float64)
    width = descriptor_width(k, species_list)
    if x.ndim != 2 or x.shape[1] != width:
        raise QuestsInputError(f"descriptors must have shape (n, {width}) for k={k} and "
                               f"species {species_list}, got {x.shape}")
    if os.path.exists(path) and not overwrite:
        raise QuestsInputError(f"{path}: exists (pass overwrite=True to replace it)")
    tmp = f"{path}.{os.getpid()}.tmp"
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset("descriptors", data=x, chunks=(min(len(x), 65536) or 1, x.shape[1])
                          if len(x) else None)
        if structure is not None:
            h5.create_dataset("structure", data=np.asarray(structure, dtype=np.int64))
        if species is not None:
            h5.create_dataset("species", data=np.asarray(species, dtype="S"))
        a = h5.attrs
        a["format"] = FORMAT
        a["format_version"] = FORMAT_VERSION
        a["k"] = int(k)
        a["cutoff"] = float(cutoff)
        a["descriptor_length"] = width
        a["descriptor_layout"] = layout_text(k, species_list)
        if layout_key(species_list):
            a["species_list"] = json.dumps(list(layout_key(species_list)))
        a["software"] = "quests-hpc"
        a["software_version"] = _software_version()
        a["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        a["sources"] = json.dumps([str(s) for s in sources])
        for key, val in (attrs or {}).items():
            a[key] = val
    os.replace(tmp, path)


def descriptor_info(path):
    """Attributes and shape of a descriptor file (no data read)."""
    import h5py

    if not is_descriptor_file(path):
        raise QuestsInputError(f"{path}: not an HDF5 descriptor file")
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("format") != FORMAT or "descriptors" not in h5:
                raise QuestsInputError(f"{path}: not a quests-hpc descriptor file "
                                       f"(format attribute {h5.attrs.get('format')!r})")
            info = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
            info["shape"] = tuple(h5["descriptors"].shape)
            info["has_structure"] = "structure" in h5
            info["has_species"] = "species" in h5
    except OSError as exc:
        raise QuestsInputError(f"{path}: unreadable HDF5 file ({exc})") from None
    if isinstance(info.get("sources"), str):
        info["sources"] = json.loads(info["sources"])
    info["species_list"] = json.loads(info["species_list"]) if "species_list" in info else None
    return info


def check_parameters(info, k=None, cutoff=None, path="", species=None):
    """Refuse a descriptor file whose ``k``, ``cutoff`` or species differ from the run's."""
    fk, fc = int(info["k"]), float(info["cutoff"])
    if k is not None and int(k) != fk:
        raise QuestsInputError(f"{path}: descriptors were computed with k={fk}, cutoff={fc}; "
                               f"this run uses k={int(k)} -- recompute the reference")
    if cutoff is not None and not math.isclose(float(cutoff), fc, rel_tol=1e-12, abs_tol=0.0):
        raise QuestsInputError(f"{path}: descriptors were computed with cutoff={fc}, k={fk}; "
                               f"this run uses cutoff={float(cutoff)} -- recompute the reference")
    check_file_species(info.get("species_list"), species, path)
    width = descriptor_width(fk, info.get("species_list"))
    if info["shape"][1] != width:
        raise QuestsInputError(f"{path}: descriptor length {info['shape'][1]} does not match "
                               f"k={fk} (expected {width})")


def read_descriptors(path, k=None, cutoff=None, rows=None, species=None):
    """Read a descriptor file, checking ``k`` and ``cutoff`` against the run's.

    Parameters
    ----------
    path : str
    k, cutoff : optional
        The run's values; a file made with others is refused (QuestsInputError).
    rows : slice, optional
        Read only these rows (e.g. one rank's shard).
    species : sequence of str, optional
        The run's species (a file for other species is refused).

    Returns
    -------
    descriptors : ndarray (n, 2k-1)
    info : dict
        File attributes, plus ``structure`` / ``species`` arrays when present.
    """
    import h5py

    info = descriptor_info(path)
    check_parameters(info, k, cutoff, path, species)
    sel = slice(None) if rows is None else rows
    with h5py.File(path, "r") as h5:
        x = np.asarray(h5["descriptors"][sel], dtype=np.float64)
        if "structure" in h5:
            info["structure"] = np.asarray(h5["structure"][sel])
        if "species" in h5:
            info["species"] = np.asarray(h5["species"][sel]).astype(str)
    return x, info


def load_reference(path, k, cutoff, index=":", format=None, type_map=None, save=None,
                   species=None, ignore_species=False, **kwargs):
    """Descriptors of a reference set: from a descriptor file, or computed from structures.

    Parameters
    ----------
    path : str
        A descriptor file (HDF5) or structures (:func:`read_structures`).
    k, cutoff
        The run's parameters (checked against a descriptor file).
    index, format, type_map, **kwargs
        For :func:`read_structures`.
    save : str, optional
        Write the computed descriptors there (a new descriptor file) for reuse.
    species, ignore_species
        The run's species (:func:`quests_hpc.multicomponent.structure_descriptors`).

    Returns
    -------
    descriptors : ndarray (n, width)
    info : dict
    """
    if is_descriptor_file(path):
        return read_descriptors(path, k, cutoff, species=species)
    from ..multicomponent import structure_descriptors

    frames = read_structures(path, index, format, type_map, **kwargs)
    blocks, structure, elements = [], [], []
    for i, f in enumerate(frames):
        blocks.append(structure_descriptors(f.positions, f.cell, f.pbc, k, cutoff, f.elements,
                                            species, ignore_species, f"{path}, structure {i}"))
        structure.append(np.full(len(f.ids), i, dtype=np.int64))
        if f.elements is not None:
            elements.append(np.asarray(f.elements))
    x = np.concatenate(blocks) if blocks else np.zeros((0, descriptor_width(k, species)))
    st = np.concatenate(structure) if structure else np.zeros(0, np.int64)
    sp = np.concatenate(elements) if len(elements) == len(frames) and elements else None
    if save is not None:
        write_descriptors(save, x, k, cutoff, structure=st, species=sp, sources=[str(path)],
                          species_list=species)
    info = dict(k=int(k), cutoff=float(cutoff), sources=[str(path)], structure=st)
    if sp is not None:
        info["species"] = sp
    return x, info
