"""Frame index: scanning (any split into ranges), caching, revalidation, growing files."""

import os
import shutil

import numpy as np
import pytest
from iohelpers import data, small_dump, write_text

from quests_hpc.errors import QuestsInputError
from quests_hpc.io import LammpsDump, frame_index, read_lammps_dump
from quests_hpc.io.compressed import open_source
from quests_hpc.io.frame_index import _assemble, _scan_range, cache_path, get_index

FIELDS = ("start", "data", "end", "timestep", "natoms", "line", "data_line", "nlines", "status")


def assert_same_index(a, b):
    for f in FIELDS:
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.errors == b.errors and a.truncated_tail == b.truncated_tail and a.units == b.units


def index_from_splits(src, cuts):
    """What a parallel scan with ranges cut at ``cuts`` assembles."""
    bounds = [0, *cuts, src.size]
    parts = [_scan_range(src, a, b, src.path) for a, b in zip(bounds[:-1], bounds[1:])]
    st = os.stat(src.path)
    return _assemble(src.path, False, st.st_size, st.st_mtime_ns, parts, src.size, "")


def test_index_of_lammps_file():
    src = open_source(data("cu_unsorted.lammpstrj"))
    ix = get_index(src, cache=False)
    assert len(ix) == 5 and list(ix.timestep) == [0, 50, 100, 150, 200]
    assert list(ix.natoms) == [256] * 5 and list(ix.nlines) == [256] * 5
    assert ix.start[0] == 0 and ix.line[0] == 1 and ix.data_line[0] == 14  # UNITS, TIME first
    assert ix.units == "metal" and ix.truncated_tail is None
    text = open(src.path, "rb").read()
    assert text.startswith(b"ITEM: UNITS\nmetal\nITEM: TIME\n")
    for k in range(1, 5):
        assert text[ix.start[k]:].startswith(b"ITEM: TIME\n")  # TIME belongs to its frame
        assert text[ix.data[k] - 26:ix.data[k]] == b"ITEM: ATOMS id type x y z\n"
        assert text.count(b"\n", 0, ix.data[k]) + 1 == ix.data_line[k]
    assert ix.end[-1] == len(text)


@pytest.mark.parametrize("name", ["cu_unsorted.lammpstrj", "cu_thresh.lammpstrj"])
def test_any_split_into_ranges_gives_the_same_index(name):
    """Cut points at every offset around frame boundaries and inside headers."""
    src = open_source(data(name))
    whole = get_index(src, cache=False)
    offsets = set()
    for k in range(len(whole)):
        for base in (whole.start[k], whole.data[k]):
            offsets.update(range(max(1, base - 40), min(src.size - 1, base + 40)))
    rng = np.random.default_rng(0)
    offsets.update(rng.integers(1, src.size - 1, 50).tolist())
    for cut in sorted(offsets):
        assert_same_index(index_from_splits(src, [cut]), whole)
    for _ in range(20):
        cuts = sorted(rng.choice(np.arange(1, src.size - 1), 3, replace=False).tolist())
        assert_same_index(index_from_splits(src, cuts), whole)


def test_small_scan_chunks(monkeypatch):
    src = open_source(data("cu_unsorted.lammpstrj"))
    whole = get_index(src, cache=False)
    monkeypatch.setattr(frame_index, "SCAN_CHUNK", 301)
    assert_same_index(get_index(src, cache=False), whole)
    gz = open_source(data("cu_unsorted.lammpstrj.gz"))
    ixz = get_index(gz, cache=False)
    for f in FIELDS:
        assert np.array_equal(getattr(ixz, f), getattr(whole, f))


def test_cache_beside_reused_and_revalidated(tmp_path):
    path = shutil.copy(data("cu_unsorted.lammpstrj"), tmp_path / "a.lammpstrj")
    cfile = cache_path(path)
    assert cfile == str(tmp_path / ".a.lammpstrj.quests-index.npz")
    ix = get_index(open_source(path))
    assert os.path.exists(cfile)
    cached = frame_index.load_index(cfile)
    assert_same_index(cached, ix)
    # a hit does not rescan
    calls = []
    orig = frame_index.build_index
    frame_index.build_index = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        get_index(open_source(path))
        assert not calls
        # rewritten file (same size, new mtime): rescanned
        text = open(path).read()
        write_text(path, text.replace("ITEM: TIMESTEP\n50\n", "ITEM: TIMESTEP\n51\n"))
        os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
        ix2 = get_index(open_source(path))
        assert calls and list(ix2.timestep) == [0, 51, 100, 150, 200]
    finally:
        frame_index.build_index = orig


