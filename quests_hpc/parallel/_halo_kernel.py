"""Numba kernel: which ranks need which periodic image of each owned atom.

Pure functions on arrays (no MPI).  The (staggered) grid is described by the expanded
intervals ``[elo, ehi)`` of its subdomains (cuts widened by the halo margin): per slab
along axis 0, per slab and row along axis 1, per column and layer along axis 2.  Along a
periodic axis an image ``f + s`` (integer ``s``) is considered for every ``s`` that lands
in the expanded range.  The destinations of an atom are all (shift, subdomain) triples
whose intervals contain it along the three axes, minus the atom itself on its own rank at
zero shift.
"""

import numpy as np
from numba import njit, prange

# Atoms per scratch allocation in the parallel loop.
_CHUNK = 1024


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
def halo_targets(frac, pbc, elo0, ehi0, elo1, ehi1, elo2, ehi2, me, max_pairs, counts_only,
                 offsets, out_atom, out_rank, out_shift):
    """Ghost destinations of every atom (two passes: counts, then fill).

    Parameters
    ----------
    frac : float64 (N, 3)
        Fractional coordinates of the rank's owned atoms.
    pbc : bool (3,)
    elo0, ehi0 : float64 (d0,)
        Expanded interval of slab ``i`` along axis 0.
    elo1, ehi1 : float64 (d0, d1)
        Expanded interval of subdomain ``j`` along axis 1 within slab ``i``.
    elo2, ehi2 : float64 (d0, d1, d2)
        Expanded interval of subdomain ``l`` along axis 2 within column ``(i, j)``.
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
    d0 = elo0.shape[0]
    d1 = elo1.shape[1]
    d2 = elo2.shape[2]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for ch in prange(nchunks):
        # scratch per chunk, not per atom: allocations inside a parallel loop contend
        s0 = np.empty(max_pairs, np.int64)
        i0 = np.empty(max_pairs, np.int64)
        s1 = np.empty(max_pairs, np.int64)
        i1 = np.empty(max_pairs, np.int64)
        s2 = np.empty(max_pairs, np.int64)
        i2 = np.empty(max_pairs, np.int64)
        for t in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            row = 0 if counts_only else offsets[t]
            n0 = _axis_pairs(frac[t, 0], pbc[0], elo0, ehi0, d0, s0, i0)
            for a in range(n0):
                n1 = _axis_pairs(frac[t, 1], pbc[1], elo1[i0[a]], ehi1[i0[a]], d1, s1, i1)
                for b in range(n1):
                    n2 = _axis_pairs(frac[t, 2], pbc[2], elo2[i0[a], i1[b]],
                                     ehi2[i0[a], i1[b]], d2, s2, i2)
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
