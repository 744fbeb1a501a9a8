"""Bad input through the command line (issue 9): exit status 2, one clear message naming the
file, the frame (index and timestep) and the line or atom id, no traceback, no output that
looks complete, and every file that existed before byte-identical afterwards.

Fixtures are a real LAMMPS dump (``cu_unsorted``: 5 frames of 256 Cu atoms in a 14.46 A
periodic box) edited at known lines: frame 2 (timestep 100) has its ``ITEM: TIMESTEP`` on
line 539, its box on lines 544-546 and its atoms on lines 548-803.
"""

import glob
import hashlib
import os
import subprocess
import sys

import h5py
import pytest
from iohelpers import data, edited_text, write_text
from iohelpers import set_field as field

from quests_hpc.cli import main
from quests_hpc.results import complete_frames

TS2 = 539
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")


def reference():
    return data("reference_POSCAR")


def edit_lines(tmp_path, edits, name="bad.lammpstrj"):
    return write_text(tmp_path / name, edited_text(edits))


def coincident(line):
    """Line ``line`` + 1 gets the position of atom line ``line``."""
    def make(tmp_path):
        lines = open(data("cu_unsorted.lammpstrj")).read().split("\n")
        a, b = lines[line - 1].split(), lines[line].split()
        lines[line] = " ".join(b[:2] + a[2:5])
        return write_text(tmp_path / "bad.lammpstrj", "\n".join(lines)), (a[0], b[0])
    return make


def sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def snapshot(folder):
    """sha256 of every regular file under ``folder`` (FIFOs and devices skipped)."""
    out = {}
    for p in glob.glob(os.path.join(str(folder), "**"), recursive=True):
        if os.path.isfile(p):
            out[p] = sha(p)
    return out


def assert_nothing_looks_complete(folder):
    """No results file under ``folder`` claims a complete campaign or frame 2 complete."""
    for p in glob.glob(os.path.join(str(folder), "*.h5*")):
        try:
            f = h5py.File(p, "r")
        except OSError:
            continue  # not even an HDF5 file: cannot pass for a result
        with f:
            assert not bool(f.attrs.get("complete", False)), p
            assert not [n for n in complete_frames(f) if n.endswith("_000002")], p
    assert not glob.glob(os.path.join(str(folder), "*_plots"))


def run_cli(capsys, args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def check_refused(capsys, tmp_path, dump, pattern, extra=()):
    """Run ``quests-hpc dh`` on ``dump``; return stderr after the common checks."""
    import re

    ref = reference()
    before_ref = sha(ref)
    before = snapshot(tmp_path)
    out = tmp_path / "out.h5"
    code, _, err = run_cli(capsys, ["dh", dump, "--reference", ref, "-o", out, *extra])
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.count("quests-hpc: error:") == 1, err
    assert re.search(pattern, err), err
    assert sha(ref) == before_ref
    after = snapshot(tmp_path)
    for p, h in before.items():
        assert after.get(p) == h, f"{p} changed"
    assert_nothing_looks_complete(tmp_path)
    return err


# Errors found before any work (no output file is created at all).
PLAN = {
    "timestep-abc": ({TS2 + 1: "abc"}, r"bad.lammpstrj, frame 2 \(timestep \?\): line 540: "
                                       r"TIMESTEP is not an integer: 'abc'"),
    "natoms-negative": ({TS2 + 3: "-5"}, r"bad.lammpstrj, frame 2 \(timestep 100\): line 542: "
                                         r"NUMBER OF ATOMS is negative: '-5' \(expected an integer"),
    "natoms-22-digits": ({TS2 + 3: "1234567890123456789012"},
                         r"bad.lammpstrj, frame 2 \(timestep 100\): line 542: NUMBER OF ATOMS "
                         r"1234567890123456789012 is out of range"),
    "natoms-1e11": ({TS2 + 3: "100000000000"},
                    r"bad.lammpstrj, frame 2 \(timestep 100\): truncated frame: NUMBER OF ATOMS is "
                    r"100000000000 but only 256 atom lines follow \(lines 548-803\)"),
    "box-hi-below-lo": ({TS2 + 5: "1.4460000000000001e+01 0.0"},
                        r"bad.lammpstrj, frame 2 \(timestep 100\): line 544: BOX BOUNDS x: xlo = "
                        r"14.46, xhi = 0.0: hi < lo \(an inverted, left-handed box\); expected xhi"),
    "box-zero-volume": ({TS2 + 6: "3.0 3.0"},
                        r"bad.lammpstrj, frame 2 \(timestep 100\): line 545: BOX BOUNDS y: ylo = "
                        r"3.0, yhi = 3.0: zero length \(a zero-volume box\)"),
    "box-nan": ({TS2 + 7: "nan 14.46"}, r"bad.lammpstrj, frame 2 \(timestep 100\): line 546: BOX "
                                        r"BOUNDS line 3 has a non-finite number: \[nan, 14.46\]"),
}


@pytest.mark.parametrize("case", sorted(PLAN))
def test_bad_header_refused_before_any_output(capsys, tmp_path, case):
    edits, pattern = PLAN[case]
    dump = edit_lines(tmp_path, edits)
    check_refused(capsys, tmp_path, dump, pattern)
    assert not glob.glob(str(tmp_path / "out.h5*"))


def test_bad_header_leaves_an_existing_output_untouched(capsys, tmp_path):
    good = edit_lines(tmp_path, {}, "good.lammpstrj")
    code, _, err = run_cli(capsys, ["dh", good, "--reference", reference(), "-o",
                                    tmp_path / "out.h5", "--frames", "0:2"])
    assert code == 0, err
    bad = edit_lines(tmp_path, PLAN["natoms-1e11"][0])
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, ["dh", bad, "--reference", reference(), "-o",
                                    tmp_path / "out.h5", "--overwrite"])
    assert code == 2 and "NUMBER OF ATOMS is 100000000000" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


