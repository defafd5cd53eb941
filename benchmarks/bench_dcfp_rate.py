"""Sample complexity of DCFP with a generative model (docs/math.md §7; Rowland et al. 2024).

sup-W1 error of DCFP(P̂_N) against the categorical fixed point of the true P for N = 10 … 10^4
draws per state, averaged over seeds; prints the log-log slope (expected ≈ −0.5).
Run: python benchmarks/bench_dcfp_rate.py
"""
import argparse

import numpy as np
import scipy.sparse as sp

from mdpsandbox import garnet
from mdpsandbox.solvers.distributional import (categorical_fixed_point, default_atoms, empirical_model,
                                               sup_wasserstein1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--states", type=int, default=50)
    ap.add_argument("--branching", type=int, default=8)
    ap.add_argument("--atoms", type=int, default=101)
    ap.add_argument("--gamma", type=float, default=0.9)
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args()
    mdp = garnet(a.states, 1, a.branching, gamma=a.gamma, seed=0)
    P, r = sp.csr_matrix(mdp.P2), mdp.R[:, 0]
    z = default_atoms(r, a.gamma, a.atoms)
    truth = categorical_fixed_point(P, r, a.gamma, z, tol=1e-10)
    Ns = np.array([10, 30, 100, 300, 1000, 3000, 10000])
    errs = []
    for N in Ns:
        e = [sup_wasserstein1(categorical_fixed_point(empirical_model(P, int(N), seed=s), r, a.gamma, z, tol=1e-10),
                              truth) for s in range(a.seeds)]
        errs.append(np.mean(e))
        print(f"N = {N:6d}   mean sup-W1 error {errs[-1]:.4e}   (over {a.seeds} seeds)")
    slope = np.polyfit(np.log(Ns), np.log(errs), 1)[0]
    print(f"log-log slope {slope:.3f}  (expected about -0.5)")


if __name__ == "__main__":
    main()
