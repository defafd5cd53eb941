"""Benchmark (issue 13, part 4): exact policy iteration at scale, side by side with QuantEcon.

    pip install quantecon          # benchmark only, NOT a dependency of mdpsandbox
    python benchmarks/bench_scale.py [--sizes 1000 3000 5000] [--million] [--repeats 3]

Measured in one process on the same garnets (medians over repeats):
* dense S = 1000, A = 8, branching 50, γ = 0.95: `mdpsandbox.solve` (auto → PI) vs
  `quantecon.markov.DiscreteDP(...).solve("policy_iteration")` (goal ≥ 1×);
* sparse S ∈ --sizes, A = 4, branching 5, γ = 0.99: both on the same CSR matrix given to DiscreteDP in
  its state–action-pair form (goal ≥ 100× for S ≥ 3000); QuantEcon evaluates by a sparse direct solve;
* --million: ours alone on S = 10⁶, A = 4, branching 5 (time, peak RSS, residual).
Accuracy: each answer's sup-distance to the exact V^π of its greedy policy (our certified Krylov
evaluation; for S ≤ 5000 also a direct sparse solve) is printed next to its time.
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from _timing import median_time_and_result  # noqa: E402 — benchmarks/_timing.py (script directory is on sys.path)
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import mdpsandbox as ms


def _exact_value(mdp, act):
    S, A = mdp.n_states, mdp.n_actions
    pol = np.eye(A)[act]
    P = sp.csr_matrix(mdp.policy_matrix(pol))
    M = (sp.identity(S, format="csc") - mdp.gamma * P).tocsc()
    return spla.spsolve(M, mdp.R[np.arange(S), act])


def _qe(mdp, dense):
    from quantecon.markov import DiscreteDP

    S, A = mdp.n_states, mdp.n_actions
    if dense:
        return DiscreteDP(mdp.R, mdp.dense_P(), mdp.gamma)
    s_idx = np.repeat(np.arange(S), A)
    a_idx = np.tile(np.arange(A), S)
    return DiscreteDP(mdp.R.ravel(), sp.csr_matrix(mdp.P2), mdp.gamma, s_idx, a_idx)


def compare(mdp, dense, repeats, label):
    try:
        import quantecon  # noqa: F401
    except ImportError:
        print("SKIPPED QuantEcon side: pip install quantecon (benchmark only)")
        return
    ms.solve(mdp)  # warm-up (numba caches)
    t_o, sol = median_time_and_result(lambda: ms.solve(mdp), repeats)
    ddp = _qe(mdp, dense)
    t_q, res = median_time_and_result(lambda: ddp.solve(method="policy_iteration"), max(1, repeats if mdp.n_states <= 3000 else 1))
    act_o = np.argmax(sol.policy, axis=1)
    exact_o = _exact_value(mdp, act_o)
    exact_q = _exact_value(mdp, np.asarray(res.sigma))
    print(f"{label:38s} ours {t_o * 1e3:9.1f} ms ({sol.iterations} PI steps, |V-V^pi| {np.abs(sol.v - exact_o).max():.1e})"
          f"   QuantEcon {t_q * 1e3:9.1f} ms ({res.num_iter} steps, |V-V^pi| {np.abs(res.v - exact_q).max():.1e})"
          f"   speed-up {t_q / t_o:7.1f}x   same policy value {np.abs(exact_o - exact_q).max():.1e}")


def million(repeats):
    t = time.perf_counter()
    mdp = ms.garnet(10**6, 4, 5, gamma=0.99, seed=0)
    t_gen = time.perf_counter() - t
    t = time.perf_counter()
    sol = ms.solve(mdp, method="pi")
    t_sol = time.perf_counter() - t
    q = mdp.R + 0.99 * np.asarray(mdp.P2 @ sol.v).reshape(mdp.n_states, 4)
    resid = float(np.max(np.abs(q.max(axis=1) - sol.v)))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"S = 10^6, A = 4, b = 5, gamma = 0.99: garnet {t_gen:.1f} s, PI {t_sol:.1f} s "
          f"({sol.iterations} steps), Bellman residual {resid:.2e} (certified |V-V*| <= {sol.bound:.2e}), "
          f"peak RSS {rss / 2**30:.2f} GiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 5000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--million", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()}")
    dense = ms.garnet(1000, 8, 50, gamma=0.95, seed=0, sparse=False)
    compare(dense, True, args.repeats, "dense S=1000 A=8 b=50 gamma=0.95")
    for S in args.sizes:
        mdp = ms.garnet(S, 4, 5, gamma=0.99, seed=0, sparse=True)
        compare(mdp, False, args.repeats, f"sparse S={S} A=4 b=5 gamma=0.99")
    if args.million:
        million(args.repeats)


if __name__ == "__main__":
    main()
