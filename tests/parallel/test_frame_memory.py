"""Memory of the frame pipeline grows by at most 250 bytes per owned atom (issue 10).

Each size runs in a fresh process, its high-water mark reset before the frame (Linux
``/proc/self/clear_refs``) and read after it (``VmHWM``): a
displaced BCC crystal of N atoms through :func:`quests_hpc.parallel.frame_pipeline.
run_frame` on ``COMM_SELF`` (every atom owned by the one rank) against a small
reference, dH only.  The growth of the peak between two sizes, per added atom, is what
a rank pays per owned atom: positions, ids, the cell list, ghosts, results and the
exchanges.  Keeping every descriptor (63 float64 = 504 B per atom, the old pipeline)
would fail it.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mpi4py import MPI
    from quests_hpc.descriptors import descriptors_from_arrays
    from quests_hpc.parallel.frame_pipeline import ArraySource, FrameRequest, run_frame
    from quests_hpc.parallel.shared_reference import SharedReference

    def bcc(n, a, seed, noise):
        g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
        pos = (g[:, None, :] + np.array([[0, 0, 0], [0.5, 0.5, 0.5]])[None]).reshape(-1, 3) * a
        pos += np.random.default_rng(seed).normal(0.0, noise, pos.shape)
        return np.mod(pos, n * a), np.eye(3) * n * a

    comm = MPI.COMM_SELF
    rp, rc = bcc(3, 3.32, 1, 0.12)
    ref = SharedReference.from_root(comm, descriptors_from_arrays(rp, rc, True))
    request = FrameRequest(k=32, cutoff=5.0, bandwidths=(0.015,))
    wp, wc = bcc(4, 3.30, 2, 0.1)  # warm-up: every kernel compiled before the frame
    run_frame(comm, ArraySource(np.arange(1, len(wp) + 1), wp, wc, True), 0, [ref], request)
    n = int(sys.argv[1])
    pos, cell = bcc(n, 3.30, 3, 0.1)
    ids = np.arange(1, len(pos) + 1)
    # the high-water mark of this frame alone (Numba compiling at the warm-up can peak higher)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    out = run_frame(comm, ArraySource(ids, pos, cell, True), 0, [ref], request)
    assert out.dh.shape == (len(pos), 1) and np.isfinite(out.dh).all()
    ref.free()
    with open("/proc/self/status") as f:
        hwm = [int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:")][0]
    print(json.dumps({"atoms": len(pos), "peak": hwm}))
""")


def _peak(cells):
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(cells)], capture_output=True,
                       text=True, timeout=600, env={"QUESTS_HPC_NUM_THREADS": "1",
                                                     "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_peak_memory_grows_by_at_most_250_bytes_per_owned_atom():
    small, large = _peak(40), _peak(80)  # 128,000 and 1,024,000 atoms
    slope = (large["peak"] - small["peak"]) / (large["atoms"] - small["atoms"])
    assert 24 < slope <= 250, f"{slope:.0f} bytes per atom"
