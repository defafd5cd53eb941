"""DCFP vs CDP: time to the same categorical fixed point (docs/math.md §7).

200-state MRP with 8 successors per state, m = 201 atoms, γ = 0.99. Both methods stop on their
certified sup-W1 bound (tol); the script checks they agree to ≤ 1e-6 and prints the residuals.
CDP and DCFP apply M with the same numba kernel (_dcfp_fast), so the ratio is the ratio of operator
applications (CDP: one per iteration; BiCGSTAB: two per iteration) plus DCFP's vector work and set-up.
"dcfp/bicgstab-plain" is BiCGSTAB without the coarse correction (to show what each part buys).
Run: python benchmarks/bench_dcfp.py [--repeat 3] [--gamma 0.999]
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
from mdpsandbox.solvers.distributional import categorical as _cat


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
    runs = [("cdp", "auto"), ("dcfp", "bicgstab"), ("dcfp", "bicgstab-plain"), ("dcfp", "gmres")]
    runs += [("dcfp", "splu")] if a.splu else []
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; n={a.states}, {a.branching} successors, "
          f"m={a.atoms}, gamma={a.gamma}, tol={a.tol}")
    res, best, cpu = {}, {}, {}
    for method, solver in runs:
        ts, cs = [], []
        old = _cat._COARSE_MIN_GAMMA
        if solver == "bicgstab-plain":
            _cat._COARSE_MIN_GAMMA = 2.0   # never: plain BiCGSTAB
        try:
            for _ in range(a.repeat if solver != "splu" else 1):
                t, c = time.perf_counter(), time.process_time()
                fp = categorical_fixed_point(P, r, a.gamma, z, method=method, tol=a.tol,
                                             solver="bicgstab" if solver == "bicgstab-plain" else solver)
                ts.append(time.perf_counter() - t)
                cs.append(time.process_time() - c)
        finally:
            _cat._COARSE_MIN_GAMMA = old
        key = f"{method}/{solver}"
        res[key], best[key], cpu[key] = fp, min(ts), min(cs)
        print(f"{key:20s} best {best[key]:8.4f} s (cpu {cpu[key]:8.4f} s)  iterations {fp.iterations:6d}  "
              f"residual {fp.residual:.2e}  certified sup-W1 bound {fp.bound:.2e}")
    ref = res["cdp/auto"]
    for key, fp in res.items():
        if key == "cdp/auto":
            continue
        agree = sup_wasserstein1(fp, ref)
        cdf = float(np.max(np.abs(fp.cdf - ref.cdf)))
        apps = (f"  operator applications CDP/DCFP ≈ {ref.iterations / (2 * max(fp.iterations, 1)):5.1f}"
                if "bicgstab" in key else "")
        print(f"{key:20s} speed-up vs CDP {best['cdp/auto'] / best[key]:6.2f}x (cpu {cpu['cdp/auto'] / cpu[key]:6.2f}x)"
              f"   sup-W1 to CDP {agree:.2e}  max |ΔF| {cdf:.2e}  {'OK' if cdf <= 1e-6 else 'DISAGREE'}{apps}")


if __name__ == "__main__":
    main()
