"""Resume after an in-place edit of an input (issue 9, part 2.4): a same-size edit in bytes
that the sampled file hash does not read must not let a stale complete frame be reused,
whether the modification time was restored or not; a mere ``touch`` resumes."""

import os

import h5py
import numpy as np
import pytest
from campaign_data import REFERENCE, write_dump, write_yaml

from quests_hpc.campaign.schema import CampaignError, load_campaign
from quests_hpc.results import complete_frames, diff_results
from quests_hpc.results import layout as L
from quests_hpc.results import restart as R

MPI = pytest.importorskip("mpi4py.MPI")


def _run(y, overwrite=False, **over):
    from quests_hpc.campaign.runner import run_campaign

    lines = []
    res = run_campaign(load_campaign(y, overrides=over or None), MPI.COMM_SELF,
                       overwrite=overwrite, out=lines.append)
    return res, lines


def _sampled_ranges(size):
    b, n = R._BLOCK, R._SAMPLES
    return [((size - b) * i // (n - 1), (size - b) * i // (n - 1) + b) for i in range(n)] + [
        (size - b, size)]


def _unsampled_frame(path):
    """A frame (index, start, end) that no block of the sampled hash touches."""
    from quests_hpc.io import LammpsDump

    size = os.path.getsize(path)
    with LammpsDump(path) as d:
        ix = d.indices[0]
        for k in range(len(ix)):
            a, b = int(ix.data[k]), int(ix.end[k])
            if all(b <= lo or a >= hi for lo, hi in _sampled_ranges(size)):
                return k, a, b
    raise AssertionError("every frame is sampled")


@pytest.fixture
def edited(tmp_path):
    """A 1.3 MB dump (sampled identity), a campaign over 3 frames, one of them unsampled;
    the run finished, then "killed": the last frame marked incomplete."""
    dump = write_dump(tmp_path / "md.lammpstrj", n_cells=(4, 4, 4), n_frames=120, seed=2)
    assert os.path.getsize(dump) > R._BLOCK * (R._SAMPLES + 1)
    k, a, b = _unsampled_frame(dump)
    y = write_yaml(tmp_path / "c.yaml", f"references: [{{name: bulk, path: {REFERENCE}}}]\n"
                   f"inputs: [{{name: md, path: md.lammpstrj, frames: '0,{k},{k + 1}'}}]\n"
                   "output: {path: out.h5}\nrun: {threads: 1}\n")
    _run(y)
    out = tmp_path / "out.h5"
    with h5py.File(out, "a") as f:
        assert R.file_identity(dump)["hashed"] == "sampled"
        assert len(f["frames"][f"md_{k:06d}"].attrs[L.FRAME_HASH_ATTR]) == 64
        f["frames"][f"md_{k + 1:06d}"].attrs.modify("complete", False)
        f.attrs.modify("complete", False)
    return tmp_path, dump, y, k, a, b


def _edit_in_place(dump, a, b):
    """Change one coordinate digit of the frame's atom lines (same size)."""
    with open(dump, "r+b") as f:
        f.seek(a)
        text = f.read(b - a)
        i = text.index(b".", text.index(b"\n", 100)) + 1  # first decimal of some coordinate
        digit = text[i:i + 1]
        f.seek(a + i)
        f.write(b"9" if digit != b"9" else b"1")


@pytest.mark.parametrize("restore_mtime", [False, True])
def test_same_size_edit_of_a_complete_frame_is_not_reused(edited, restore_mtime):
    d, dump, y, k, a, b = edited
    before = R.file_identity(dump)
    st = os.stat(dump)
    _edit_in_place(dump, a, b)
    if restore_mtime:
        os.utime(dump, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = R.file_identity(dump)
    assert after["size"] == before["size"] and after["sha256"] == before["sha256"]
    with open(d / "out.h5", "rb") as f:
        old = f.read()
    with pytest.raises(CampaignError) as e:
        _run(y)
    msg = str(e.value)
    assert f"md.lammpstrj: frame {k} (timestep {k * 100}) has other bytes now" in msg
    assert f"md_{k:06d}" in msg and "--overwrite" in msg
    with open(d / "out.h5", "rb") as f:
        assert f.read() == old  # refused: nothing touched
    res, _ = _run(y, overwrite=True)
    assert res["computed"] == 3
    _run(y, output={"path": str(d / "fresh.h5")})
    assert diff_results(d / "fresh.h5", d / "out.h5", atol=0) == []


def test_touched_input_is_verified_and_resumed(edited):
    d, dump, y, k, a, b = edited
    os.utime(dump)  # new mtime, same bytes
    res, lines = _run(y)
    assert (res["computed"], res["skipped"]) == (1, 2)
    with h5py.File(d / "out.h5", "r") as f:
        assert len(complete_frames(f)) == 3 and f.attrs["complete"]


def test_frame_without_hash_is_not_trusted_when_the_file_changed(edited):
    """A frame written without a content hash cannot be verified: refused, not reused."""
    d, dump, y, k, a, b = edited
    with h5py.File(d / "out.h5", "a") as f:
        f["frames"][f"md_{k:06d}"].attrs.modify(L.FRAME_HASH_ATTR, np.array(b"", "S64"))
    os.utime(dump)
    with pytest.raises(CampaignError, match=f"frame {k} .*has other bytes now"):
        _run(y)


def test_frame_hash_blocks_and_compressed_inputs(tmp_path):
    """The hash covers every byte of the range (block by block); compressed dumps are
    identified by a hash of the whole file instead (their frames carry none)."""
    import gzip

    raw = os.urandom(3 * R.FRAME_HASH_BLOCK + 12345)
    p = tmp_path / "x.bin"
    p.write_bytes(raw)
    a, b = 1000, len(raw) - 7
    h = R.frame_hash(MPI.COMM_SELF, str(p), a, b)
    assert R.frame_hash(MPI.COMM_SELF, str(p), a, b) == h
    raw2 = bytearray(raw)
    raw2[a + R.FRAME_HASH_BLOCK + 5] ^= 1
    p.write_bytes(bytes(raw2))
    assert R.frame_hash(MPI.COMM_SELF, str(p), a, b) != h
    assert R.frame_hash(MPI.COMM_SELF, str(p), 0, 0) == R.frame_hash(MPI.COMM_SELF, str(p), 5, 5)

    dump = write_dump(tmp_path / "md.lammpstrj", n_cells=(4, 4, 4), n_frames=120, seed=2)
    with open(dump, "rb") as f, gzip.open(tmp_path / "md.lammpstrj.gz", "wb") as g:
        g.write(f.read())
    y = write_yaml(tmp_path / "c.yaml", "inputs: [{name: md, path: md.lammpstrj.gz, "
                   "frames: '0,1'}]\nmeasures: {descriptors: true}\noutput: {path: o.h5}\n"
                   "run: {threads: 1}\n")
    _run(y)
    import json

    with h5py.File(tmp_path / "o.h5", "r") as f:
        ident = json.loads(f.attrs["inputs"])
        assert [i["hashed"] for i in ident] == ["full"]
        assert f["frames/md_000000"].attrs[L.FRAME_HASH_ATTR] == b""
