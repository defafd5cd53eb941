"""Benchmark: sweeps.

    python benchmarks/bench_sweep.py [--seeds 500] [--loop-cells 1000] [--dask-cells 2000]

(a) 10,000 cells — garnet S=20, A=4, γ ∈ {0.9, 0.99}, β on a 10-point log grid, 500 seeds — run by
    ``mdpsandbox.sweeps.run`` (default: process backend, numba-batched ``solve_batch`` chunks,
    Parquet store) vs a plain Python loop ``garnet(...); solve(...)`` per cell (timed on the first
    ``--loop-cells`` cells and reported per cell; the numbers are checked to agree within the bounds).
    Both sides warm (the loop after one solve; the sweep after a first, cold sweep of other seeds,
    whose time is printed as (a0)).
(b) per-chunk overhead at the default (measured) chunk size: (chunk wall − cell compute) / compute,
    inside the workers (param handling, Parquet write, lock), for batched and for unbatched cells.
(c) ``dask`` with 2 local worker processes vs ``serial`` on CPU-bound unbatched cells (garnet
    S=60, A=4, γ=0.99, hard PI, ``batch=False``; ``--dask-cells`` of them, default 2000 ≈ 4 s of
    serial work). The LocalCluster is started, and every worker has imported the task and run a
    few cells of this kind, before the clock (the serial side is warm too: it runs in this process
    after (b)). The default was 400 cells (≈ 0.6–0.8 s of work): there the fixed costs of the dask
    path — the probe chunk in the client, the scheduler round trips, the last chunk finishing
    alone — are a large part of the run, which measures dask start-up rather than the parallel
    throughput the goal is about.
Prints the ratios side by side, and the machine load (ratios taken under load > cores are noisy).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time

import numpy as np


def _warm_worker(fixed):
    """Run in every dask worker before the clock: one numba thread (as the sweep's workers), the
    task's and the chunk writer's imports and first Parquet encode (what the dask backend does on
    connecting: ~0.3–1 s per worker) and three cells of the timed kind (seeds outside the grid)."""
    from mdpsandbox.sweeps.backends import _prepare_dask_worker
    from mdpsandbox.sweeps.tasks import get_task

    _prepare_dask_worker()
    task = get_task("solve")
    for s in range(3):
        task({**fixed, "gamma": 0.99, "seed": 10**6 + s}, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=500)
    ap.add_argument("--loop-cells", type=int, default=1000)
    ap.add_argument("--dask-cells", type=int, default=2000)
    args = ap.parse_args()

    import mdpsandbox as ms
    import mdpsandbox.sweeps.backends as backends
    from mdpsandbox.sweeps import Sweep, load, logspace, run

    tmp = tempfile.mkdtemp(prefix="bench_sweep_")
    betas = logspace(-3, 1, 10)
    sw = Sweep(task="solve", axes={"gamma": [0.9, 0.99], "beta": betas, "seed": range(args.seeds)},
               fixed={"env": "garnet", "n_states": 20, "n_actions": 4, "branching": 3})
    n = len(sw)

    # ---- (a) sweep vs plain loop
    chunk_stats = []
    orig_all = backends.Process.all

    def spy(self, payloads, on_done):
        return orig_all(self, payloads, lambda s: (chunk_stats.append(s), on_done(s)))

    # cold: the first sweep of this process (starts the pool; workers import and load numba kernels)
    warm_spec = Sweep(task="solve", axes={"gamma": [0.9, 0.99], "beta": betas, "seed": range(10_000, 10_050)},
                      fixed={"env": "garnet", "n_states": 20, "n_actions": 4, "branching": 3})
    t0 = time.perf_counter()
    run(warm_spec, os.path.join(tmp, "cold"), progress=False)
    t_cold = time.perf_counter() - t0
    # warm: the timed sweep (other seeds: no env is cached from the cold run)
    backends.Process.all = spy
    t0 = time.perf_counter()
    df = run(sw, os.path.join(tmp, "a"), progress=False)
    t_sweep = time.perf_counter() - t0
    backends.Process.all = orig_all
    assert len(df) == n and (df.status == "ok").all()

    cells = list(sw.cells())[: args.loop_cells]
    ref = np.full((20, 4), 0.25)
    ms.solve(ms.garnet(20, 4, 3, gamma=0.9, seed=0), beta=0.1, ref_policy=ref)  # warm-up
    t0 = time.perf_counter()
    loop_v = []
    for c in cells:
        env = ms.garnet(20, 4, 3, gamma=c["gamma"], seed=c["seed"])
        loop_v.append(ms.solve(env, beta=c["beta"], ref_policy=ref).value_initial)
    t_loop = (time.perf_counter() - t0) / len(cells) * n
    err = np.max(np.abs(df.value_initial.to_numpy()[: len(cells)] - np.array(loop_v)))

    load_start = os.getloadavg()

    # ---- (b) per-chunk overhead at the default chunk size
    ov_batched = [(s["wall_s"] - s["compute_s"]) / s["compute_s"] for s in chunk_stats if s["compute_s"] > 0]
    parts_batched = [(1e3 * s["compute_s"], 1e3 * (s["wall_s"] - s["compute_s"]), 1e3 * s.get("write_s", np.nan))
                     for s in chunk_stats]
    sizes = [s["n"] for s in chunk_stats]
    sw_b = Sweep(task="solve", axes={"gamma": [0.99], "seed": range(args.dask_cells)},
                 fixed={"env": "garnet", "n_states": 60, "n_actions": 4, "branching": 5, "batch": False})
    chunk_stats.clear()
    backends.Process.all = spy
    run(sw_b, os.path.join(tmp, "b"), progress=False)
    backends.Process.all = orig_all
    ov_unbatched = [(s["wall_s"] - s["compute_s"]) / s["compute_s"] for s in chunk_stats if s["compute_s"] > 0]
    sizes_b = [s["n"] for s in chunk_stats]

    # ---- (c) dask (2 local workers) vs serial, CPU-bound unbatched cells
    from distributed import LocalCluster

    t0 = time.perf_counter()
    run(sw_b, os.path.join(tmp, "c_serial"), backend="serial", progress=False)
    t_serial = time.perf_counter() - t0
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    try:
        # warm every worker before the clock: imports, numba kernels, a few cells of this kind
        from distributed import Client

        with Client(cluster) as client:
            client.run(_warm_worker, dict(sw_b.fixed))
        t0 = time.perf_counter()
        d2 = run(sw_b, os.path.join(tmp, "c_dask"), backend="dask", scheduler=cluster.scheduler_address,
                 progress=False)
        t_dask = time.perf_counter() - t0
    finally:
        cluster.close()
    same = load(os.path.join(tmp, "c_serial")).drop(columns="wall_s").equals(d2.drop(columns="wall_s"))
    shutil.rmtree(tmp, ignore_errors=True)

    load_avg = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f} "
          f"(at the start of (b): {load_start[0]:.2f})")
    print(f"(a0) cold start: first sweep of the process ({len(warm_spec)} cells, pool start + numba loading) "
          f"{t_cold:6.2f} s")
    print(f"(a) {n} cells  sweep {t_sweep:8.2f} s  ({t_sweep / n * 1e6:7.1f} us/cell)  |  python loop "
          f"{t_loop:8.2f} s ({t_loop / n * 1e6:7.1f} us/cell, timed on {len(cells)})  ->  {t_loop / t_sweep:5.1f}x "
          f"(goal >= 20x); max |dV| = {err:.2e}")
    print(f"(b) per-chunk overhead: batched chunks of {min(sizes)}-{max(sizes)} cells: median "
          f"{100 * np.median(ov_batched):.1f}%  |  unbatched chunks of {min(sizes_b)}-{max(sizes_b)} cells: median "
          f"{100 * np.median(ov_unbatched):.1f}%  (goal < 5%)")
    print("    batched chunks (compute / overhead / of which Parquet encode+write, ms): "
          + ", ".join(f"{c:.0f}/{o:.1f}/{w:.1f}" for c, o, w in parts_batched))
    print(f"(c) {len(sw_b)} CPU-bound cells  serial {t_serial:6.2f} s  |  dask 2 workers {t_dask:6.2f} s  ->  "
          f"{t_serial / t_dask:4.2f}x (goal >= 1.7x); identical tables: {same}")


if __name__ == "__main__":
    main()
