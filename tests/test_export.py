"""Export of frames with per-atom dH and cluster columns (LAMMPS dump, extended XYZ).

Serial tests check the text against Python's own formatting and that ASE, our LAMMPS
reader and OVITO (when installed; in a subprocess) read the files back.  MPI tests
(``mpiexec -n 1, 2, 3``) check that the text does not depend on the rank count.
"""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mpi4py import MPI

from quests_hpc.errors import QuestsInputError
from quests_hpc.export import crc32_combine, export_frame, format_table, lammps_box

SELF = MPI.COMM_SELF  # a serial export

CELL = np.array([[12.0, 0.0, 0.0], [2.5, 11.0, 0.0], [-1.5, 1.0, 10.0]])


def _frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 3)) @ CELL
    return dict(ids=np.arange(1, n + 1) * 2, positions=pos, dh=rng.normal(0, 3, n),
                cluster=rng.integers(0, 20, n), types=rng.integers(1, 3, n))


def _read_text(path):
    op = gzip.open if str(path).endswith(".gz") else open
    with op(path, "rb") as f:
        return f.read().decode()


def test_format_table_matches_python_formatting():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 50, 500), [0.0, -0.0, 1e-9, -1e-9, 123456.5, 2.5e-6]])
    i = rng.integers(-10**12, 10**12, len(x))
    got = format_table([("int", i, None), ("float", x, 6)]).tobytes().decode().splitlines()
    for line, a, b in zip(got, i, x):
        gi, gx = line.split()
        assert int(gi) == a
        assert abs(float(gx) - b) <= 5e-7 + 1e-15 * abs(b)
    special = format_table([("float", np.array([np.nan, np.inf, -np.inf, 3e25]), 2)])
    assert special.tobytes().decode().split() == ["nan", "inf", "-inf", "3.00e+25"]


def test_crc32_combine():
    import zlib

    a, b = os.urandom(1000), os.urandom(4321)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("name", ["f.lammpstrj", "f.lammpstrj.gz"])
def test_lammps_dump_reads_back(tmp_path, name):
    from quests_hpc.io import read_lammps_dump

    f = _frame()
    p = tmp_path / name
    export_frame(p, f["ids"], f["positions"], CELL, True, types=f["types"], timestep=42,
                 columns={"dH": f["dh"], "cluster": f["cluster"]}, comm=SELF)
    fr = read_lammps_dump(str(p), columns=["dH", "cluster"])
    assert fr.timestep == 42 and fr.natoms == len(f["ids"])
    np.testing.assert_array_equal(fr.ids, f["ids"])
    np.testing.assert_allclose(fr.arrays["dH"], f["dh"], atol=5e-7)
    np.testing.assert_array_equal(fr.arrays["cluster"], f["cluster"])
    # Same cell up to a rotation: compare wrapped pair distances through fractional coords.
    frac_in = f["positions"] @ np.linalg.inv(CELL)
    frac_out = fr.positions @ np.linalg.inv(fr.cell)
    d = (frac_in - frac_out) - np.round(frac_in - frac_out)
    assert np.abs(d).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(fr.cell, axis=1), np.linalg.norm(CELL, axis=1))


def test_extxyz_reads_back_with_ase(tmp_path):
    import ase.io

    f = _frame()
    p = tmp_path / "f.xyz.gz"
    export_frame(p, f["ids"], f["positions"], CELL, [True, True, False], types=f["types"],
                 elements=["Cu", "Ni"], columns={"dH": f["dh"], "cluster": f["cluster"]}, comm=SELF)
    a = ase.io.read(str(p), parallel=False)
    assert a.get_chemical_symbols() == [["Cu", "Ni"][t - 1] for t in f["types"]]
    np.testing.assert_allclose(a.positions, f["positions"], atol=6e-6)
    np.testing.assert_allclose(a.cell[:], CELL)
    assert a.pbc.tolist() == [True, True, False]
    np.testing.assert_allclose(a.arrays["dH"], f["dh"], atol=5e-7)
    np.testing.assert_array_equal(a.arrays["cluster"], f["cluster"])
    np.testing.assert_array_equal(a.arrays["id"], f["ids"])


