"""Bad input: every error names the file, the frame (index and timestep) and the line."""

import gzip
import re
import shutil

import numpy as np
import pytest
from iohelpers import data, small_dump, write_text

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
    rows = list(ROWS)
    rows[0] = "1 1 nan -inf 1e400"
    rows[1] = "2 1 1.00000000000000000000001 -0 4.9e-324"
    f = read_lammps_dump(write_text(tmp_path / "s.lammpstrj", small_dump([(0, rows)], "ff ff ff")),
                         cache=False)
    assert np.isnan(f.positions[0, 0]) and f.positions[0, 1] == -np.inf
    assert f.positions[0, 2] == np.inf and f.positions[1, 0] == 1.0
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
    with pytest.raises(QuestsInputError, match=r"frame 1 \(timestep \?\): line 21: NUMBER OF ATOMS "
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
    assert len(LammpsDump(empty, cache=False)) == 0
    with pytest.raises(QuestsInputError, match="out of range"):
        read_lammps_dump(empty, cache=False)


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
