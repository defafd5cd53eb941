"""DCFP vs CDP: time to the same categorical fixed point (docs/math.md §7).

200-state MRP with 8 successors per state, m = 201 atoms, γ = 0.99. Both methods stop on their
certified sup-W1 bound (tol); the script checks they agree to ≤ 1e-6 and prints the residuals.
Run: python benchmarks/bench_dcfp.py [--repeat 3]
"""
import os

# one BLAS thread: scipy's Krylov loops call BLAS dot/norm on short vectors; a threaded BLAS on a
# loaded 2-core machine made them 10-100x slower (CDP uses no BLAS, so the comparison was unfair)
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np
import scipy.sparse as sp

from mdpsandbox import garnet
from mdpsandbox.solvers.distributional import categorical_fixed_point, default_atoms, sup_wasserstein1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--states", type=int, default=200)
    ap.add_argument("--branching", type=int, default=8)
    ap.add_argument("--atoms", type=int, default=201)
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--splu", action="store_true", help="also time the sparse LU solve (slow: fill-in)")
    a = ap.parse_args()
    mdp = garnet(a.states, 1, a.branching, gamma=a.gamma, seed=0)
    P, r = sp.csr_matrix(mdp.P2), mdp.R[:, 0]
    z = default_atoms(r, a.gamma, a.atoms)
    runs = [("cdp", "auto"), ("dcfp", "bicgstab"), ("dcfp", "gmres")] + ([("dcfp", "splu")] if a.splu else [])
    res, best = {}, {}
    for method, solver in runs:
        ts = []
        for _ in range(a.repeat if solver != "splu" else 1):
            t = time.perf_counter()
            fp = categorical_fixed_point(P, r, a.gamma, z, method=method, solver=solver, tol=a.tol)
            ts.append(time.perf_counter() - t)
        key = f"{method}/{solver}"
        res[key], best[key] = fp, min(ts)
        print(f"{key:15s} best {best[key]:8.3f} s  iterations {fp.iterations:6d}  residual {fp.residual:.2e}  "
              f"certified sup-W1 bound {fp.bound:.2e}")
    ref = res["cdp/auto"]
    for key, fp in res.items():
        if key == "cdp/auto":
            continue
        agree = sup_wasserstein1(fp, ref)
        cdf = float(np.max(np.abs(fp.cdf - ref.cdf)))
        print(f"{key:15s} speed-up vs CDP {best['cdp/auto'] / best[key]:6.2f}x   sup-W1 to CDP {agree:.2e}  "
              f"max |ΔF| {cdf:.2e}  {'OK' if cdf <= 1e-6 else 'DISAGREE'}")


if __name__ == "__main__":
    main()
