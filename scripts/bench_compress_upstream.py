#!/usr/bin/env python3
"""Time upstream ``quests`` msc compression on the first frames of a LAMMPS Cu run.

Upstream is the oracle and the baseline of issue 12 ("at least 20x faster than
upstream").  Each msc step runs ``kernel_sum`` of every remaining environment against the
last pick (cost ~ n_frames per step, so ~ n_frames^2 at a fixed fraction) and builds one
boolean mask per remaining structure over every remaining environment (~ n_frames^2 per
step, n_frames^3 in all).  It cannot finish 10,000 frames here, so it is timed on the
first 250, 500, 1000 (2000) frames of the same run; the two parts are timed apart
(``kernel_sum`` is wrapped while msc runs) and each is fitted, to extrapolate.

Measured here (2 shared cores, load 4-7, Numba 2 threads; 10 %, h = 0.015, k = 32,
5 A): selection 2.5 / 13.8 / 51 s at 250 / 500 / 1000 frames of 108 atoms (kernel_sum
~80 % of it), exponent ~2.2 (wall) / ~1.9 (CPU); the 1000-frame wall time was 40-84 s
over three runs.

:func:`upstream_msc` (imported by the lead's ``scripts/bench_compress.py``) reads the
first ``n_frames`` frames with ASE (``lammps-dump-text``), computes each frame's
descriptors with ``quests.descriptor.get_descriptors([atoms], k=32, cutoff=5.0)``, builds
``quests.compression.compress.DatasetCompressor(frames, bandwidth=0.015)`` on those
descriptors (its constructor computes each frame's entropy) and times
``get_indices("msc", ceil(frac * n_frames))`` -- the three stages separately.  Numba
threads are pinned to ``threads`` (``numba.set_num_threads``); a warm-up on three frames
compiles upstream's kernels first, so no stage includes compilation.

Usage (frames from ``scripts/make_cu_frames.py``)::

    .venv/bin/python scripts/make_cu_frames.py            # /work/bench/cu_frames.lammpstrj
    .venv/bin/python scripts/bench_compress_upstream.py --sizes 250 500 1000 --threads 2
    .venv/bin/python scripts/bench_compress_upstream.py --sizes 2000 --json up2000.json

Prints one row per size and the fitted exponent b of seconds_select ~ n_frames^b (when
two or more sizes ran; ``--add-json`` adds rows of earlier runs to the fit).  The
selection's process CPU time (all threads) is printed too: on a shared, oversubscribed
2-core machine wall times are noisy (2x between runs was seen here); compare ratios
measured in one run.
"""

import argparse
import json
import math
import time

import numpy as np

DEFAULT_FRAMES = "/work/bench/cu_frames.lammpstrj"


def read_frames(frames_path, n_frames, every=1):
    """Frames 0, every, 2 every, ... (n_frames of them) of a LAMMPS text dump (or any file
    ASE reads) as ase.Atoms."""
    import ase.io

    fmt = "lammps-dump-text" if ".lammpstrj" in frames_path or "dump" in frames_path else None
    frames = ase.io.read(frames_path, f":{(n_frames - 1) * every + 1}:{every}", format=fmt)
    if len(frames) < n_frames:
        raise ValueError(f"{frames_path} has {len(frames)} frames, fewer than {n_frames}")
    return frames


def _warm_up(frames, k, cutoff, bandwidth):
    """Compile upstream's descriptor, entropy and kernel-sum kernels on 3 frames."""
    from quests.compression.compress import DatasetCompressor
    from quests.descriptor import get_descriptors

    comp = DatasetCompressor(frames[:3], bandwidth=bandwidth,
                             descriptor_fn=lambda at: get_descriptors([at], k=k, cutoff=cutoff))
    comp.get_indices("msc", 2)


