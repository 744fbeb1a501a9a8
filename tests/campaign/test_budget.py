"""Resource estimate before any work (quests_hpc.campaign.budget): pure functions."""

import math

import numpy as np
import pytest

from quests_hpc.campaign import budget as B
from quests_hpc.errors import QuestsInputError

L = 14.46  # the 256-atom Cu cell of tests/data/lammps/cu_unsorted.lammpstrj


def test_small_periodic_cell_counts_its_images():
    e = B.estimate_frame(256, np.eye(3) * L, [True] * 3, 30.0, 32, ranks=1)
    assert e.dims == (1, 1, 1)
    assert e.points == pytest.approx(256 * (1 + 60 / L) ** 3)  # 34,954 points
    assert e.neighbours == pytest.approx(256 / L**3 * 4 / 3 * math.pi * 30**3)
    # dH only: one chunk of descriptors (all 256 rows), not every owned atom's twice
    assert e.bytes == pytest.approx(e.points * B.BYTES_PER_POINT
                                    + 256 * (B.BYTES_PER_OWNED_ATOM + 63 * 8))
    kept = B.estimate_frame(256, np.eye(3) * L, [True] * 3, 30.0, 32, keep_descriptors=True)
    assert kept.bytes == pytest.approx(e.bytes + 256 * 63 * 8)
    # the default cutoff: a few neighbours shells, 44 atoms within 5 A
    d = B.estimate_frame(256, np.eye(3) * L, [True] * 3, 5.0, 32)
    assert d.neighbours == pytest.approx(44.3, abs=0.1)
    assert d.points == pytest.approx(256 * (1 + 10 / L) ** 3)


def test_the_memory_model_is_one_function_of_named_constants(monkeypatch):
    """estimate_frame's bytes come from frame_bytes alone: changing a constant (as the
    per-atom figure of a new pipeline would) changes every estimate with one edit."""
    e = B.estimate_frame(1000, np.eye(3) * 20.0, [True] * 3, 5.0, 16, ranks=2)
    assert e.bytes == B.frame_bytes(e.points, 500, 16)
    assert B.frame_bytes(100.0, 10, 16) == pytest.approx(
        B.BASE_BYTES + 100 * B.BYTES_PER_POINT + 10 * (B.BYTES_PER_OWNED_ATOM + 31 * 8))
    assert B.frame_bytes(100.0, 10, 16, keep_descriptors=True) == pytest.approx(
        B.BASE_BYTES + 100 * B.BYTES_PER_POINT + 10 * (B.BYTES_PER_OWNED_ATOM + 2 * 31 * 8))
    # beyond one chunk, dH alone holds one chunk of descriptors
    big = B.CHUNK_ATOMS * 3
    assert B.frame_bytes(big, big, 16) == pytest.approx(
        big * (B.BYTES_PER_POINT + B.BYTES_PER_OWNED_ATOM) + B.CHUNK_ATOMS * 31 * 8)
    per_atom = B.BYTES_PER_OWNED_ATOM
    monkeypatch.setattr(B, "BASE_BYTES", B.BASE_BYTES + (512 << 20))
    monkeypatch.setattr(B, "BYTES_PER_OWNED_ATOM", per_atom + 250)
    f = B.estimate_frame(1000, np.eye(3) * 20.0, [True] * 3, 5.0, 16, ranks=2)
    assert f.bytes == pytest.approx(e.bytes + (512 << 20) + 500 * 250)


def test_huge_cutoff_is_astronomical_not_overflowing():
    e = B.estimate_frame(256, np.eye(3) * L, [True] * 3, 1e6, 32)
    assert e.points == pytest.approx(256 * (1 + 2e6 / L) ** 3)  # 6.8e17
    assert math.isfinite(e.bytes) and e.bytes > 1e20
    msg = B.refusal(e, "frame 0 (timestep 0) of d.lammpstrj", 1e6, 20e9, " (20 GB, x)")
    assert msg.startswith("frame 0 (timestep 0) of d.lammpstrj (256 atoms, cell widths 14.46 x "
                          "14.46 x 14.46 A): with the cutoff 1e+06 A it needs about 6.8e+17 points")
    assert "per rank on 1 rank(s)" in msg and "20 GB per rank is available (20 GB, x)" in msg


def test_ranks_split_the_longest_axis_first():
    cell = np.diag([40.0, 20.0, 20.0])
    e = B.estimate_frame(32000, cell, [True] * 3, 5.0, 32, ranks=4)
    assert e.dims == (2, 2, 1)
    assert e.points == pytest.approx(8000 * (1 + 10 * 2 / 40) * (1 + 10 * 2 / 20) * (1 + 10 / 20))
    assert B._dims(12, [10, 10, 10]) == (3, 2, 2)
    assert B._dims(7, [1, 5, 2]) == (1, 7, 1)
    assert B._dims(8, [30, 10, 20]) == (2, 2, 2)


def test_non_periodic_without_cell_is_bounded_by_the_atoms():
    e = B.estimate_frame(1000, np.zeros((3, 3)), [False] * 3, 25.0, 32, ranks=1)
    assert e.points == 1000 and e.neighbours == 1000
    e2 = B.estimate_frame(1000, np.zeros((3, 3)), [False] * 3, 25.0, 32, ranks=2)
    assert e2.points == pytest.approx(500 * 2)  # a subdomain may see every atom
    # a slab: images along x and y only, the vacuum axis bounded by the subdomains
    s = B.estimate_frame(1000, np.diag([20.0, 20.0, 60.0]), [True, True, False], 5.0, 32)
    assert s.points == pytest.approx(1000 * 1.5 * 1.5)


def test_flat_cell_of_a_wrong_unit_needs_terabytes():
    # two atoms in a 0.01 x 0.5 x 0.5 A cell (a box written in the wrong unit): 1.8e8 points
    e = B.estimate_frame(2, np.diag([0.01, 0.5, 0.5]), [True] * 3, 30.0, 32)
    assert e.points == pytest.approx(2 * 6001 * 121 * 121)
    assert B.refusal(e, "frame 0", 30.0, 24e9) is not None
    assert B.refusal(B.estimate_frame(2, np.eye(3) * 3, [True] * 3, 5.0, 32), "f", 5.0,
                     24e9) is None


def test_memory_override_and_its_errors(monkeypatch):
    monkeypatch.setenv(B.MEMORY_ENV, "0.5")
    assert B._node_memory() == (0.5e9, "QUESTS_HPC_MEMORY_GB=0.5")
    for bad in ("-1", "nan", "lots"):
        monkeypatch.setenv(B.MEMORY_ENV, bad)
        with pytest.raises(QuestsInputError, match="QUESTS_HPC_MEMORY_GB=.*must be a number"):
            B._node_memory()
    monkeypatch.delenv(B.MEMORY_ENV)
    mem, origin = B._node_memory()
    assert 1e8 < mem < 1e15 and origin in ("MemAvailable", "cgroup memory limit")
