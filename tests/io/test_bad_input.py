"""Bad input: every error names the file, the frame (index and timestep) and the line."""

import gzip
import re
import shutil

import numpy as np
import pytest
from iohelpers import data, edited_text, set_field, small_dump, write_text

from quests_hpc.errors import QuestsInputError
from quests_hpc.io import DumpWarning, LammpsDump, read_lammps_dump

ROWS = [f"{i} 1 {i * 0.5} {i * 0.25} 1.0" for i in range(1, 9)]


def good(tmp_path, name="d.lammpstrj", frames=((0, ROWS), (10, ROWS), (20, ROWS))):
    return write_text(tmp_path / name, small_dump(list(frames)))


def lines_of(path):
    with open(path) as fh:
        return fh.read().split("\n")


def test_truncated_last_frame_is_left_out(tmp_path):
    src = data("cu_unsorted.lammpstrj")
    text = open(src).read()
    cut = text[: text.rindex("ITEM: ATOMS") + 2000]  # last frame: header + a few atom lines
    path = write_text(tmp_path / "running.lammpstrj", cut[: cut.rindex("\n") + 7])  # half a line
    with pytest.warns(DumpWarning, match=r"last frame \(timestep 200, line \d+\) is incomplete"):
        d = LammpsDump(path, cache=False)
    assert len(d) == 4 and d.indices[0].truncated_tail["timestep"] == 200
    whole = read_lammps_dump(src, 3)
    assert np.array_equal(d.read(-1).positions, whole.positions)
    with pytest.raises(QuestsInputError, match="frame index 4 out of range"):
        d.read(4)


def test_header_cut_short_at_end(tmp_path):
    text = small_dump([(0, ROWS), (10, ROWS)])
    path = write_text(tmp_path / "h.lammpstrj", text[: text.rindex("ITEM: BOX BOUNDS") + 5])
    with pytest.warns(DumpWarning, match="header cut short"):
        frames = read_lammps_dump(path, ":", cache=False)
    assert [f.timestep for f in frames] == [0]


def test_truncated_frame_in_the_middle(tmp_path):
    lines = small_dump([(0, ROWS), (10, ROWS[:5]), (20, ROWS)]).split("\n")
    lines[lines.index("10") + 2] = "8"  # NUMBER OF ATOMS says 8, 5 lines follow
    path = write_text(tmp_path / "m.lammpstrj", "\n".join(lines))
    d = LammpsDump(path, cache=False)
    assert len(d) == 3
    assert d.read(2).timestep == 20
    with pytest.raises(QuestsInputError) as e:
        d.read(1)
    msg = str(e.value)
    assert "m.lammpstrj" in msg and "frame 1 (timestep 10)" in msg and "NUMBER OF ATOMS is 8" in msg
    assert re.search(r"lines 27-31", msg)


def test_more_lines_than_atoms(tmp_path):
    lines = small_dump([(0, ROWS), (10, ROWS)]).split("\n")
    lines[3] = "7"
    path = write_text(tmp_path / "x.lammpstrj", "\n".join(lines))
    with pytest.raises(QuestsInputError, match=r"frame 0 \(timestep 0\), line 17: more atom lines "
                                               r"than NUMBER OF ATOMS \(7\)"):
        read_lammps_dump(path, 0, cache=False)
    assert read_lammps_dump(path, 1, cache=False).natoms == 8


def test_missing_coordinate_columns(tmp_path):
    path = write_text(tmp_path / "c.lammpstrj", small_dump([(5, [r[:-4] for r in ROWS])],
                                                           columns="id type x y"))
    with pytest.raises(QuestsInputError, match=r"frame 0 \(timestep 5\), line 9: coordinate "
                                               r"column\(s\) z missing"):
        read_lammps_dump(path, cache=False)
    path = write_text(tmp_path / "n.lammpstrj", small_dump([(5, ROWS)], columns="id type a b c"))
    with pytest.raises(QuestsInputError, match="no coordinate columns"):
        read_lammps_dump(path, cache=False)