class _KernelTimer:
    """Wraps upstream's ``kernel_sum`` as msc calls it (``quests.compression.fps``) to add
    up its wall time; the rest of the selection is msc's per-structure mask bookkeeping."""

    def __init__(self):
        import quests.compression.fps as fps

        self.module, self.inner = fps, fps.kernel_sum
        self.seconds = self.cpu_seconds = 0.0

    def __call__(self, *args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.process_time() - c0

    def __enter__(self):
        self.module.kernel_sum = self
        return self

    def __exit__(self, *exc):
        self.module.kernel_sum = self.inner


def upstream_msc(frames_path, n_frames, frac, threads, *, k=32, cutoff=5.0, bandwidth=0.015,
                 warmup=True, frames=None, every=1):
    """Upstream msc on the first n_frames frames, compressed to ceil(frac * n_frames).

    ``every`` > 1 takes frames 0, every, 2 every, ... instead (the same as the dump's
    ``[::every][:n_frames]``): a subset spread over the run's segments.
    Returns ``dict(selected=[indices into the subset, in choice order], frame_indices=[the
    same as indices into the file], seconds_descriptors=...,
    seconds_entropies=..., seconds_select=..., cpu_seconds_select=...,
    seconds_select_kernel=... (upstream's kernel_sum inside msc), seconds_select_masks=...
    (the rest: its per-structure masks), cpu_seconds_select_kernel/_masks=... (process CPU
    time, all threads: less sensitive to a loaded machine than wall time), n_envs=...,
    n_frames=..., size=..., threads=..., seconds_read=...)``.  ``frames`` (a list of
    ase.Atoms) skips the read."""
    import numba
    from quests.compression.compress import DatasetCompressor
    from quests.descriptor import get_descriptors

    numba.set_num_threads(threads)
    t0 = time.perf_counter()
    if frames is None:
        frames = read_frames(frames_path, n_frames, every)
    else:
        frames = list(frames[::every][:n_frames])
    t_read = time.perf_counter() - t0
    if warmup:
        _warm_up(frames, k, cutoff, bandwidth)
    t0 = time.perf_counter()
    descs = [get_descriptors([at], k=k, cutoff=cutoff) for at in frames]
    t_desc = time.perf_counter() - t0
    it = iter(descs)
    t0 = time.perf_counter()
    comp = DatasetCompressor(frames, descriptor_fn=lambda _at: next(it), bandwidth=bandwidth)
    t_ent = time.perf_counter() - t0
    size = comp.frac_to_size(frac)
    t0, c0 = time.perf_counter(), time.process_time()
    with _KernelTimer() as kt:
        selected = comp.get_indices("msc", size)
    t_sel, c_sel = time.perf_counter() - t0, time.process_time() - c0
    return dict(selected=[int(i) for i in selected],
                frame_indices=[int(i) * every for i in selected], seconds_descriptors=t_desc,
                cpu_seconds_select=c_sel, seconds_select_kernel=kt.seconds,
                seconds_select_masks=t_sel - kt.seconds, cpu_seconds_select_kernel=kt.cpu_seconds,
                cpu_seconds_select_masks=c_sel - kt.cpu_seconds,
                seconds_entropies=t_ent, seconds_select=t_sel,
                n_envs=int(sum(len(d) for d in descs)), n_frames=n_frames, size=size,
                threads=threads, seconds_read=t_read, k=k, cutoff=cutoff, bandwidth=bandwidth,
                every=every)


def scaling_fit(n_frames, seconds):
    """Least-squares (a, b) of seconds ~ a * n_frames^b (log-log); None below 2 sizes."""
    if len(n_frames) < 2:
        return None
    b, log_a = np.polyfit(np.log(n_frames), np.log(seconds), 1)
    return float(np.exp(log_a)), float(b)


def scaling_exponent(n_frames, seconds):
    """The exponent b of :func:`scaling_fit`; None with fewer than 2 sizes."""
    fit = scaling_fit(n_frames, seconds)
    return None if fit is None else fit[1]


def extrapolate(rows, target):
    """seconds_select at ``target`` frames: the kernel and mask parts fitted apart, each
    a * n^b over the measured sizes, summed (an extrapolation, not a measurement)."""
    ns = [r["n_frames"] for r in rows]
    parts = []
    for key in ("seconds_select_kernel", "seconds_select_masks"):
        fit = scaling_fit(ns, [r[key] for r in rows])
        if fit is None:
            return None
        parts.append(fit[0] * target ** fit[1])
    return parts


def print_table(rows, target=None):
    """One line per size, then the fitted exponents (and the extrapolation to target)."""
    print(f"{'frames':>7} {'every':>5} {'envs':>8} {'size':>5} {'thr':>3} {'read s':>7} "
          f"{'descr s':>8} {'entropy s':>9} {'select s':>9} {'kernel s':>8} {'masks s':>8} "
          f"{'sel cpu s':>9} {'kern cpu':>8} {'mask cpu':>8}")
    for r in sorted(rows, key=lambda r: r["n_frames"]):
        print(f"{r['n_frames']:7d} {r.get('every', 1):5d} {r['n_envs']:8d} {r['size']:5d} "
              f"{r['threads']:3d} "
              f"{r['seconds_read']:7.2f} {r['seconds_descriptors']:8.2f} "
              f"{r['seconds_entropies']:9.2f} {r['seconds_select']:9.2f} "
              f"{r.get('seconds_select_kernel', float('nan')):8.2f} "
              f"{r.get('seconds_select_masks', float('nan')):8.2f} "
              f"{r.get('cpu_seconds_select', float('nan')):9.2f} "
              f"{r.get('cpu_seconds_select_kernel', float('nan')):8.2f} "
              f"{r.get('cpu_seconds_select_masks', float('nan')):8.2f}")
    ns = [r["n_frames"] for r in rows]
    for key in ("seconds_select", "seconds_select_kernel", "seconds_select_masks",
                "cpu_seconds_select", "cpu_seconds_select_kernel", "cpu_seconds_select_masks",
                "seconds_descriptors", "seconds_entropies"):
        b = scaling_exponent(ns, [r.get(key, float("nan")) for r in rows])
        if b is not None:
            print(f"scaling exponent of {key} against n_frames: {b:.2f}")
    if target and all("seconds_select_kernel" in r for r in rows):
        parts = extrapolate(rows, target)
        if parts:
            print(f"extrapolated seconds_select at {target} frames: {sum(parts):.0f} s "
                  f"(kernel {parts[0]:.0f} s + masks {parts[1]:.0f} s; not measured)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("frames_path", nargs="?", default=DEFAULT_FRAMES)
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    ap.add_argument("--frac", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--spread", action="store_true",
                    help="every (total // n)-th frame, not the first n (reads the whole file)")
    ap.add_argument("--extrapolate", type=int, default=10000,
                    help="print the fitted selection time at this many frames (0: none)")
    ap.add_argument("--json", help="write the rows (with the selections) here")
    ap.add_argument("--add-json", nargs="*", default=[], help="earlier --json files for the fit")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if a.spread:
        import ase.io

        frames = ase.io.read(a.frames_path, ":", format="lammps-dump-text")
    else:
        frames = read_frames(a.frames_path, max(a.sizes))
    print(f"read {len(frames)} frames with ASE: {time.perf_counter() - t0:.2f} s "
          "(the read s column is 0 when the frames are passed in)")
    rows = []
    for i, n in enumerate(sorted(a.sizes)):
        every = len(frames) // n if a.spread else 1
        r = upstream_msc(a.frames_path, n, a.frac, a.threads, frames=frames, warmup=(i == 0),
                         every=every)
        print(f"n_frames {n}: select {r['seconds_select']:.2f} s, first picks {r['selected'][:8]}",
              flush=True)
        rows.append(r)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(dict(frames_path=a.frames_path, frac=a.frac, rows=rows), fh, indent=1)
    for path in a.add_json:
        with open(path) as fh:
            rows += [r for r in json.load(fh)["rows"] if r["n_frames"] not in a.sizes]
    print_table(rows, a.extrapolate)
    if not math.isclose(a.frac, 0.1):
        print(f"(frac {a.frac})")


if __name__ == "__main__":
    main()
