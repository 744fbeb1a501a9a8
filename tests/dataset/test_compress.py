"""``quests-hpc compress`` serially: upstream parity of the choices and the report, the
curve and novelty against their definitions, outputs that are new files, bad input.

The data set is real LAMMPS output (tests/data/dataset, 63 NPT frames of FCC Cu from
300 K to a 2000 K melt); upstream ``quests`` is the oracle on the same structures.
"""

import json
import re

import h5py
import numpy as np
import pytest
from compress_reference import (FRAMES, FRAMES_XYZ, upstream_atoms, upstream_choice,
                                upstream_descriptors, upstream_mean_fps_start)

from quests_hpc.cli import main
from quests_hpc.dataset.compress import compress, resolve_size
from quests_hpc.dataset.compress_run import reference_chunks, run_compression
from quests_hpc.dataset.structures import load_dataset
from quests_hpc.errors import QuestsInputError
from quests_hpc.information import diversity, entropy, log_kernel_sum

MPI = pytest.importorskip("mpi4py.MPI")
SELF = MPI.COMM_SELF


@pytest.fixture(scope="module")
def data():
    return load_dataset(SELF, FRAMES)


@pytest.fixture(scope="module")
def images():
    return upstream_atoms()


@pytest.mark.parametrize("method", ["msc", "fps"])
def test_choice_is_upstreams(method, data, images):
    ours = compress(SELF, data, method, 12)
    theirs, _ = upstream_choice(method, 12, images)
    assert ours.indices == theirs
    assert len(set(ours.indices)) == 12


def test_msc_conditional_is_upstreams(tmp_path, images):
    from ase.io import write

    ref_path = tmp_path / "ref.extxyz"
    write(ref_path, images[:8], parallel=False)
    cand_path = tmp_path / "cand.extxyz"
    write(cand_path, images[8:], parallel=False)
    data = load_dataset(SELF, cand_path)
    chunks, size = reference_chunks(SELF, str(ref_path), 32, 5.0, 0.015)
    assert size == (8, 8 * 32)
    ours = compress(SELF, data, "msc_conditional", 10, reference_chunks=chunks)
    theirs, _ = upstream_choice("msc_conditional", 10, images[8:],
                                reference=upstream_descriptors(images[:8]))
    assert ours.indices == theirs
    assert ours.indices[0] != int(np.argmax(data.entropies))  # no first pick by entropy


def test_mean_fps_is_upstreams_from_the_same_start(data, images):
    start = upstream_mean_fps_start(7, len(images))
    np.random.seed(7)
    theirs, _ = upstream_choice("mean_fps", 15, images)
    assert compress(SELF, data, "mean_fps", 15, start=start).indices == theirs


def test_k_means_keeps_every_cluster_and_is_seeded(data):
    a = compress(SELF, data, "k_means", 9, seed=3)
    assert len(a.indices) == len(set(a.indices)) == 9
    assert compress(SELF, data, "k_means", 9, seed=3).indices == a.indices
    means = np.array([x.mean(axis=0) for x in data.x])
    picks = means[a.indices]
    # every structure's nearest pick is the pick of a cluster: the picks are spread out
    nearest = np.argmin(((means[:, None] - picks[None]) ** 2).sum(-1), axis=1)
    assert len(np.unique(nearest)) == 9


def test_random_is_seeded(data):
    a = compress(SELF, data, "random", 10, seed=1).indices
    assert a == [int(i) for i in np.random.default_rng(1).choice(63, 10, replace=False)]
    assert compress(SELF, data, "random", 10, seed=2).indices != a


def test_report_is_upstreams(data, images):
    ours = compress(SELF, data, "msc", 12)
    _, comp = upstream_choice("msc", 12, images)
    sel = list(ours.indices)
    # descriptors differ from upstream's by ~1e-11, amplified by 1/h^2 in the kernel
    assert ours.H == pytest.approx(comp.entropy(sel), rel=1e-7)
    assert ours.D == pytest.approx(comp.diversity(sel), rel=1e-7)
    assert ours.overlap == pytest.approx(comp.overlap(sel), abs=1 / 2016)
    assert 0 < ours.overlap < 1
    assert ours.kept_environments == comp.num_envs(sel) == 12 * 32


def test_curve_and_novelty_follow_their_definitions(data):
    r = compress(SELF, data, "fps", 8)
    xs = [data.x[s] for s in r.indices]
    for m in (1, 4, 8):
        sub = np.concatenate(xs[:m])
        assert r.curve_entropy[m - 1] == pytest.approx(entropy(sub), rel=1e-12, abs=1e-12)
        assert r.curve_diversity[m - 1] == pytest.approx(diversity(sub), rel=1e-12)
        assert r.curve_size[m - 1] == 32 * m
    assert np.isinf(r.novelty[0])
    for m in (1, 5, 7):
        expect = -log_kernel_sum(xs[m], np.concatenate(xs[:m])).min()
        assert r.novelty[m] == pytest.approx(expect, rel=1e-12)
    assert np.allclose(r.entropy, [data.entropies[s] for s in r.indices])


def test_msc_picks_by_novelty_plus_entropy(data):
    r = compress(SELF, data, "msc", 6)
    assert r.indices[0] == int(np.argmax(data.entropies))
    xs = [data.x[s] for s in r.indices]
    for m in range(1, 6):  # each pick beats every remaining structure
        chosen = np.concatenate(xs[:m])
        score = [-log_kernel_sum(x, chosen).min() + h if s not in r.indices[:m] else -np.inf
                 for s, (x, h) in enumerate(zip(data.x, data.entropies))]
        assert int(np.argmax(score)) == r.indices[m]