@pytest.mark.parametrize("bad,pattern", [
    ("3 1 1.5 abc 1.0", r"line 29: column 4 \(y\): 'abc' is not a number"),
    ("3 1 1.5 1.0e 1.0", r"line 29: column 4 \(y\): '1.0e' is not a number"),
    ("3 x 1.5 0.1 1.0", r"line 29: column 2 \(type\): 'x' is not an integer"),
    ("3.0 1 1.5 0.1 1.0", r"line 29: column 1 \(id\): '3.0' is not an integer"),
    ("1234567890123456789012 1 1.5 0.1 1.0", r"line 29: column 1 \(id\): '1234567890123456789012' is "
                                            r"out of range \(22 digits; expected at most 18\)"),
    ("3 1 1.5 0.1", r"line 29: 4 fields, ITEM: ATOMS names 5 columns"),
    ("3 1 1.5 0.1 1.0 7", r"line 29: 6 fields, ITEM: ATOMS names 5 columns"),
])
def test_malformed_atom_line(tmp_path, bad, pattern):
    rows = list(ROWS)
    rows[2] = bad
    path = write_text(tmp_path / "b.lammpstrj", small_dump([(0, ROWS), (40, rows)]))
    with pytest.raises(QuestsInputError, match=r"b.lammpstrj, frame 1 \(timestep 40\), " + pattern):
        read_lammps_dump(path, 1, cache=False)


def test_special_floats_are_read(tmp_path):
    """NaN and inf are read in other columns (a coordinate must be finite: see below)."""
    rows = [r + " 0.5 0.5 0.5" for r in ROWS]
    rows[0] = "1 1 0.5 0.5 0.5 nan -inf 1e400"
    rows[1] = "2 1 1.00000000000000000000001 -0 4.9e-324 0 0 0"
    path = write_text(tmp_path / "s.lammpstrj", small_dump([(0, rows)], "ff ff ff",
                                                           columns="id type x y z c_a c_b c_c"))
    f = read_lammps_dump(path, cache=False, columns="all")
    assert np.isnan(f.arrays["c_a"][0]) and f.arrays["c_b"][0] == -np.inf
    assert f.arrays["c_c"][0] == np.inf and f.positions[1, 0] == 1.0
    assert np.signbit(f.positions[1, 1]) and f.positions[1, 2] == 5e-324


def test_duplicate_ids(tmp_path):
    rows = list(ROWS)
    rows[5] = "2 1 0.1 0.2 0.3"  # id 2 twice, id 6 missing (dense range)
    path = write_text(tmp_path / "dup.lammpstrj", small_dump([(7, rows)]))
    with pytest.raises(QuestsInputError, match=r"frame 0 \(timestep 7\): duplicate atom id 2 "
                                               r"\(lines 11 and 15\)"):
        read_lammps_dump(path, cache=False)
    rows[5] = "2 1 0.1 0.2 0.3"
    rows[6] = "100 1 0.1 0.2 0.3"  # sparse ids
    path = write_text(tmp_path / "dup2.lammpstrj", small_dump([(7, rows)]))
    with pytest.raises(QuestsInputError, match=r"duplicate atom id 2 \(lines 11 and 15\)"):
        read_lammps_dump(path, cache=False)


