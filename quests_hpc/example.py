"""The bundled example job (``quests-hpc example``).

dH of every atom of a small Cu slab (periodic along x and y, a vacancy, an interstitial)
against a bulk FCC Cu reference: bulk-like atoms are covered (dH <= 0), surface and
defect atoms are novel (dH > 0).  The data are made by ``scripts/make_example_data.py``.
"""

from importlib.resources import files

import numpy as np
from ase.io import read

from . import information
from .descriptors import get_descriptors
from .threads import set_num_threads
from .timing import StageTimer


def example_paths():
    """Paths of the bundled reference and test structures."""
    data = files("quests_hpc") / "data"
    return data / "cu_fcc_reference.xyz", data / "cu_slab_test.xyz"


def run_example(k=32, cutoff=5.0, bandwidths=(0.015,), threads=None, out=print):
    """Run the example and print a summary; returns a dict of the results."""
    timer = StageTimer()
    nthreads = set_num_threads(threads)
    ref_path, test_path = example_paths()
    with timer("read"):
        ref, test = read(ref_path), read(test_path)
    with timer("descriptors"):
        x = get_descriptors(ref, k=k, cutoff=cutoff)
        y = get_descriptors(test, k=k, cutoff=cutoff)
    hs = list(bandwidths)
    with timer("kernel sums"):
        dh = np.atleast_2d(information.delta_entropy(y, x, h=hs))
        h_ref = np.atleast_1d(information.entropy(x, h=hs))
    out(f"quests-hpc example: k={k}, cutoff={cutoff} A, {nthreads} thread(s)")
    out(f"  reference: {ref_path.name}: {len(ref)} atoms, pbc={ref.pbc.tolist()}")
    out(f"  test:      {test_path.name}: {len(test)} atoms, pbc={test.pbc.tolist()}")
    z = test.positions[:, 2]
    surface = (z < z.min() + cutoff) | (z > z.max() - cutoff)
    for h, d, hr in zip(hs, dh, h_ref):
        novel = d > 0
        out(f"  h = {h:g} 1/A: H(reference) = {hr:.4f} nats (log n = {np.log(len(ref)):.4f})")
        out(f"    dH of test atoms: min {d.min():.3f}, median {np.median(d):.3f}, "
            f"max {d.max():.3f}")
        out(f"    novel (dH > 0): {novel.sum()}/{len(d)} atoms ({100 * novel.mean():.1f}%); "
            f"within {cutoff:g} A of a surface {novel[surface].sum()}/{surface.sum()}, "
            f"deeper {novel[~surface].sum()}/{(~surface).sum()}")
    out("")
    out(timer.table())
    return {"delta_entropy": dh, "entropy_reference": h_ref, "surface": surface}
