"""The closing line of a data-set command: its stage times, total wall time and the
peak memory of the busiest rank (collective: one small allreduce)."""

import time

import numpy as np

from ..parallel import comm as pcomm
from ..timing import peak_memory_bytes


def print_summary(comm, t0, stages=None):
    """Print (rank 0) ``time: <stages>; total T s on P rank(s); peak memory M MiB per
    rank at most`` for a command started at ``time.perf_counter() == t0``."""
    peak = int(pcomm.allreduce(np.int64(peak_memory_bytes()), "max", comm))
    if comm.rank != 0:
        return
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in (stages or {}).items())
    print(f"time: {parts + '; ' if parts else ''}total {time.perf_counter() - t0:.2f} s on "
          f"{comm.size} rank(s); peak memory {peak / 2**20:.1f} MiB per rank at most",
          flush=True)
