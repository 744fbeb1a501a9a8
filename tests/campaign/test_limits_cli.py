"""Resource bombs and accepted nonsense (issue 9.3), through the command line.

A cutoff the descriptor cannot mean, a frame whose atoms and periodic images cannot fit
in memory, a reference without environments, a bandwidth that makes dH infinite: each is
refused before any work with exit status 2, a message naming the argument / key / file
and what was expected, no traceback, nothing that looks complete left behind, and every
file that existed before byte-identical.
"""

import hashlib
import os
import shutil
import time

import h5py
import numpy as np
import pytest
from campaign_data import LAMMPS_DATA, REFERENCE, write_dump, write_yaml

from quests_hpc.cli import main

CU = os.path.join(LAMMPS_DATA, "cu_unsorted.lammpstrj")  # 5 frames of 256 atoms, 14.46 A cell
THRESH = os.path.join(LAMMPS_DATA, "cu_thresh.lammpstrj")  # 116, 131, 113, 128, 124 atoms


def _hashes(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture
def work(tmp_path):
    shutil.copy(CU, tmp_path / "cu.lammpstrj")
    shutil.copy(THRESH, tmp_path / "thresh.lammpstrj")
    shutil.copy(REFERENCE, tmp_path / "ref.xyz")
    with open(tmp_path / "empty.lammpstrj", "w") as f:
        f.write("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n0\nITEM: BOX BOUNDS pp pp pp\n"
                "0 10\n0 10\n0 10\nITEM: ATOMS id type x y z\n")
    write_dump(tmp_path / "one.lammpstrj", n_cells=(2, 2, 2), n_frames=1)
    with open(tmp_path / "half_empty.lammpstrj", "w") as f:  # frame 0 empty, frame 1 not
        with open(tmp_path / "empty.lammpstrj") as e:
            f.write(e.read().replace("TIMESTEP\n0", "TIMESTEP\n7"))
        with open(tmp_path / "one.lammpstrj") as c:
            f.write(c.read())
    return tmp_path


def _refused(capsys, args, *expected, seconds=None):
    """Run the CLI; exit 2, every expected text in stderr, no traceback."""
    t0 = time.perf_counter()
    assert main([str(a) for a in args]) == 2
    took = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert err.startswith("quests-hpc: error:"), err
    assert "Traceback" not in err and "internal error" not in err, err
    for e in expected:
        assert e in err, err
    if seconds is not None:
        assert took < seconds, took
    return err


def _untouched(work, before, *new):
    """Pre-existing files byte-identical, and nothing new but ``new``."""
    after = _hashes(work)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before) - {
        k for k in after if k.startswith(".") or "/." in k}) == sorted(new)


# ------------------------------------------------------------------ cutoff, k, h


@pytest.mark.parametrize("cutoff", ["1e6", "200", "30.5"])
def test_cutoff_beyond_what_the_descriptor_means_is_refused_at_once(work, capsys, cutoff):
    before = _hashes(work)
    _refused(capsys, ["dh", work / "cu.lammpstrj", "--reference", work / "ref.xyz",
                      "--cutoff", cutoff, "-o", work / "out.h5", "--threads", "1"],
             f"--cutoff: must be <= 30 A, got {float(cutoff):g}: the descriptor keeps the k <= "
             "512 nearest neighbours", seconds=5)
    _untouched(work, before)


def test_k_and_bandwidth_ranges(work, capsys):
    before = _hashes(work)
    err = _refused(capsys, ["dh", work / "cu.lammpstrj", "--reference", work / "ref.xyz",
                            "-k", "600", "--bandwidth", "1e-300", "0.015", "20", "-o",
                            work / "out.h5"],
                   "2 problems", "-k: must be <= 512, got 600",
                   "--bandwidth: must be within [0.0001, 10] 1/A, got 1e-300")
    assert "got 20" not in err  # the first bad bandwidth is named
    _refused(capsys, ["entropy", work / "cu.lammpstrj", "--bandwidth", "11"],
             "--bandwidth: must be within [0.0001, 10] 1/A, got 11")
    _refused(capsys, ["overlap", work / "cu.lammpstrj", "--reference", work / "ref.xyz",
                      "-k", "0"], "-k: must be >= 1, got 0")
    _untouched(work, before)


def test_example_checks_its_arguments(capsys):
    with pytest.raises(SystemExit) as ei:  # argparse: exit status 2, usage and the reason
        main(["example", "--cutoff", "1e6"])
    assert ei.value.code == 2
    assert "argument --cutoff: must be <= 30 A, got 1e+06" in capsys.readouterr().err


