"""Small campaign data: synthetic FCC Cu dumps (written here), the bundled reference.

Imported by the tests as ``campaign_data`` (this folder is put on ``sys.path`` by its
conftest).
"""

import os
from importlib.resources import files

import numpy as np

A_CU = 3.615
REFERENCE = str(files("quests_hpc") / "data" / "cu_fcc_reference.xyz")
LAMMPS_DATA = os.path.join(os.path.dirname(__file__), "..", "data", "lammps")


def asymptote(sizes, a, b, c):
    """The learning-curve model ``a - b exp(-c (log N)^2)`` (SPEC.md) at ``sizes``."""
    x = np.log(np.asarray(sizes, dtype=np.float64)) ** 2
    return a - b * np.exp(-c * x)


def fcc(n):
    g = np.stack(np.meshgrid(*[np.arange(m) for m in n], indexing="ij"), -1).reshape(-1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return (g[:, None, :] + basis[None]).reshape(-1, 3) * A_CU


def write_dump(path, n_cells=(4, 4, 4), n_frames=3, seed=0, noise=0.08, step=100):
    """A LAMMPS `dump custom id type x y z` of displaced FCC Cu, ids in shuffled order."""
    rng = np.random.default_rng(seed)
    base = fcc(n_cells)
    box = np.array(n_cells) * A_CU
    with open(path, "w") as f:
        for t in range(n_frames):
            pos = base + rng.normal(0, noise * (1 + t), base.shape)
            pos %= box
            order = rng.permutation(len(pos))
            f.write(f"ITEM: TIMESTEP\n{t * step}\nITEM: NUMBER OF ATOMS\n{len(pos)}\n")
            f.write("ITEM: BOX BOUNDS pp pp pp\n")
            for b in box:
                f.write(f"0.0 {b:.10f}\n")
            f.write("ITEM: ATOMS id type x y z\n")
            for i in order:
                f.write(f"{i + 1} 1 {pos[i, 0]:.8f} {pos[i, 1]:.8f} {pos[i, 2]:.8f}\n")
    return str(path)


def write_yaml(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def basic_campaign(d, out="out.h5", n_frames=3, n_cells=(4, 4, 4), extra=""):
    """A campaign over one synthetic dump vs the bundled reference, in directory ``d``."""
    write_dump(os.path.join(d, "md.lammpstrj"), n_cells=n_cells, n_frames=n_frames)
    return write_yaml(os.path.join(d, "campaign.yaml"), f"""\
name: basic
parameters:
  bandwidth: [0.015, 0.04]
references:
  - name: bulk
    path: {REFERENCE}
inputs:
  - name: md
    path: md.lammpstrj
measures:
  descriptors: true
  positions: true
  entropy: true
  diversity: true
{extra}
output:
  path: {out}
run:
  threads: 1
  progress: lines
""")