def test_unreadable_gzip(tmp_path):
    raw = open(data("cu_unsorted.lammpstrj.gz"), "rb").read()
    path = tmp_path / "bad.lammpstrj.gz"
    path.write_bytes(raw[:200] + bytes(range(256)) * 4 + raw[1224:])
    with pytest.raises(QuestsInputError, match=r"bad.lammpstrj.gz: unreadable gz stream"):
        read_lammps_dump(str(path), ":", cache=False)
    path.write_bytes(b"not a gzip file at all")
    with pytest.raises(QuestsInputError, match="bad.lammpstrj.gz"):
        read_lammps_dump(str(path), cache=False)


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst"])
def test_compressed_stream_cut_short_keeps_complete_frames(tmp_path, suffix):
    """A dump still being written through gzip/bzip2/zstd: the frames before the cut read."""
    raw = open(data("cu_unsorted.lammpstrj" + suffix), "rb").read()
    path = tmp_path / ("cut.lammpstrj" + suffix)
    path.write_bytes(raw[: len(raw) * 3 // 4])
    with pytest.warns(DumpWarning, match="ends without its end marker|incomplete"):
        frames = read_lammps_dump(str(path), ":", cache=False)
    plain = read_lammps_dump(data("cu_unsorted.lammpstrj"), ":")
    # bzip2 (900 kB) and zstd (128 kB) decode whole blocks: a cut in the only block of
    # these small files leaves nothing; gzip streams every byte before the cut
    assert len(frames) < 5 and (len(frames) >= 2 or suffix != ".gz")
    for a, b in zip(frames, plain):
        assert np.array_equal(a.positions, b.positions)


def test_gzip_member_flushed_mid_frame(tmp_path):
    text = gzip.decompress(open(data("cu_unsorted.lammpstrj.gz"), "rb").read())
    path = tmp_path / "flush.lammpstrj.gz"
    path.write_bytes(gzip.compress(text[: len(text) - 5000]))
    with pytest.warns(DumpWarning, match="incomplete"):
        assert len(read_lammps_dump(str(path), ":", cache=False)) == 4


def test_frame_index_out_of_range(tmp_path):
    path = good(tmp_path)
    for sel in (3, -4, "5", "t=15"):
        with pytest.raises(QuestsInputError, match="out of range|no frame with timestep 15"):
            read_lammps_dump(path, sel, cache=False)


def test_bad_selection(tmp_path):
    path = good(tmp_path)
    for sel in ("1:2:3:4", "a", "0::0", "1,,2"):
        with pytest.raises(QuestsInputError, match="bad frame selection"):
            read_lammps_dump(path, sel, cache=False)


def test_bad_header_is_reported_when_read(tmp_path):
    lines = small_dump([(0, ROWS), (10, ROWS), (20, ROWS)]).split("\n")
    j = lines.index("10") + 2
    lines[j] = "eight"
    path = write_text(tmp_path / "h.lammpstrj", "\n".join(lines))
    d = LammpsDump(path, cache=False)
    assert len(d) == 3 and d.read(2).timestep == 20 and d.read(0).timestep == 0
    with pytest.raises(QuestsInputError, match=r"frame 1 \(timestep 10\): line 21: NUMBER OF ATOMS "
                                               r"is not an integer: 'eight'"):
        d.read(1)


def test_unknown_section_is_skipped(tmp_path):
    text = small_dump([(0, ROWS)]).replace("ITEM: BOX BOUNDS",
                                           "ITEM: MY STUFF\n1 2 3\nfoo\nITEM: BOX BOUNDS")
    path = write_text(tmp_path / "u.lammpstrj", text)
    with pytest.warns(DumpWarning, match="skipping unknown section ITEM: MY STUFF"):
        f = read_lammps_dump(path, cache=False)
    assert f.natoms == 8


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(QuestsInputError, match="no such file"):
        read_lammps_dump(str(tmp_path / "nope.lammpstrj"))
    with pytest.raises(QuestsInputError, match="no file matches"):
        read_lammps_dump(str(tmp_path / "nope.*.lammpstrj"))
    empty = write_text(tmp_path / "empty.lammpstrj", "")
    with pytest.raises(QuestsInputError, match=r"empty.lammpstrj: empty file; expected a LAMMPS "
                                               r"text dump"):
        LammpsDump(empty, cache=False)


def test_zero_atom_frame_and_blank_lines(tmp_path):
    text = small_dump([(0, []), (10, ROWS)]).replace("ITEM: ATOMS id type x y z\n" + ROWS[0],
                                                    "ITEM: ATOMS id type x y z\n\n" + ROWS[0])
    path = write_text(tmp_path / "z.lammpstrj", text)
    f0, f1 = read_lammps_dump(path, ":", cache=False)
    assert f0.natoms == 0 and f0.positions.shape == (0, 3)
    assert f1.natoms == 8 and np.array_equal(f1.ids, np.arange(1, 9))


def test_no_id_column_numbers_atoms(tmp_path):
    rows = [r.split(" ", 1)[1] for r in ROWS]
    path = write_text(tmp_path / "noid.lammpstrj", small_dump([(0, rows)], columns="type x y z"))
    f = read_lammps_dump(path, cache=False)
    assert np.array_equal(f.ids, np.arange(1, 9))
    assert np.array_equal(f.positions[:, 0], 0.5 * np.arange(1, 9))


def test_old_dump_without_column_names(tmp_path):
    rows = [f"{i} 1 {i / 10} 0.5 0.25" for i in range(1, 6)]
    path = write_text(tmp_path / "old.lammpstrj",
                      small_dump([(0, rows)], columns="").replace("ITEM: ATOMS \n", "ITEM: ATOMS\n"))
    f = read_lammps_dump(path, cache=False)
    assert f.columns == ("id", "type", "xs", "ys", "zs")
    np.testing.assert_allclose(f.positions[:, 0], np.arange(1, 6))


def test_windows_line_endings(tmp_path):
    path = tmp_path / "crlf.lammpstrj"
    path.write_bytes(small_dump([(0, ROWS)]).replace("\n", "\r\n").encode())
    f = read_lammps_dump(str(path), cache=False)
    assert f.natoms == 8 and f.positions[7, 0] == 4.0


def test_no_trailing_newline(tmp_path):
    path = write_text(tmp_path / "nonl.lammpstrj", small_dump([(0, ROWS)]).rstrip("\n"))
    f = read_lammps_dump(path, cache=False)
    assert f.natoms == 8 and f.positions[7, 0] == 4.0


def test_copy_of_fixture_reads_the_same(tmp_path):
    p = shutil.copy(data("cu_sorted_17g.lammpstrj"), tmp_path / "copy.lammpstrj")
    a = read_lammps_dump(str(p), ":")
    b = read_lammps_dump(data("cu_sorted_17g.lammpstrj"), ":")
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))


