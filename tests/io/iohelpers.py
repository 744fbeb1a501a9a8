"""Helpers of the I/O tests: the LAMMPS-written fixtures and a comparison with ASE."""

import os

import numpy as np
import pytest

DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "data", "lammps"))


def data(name):
    """Path of a committed fixture (skips the test when it is missing)."""
    path = os.path.join(DATA, name)
    if not os.path.exists(path) and "*" not in name:
        pytest.skip(f"fixture {name} missing (run scripts/make_lammps_fixtures.py)")
    return path


def assert_matches_ase(frame, atoms, scaled=False):
    """Our frame equals ASE's reading of the same frame.

    ASE keeps the file's coordinates; ours are wrapped along periodic axes, so the
    positions must differ by whole cell vectors there, and be bit-for-bit equal for every
    atom that was inside the cell (and along non-periodic axes), unless the file has
    scaled coordinates (then both convert, within rounding).
    """
    # ASE sorts by id but does not keep the ids
    assert len(frame.ids) == len(atoms) and np.all(np.diff(frame.ids) > 0)
    if "type" in atoms.arrays and frame.types is not None:
        assert np.array_equal(frame.types, atoms.arrays["type"])
    np.testing.assert_allclose(frame.cell, atoms.cell[:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame.origin, atoms.get_celldisp().ravel(), rtol=0, atol=1e-12)
    assert np.array_equal(frame.pbc, atoms.pbc)
    raw = atoms.positions + (frame.origin if scaled else 0.0)
    d = frame.positions - raw
    f = d @ np.linalg.inv(frame.cell)
    k = np.round(f)
    assert np.all(k[:, ~frame.pbc] == 0)
    np.testing.assert_allclose(f - k, 0.0, atol=1e-12)
    moved = np.any(k != 0, axis=1)
    if scaled:
        np.testing.assert_allclose(frame.positions[~moved], raw[~moved], rtol=0, atol=1e-12)
    else:
        assert np.array_equal(frame.positions[~moved], raw[~moved])
    # wrapped: fractional coordinates in [0, 1) along periodic axes (up to rounding)
    frac = (frame.positions - frame.origin) @ np.linalg.inv(frame.cell)
    assert np.all(frac[:, frame.pbc] >= -1e-12) and np.all(frac[:, frame.pbc] < 1 + 1e-12)
    return int(moved.sum())


def write_text(path, text):
    with open(path, "w") as fh:
        fh.write(text)
    return str(path)


def small_dump(frames, boundary="pp pp pp", columns="id type x y z", box=None):
    """Text of a small dump: ``frames`` is a list of (timestep, rows) with rows as strings."""
    out = []
    box = box or ["0.0 10.0", "0.0 10.0", "0.0 10.0"]
    for ts, rows in frames:
        out += ["ITEM: TIMESTEP", str(ts), "ITEM: NUMBER OF ATOMS", str(len(rows)),
                f"ITEM: BOX BOUNDS {boundary}", *box, f"ITEM: ATOMS {columns}", *rows]
    return "\n".join(out) + "\n"


def edited_text(edits, src="cu_unsorted.lammpstrj"):
    """The text of fixture ``src`` with ``{line (1-based): new text or f(old line)}``."""
    lines = open(data(src)).read().split("\n")
    for k, v in edits.items():
        lines[k - 1] = v(lines[k - 1]) if callable(v) else v
    return "\n".join(lines)


def set_field(i, value):
    """An edit (for :func:`edited_text`) that sets field ``i`` of an atom line."""
    def f(line):
        w = line.split()
        w[i] = value
        return " ".join(w)
    return f