# Errors in a frame's atoms (found when that frame is read or computed; frames 0 and 1
# are done, frame 2 is never marked complete, nor is the campaign).
ATOM = TS2 + 20  # line 559, atom id 69
FRAME = {
    "coordinate-nan": ({ATOM: field(2, "nan")}, r"bad.lammpstrj, frame 2 \(timestep 100\), line "
                                                r"559: atom id 69: column 3 \(x\): coordinate 'nan' "
                                                r"is not finite"),
    "coordinate-inf": ({ATOM: field(4, "-inf")}, r"bad.lammpstrj, frame 2 \(timestep 100\), line "
                                                 r"559: atom id 69: column 5 \(z\): coordinate '-inf'"),
    "coordinate-1e18": ({ATOM: field(2, "1e18")},
                        r"bad.lammpstrj, frame 2 \(timestep 100\), line 559: atom id 69: x = 1e\+18, "
                        r".* is 6.92e\+16 box lengths out along the periodic axis x; expected at "
                        r"most 2\*\*20"),
    "atom-line": ({ATOM: "69 1 3.9 oops 3.7"}, r"bad.lammpstrj, frame 2 \(timestep 100\), line 559: "
                                               r"column 4 \(y\): 'oops' is not a number"),
}


@pytest.mark.parametrize("case", sorted(FRAME))
def test_bad_atoms_refused_with_the_line(capsys, tmp_path, case):
    edits, pattern = FRAME[case]
    check_refused(capsys, tmp_path, edit_lines(tmp_path, edits), pattern)


def test_coincident_atoms_named_with_frame_and_ids(capsys, tmp_path):
    dump, (a, b) = coincident(ATOM)(tmp_path)
    lo, hi = sorted((int(a), int(b)))
    check_refused(capsys, tmp_path, dump, rf"bad.lammpstrj, frame 2 \(timestep 100\): atom ids "
                                          rf"{lo} and {hi} are at the same position \(r = 0\)")


@pytest.mark.parametrize("kind", ["empty", "binary", "text"])
def test_not_a_dump(capsys, tmp_path, kind):
    path = tmp_path / "x.lammpstrj"
    path.write_bytes({"empty": b"", "binary": os.urandom(5000),
                      "text": b"just some notes\nnot a dump\n"}[kind])
    what = {"empty": r"empty file; expected a LAMMPS text dump",
            "binary": r"not a LAMMPS text dump: it holds binary data",
            "text": r"not a LAMMPS text dump: line 1 is 'just some notes', expected ITEM: "
                    r"TIMESTEP"}[kind]
    check_refused(capsys, tmp_path, str(path), r"x.lammpstrj: " + what)