def test_cli_writes_three_new_files(tmp_path, capsys):
    out = tmp_path / "picks.extxyz"
    assert main(["compress", str(FRAMES), "-s", "0.1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "compression (msc): 6 of 63 structures" in text
    last = text.strip().splitlines()[-1]  # the closing line: stages, total, memory
    m = re.fullmatch(r"time: read and describe [\d.]+ s, choose [\d.]+ s, report [\d.]+ s, "
                     r"write [\d.]+ s; total ([\d.]+) s on 1 "
                     r"rank\(s\); peak memory ([\d.]+) MiB per rank at most", last)
    assert m and 0 < float(m[1]) < 600 and 50 < float(m[2]) < 1e5, last
    from ase.io import read

    picks = read(out, index=":", parallel=False)
    with h5py.File(tmp_path / "picks.h5") as f:
        g = f["compression"]
        idx = g["chosen/index"][()]
        assert [a.info["quests_index"] for a in picks] == list(idx)
        assert json.loads(g.attrs["options"])["method"] == "msc"
        assert g["curve/entropy"][-1] == pytest.approx(g.attrs["entropy"])
        assert f.attrs["k"] == 32
        nov = g["chosen/novelty"][()]
    assert np.isinf(picks[0].info["quests_novelty"]) and np.isinf(nov[0])
    assert [a.info["quests_novelty"] for a in picks[1:]] == pytest.approx(nov[1:], rel=1e-12)
    assert (tmp_path / "picks_curve.png").stat().st_size > 1000
    src = read(FRAMES_XYZ, index=int(idx[2]), parallel=False)
    assert np.allclose(picks[2].positions, src.positions, atol=1e-6)
    before = out.read_bytes()
    assert main(["compress", str(FRAMES), "-s", "3", "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["-s", "0"], "a number of structures >= 1"),
    (["-s", "64"], "holds only 63"),
    (["-s", "0.001"], "is 0 structures"),
    (["-s", "2.5"], "must be whole"),
    (["-m", "msc_conditional"], "needs a reference set"),
])
def test_bad_options_are_named(tmp_path, capsys, args, message):
    out = tmp_path / "o.extxyz"
    assert main(["compress", str(FRAMES), "-o", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bad_data_sets_are_named(tmp_path, capsys):
    empty = tmp_path / "empty.lammpstrj"
    text = FRAMES.read_text().split("ITEM: TIMESTEP")[1]
    lines = ("ITEM: TIMESTEP" + text).splitlines()
    lines[3] = "0"  # NUMBER OF ATOMS
    head = lines[:9]
    empty.write_text("\n".join(head) + "\n" + "ITEM: TIMESTEP" + text)
    assert main(["compress", str(empty), "-s", "1", "-o", str(tmp_path / "a.extxyz")]) == 2
    err = capsys.readouterr().err
    assert "frame 0: the structure has no atoms" in err and str(empty) in err
    assert main(["compress", str(tmp_path / "nothing*.xyz"), "-o",
                 str(tmp_path / "b.extxyz")]) == 2
    assert "matches no file" in capsys.readouterr().err


@pytest.mark.parametrize("option, name", [(["-k", "16"], "k"), (["--cutoff", "4.5"], "cutoff")])
def test_reference_of_other_k_or_cutoff_is_refused(tmp_path, capsys, option, name):
    ref = tmp_path / "ref.h5"
    assert main(["descriptors", str(FRAMES), "--frames", "0:3", *option, "-o",
                 str(ref), "--progress", "off"]) == 0
    capsys.readouterr()
    before = sorted(tmp_path.rglob("*"))
    assert main(["compress", str(FRAMES), "-r", str(ref), "-s", "2", "-o",
                 str(tmp_path / "c.extxyz")]) == 2
    err = capsys.readouterr().err
    assert name in err and str(ref) in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_descriptor_file_reference_equals_structure_reference(tmp_path):
    ref = tmp_path / "ref.h5"
    assert main(["descriptors", str(FRAMES), "--frames", "0:5", "-o", str(ref),
                 "--progress", "off"]) == 0
    a, _, _ = run_compression(SELF, [str(FRAMES)], tmp_path / "a.extxyz", reference=str(ref),
                              method="msc_conditional", size=5, log=lambda s: None)
    assert a.indices[0] >= 0 and len(a.indices) == 5
    chunks, size = reference_chunks(SELF, str(ref), 32, 5.0, 0.015)
    assert size == (5, 5 * 32)
    assert sum(len(c) for c in chunks) == 160


def test_resolve_size():
    assert resolve_size(0.5, 63) == 32 and resolve_size("7", 63) == 7
    with pytest.raises(QuestsInputError, match="--size"):
        resolve_size("x", 3)


def test_python_api(tmp_path, data):
    import quests_hpc

    r = quests_hpc.compress(str(FRAMES), size=5)
    assert r.indices == compress(SELF, data, "msc", 5).indices
    w = quests_hpc.compress(str(FRAMES), method="random", size=4, seed=9,
                            output=tmp_path / "r.extxyz")
    assert w.indices == compress(SELF, data, "random", 4, seed=9).indices
    assert (tmp_path / "r.h5").exists() and (tmp_path / "r_curve.png").exists()


def test_empty_and_unknown_files_are_named(tmp_path, capsys):
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    odd = tmp_path / "notes.qqq"
    odd.write_text("not a structure\n")
    for bad in (empty, odd):
        assert main(["compress", str(bad), "-s", "1", "-o", str(tmp_path / "o.extxyz")]) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and "internal error" not in err
