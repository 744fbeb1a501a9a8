"""Chemical species for the multi-element descriptor (SPEC.md, "Several elements").

Pure bookkeeping, no numerics: the sorted species list of a run, each atom's code (its
index in that list), the descriptor length and its column layout.  With species
``A < B < ...`` (sorted by symbol) an atom's descriptor is::

    [X1_all, X1_A, X1_B, ..., X2_all, X2_A, X2_B, ...]

``X1_*`` of length k, ``X2_*`` of length k-1; ``*_all`` over every neighbour, ``*_A`` the
descriptor within the sub-structure of the A atoms (zero unless the atom is an A).  One
species gives the plain ``[X1 | X2]``.  This is upstream's multicomponent layout.
"""

import numpy as np

from .errors import QuestsInputError


def known_symbol(symbol):
    """True for a chemical symbol ASE knows (``"X"``, the dummy, excluded)."""
    from ase.data import atomic_numbers

    return symbol in atomic_numbers and symbol != "X"


def species_list(species, where="species"):
    """The run's species: unique symbols sorted (as upstream sorts them), each checked.

    ``species``: a sequence of symbols or a string ``"Ni Al"`` / ``"Ni,Al"``.
    """
    if isinstance(species, str):
        species = species.replace(",", " ").split()
    out = sorted({str(s) for s in species})
    if not out:
        raise QuestsInputError(f"{where}: the species list is empty; give element symbols "
                               "such as [Ni, Al]")
    bad = [s for s in out if not known_symbol(s)]
    if bad:
        raise QuestsInputError(f"{where}: unknown element(s) {bad}; expected chemical "
                               "symbols such as Ni, Al, O")
    return tuple(out)


def n_blocks(species):
    """Descriptor blocks: 1 (plain) for no or one species, else ``n_species + 1``."""
    n = len(species) if species else 1
    return n + 1 if n > 1 else 1


def descriptor_width(k, species=None):
    """Length of the descriptor: ``(2k-1)`` per block."""
    return (2 * int(k) - 1) * n_blocks(species)


def layout_text(k, species=None):
    """The column layout in words, recorded in descriptor and results files."""
    if n_blocks(species) == 1:
        return f"X1[{int(k)}] X2[{int(k) - 1}]"
    names = ",".join(("all",) + tuple(species))
    return f"X1[{int(k)}] x [{names}], X2[{int(k) - 1}] x [{names}]"


def block_columns(k, n_block, b):
    """Columns ``(x1, x2)`` (two slices) of block ``b`` of ``n_block`` (0: all neighbours)."""
    k = int(k)
    x2 = k * n_block
    return slice(b * k, (b + 1) * k), slice(x2 + b * (k - 1), x2 + (b + 1) * (k - 1))


def several_elements(where, found):
    """The refusal of input naming several elements (``found``, sorted) in a run without
    species: the plain descriptor would silently mix them."""
    return QuestsInputError(
        f"{where}: the input holds several elements {list(found)} but no species are "
        f"given: set `species` (e.g. --species {' '.join(found)}) for the multi-element "
        "descriptor, or `species: ignore` (--species ignore) to treat every atom alike")


def species_codes(symbols, species, where=""):
    """Code of each atom: the index of its symbol in ``species`` (int32).

    An atom whose element is not in ``species`` is refused, naming the element(s).
    """
    symbols = np.asarray(symbols)
    uniq, inv = np.unique(symbols.astype(str), return_inverse=True)
    index = {s: i for i, s in enumerate(species)}
    missing = [str(s) for s in uniq if str(s) not in index]
    if missing:
        head = f"{where}: " if where else ""
        raise QuestsInputError(f"{head}element(s) {missing} not in the species list "
                               f"{list(species)}; add them to `species` (or check the type map)")
    table = np.array([index[str(s)] for s in uniq], dtype=np.int32)
    return table[inv].astype(np.int32) if len(symbols) else np.empty(0, np.int32)


def layout_key(species):
    """What decides the descriptor layout: the species tuple when several, else None."""
    return tuple(species) if species and n_blocks(species) > 1 else None


def check_file_species(file_species, species, path):
    """Refuse descriptors computed for other species than the run's (another layout, or
    the same length with other elements)."""
    if layout_key(file_species) == layout_key(species):
        return
    def name(sp):
        return f"species {list(sp)}" if layout_key(sp) else "one element (plain descriptor)"
    raise QuestsInputError(f"{path}: descriptors were computed for {name(file_species)}; this "
                           f"run uses {name(species)} -- recompute them with the run's species")