@pytest.mark.parametrize("kind", ["dir", "fifo", "/dev/null", "/dev/zero"])
def test_not_a_regular_file(capsys, tmp_path, kind):
    """Refused by name (not 'file not found'), and a FIFO is never opened (no hang)."""
    import signal

    if kind in ("dir", "fifo"):
        path = str(tmp_path / "in.lammpstrj")
        os.mkdir(path) if kind == "dir" else os.mkfifo(path)
    else:
        path = kind

    def boom(*_):
        raise TimeoutError("hung")
    signal.signal(signal.SIGALRM, boom)
    signal.alarm(60)
    try:
        check_refused(capsys, tmp_path, path, r"in.lammpstrj|/dev/(null|zero)")
        err = check_refused(capsys, tmp_path, path, "")
    finally:
        signal.alarm(0)
    what = {"dir": "a directory", "fifo": "a FIFO", "/dev/null": "a character device",
            "/dev/zero": "a character device"}[kind]
    assert f"is {what}" in err


def test_stale_index_cache_does_not_blame_the_dump(capsys, tmp_path, monkeypatch):
    """A dump rewritten with the same size and mtime after its index was cached."""
    from quests_hpc.io import lammps_dump

    monkeypatch.setattr(lammps_dump, "_SMALL_FILE", 0)  # cache this small dump's index
    dump = edit_lines(tmp_path, {}, "d.lammpstrj")
    code, _, err = run_cli(capsys, ["dh", dump, "--reference", reference(), "-o", tmp_path / "a.h5"])
    assert code == 0 and glob.glob(str(tmp_path / ".d.lammpstrj.quests-index.npz")), err
    st = os.stat(dump)
    text = open(dump).read()
    lines = text.split("\n")
    lines[9] = lines[9].replace("0.0000000000000000e+00", "0.0", 1)  # frame 0 box: same value
    k = [i for i, x in enumerate(lines) if x.startswith("ITEM: BOX BOUNDS")][4] + 1
    lines[k] = lines[k].replace("0.0000000000000000e+00", "0." + "0" * 35 + "e+00", 1)
    assert len("\n".join(lines)) == len(text)
    write_text(dump, "\n".join(lines))
    os.utime(dump, ns=(st.st_atime_ns, st.st_mtime_ns))
    code, _, err = run_cli(capsys, ["dh", dump, "--reference", reference(), "-o", tmp_path / "b.h5"])
    assert code == 0, err
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
        names = complete_frames(a)
        assert names == complete_frames(b) and len(names) == 5
        for n in names:
            assert (a["frames"][n]["delta_entropy"][()] == b["frames"][n]["delta_entropy"][()]).all()


# ------------------------------------------------------------- under mpiexec -n 2

def _mpi_dh(dump, out, timeout=240):
    env = dict(os.environ, QUESTS_HPC_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "quests_hpc.cli", "dh",
                           str(dump), "--reference", reference(), "-o", str(out)],
                          capture_output=True, text=True, timeout=timeout, env=env)


LAST = TS2 + 263  # line 802: the second-to-last atom of frame 2, in rank 1's byte range


@pytest.mark.skipif(not os.path.exists(MPIEXEC), reason="no mpiexec in the venv")
@pytest.mark.parametrize("case", ["atom-line", "coordinate-nan", "coordinate-1e18", "natoms"])
def test_bad_input_under_mpiexec_exits_2_with_one_message(tmp_path, case):
    edits = {"atom-line": {LAST: "5 1 2.0 2.0 oops"}, "coordinate-nan": {LAST: field(3, "nan")},
             "coordinate-1e18": {LAST: field(3, "1e18")}, "natoms": {TS2 + 3: "-5"}}[case]
    lines = open(data("cu_unsorted.lammpstrj")).read().split("\n")
    atom = lines[LAST - 1].split()[0]
    pattern = {"atom-line": r"frame 2 \(timestep 100\), line 802: column 5 \(z\): 'oops' is not a "
                            r"number",
               "coordinate-nan": rf"frame 2 \(timestep 100\), line 802: atom id {atom}: column 4 "
                                 r"\(y\): coordinate 'nan' is not finite",
               "coordinate-1e18": rf"frame 2 \(timestep 100\), line 802: atom id {atom}: .*y = 1e\+18",
               "natoms": r"frame 2 \(timestep 100\): line 542: NUMBER OF ATOMS is negative"}[case]
    import re

    dump = edit_lines(tmp_path, edits)
    r = _mpi_dh(dump, tmp_path / "out.h5")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("quests-hpc: error:") == 1, r.stderr  # rank 0 only, no abort
    assert re.search(r"bad.lammpstrj, " + pattern, r.stderr), r.stderr
    assert "Traceback" not in r.stderr and "rank 1" not in r.stderr, r.stderr
    assert_nothing_looks_complete(tmp_path)