# ----------------------------------------------------------------- issue 9: bad input
# Fixtures are a real LAMMPS dump (cu_unsorted: 5 frames of 256 atoms, metal units, a
# 14.46 A periodic box) edited at known lines.  Frame 2 (timestep 100) starts at line 537
# (ITEM: TIME), its ITEM: TIMESTEP is line 539, its first atom line 548.

TS2 = 539  # 1-based line of frame 2's ITEM: TIMESTEP


def edited(tmp_path, edits, name="e.lammpstrj", src="cu_unsorted.lammpstrj"):
    """Copy of a fixture with ``{line (1-based): new text}`` applied."""
    return write_text(tmp_path / name, edited_text(edits, src))


@pytest.mark.parametrize("line,text,pattern", [
    (TS2 + 1, "abc", r"frame 2 \(timestep \?\): line 540: TIMESTEP is not an integer: 'abc'"),
    (TS2 + 1, "-50", r"frame 2 \(timestep \?\): line 540: TIMESTEP is negative: '-50' "
                     r"\(expected an integer >= 0\)"),
    (TS2 + 1, "1" * 22, r"frame 2 \(timestep \?\): line 540: TIMESTEP 1{22} is out of range "
                        r"\(22 digits; LAMMPS writes at most 2\*\*63 - 1\)"),
    (TS2 + 3, "-5", r"frame 2 \(timestep 100\): line 542: NUMBER OF ATOMS is negative: '-5'"),
    (TS2 + 3, "1234567890123456789012", r"frame 2 \(timestep 100\): line 542: NUMBER OF ATOMS "
                                        r"1234567890123456789012 is out of range \(22 digits"),
    (TS2 + 3, "1e3", r"frame 2 \(timestep 100\): line 542: NUMBER OF ATOMS is not an integer"),
    (TS2 + 3, "100000000000", r"frame 2 \(timestep 100\): truncated frame: NUMBER OF ATOMS is "
                              r"100000000000 but only 256 atom lines follow \(lines 548-803\)"),
])
def test_bad_count_or_timestep_in_a_middle_frame(tmp_path, line, text, pattern):
    """Refused when the frame is selected, before anything is read or sized by the count."""
    path = edited(tmp_path, {line: text})
    d = LammpsDump(path, cache=False)
    assert len(d) == 5 and d.read(1).timestep == 50 and d.read(3).timestep == 150
    for sel in (":", "2", "1:3"):
        with pytest.raises(QuestsInputError, match=r"e.lammpstrj, " + pattern):
            d.select(sel)
    assert list(d.select("0,1,3,4")) == [0, 1, 3, 4]
    with pytest.raises(QuestsInputError, match=r"e.lammpstrj, " + pattern):
        read_lammps_dump(path, ":", cache=False)
    with pytest.raises(QuestsInputError, match=r"e.lammpstrj, " + pattern):
        d.read(2)