def test_growing_file_is_rescanned_from_its_last_frame(tmp_path):
    text = open(data("cu_unsorted.lammpstrj")).read()
    path = str(tmp_path / "grow.lammpstrj")
    cut1 = text.index("ITEM: TIME", text.index("ITEM: ATOMS", text.index("TIMESTEP\n100")))
    write_text(path, text[:cut1 + 700])  # frames 0..2 and a frame being written
    ix0 = get_index(open_source(path), cache="beside")  # (LammpsDump caches big files only)
    assert len(ix0) == 3 and ix0.truncated_tail["timestep"] == 150
    with pytest.warns(UserWarning, match="incomplete"):
        assert len(LammpsDump(path)) == 3
    with open(path, "a") as fh:
        fh.write(text[cut1 + 700:])
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    seen = []
    orig = frame_index._scan_range
    frame_index._scan_range = lambda src, a, b, w: seen.append(a) or orig(src, a, b, w)
    try:
        ix = get_index(open_source(path), cache="beside")
    finally:
        frame_index._scan_range = orig
    assert seen and min(seen) > 0  # resumed, not rescanned from the start
    assert_same_index(ix, get_index(open_source(path), cache=False))
    assert len(ix) == 5


def test_user_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QUESTS_HPC_CACHE_DIR", str(tmp_path / "cache"))
    path = shutil.copy(data("cu_unsorted.lammpstrj"), tmp_path / "b.lammpstrj")
    cfile = cache_path(path, "user")
    assert cfile.startswith(str(tmp_path / "cache")) and cfile.endswith("-b.lammpstrj.npz")
    get_index(open_source(path), cache="user")
    assert os.path.exists(cfile) and not os.path.exists(cache_path(path, "beside"))


def test_corrupt_cache_is_ignored(tmp_path):
    path = shutil.copy(data("cu_unsorted.lammpstrj"), tmp_path / "c.lammpstrj")
    write_text(cache_path(path), "garbage")
    ix = get_index(open_source(path))
    assert len(ix) == 5


def test_marker_not_at_line_start_is_ignored(tmp_path):
    rows = ["1 1 0 0 0", "2 1 1 1 1"]
    text = small_dump([(0, rows), (5, rows)]).replace("ITEM: ATOMS id type x y z",
                                                      "ITEM: ATOMS id type x y z")
    text = text.replace("2 1 1 1 1\nITEM: TIMESTEP\n5", "2 1 1 1 1\nITEM: TIMESTEP\n5", 1)
    path = write_text(tmp_path / "m.lammpstrj", text.replace("ITEM: NUMBER", "ITEM: NUMBER", 1))
    ix = get_index(open_source(path), cache=False)
    assert list(ix.timestep) == [0, 5]


def test_many_small_frames_index_quickly(tmp_path):
    import time

    rows = ["1 1 0.5 0.5 0.5", "2 1 1.5 1.5 1.5"]
    path = write_text(tmp_path / "many.lammpstrj", small_dump([(t, rows) for t in range(20000)]))
    t0 = time.perf_counter()
    ix = get_index(open_source(path), cache=False)
    assert time.perf_counter() - t0 < 10  # linear scan (a quadratic one takes minutes)
    assert len(ix) == 20000 and ix.timestep[-1] == 19999 and np.all(ix.nlines == 2)
    assert ix.data_line[-1] == 19999 * 11 + 10


# ------------------------------------------------ stale or damaged caches (issue 9)

