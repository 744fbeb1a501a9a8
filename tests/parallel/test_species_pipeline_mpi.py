"""Multi-element frames through the MPI pipeline equal the serial multicomponent core.

Run serially and under ``mpiexec -n N python -m pytest --with-mpi -m mpi`` (N = 2, 3, 4):
every rank starts from a random share of the frame with its atoms' elements; the halo
must carry species for the same-species blocks to match the serial whole-frame values.
"""

import numpy as np
import pytest
from alloys import b2_antisites

from quests_hpc import information
from quests_hpc.errors import QuestsInputError
from quests_hpc.multicomponent import multicomponent_from_arrays

MPI = pytest.importorskip("mpi4py.MPI")

H = (0.02, 0.3)
SPECIES = ("Al", "Ni")


def nial_frame(reps=(6, 6, 6), pbc=True, seed=0, swap=40):
    """Rattled B2 NiAl with ``swap`` antisite pairs (a partly disordered crystal)."""
    rng = np.random.default_rng(seed)
    atoms = b2_antisites(reps, rng, swap)
    sym = np.array(atoms.get_chemical_symbols())
    atoms.rattle(0.08, seed=seed)
    ids = rng.permutation(len(atoms)) * 3 + 7  # unsorted, non-dense ids
    order = np.argsort(ids)
    return {"ids": ids[order], "positions": atoms.positions[order],
            "elements": sym[order], "cell": atoms.cell.array, "pbc": np.broadcast_to(pbc, 3)}


def _share(frame, comm, how="random"):
    n = len(frame["ids"])
    if how == "by_element":  # rank 0 every Ni, the others the Al atoms
        ni = np.flatnonzero(frame["elements"] == "Ni")
        al = np.array_split(np.flatnonzero(frame["elements"] != "Ni"), max(1, comm.size - 1))
        mine = ni if comm.rank == 0 else al[comm.rank - 1]
        if comm.size == 1:
            mine = np.arange(n)
    else:
        mine = np.array_split(np.random.default_rng(1).permutation(n), comm.size)[comm.rank]
    return {key: frame[key][mine] for key in ("ids", "positions", "elements")}


def _run(frame, ref, how="random", **request):
    from quests_hpc.parallel.comm import gather_rows
    from quests_hpc.parallel.frame_pipeline import ArraySource, FrameRequest, run_frame
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    mine = _share(frame, comm, how)
    kw = dict(k=12, cutoff=4.5, bandwidths=H, descriptors=True, species=SPECIES)
    kw.update(request)
    src = ArraySource(mine["ids"], mine["positions"], frame["cell"], frame["pbc"],
                      elements=mine["elements"], where="nial.xyz, frame 0")
    refs = [SharedReference.from_root(comm, ref if comm.rank == 0 else None)]
    try:
        out = run_frame(comm, src, 0, refs, FrameRequest(**kw))
    finally:
        refs[0].free()
    return gather_rows(out.ids, comm, 0), gather_rows(out.descriptors, comm, 0), \
        gather_rows(out.dh, comm, 0)


def _reference():
    ref = nial_frame(reps=(3, 3, 3), seed=5, swap=0)
    return multicomponent_from_arrays(ref["positions"], ref["elements"], SPECIES, ref["cell"],
                                      True, k=12, cutoff=4.5)


def _serial(frame):
    return multicomponent_from_arrays(frame["positions"], frame["elements"], SPECIES,
                                      frame["cell"], frame["pbc"], k=12, cutoff=4.5)


@pytest.mark.mpi
@pytest.mark.parametrize("case", ["periodic", "slab", "narrow_triclinic"])
def test_multi_element_frame_is_bitwise_the_serial_core(case):
    comm = MPI.COMM_WORLD
    if case == "periodic":
        frame = nial_frame()
    elif case == "slab":
        frame = nial_frame(reps=(5, 5, 4), pbc=(True, True, False), seed=2)
    else:  # a cell narrower than 2 r_c along c, sheared: ghosts are the atoms' own images
        frame = nial_frame(reps=(6, 6, 1), seed=3, swap=10)
        frame["cell"] = frame["cell"] + np.array([[0, 0, 0], [1.1, 0, 0], [0.7, 0.4, 0]])
    ref = _reference()
    ids, desc, dh = _run(frame, ref)
    result = None
    if comm.rank == 0:
        serial = _serial(frame)
        want = information.delta_entropy(serial, ref, list(H)).T
        result = (bool(np.array_equal(ids, frame["ids"])), serial.shape == (len(ids), 69),
                  bool(np.array_equal(desc, serial)), float(np.abs(dh - want).max()),
                  float(np.abs(desc[:, 12:36]).max()))
    ok_ids, ok_shape, bitwise, dh_err, species_part = comm.bcast(result, root=0)
    assert ok_ids and ok_shape
    assert bitwise
    assert dh_err <= 1e-9
    assert species_part > 0.05  # the same-species blocks are filled


@pytest.mark.mpi
def test_element_outside_the_species_fails_every_rank():
    comm = MPI.COMM_WORLD
    frame = nial_frame(reps=(4, 4, 4))
    frame["elements"] = frame["elements"].copy()
    frame["elements"][17] = "Cu"
    with pytest.raises(QuestsInputError, match=r"nial.xyz, frame 0: element\(s\) \['Cu'\] not in "
                                               r"the species list \['Al', 'Ni'\]"):
        _run(frame, _reference())
    comm.Barrier()


@pytest.mark.mpi
def test_several_elements_without_species_are_refused_even_split_by_element():
    comm = MPI.COMM_WORLD
    frame = nial_frame(reps=(4, 4, 4))
    with pytest.raises(QuestsInputError, match=r"nial.xyz, frame 0: the input holds several "
                                               r"elements \['Al', 'Ni'\] but no species"):
        _run(frame, _reference()[:, :23], how="by_element", species=None)
    comm.Barrier()


@pytest.mark.mpi
def test_ignore_species_gives_the_plain_descriptor():
    from quests_hpc.descriptors import descriptors_from_arrays

    comm = MPI.COMM_WORLD
    frame = nial_frame(reps=(4, 4, 4))
    ref = _reference()[:, list(range(12)) + list(range(36, 47))]  # its plain blocks
    _, desc, _ = _run(frame, ref, species=None, ignore_species=True)
    same = None
    if comm.rank == 0:
        same = bool(np.array_equal(desc, descriptors_from_arrays(
            frame["positions"], frame["cell"], True, k=12, cutoff=4.5)))
    assert comm.bcast(same, root=0)