def test_huge_count_allocates_nothing(tmp_path, monkeypatch):
    """NUMBER OF ATOMS = 1e11: the error comes from the index, no array is ever sized by it."""
    from quests_hpc.io import lammps_dump

    sizes = []
    orig = lammps_dump.Rows
    monkeypatch.setattr(lammps_dump, "Rows", lambda plan, cap, **kw: sizes.append(cap) or
                        orig(plan, cap, **kw))
    path = edited(tmp_path, {TS2 + 3: "100000000000"})
    with pytest.raises(QuestsInputError, match="NUMBER OF ATOMS is 100000000000"):
        LammpsDump(path, cache=False).read(2)
    assert sizes == []


BOX = TS2 + 5  # frame 2's x bounds line (y: +1, z: +2)


@pytest.mark.parametrize("edits,pattern", [
    ({BOX: "1.4460000000000001e+01 0.0"}, r"line 544: BOX BOUNDS x: xlo = 14.46, xhi = 0.0: hi < lo "
                                         r"\(an inverted, left-handed box\); expected xhi > xlo"),
    ({BOX + 2: "5.0 5.0"}, r"line 546: BOX BOUNDS z: zlo = 5.0, zhi = 5.0: zero length \(a zero-volume "
                           r"box\); expected zhi > zlo"),
    ({BOX + 1: "0.0 nan"}, r"line 545: BOX BOUNDS line 2 has a non-finite number: \[0.0, nan\]"),
    ({BOX: "-inf 14.46"}, r"line 544: BOX BOUNDS line 1 has a non-finite number: \[-inf, 14.46\]"),
])
def test_bad_box_in_a_middle_frame(tmp_path, edits, pattern):
    path = edited(tmp_path, edits)
    with pytest.raises(QuestsInputError, match=r"e.lammpstrj, frame 2 \(timestep 100\): " + pattern):
        read_lammps_dump(path, ":", cache=False)
    assert read_lammps_dump(path, 3, cache=False).timestep == 150


def test_bad_triclinic_boxes(tmp_path):
    # restricted: the tilt is removed from the bounding box first (xhi < xlo after it)
    tri = data("tri_restricted.lammpstrj")
    lines = open(tri).read().split("\n")
    k = lines.index(next(x for x in lines if x.startswith("ITEM: BOX BOUNDS xy xz yz")))
    xlo, xhi, xy = (float(v) for v in lines[k + 1].split())
    lines[k + 1] = f"{xlo} {xlo + 1.0} {xy}"
    path = write_text(tmp_path / "t.lammpstrj", "\n".join(lines))
    with pytest.raises(QuestsInputError, match=rf"t.lammpstrj, frame 0 \(timestep \d+\): line {k + 2}: "
                                               r"BOX BOUNDS x: .* after removing the tilt factors"):
        read_lammps_dump(path, 0, cache=False)
    # general: A, B, C left-handed (C flipped) or coplanar
    gen = data("tri_general.lammpstrj")
    lines = open(gen).read().split("\n")
    k = lines.index(next(x for x in lines if x.startswith("ITEM: BOX BOUNDS abc origin")))
    c = [float(v) for v in lines[k + 3].split()]
    for name, row, what in (("left", [-c[0], -c[1], -c[2], c[3]], "a left-handed cell"),
                            ("flat", lines[k + 1].split()[:3] + [c[3]], "zero volume")):
        lines2 = list(lines)
        lines2[k + 3] = " ".join(str(v) for v in row)
        path = write_text(tmp_path / f"{name}.lammpstrj", "\n".join(lines2))
        with pytest.raises(QuestsInputError, match=rf"{name}.lammpstrj, frame 0 \(timestep \d+\): "
                                                   rf"line {k + 1}: BOX BOUNDS abc origin: .*span {what}"):
            read_lammps_dump(path, 0, cache=False)


ATOM = TS2 + 20  # line 559: an atom line of frame 2 (atom id 69)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e400", "-Infinity"])
def test_non_finite_coordinate(tmp_path, value):
    path = edited(tmp_path, {ATOM: set_field(3, value)})
    with pytest.raises(QuestsInputError, match=rf"e.lammpstrj, frame 2 \(timestep 100\), line 559: "
                                               rf"atom id 69: column 4 \(y\): coordinate '{value}' is "
                                               r"not finite; expected a finite number"):
        read_lammps_dump(path, ":", cache=False)