def _same_size_rewrite(path):
    """Rewrite ``path`` keeping its size and mtime but moving frames 1-3 by 19 bytes (the
    same numbers: frame 0 writes a box bound as 0.0, frame 4 with 19 more zeros)."""
    st = os.stat(path)
    text = open(path).read()
    lines = text.split("\n")
    bounds = [i + 1 for i, x in enumerate(lines) if x.startswith("ITEM: BOX BOUNDS")]
    long0 = "0.0000000000000000e+00"
    assert lines[bounds[0]].startswith(long0) and lines[bounds[4]].startswith(long0)
    lines[bounds[0]] = lines[bounds[0]].replace(long0, "0.0", 1)
    lines[bounds[4]] = lines[bounds[4]].replace(long0, "0." + "0" * 35 + "e+00", 1)
    new = "\n".join(lines)
    assert len(new) == len(text) and new != text
    write_text(path, new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_same_size_same_mtime_rewrite_is_rescanned(tmp_path, monkeypatch):
    path = shutil.copy(data("cu_unsorted.lammpstrj"), tmp_path / "r.lammpstrj")
    old = get_index(open_source(path), cache="beside")
    _same_size_rewrite(path)
    fresh = get_index(open_source(path), cache=False)
    assert not np.array_equal(old.start, fresh.start)  # frames 1-3 moved
    ix = get_index(open_source(path), cache="beside")
    assert_same_index(ix, fresh) and not ix.from_cache
    # and through the reader (which caches only big files: make this one "big")
    from quests_hpc.io import lammps_dump

    monkeypatch.setattr(lammps_dump, "_SMALL_FILE", 0)
    shutil.copy(data("cu_unsorted.lammpstrj"), tmp_path / "s.lammpstrj")
    path = str(tmp_path / "s.lammpstrj")
    assert len(LammpsDump(path)) == 5 and os.path.exists(cache_path(path))
    _same_size_rewrite(path)
    got = LammpsDump(path).iread(":")
    want = LammpsDump(path, cache=False).iread(":")
    for a, b in zip(got, want):
        assert np.array_equal(a.positions, b.positions) and a.timestep == b.timestep


def test_stale_cache_missed_by_the_fingerprint_is_revalidated_on_error(tmp_path, monkeypatch):
    """Should a rewrite slip past the fingerprint, a frame that fails to parse with the
    cached index makes the reader rescan the file, then read the frame correctly."""
    from quests_hpc.io import lammps_dump

    monkeypatch.setattr(lammps_dump, "_SMALL_FILE", 0)
    path = shutil.copy(data("cu_unsorted.lammpstrj"), tmp_path / "v.lammpstrj")
    stale = get_index(open_source(path), cache="beside")
    _same_size_rewrite(path)
    # forge the cache: the old offsets with the new file's fingerprint
    stale.fingerprint = frame_index.fingerprint(open_source(path), stale)
    stale.path = os.path.abspath(path)
    frame_index.save_index(stale, cache_path(path))
    d = LammpsDump(path)
    assert d.indices[0].from_cache and np.array_equal(d.indices[0].start, stale.start)
    f = d.read(2)  # stale offsets: the atom block starts mid-line; rebuilt, then read
    ref = read_lammps_dump(path, 2, cache=False)
    assert f.timestep == 100 and np.array_equal(f.positions, ref.positions)
    assert not d.indices[0].from_cache
    assert_same_index(frame_index.load_index(cache_path(path)), get_index(open_source(path),
                                                                          cache=False))
    # a genuine error (the fresh index agrees) is reported as it is
    lines = open(path).read().split("\n")
    lines[600] = "oops"
    write_text(path, "\n".join(lines))
    LammpsDump(path)  # scanned and cached
    d = LammpsDump(path)
    assert d.indices[0].from_cache
    with pytest.raises(QuestsInputError, match=r"v.lammpstrj, frame 2 \(timestep 100\), line 601: "
                                               r"column 1 \(id\): 'oops' is not an integer"):
        d.read(2)


def _damaged(cfile, how):
    import json
    import zipfile

    raw = open(cfile, "rb").read()
    if how == "truncated":
        open(cfile, "wb").write(raw[: len(raw) // 2])
    elif how == "zeros":
        open(cfile, "wb").write(b"\0" * len(raw))
    else:
        with np.load(cfile, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays["meta"]))
        if how == "meta":
            arrays["meta"] = np.array("{not json")
        elif how == "meta-list":
            arrays["meta"] = np.array("[1, 2]")
        elif how == "no-fingerprint":
            del meta["fingerprint"]
            arrays["meta"] = np.array(json.dumps(meta))
        elif how == "short-array":
            arrays["start"] = arrays["start"][:-1]
        elif how == "offsets":
            arrays["end"] = arrays["end"] + 10**9
        elif how == "2d":
            arrays["natoms"] = np.stack([arrays["natoms"]] * 2)
        with open(cfile, "wb") as fh:
            np.savez(fh, **arrays)
        assert zipfile.is_zipfile(cfile)


@pytest.mark.parametrize("how", ["truncated", "zeros", "meta", "meta-list", "no-fingerprint",
                                 "short-array", "offsets", "2d"])
def test_damaged_cache_is_rescanned(tmp_path, how):
    path = shutil.copy(data("cu_unsorted.lammpstrj"), tmp_path / "c.lammpstrj")
    fresh = get_index(open_source(path), cache="beside")
    _damaged(cache_path(path), how)
    assert (frame_index.load_index(cache_path(path)) is None) == (how != "offsets")
    ix = get_index(open_source(path), cache="beside")
    assert_same_index(ix, fresh) and not ix.from_cache
    assert frame_index.load_index(cache_path(path)) is not None  # rewritten
