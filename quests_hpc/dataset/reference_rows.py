"""A reference (training) set for msc_conditional: its rows in fixed chunks, and the log
kernel sums of this rank's environments against it.

The chunks are fixed row ranges of the reference (``REFERENCE_CHUNK`` rows each, in the
order of its structures or of its descriptor file), the same whatever the number of
ranks, and each chunk's sum is folded in with ``np.logaddexp`` in chunk order: every
environment's ``log S`` against the reference is bitwise the same for any rank count.
"""

import numpy as np

from ..information import log_kernel_sum
from ..parallel import comm as pcomm

#: Reference rows folded per chunk (fixed: the chunks do not depend on the ranks).
REFERENCE_CHUNK = 8192


def dataset_chunks(comm, data, chunk=REFERENCE_CHUNK):
    """The rows of a distributed data set in fixed chunks of ``chunk`` rows, each one on
    every rank (collective: one allgather per chunk)."""
    row0 = np.concatenate([[0], np.cumsum(data.counts)]).astype(np.int64)
    lo, hi = int(row0[data.lo]), int(row0[data.hi])
    mine = np.concatenate(data.x) if data.x else np.empty((0, data.width))
    total = int(row0[-1])
    for a in range(0, total, chunk):
        b = min(a + chunk, total)
        part = mine[max(a, lo) - lo:max(min(b, hi), lo) - lo]
        yield np.concatenate(pcomm.allgather(part, comm))


def file_chunks(read_rows, n_rows, chunk=REFERENCE_CHUNK):
    """The rows of a descriptor file in fixed chunks, read by ``read_rows(slice)`` on every
    rank (no communication)."""
    for a in range(0, n_rows, chunk):
        yield read_rows(slice(a, min(a + chunk, n_rows)))


def reference_log_sums(data, chunks):
    """Per structure of this rank, ``log S`` of its environments against the reference
    given as ``chunks`` (every rank must consume them all: they may be collective)."""
    y = np.concatenate(data.x) if data.x else None
    total = np.full(0 if y is None else len(y), -np.inf)
    for c in chunks:
        if y is not None:
            total = np.logaddexp(total, log_kernel_sum(y, c, data.h))
    bounds = np.cumsum([len(x) for x in data.x])[:-1]
    return np.split(total, bounds) if data.x else []