def test_coordinate_too_far_out_to_wrap(tmp_path):
    """1e18 A in a 14.46 A periodic box: wrapping gives rounding noise (it used to land on 0)."""
    path = edited(tmp_path, {ATOM: set_field(2, "1e18")})
    with pytest.raises(QuestsInputError, match=r"e.lammpstrj, frame 2 \(timestep 100\), line 559: "
                                               r"atom id 69: x = 1e\+18, y = .* is 6.92e\+16 box lengths "
                                               r"out along the periodic axis x; expected at most "
                                               r"2\*\*20 = 1048576"):
        read_lammps_dump(path, 2, cache=False)
    # just under 2**20 box lengths out is still wrapped (within rounding of the file value)
    far = 14.46 * (2**20 - 1) + 3.5
    f = read_lammps_dump(edited(tmp_path, {ATOM: set_field(2, repr(far))}, "ok.lammpstrj"), 2,
                         cache=False)
    assert abs(f.positions[f.ids == 69][0, 0] - 3.5) < 1e-8
    # scaled coordinates (dump atom: id type xs ys zs ix iy iz), and atom ids named there too
    lines = open(data("cu_atom.lammpstrj")).read().split("\n")
    k = lines.index("ITEM: ATOMS id type xs ys zs ix iy iz") + 5
    atom = lines[k].split()[0]
    lines[k] = " ".join(lines[k].split()[:4] + ["3e7"] + lines[k].split()[5:])
    path = write_text(tmp_path / "s.lammpstrj", "\n".join(lines))
    with pytest.raises(QuestsInputError, match=rf"s.lammpstrj, frame 0 \(timestep 0\), line {k + 1}: "
                                               rf"atom id {atom}: .*zs = 30000000.0 is 3e\+07 box "
                                               r"lengths out along the periodic axis z"):
        read_lammps_dump(path, 0, cache=False)


def test_far_coordinate_without_id_column_and_along_non_periodic_axis(tmp_path):
    rows = [r.split(" ", 1)[1] for r in ROWS]
    rows[5] = "1 1e18 0.5 0.5"
    path = write_text(tmp_path / "noid.lammpstrj", small_dump([(0, rows)], columns="type x y z"))
    with pytest.raises(QuestsInputError, match=r"noid.lammpstrj, frame 0 \(timestep 0\), line 15: "
                                               r"atom 6: x = 1e\+18"):
        read_lammps_dump(path, cache=False)
    # along a non-periodic axis nothing is wrapped: the atom is just far away
    path = write_text(tmp_path / "f.lammpstrj", small_dump([(0, rows)], boundary="ff pp pp",
                                                           columns="type x y z"))
    assert read_lammps_dump(path, cache=False).positions[5, 0] == 1e18


def test_wrap_positions_refuses_far_atoms():
    from quests_hpc.geometry import wrap_positions

    cell = np.eye(3) * 10.0
    pos = np.array([[1.0, 2.0, 3.0], [1e18, 2.0, 3.0]])
    with pytest.raises(QuestsInputError, match=r"atom 1: position \[1e\+18, 2.0, 3.0\] lies more than "
                                               r"2\*\*20 cell lengths outside the periodic cell"):
        wrap_positions(pos, cell, True)
    out = wrap_positions(pos, cell, [False, True, True])  # x not periodic: not wrapped
    assert out[1, 0] == 1e18


