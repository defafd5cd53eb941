"""Benchmark (issue 13): hard control by linear programming (`solve_lp`, HiGHS) vs policy iteration.

    python benchmarks/bench_lp.py [--sizes 100 300 1000 3000] [--simplex-max 1000] [--repeats 1]

Garnets with A = 4, γ = 0.99: sparse (CSR, branching 5) and dense (dense (S, A, S) storage,
branching min(S, 50)). For each S it prints the wall time of `solve(mdp, method="pi")` and of
`solve_lp` with HiGHS's interior point (the default) and — up to --simplex-max states — its dual
simplex ("highs-ds", what method="highs" picks on these LPs), with the time split into HiGHS and
the exact polish (greedy policy of the LP's V evaluated by one linear solve, improvement checks,
exact occupancy), the polish's improvement steps, and sup|V_lp − V_pi| (must be ≤ 1e-10·scale: both
are exact). Ratios are LP time / PI time measured side by side in one process.
"""
from __future__ import annotations

import os

# one BLAS thread (as bench_dcfp.py): a threaded OpenBLAS on a loaded 2-core machine made the dense
# GEMVs of PI 100-200x slower (S = 100: 0.2 s instead of 1 ms), which measures contention, not methods
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from _timing import median_time_and_result  # noqa: E402 — benchmarks/_timing.py (script directory is on sys.path)

import mdpsandbox as ms  # noqa: E402
from mdpsandbox.solvers.classic import solve_lp  # noqa: E402


def row(mdp, label, simplex, repeats):
    ms.solve(mdp, method="pi")   # warm-up (numba caches, imports)
    solve_lp(ms.garnet(5, 2, 2, seed=0), lp_method="highs-ipm")
    t_pi, pi = median_time_and_result(lambda: ms.solve(mdp, method="pi"), repeats)
    scale = 1 + np.abs(pi.v).max()
    out = [f"{label:30s} PI {t_pi * 1e3:9.1f} ms ({pi.iterations} steps)"]
    for m in (["highs-ipm", "highs-ds"] if simplex else ["highs-ipm"]):
        t_lp, lp = median_time_and_result(lambda: solve_lp(mdp, lp_method=m), repeats)
        err = float(np.abs(lp.v - pi.v).max())
        ok = "ok" if err <= 1e-10 * scale else "MISMATCH"
        out.append(f"{m} {t_lp * 1e3:10.1f} ms (HiGHS {lp.lp_seconds * 1e3:.0f} + polish "
                   f"{lp.polish_seconds * 1e3:.0f} ms, {lp.polish_steps} eval, |dV| {err:.0e} {ok}) "
                   f"= {t_lp / t_pi:6.1f}x PI")
    if not simplex:
        out.append("highs-ds skipped (> --simplex-max)")
    print("   ".join(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000])
    ap.add_argument("--simplex-max", type=int, default=1000,
                    help="largest S timed with the dual simplex (minutes at S = 3000)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-dense", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    for S in args.sizes:
        mdp = ms.garnet(S, 4, 5, gamma=0.99, seed=0, sparse=True)
        row(mdp, f"sparse S={S} A=4 b=5", S <= args.simplex_max, args.repeats)
        if not args.no_dense:
            b = min(S, 50)
            mdp = ms.garnet(S, 4, b, gamma=0.99, seed=0, sparse=False)
            row(mdp, f"dense  S={S} A=4 b={b}", S <= args.simplex_max, args.repeats)
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
