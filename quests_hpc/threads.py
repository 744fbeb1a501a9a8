"""Numba thread control.

The thread count of the Numba kernels (``prange`` loops) is set, in order of priority, by
:func:`set_num_threads`, the environment variable ``QUESTS_HPC_NUM_THREADS``, or Numba's
own default (``NUMBA_NUM_THREADS``, all cores).  Under MPI the driver sets it to
``cores on the node / ranks on the node`` (see :mod:`quests_hpc.parallel`).
"""

import os

import numba


def max_threads():
    """Largest thread count this process may use (``NUMBA_NUM_THREADS``)."""
    return numba.config.NUMBA_NUM_THREADS


def set_num_threads(n=None):
    """Set the number of threads for the Numba kernels and return the value applied.

    Parameters
    ----------
    n : int or None
        Threads to use; ``None`` reads ``QUESTS_HPC_NUM_THREADS`` and otherwise keeps the
        current setting.  Values above :func:`max_threads` are clipped to it.
    """
    if n is None:
        env = os.environ.get("QUESTS_HPC_NUM_THREADS")
        if not env:
            return numba.get_num_threads()
        try:
            n = int(env)
        except ValueError:
            raise ValueError(
                f"QUESTS_HPC_NUM_THREADS must be a positive integer, got {env!r}") from None
    n = int(n)
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    n = min(n, max_threads())
    numba.set_num_threads(n)
    return n


def get_num_threads():
    """Threads the Numba kernels use now."""
    return numba.get_num_threads()