def test_campaign_cutoff_bound_names_key_and_line(work, capsys):
    p = write_yaml(work / "c.yaml", "parameters:\n  k: 32\n  cutoff: 200\n  bandwidth: 1e-300\n"
                   "references: [ref.xyz]\ninputs: [cu.lammpstrj]\noutput: {path: out.h5}\n")
    before = _hashes(work)
    _refused(capsys, ["run", p], "2 problems", "parameters.cutoff (line 3): must be <= 30 A, "
             "got 200", "parameters.bandwidth (line 4): must be within [0.0001, 10] 1/A, got 1e-300",
             seconds=5)
    _untouched(work, before)


def test_smallest_bandwidth_gives_finite_exact_dh(work, capsys):
    """h = 1e-4: every kernel term underflows, dH from the log-sum-exp alone (SPEC.md)."""
    from quests_hpc.descriptors import get_descriptors
    from ase.io import read

    out = work / "small_h.h5"
    assert main(["dh", work / "cu.lammpstrj", "--reference", work / "ref.xyz", "--frames", "0",
                 "--bandwidth", "1e-4", "0.015", "--descriptors", "-o", out, "--threads", "1",
                 "--progress", "off"]) == 0
    capsys.readouterr()
    with h5py.File(out) as f:
        g = f["frames"][list(f["frames"])[0]]
        dh, y = g["delta_entropy"][()], g["descriptors"][()]
        assert g.attrs["complete"]
    assert dh.shape == (256, 2) and np.all(np.isfinite(dh))
    x = get_descriptors(read(REFERENCE, ":"))
    d2 = ((y[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    a = -d2 / (2 * 1e-4**2)
    m = a.max(axis=1)
    brute = -(m + np.log(np.exp(a - m[:, None]).sum(axis=1)))
    np.testing.assert_allclose(dh[:, 0], brute, rtol=1e-9)
    assert dh[:, 0].min() > 1e3


# ------------------------------------------------------------------ the memory estimate


def test_frame_that_cannot_fit_is_refused_with_the_estimate(work, capsys, monkeypatch):
    monkeypatch.setenv("QUESTS_HPC_MEMORY_GB", "0.001")
    before = _hashes(work)
    _refused(capsys, ["dh", work / "thresh.lammpstrj", "--reference", work / "ref.xyz",
                      "--cutoff", "30", "-o", work / "out.h5", "--threads", "1"],
             f"inputs[0] (thresh): {work / 'thresh.lammpstrj'}, frame 1 (timestep 50) "  # largest
             "(131 atoms, cell widths 14.46 x 14.46 x 14.46 A): with the cutoff 30 A it needs "
             "about 17,887 points (atoms + ghost atoms and periodic images within the cutoff) and "
             "2.76 MB per rank on 1 rank(s)",
             "1 MB per rank is available (1 MB for 1 rank(s) on a node, QUESTS_HPC_MEMORY_GB=0.001)",
             seconds=30)
    _untouched(work, before)


def test_estimate_refusal_keeps_an_existing_output(work, capsys, monkeypatch):
    out = work / "out.h5"
    args = ["dh", work / "cu.lammpstrj", "--reference", work / "ref.xyz", "--frames", "0",
            "-o", out, "--threads", "1", "--progress", "off"]
    assert main(args) == 0  # a normal run: unaffected by the estimate
    capsys.readouterr()
    before = _hashes(work)
    monkeypatch.setenv("QUESTS_HPC_MEMORY_GB", "0.002")
    _refused(capsys, args + ["--cutoff", "25", "--overwrite"],
             "inputs[0] (cu): ", "with the cutoff 25 A it needs about",
             "2 MB per rank is available")
    _untouched(work, before)


def test_reference_that_cannot_fit_is_refused_before_its_descriptors(work, capsys, monkeypatch):
    write_dump(work / "tiny.lammpstrj", n_cells=(1, 1, 1), n_frames=1)  # 4 atoms
    monkeypatch.setenv("QUESTS_HPC_MEMORY_GB", "0.001")  # the input fits, the reference not
    before = _hashes(work)
    _refused(capsys, ["dh", work / "tiny.lammpstrj", "--reference", work / "ref.xyz",
                      "--cutoff", "12", "-o", work / "out.h5", "--threads", "1"],
             f"reference ref: {work / 'ref.xyz'}, frame 0 (500 atoms, cell widths 18.05 x 18.05 "
             "x 18.05 A): with the cutoff 12 A it needs about 6,322 points")
    _untouched(work, before)


def test_campaign_lists_the_estimate_with_the_other_problems(work, capsys, monkeypatch):
    monkeypatch.setenv("QUESTS_HPC_MEMORY_GB", "0.001")
    p = write_yaml(work / "c.yaml", "parameters: {cutoff: 30}\nreferences: [ref.xyz]\n"
                   "inputs:\n  - cu.lammpstrj\n  - {path: thresh.lammpstrj, frames: '9'}\n"
                   "output: {path: out.h5}\n")
    before = _hashes(work)
    _refused(capsys, ["run", p], "2 problems", "inputs[0] (cu): ",
             "with the cutoff 30 A it needs about 34,955 points",
             "inputs[1] (thresh): ", "out of range")
    _untouched(work, before)


# ------------------------------------------------------------------ empty data sets


@pytest.mark.parametrize("command", ["dh", "overlap"])
def test_reference_without_environments_is_refused(work, capsys, command):
    args = [command, work / "cu.lammpstrj", "--reference", work / "empty.lammpstrj"]
    if command == "dh":
        args += ["-o", work / "out.h5", "--threads", "1"]
    before = _hashes(work)
    _refused(capsys, args, f"reference empty: {work / 'empty.lammpstrj'}: the frame selection "
             "'all' (1 frame(s): 0) holds 0 atoms; a data set needs at least one environment")
    _untouched(work, before)


def test_reference_frames_without_atoms_are_refused(work, capsys):
    base = ["dh", work / "cu.lammpstrj", "--frames", "0", "--reference",
            work / "half_empty.lammpstrj", "-o", work / "out.h5", "--threads", "1",
            "--progress", "off"]
    before = _hashes(work)
    _refused(capsys, base + ["--reference-frames", "t=7"],
             "the frame selection 't=7' (1 frame(s): 0) holds 0 atoms")
    _untouched(work, before)
    assert main(base) == 0  # frame 1 has atoms: fine
    with h5py.File(work / "out.h5") as f:
        assert f.attrs["complete"] and np.isfinite(f["frames/cu_000000/delta_entropy"][()]).all()


def test_descriptor_file_without_rows_is_refused(work, capsys):
    from quests_hpc.io.reference import write_descriptors

    write_descriptors(str(work / "empty_ref.h5"), np.zeros((0, 63)), 32, 5.0)
    before = _hashes(work)
    _refused(capsys, ["dh", work / "cu.lammpstrj", "--reference", work / "empty_ref.h5",
                      "-o", work / "out.h5", "--threads", "1"],
             f"reference empty_ref: {work / 'empty_ref.h5'}: the descriptor file holds 0 "
             "environments; a reference needs at least one")
    _untouched(work, before)


def test_campaign_with_an_empty_reference(work, capsys):
    p = write_yaml(work / "c.yaml", "references: [{path: empty.lammpstrj, name: nothing}]\n"
                   "inputs: [cu.lammpstrj]\noutput: {path: out.h5}\nrun: {threads: 1}\n")
    before = _hashes(work)
    _refused(capsys, ["run", p], "reference nothing: ", "holds 0 atoms")
    _untouched(work, before)


@pytest.mark.parametrize("command", ["entropy", "overlap-input"])
def test_data_set_without_environments_is_refused(work, capsys, command):
    args = (["entropy", work / "empty.lammpstrj"] if command == "entropy" else
            ["overlap", work / "empty.lammpstrj", "--reference", work / "ref.xyz"])
    before = _hashes(work)
    _refused(capsys, args, f"{work / 'empty.lammpstrj'}: the frame selection 'all' (1 frame(s): "
             "0) holds 0 atoms; a data set needs at least one environment")
    _untouched(work, before)


# ------------------------------------------------------------------ under MPI


@pytest.mark.mpi
def test_refusals_reach_every_rank(mpi_tmp_path, capsys, monkeypatch):
    """The estimate (rank 0 reads the headers) and the empty reference are refused on every
    rank with the same exit status; the estimate counts the ranks sharing a frame."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    d = mpi_tmp_path / f"limits{comm.size}"
    if comm.rank == 0:
        d.mkdir(exist_ok=True)
        shutil.copy(CU, d / "cu.lammpstrj")
        shutil.copy(REFERENCE, d / "ref.xyz")
        with open(d / "empty.lammpstrj", "w") as f:
            f.write("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n0\nITEM: BOX BOUNDS pp pp pp\n"
                    "0 10\n0 10\n0 10\nITEM: ATOMS id type x y z\n")
    comm.Barrier()
    before = _hashes(d)
    monkeypatch.setenv("QUESTS_HPC_MEMORY_GB", "0.001")
    assert main(["dh", d / "cu.lammpstrj", "--reference", d / "ref.xyz", "--cutoff", "30",
                 "-o", d / "out.h5", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    if comm.rank == 0:
        assert f"on {comm.size} rank(s)" in err and "QUESTS_HPC_MEMORY_GB=0.001" in err, err
    monkeypatch.delenv("QUESTS_HPC_MEMORY_GB")
    assert main(["dh", d / "cu.lammpstrj", "--reference", d / "empty.lammpstrj", "-o",
                 d / "out.h5", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    if comm.rank == 0:
        assert "reference empty: " in err and "holds 0 atoms" in err, err
    comm.Barrier()
    assert _hashes(d) == before