# ------------------------------------------------------------- ASE-read inputs

def _extxyz(tmp_path, row, value):
    """reference_mixed.extxyz (3 frames of 256 atoms) with frame 1's atom ``row`` edited."""
    lines = open(data("reference_mixed.extxyz")).read().split("\n")
    k = 258 + 2 + row  # frame 1: count line 259, comment 260, atoms from line 261
    w = lines[k].split()
    w[1:4] = value if isinstance(value, list) else [value, w[2], w[3]]
    lines[k] = "   ".join(w)
    return write_text(tmp_path / "bad.extxyz", "\n".join(lines))


@pytest.mark.parametrize("case", ["nan", "far", "coincident"])
def test_bad_ase_input(capsys, tmp_path, case):
    if case == "coincident":
        lines = open(data("reference_mixed.extxyz")).read().split("\n")
        path = _extxyz(tmp_path, 5, lines[258 + 2 + 4].split()[1:4])  # atom 6 onto atom 5
        pattern = r"bad.extxyz, frame 1: atom ids 5 and 6 are at the same position"
    else:
        path = _extxyz(tmp_path, 5, "nan" if case == "nan" else "1e18")
        pattern = (r"bad.extxyz, frame 1: atom 6 \(counting from 1\): position \[nan, " if case == "nan"
                   else r"bad.extxyz, frame 1: atom 6 \(counting from 1\): position \[1e\+18, .* lies "
                   r"more than 2\*\*20 cell "
                   r"lengths outside the periodic cell")
    check_refused(capsys, tmp_path, path, pattern)


@pytest.mark.parametrize("role", ["input", "reference"])
def test_compressed_dump_cut_before_its_first_frame_is_named(capsys, tmp_path, role):
    """A .zst dump cut after 6000 bytes (no complete frame, no end marker): the refusal names
    the file and says it holds no complete frame, not only "selects no frame"."""
    with open(data("cu_unsorted.lammpstrj.zst"), "rb") as fh:
        cut = tmp_path / "cut.lammpstrj.zst"
        cut.write_bytes(fh.read()[:6000])
    good = tmp_path / "good.lammpstrj"
    good.write_bytes(open(data("cu_unsorted.lammpstrj"), "rb").read())
    before = snapshot(tmp_path)
    test, ref = (cut, good) if role == "input" else (good, cut)
    code, _, err = run_cli(capsys, ["dh", test, "--reference", ref, "-o", tmp_path / "out.h5"])
    assert code == 2, err
    assert "Traceback" not in err and err.count("quests-hpc: error:") == 1, err
    assert f"{cut}: the frame selection 'all' selects no frame (the file holds 0 complete frames)" in err
    assert snapshot(tmp_path) == before
    assert not os.path.exists(tmp_path / "out.h5.partial")


def test_warning_about_a_truncated_last_frame_is_one_plain_line(capsys, tmp_path):
    """A dump whose last frame is cut (still being written): the run finishes (exit 0) and the
    warning is one `quests-hpc: warning:` line naming file, frame timestep and line, without
    the Python source location and source line that `warnings` prints by default."""
    lines = open(data("cu_unsorted.lammpstrj")).read().split("\n")
    dump = write_text(tmp_path / "cut.lammpstrj", "\n".join(lines[:-20]))
    code, _, err = run_cli(capsys, ["dh", dump, "--reference", reference(), "-o",
                                    tmp_path / "out.h5", "--progress", "off"])
    assert code == 0, err
    warn = [w for w in err.splitlines() if "incomplete" in w]
    assert len(warn) == 1 and warn[0].startswith(f"quests-hpc: warning: {dump}: last frame "), err
    assert "(timestep 200, line 1071)" in warn[0] and "it is left out" in warn[0]
    assert "DumpWarning" not in err and ".py:" not in err, err