def test_ovito_opens_the_files(tmp_path):
    pytest.importorskip("ovito")
    f = _frame()
    for name in ("f.lammpstrj.gz", "f.xyz"):
        export_frame(tmp_path / name, f["ids"], f["positions"], CELL, True,
                     columns={"dH": f["dh"], "cluster": f["cluster"]}, elements=["Cu"], comm=SELF)
    code = (
        "import json, sys, numpy as np\n"
        "from ovito.io import import_file\n"
        "for p in sys.argv[1:]:\n"
        "    d = import_file(p).compute()\n"
        "    P = d.particles\n"
        "    dh = P['dh'] if 'dh' in P else P['dH']\n"
        "    o = np.argsort(np.asarray(P['Particle Identifier']))\n"
        "    print(json.dumps([int(P.count), np.asarray(dh)[o].tolist(),"
        " np.asarray(P['Cluster'])[o].tolist()]))\n")
    env = dict(os.environ, OVITO_THREAD_COUNT="1")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.lammpstrj.gz"),
                          str(tmp_path / "f.xyz")], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.splitlines()
    assert len(out) == 2
    for line in out:
        count, dh, cluster = json.loads(line)
        assert count == len(f["ids"])
        np.testing.assert_allclose(dh, f["dh"], atol=5e-7)
        np.testing.assert_array_equal(cluster, f["cluster"])


def test_bad_input(tmp_path):
    f = _frame(10)
    with pytest.raises(QuestsInputError, match="right-handed"):
        export_frame(tmp_path / "x.lammpstrj", f["ids"], f["positions"], CELL[[1, 0, 2]], True, comm=SELF)
    with pytest.raises(QuestsInputError, match="rows, expected"):
        export_frame(tmp_path / "x.lammpstrj", f["ids"], f["positions"], CELL, True,
                     columns={"dH": f["dh"][:3]}, comm=SELF)
    with pytest.raises(QuestsInputError, match="one word"):
        export_frame(tmp_path / "x.lammpstrj", f["ids"], f["positions"], CELL, True,
                     columns={"d H": f["dh"]}, comm=SELF)
    with pytest.raises(QuestsInputError, match="format"):
        export_frame(tmp_path / "x.dat", f["ids"], f["positions"], CELL, True, fmt="pdb", comm=SELF)
    with pytest.raises(TypeError, match="pass MPI.COMM_SELF for a serial run"):
        export_frame(tmp_path / "x.lammpstrj", f["ids"], f["positions"], CELL, True, comm=None)
    assert not os.listdir(tmp_path)


def test_orthogonal_box_and_nonperiodic_extent():
    box, rot = lammps_box(np.diag([3.0, 4.0, 5.0]), [True, True, False], origin=[1, 2, 3])
    assert rot is None
    assert box.splitlines() == ["ITEM: BOX BOUNDS pp pp ff", "1 4", "2 6", "3 8"]


@pytest.mark.mpi
@pytest.mark.parametrize("name", ["p.lammpstrj", "p.xyz.gz", "p.lammpstrj.gz"])
def test_parallel_text_independent_of_rank_count(mpi_tmp_path, name):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    f = _frame(1001, seed=3)
    b = np.linspace(0, len(f["ids"]), comm.size + 1).astype(int)
    sl = slice(b[comm.rank], b[comm.rank + 1])
    p = mpi_tmp_path / name
    export_frame(p, f["ids"][sl], f["positions"][sl], CELL, True, types=f["types"][sl],
                 elements=["Cu", "Ni"], columns={"dH": f["dh"][sl], "cluster": f["cluster"][sl]},
                 comm=comm)
    comm.Barrier()
    serial = mpi_tmp_path / f"serial_{comm.rank}_{name}"
    export_frame(serial, f["ids"], f["positions"], CELL, True, types=f["types"],
                 elements=["Cu", "Ni"], columns={"dH": f["dh"], "cluster": f["cluster"]}, comm=SELF)
    assert _read_text(p) == _read_text(serial)
    if name.endswith(".gz"):
        assert subprocess.run(["gzip", "-t", str(p)], check=False).returncode == 0