@pytest.mark.parametrize("content,pattern", [
    (b"", r"empty file; expected a LAMMPS text dump \(frames starting with ITEM: TIMESTEP\)"),
    (None, r"not a LAMMPS text dump: it holds binary data"),
    (b"\n\nhello world\nthis is not a dump\n" * 3, r"not a LAMMPS text dump: line 3 is 'hello "
     r"world', expected ITEM: TIMESTEP \(or ITEM: UNITS / ITEM: TIME\)"),
    (b"# my notes\n" + small_dump([(0, ROWS)]).encode(), r"not a LAMMPS text dump: line 1 is '# my "
     r"notes', expected ITEM: TIMESTEP"),
    (b"ITEM: NOTES\nhello\n", r"not a LAMMPS text dump: no line 'ITEM: TIMESTEP' in it; line 1 is "
     r"'ITEM: NOTES', expected ITEM: TIMESTEP"),
    (b"ITEM: NOTES\nhello\n" + small_dump([(0, ROWS)]).encode(), r"not a LAMMPS text dump before its "
     r"first frame \(line 3\): line 1 is 'ITEM: NOTES', expected ITEM: TIMESTEP"),
])
def test_not_a_dump(tmp_path, content, pattern):
    path = tmp_path / "x.lammpstrj"
    path.write_bytes(np.random.default_rng(1).bytes(5000) if content is None else content)
    with pytest.raises(QuestsInputError, match=r"x.lammpstrj: " + pattern):
        LammpsDump(str(path), cache=False)
    with pytest.raises(QuestsInputError, match=r"x.lammpstrj: " + pattern):
        read_lammps_dump(str(path), ":", cache=False)


def test_binary_file_refused_without_a_scan(tmp_path, monkeypatch):
    from quests_hpc.io import frame_index

    path = tmp_path / "big.lammpstrj"
    path.write_bytes(np.random.default_rng(2).bytes(1 << 20))
    scans = []
    monkeypatch.setattr(frame_index, "_scan_range", lambda *a: scans.append(a))
    with pytest.raises(QuestsInputError, match="big.lammpstrj: not a LAMMPS text dump: it holds "
                                               "binary data"):
        LammpsDump(str(path), cache=False)
    assert scans == []


def _no_hang(seconds=20):
    import signal

    def boom(*_):
        raise TimeoutError("hung")
    signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)


@pytest.mark.parametrize("kind", ["dir", "fifo", "/dev/null", "/dev/zero"])
def test_not_a_regular_file(tmp_path, kind):
    import os

    if kind == "dir":
        path = str(tmp_path / "d.lammpstrj")
        os.mkdir(path)
        what = "a directory"
    elif kind == "fifo":
        path = str(tmp_path / "p.lammpstrj")
        os.mkfifo(path)
        what = r"a FIFO \(named pipe\)"
    else:
        path, what = kind, "a character device"
    _no_hang()
    try:
        for call in (lambda: LammpsDump(path, cache=False), lambda: read_lammps_dump(path, ":"),
                     lambda: LammpsDump([path], cache=False)):
            with pytest.raises(QuestsInputError, match=rf"{re.escape(path)}: is {what}, not a regular "
                                                       r"file; expected a dump file"):
                call()
        from quests_hpc.io.compressed import open_source
        with pytest.raises(QuestsInputError, match=rf"is {what}, not a regular file"):
            open_source(path)
    finally:
        import signal
        signal.alarm(0)


def test_not_a_regular_file_in_a_glob(tmp_path):
    import os

    shutil.copy(data("seq/dump.0.lammpstrj") if os.path.exists(data("seq")) else
                data("cu_unsorted.lammpstrj"), tmp_path / "dump.0.lammpstrj")
    os.mkfifo(tmp_path / "dump.1.lammpstrj")
    _no_hang()
    try:
        with pytest.raises(QuestsInputError, match=r"dump.1.lammpstrj: is a FIFO"):
            LammpsDump(str(tmp_path / "dump.*.lammpstrj"), cache=False)
    finally:
        import signal
        signal.alarm(0)


def test_gzip_cut_short_warning_counts_the_bytes_decompressed(tmp_path):
    """The "ends without its end marker after N bytes" warning gives the decompressed length
    of what is there (not 0)."""
    import zlib

    raw = open(data("cu_unsorted.lammpstrj.gz"), "rb").read()[:8000]
    path = tmp_path / "cut.lammpstrj.gz"
    path.write_bytes(raw)
    n = len(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw))
    assert n > 20000
    with pytest.warns(DumpWarning) as rec:
        read_lammps_dump(str(path), ":", cache=False)
    msgs = [str(w.message) for w in rec if "end marker" in str(w.message)]
    assert msgs == [f"{path}: the gz stream ends without its end marker after {n} bytes (file "
                    "still being written?); reading what is there"]
