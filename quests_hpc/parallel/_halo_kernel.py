"""Numba kernel: which ranks need which periodic image of each owned atom.

Pure functions on arrays (no MPI).  Along each axis the grid is described by the expanded
interval ``[elo[a, i], ehi[a, i])`` of every subdomain ``i`` (its cuts widened by the halo
margin); along a periodic axis an image ``f + s`` (integer ``s``) is considered for every
``s`` that lands in the expanded grid.  The destinations of an atom are the Cartesian
product of its (shift, subdomain) pairs along the three axes, minus the atom itself on its
own rank at zero shift.
"""

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _axis_pairs(f, periodic, elo, ehi, nd, out_s, out_i):
    """(shift, subdomain) pairs along one axis for fractional coordinate ``f``."""
    count = 0
    if periodic:
        s_lo = int(np.floor(elo[0] - f))
        s_hi = int(np.ceil(ehi[nd - 1] - f))
    else:
        s_lo = 0
        s_hi = 0
    for s in range(s_lo, s_hi + 1):
        g = f + s
        for i in range(nd):
            if elo[i] <= g and g < ehi[i]:
                out_s[count] = s
                out_i[count] = i
                count += 1
    return count


@njit(parallel=True, cache=True)
def halo_targets(frac, pbc, elo, ehi, dims, me, max_pairs, counts_only, offsets,
                 out_atom, out_rank, out_shift):
    """Ghost destinations of every atom (two passes: counts, then fill).

    Parameters
    ----------
    frac : float64 (N, 3)
        Fractional coordinates of the rank's owned atoms.
    pbc : bool (3,)
    elo, ehi : float64 (3, D)
        Expanded interval of subdomain ``i`` along axis ``a`` (padded to D columns).
    dims : int64 (3,)
    me : int
        This rank.
    max_pairs : int
        Capacity of the per-axis pair buffers.
    counts_only : bool
        First pass: write the number of destinations per atom into ``offsets[1:]``.
    offsets : int64 (N + 1,)
        Second pass: exclusive prefix sum of the counts (row start of each atom).
    out_atom, out_rank : int64 (M,)
    out_shift : int64 (M, 3)
        Second pass output, ``M = offsets[N]``.
    """
    n = frac.shape[0]
    d1 = dims[1]
    d2 = dims[2]
    for t in prange(n):
        s0 = np.empty(max_pairs, np.int64)
        i0 = np.empty(max_pairs, np.int64)
        s1 = np.empty(max_pairs, np.int64)
        i1 = np.empty(max_pairs, np.int64)
        s2 = np.empty(max_pairs, np.int64)
        i2 = np.empty(max_pairs, np.int64)
        n0 = _axis_pairs(frac[t, 0], pbc[0], elo[0], ehi[0], dims[0], s0, i0)
        n1 = _axis_pairs(frac[t, 1], pbc[1], elo[1], ehi[1], dims[1], s1, i1)
        n2 = _axis_pairs(frac[t, 2], pbc[2], elo[2], ehi[2], dims[2], s2, i2)
        row = 0 if counts_only else offsets[t]
        for a in range(n0):
            for b in range(n1):
                for c in range(n2):
                    r = (i0[a] * d1 + i1[b]) * d2 + i2[c]
                    if r == me and s0[a] == 0 and s1[b] == 0 and s2[c] == 0:
                        continue
                    if not counts_only:
                        out_atom[row] = t
                        out_rank[row] = r
                        out_shift[row, 0] = s0[a]
                        out_shift[row, 1] = s1[b]
                        out_shift[row, 2] = s2[c]
                    row += 1
        if counts_only:
            offsets[t + 1] = row