def test_gzip_in_several_threaded_chunks(tmp_path, monkeypatch):
    """A rank's text deflated in several sync-flushed chunks is still one gzip member."""
    import quests_hpc.export as E

    monkeypatch.setattr(E, "_GZIP_CHUNK", 1 << 12)
    from quests_hpc.threads import get_num_threads, max_threads, set_num_threads

    before = get_num_threads()
    set_num_threads(min(2, max_threads()))  # two deflate threads where possible
    try:
        f = _frame(3000, seed=5)
        p = tmp_path / "c.lammpstrj.gz"
        export_frame(p, f["ids"], f["positions"], CELL, True, columns={"dH": f["dh"]}, comm=SELF)
        export_frame(tmp_path / "c.lammpstrj", f["ids"], f["positions"], CELL, True,
                     columns={"dH": f["dh"]}, comm=SELF)
    finally:
        set_num_threads(before)
    assert _read_text(p) == _read_text(tmp_path / "c.lammpstrj")
    assert subprocess.run(["gzip", "-t", str(p)], check=False).returncode == 0


# ------------------------------------------------------------------------ full disk


def _full_disk_after(monkeypatch, good_files, rank=None):
    """Make the ``good_files + 1``-th file written fail half-way with ENOSPC."""
    import errno

    import quests_hpc.export as E

    count = {"n": 0}
    real_file, real_at = E._write_file, E._write_at

    def fail():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write_file(f, data):
        count["n"] += 1
        if count["n"] > good_files:
            f.write(data[:len(data) // 2])
            fail()
        real_file(f, data)

    def write_at(fh, offset, buf):
        count["n"] += 1
        from mpi4py import MPI

        if count["n"] > good_files and MPI.COMM_WORLD.rank == (rank or 0):
            real_at(fh, offset, buf[:len(buf) // 2])
            fail()
        real_at(fh, offset, buf)

    monkeypatch.setattr(E, "_write_file", write_file)
    monkeypatch.setattr(E, "_write_at", write_at)


def _results(d, comm):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "analysis"))
    from results_fixture import make_results

    return make_results(d, comm, positions=True, n_frames=3)


def test_full_disk_during_export_leaves_no_truncated_file(tmp_path, capsys, monkeypatch):
    """exit 1 with one line naming the file; files before it complete, the failed one
    neither created nor (when it existed) replaced; no temporary file left."""
    from mpi4py import MPI

    from quests_hpc.cli import main

    path = _results(tmp_path, MPI.COMM_SELF)
    good, out = tmp_path / "good", tmp_path / "frames"
    assert main(["export", path, "-o", good]) == 0
    names = sorted(os.listdir(good))
    assert names == [".quests-hpc-export.json", "md_000000.lammpstrj.gz",
                     "md_000001.lammpstrj.gz", "md_000002.lammpstrj.gz"]
    manifest, names = names[0], names[1:]
    assert main(["export", path, "-o", out]) == 0  # an earlier export of the same results
    for name in names[:2]:
        os.remove(out / name)
    (out / names[2]).write_bytes(b"an earlier export")
    capsys.readouterr()
    _full_disk_after(monkeypatch, 1)
    assert main(["export", path, "-o", out]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"quests-hpc: error: writing {out / names[1]} failed: No space left "
                          "on device")
    assert "no partial file was put under that name (an earlier file of that name is " \
           "unchanged; files written before it are complete)" in err
    assert sorted(os.listdir(out)) == [manifest, names[0], names[2]]  # no hidden file left
    assert (out / names[0]).read_bytes() == (good / names[0]).read_bytes()
    assert (out / names[2]).read_bytes() == b"an earlier export"


@pytest.mark.mpi
def test_full_disk_on_one_rank_during_parallel_export(mpi_tmp_path, monkeypatch):
    """ENOSPC on rank 1 only: every rank raises the same error, no hang, no partial file."""
    from mpi4py import MPI

    from quests_hpc.results.writer import ResultsIOError

    comm = MPI.COMM_WORLD
    if comm.size < 2:
        pytest.skip("needs 2 ranks")
    f = _frame(1001, seed=3)
    b = np.linspace(0, len(f["ids"]), comm.size + 1).astype(int)
    sl = slice(b[comm.rank], b[comm.rank + 1])
    p = mpi_tmp_path / "p.lammpstrj.gz"
    if comm.rank == 0:
        p.write_bytes(b"earlier")
    comm.Barrier()
    _full_disk_after(monkeypatch, 0, rank=1)
    with pytest.raises(ResultsIOError, match=f"writing {p} failed: No space left on device"):
        export_frame(p, f["ids"][sl], f["positions"][sl], CELL, True, columns={"dH": f["dh"][sl]},
                     comm=comm)
    comm.Barrier()
    assert sorted(os.listdir(mpi_tmp_path)) == ["p.lammpstrj.gz"]
    assert p.read_bytes() == b"earlier"
