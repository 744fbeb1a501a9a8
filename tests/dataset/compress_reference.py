"""Shared data and oracles of the compression tests: the real-LAMMPS fixture and
upstream ``quests``'s choices and metrics on the same structures."""

import pathlib

import numpy as np
import pytest

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "dataset"
FRAMES = DATA / "cu_frames_small.lammpstrj"   # 63 frames x 32 Cu atoms, real LAMMPS (NPT)
FRAMES_XYZ = DATA / "cu_frames_small.extxyz"  # the same frames through ASE


def upstream_atoms():
    from ase.io import read

    return read(FRAMES_XYZ, index=":", parallel=False)


def upstream_compressor(images):
    """Upstream's DatasetCompressor on ``images`` (its own descriptors, h = 0.015)."""
    compress = pytest.importorskip("quests.compression.compress")
    return compress.DatasetCompressor(images, bandwidth=0.015)


def upstream_choice(method, size, images, **kwargs):
    """Upstream's chosen indices (ints) for ``method``."""
    comp = upstream_compressor(images)
    return [int(i) for i in comp.get_indices(method, size, **kwargs)], comp


def upstream_descriptors(images):
    from quests.descriptor import get_descriptors

    return [get_descriptors([a], k=32, cutoff=5.0) for a in images]


def upstream_mean_fps_start(seed, n):
    """The start upstream's mean_fps draws after ``np.random.seed(seed)``."""
    np.random.seed(seed)
    return int(np.random.randint(0, n))
