"""Benchmark (b): dense tabular MDP (S=1000, A=8, γ=0.95) vs the `mdptoolbox-hiive` package.

    pip install -c constraints.txt mdptoolbox-hiive     # benchmark only, NOT a dependency
    python benchmarks/bench_dense_mdp.py [--states 1000] [--actions 8] [--gamma 0.95] [--repeats 5]

Measured side by side in one process (medians over repeats):
* per-sweep cost of value iteration: mdpsandbox's `bellman_backup` (one BLAS (S·A, S) @ (S,)
  mat-vec + a max reduction) vs one iteration of `hiive.mdptoolbox.mdp.ValueIteration.run`
  (A separate (S, S) mat-vecs plus its per-iteration bookkeeping), time / iterations;
* a full solve: `mdpsandbox.solve(env)` (auto → policy iteration, exact evaluation) vs
  `PolicyIteration` of the toolbox.
Accuracy: every value function is compared with the exact linear solve V^π = (I − γP_π)^{-1} r_π of
the greedy policy it returns; the toolbox's own ValueIteration (span stopping rule, default
epsilon) is reported too. The toolbox uses the (A, S, S) layout and maximises rewards (as we do).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mdpsandbox import garnet, solve
from mdpsandbox.solvers.backups import Regulariser, bellman_backup

from _timing import median_time  # benchmarks/_timing.py (script directory is on sys.path)


def exact_policy_value(P, R, gamma, act):
    """V^π for a deterministic policy: one dense linear solve (I − γ P_π) V = r_π."""
    S = R.shape[0]
    P_pi = P[np.arange(S), act]
    return np.linalg.solve(np.eye(S) - gamma * P_pi, R[np.arange(S), act])


def run(S=1000, A=8, gamma=0.95, branching=50, repeats=5, seed=0):
    try:
        from hiive.mdptoolbox import mdp as tb
    except ImportError:
        print("SKIPPED: mdptoolbox-hiive is not installed (it is a benchmark-only comparison, not a "
              "dependency). Install it with: pip install -c constraints.txt mdptoolbox-hiive")
        return None
    env = garnet(S, A, branching, gamma, seed=seed, sparse=False)  # dense (S, A, S) storage
    P = env.dense_P()
    R = env.R
    P_tb = np.ascontiguousarray(P.transpose(1, 0, 2))  # toolbox layout (A, S, S)
    print(f"dense garnet S={S} A={A} branching={branching} gamma={gamma} "
          f"(P: {P.nbytes / 2**20:.0f} MiB, stored dense)")

    # ---- per-sweep value iteration
    reg = Regulariser()
    v = np.zeros(S)
    bellman_backup(env.P2, R, gamma, v, reg, env.terminal)  # warm-up
    n_sweeps = 20

    def ours_sweeps():
        w = np.zeros(S)
        for _ in range(n_sweeps):
            _, w = bellman_backup(env.P2, R, gamma, w, reg, env.terminal)

    t_o, t_t = [], []
    for _ in range(repeats):
        t_o.append(median_time(ours_sweeps, 1) / n_sweeps)
        vi = tb.ValueIteration(P_tb, R, gamma, epsilon=1e-300, max_iter=n_sweeps)  # set-up not timed
        t = time.perf_counter()
        vi.run()  # the toolbox may lower max_iter to its own a-priori bound: divide by its count
        t_t.append((time.perf_counter() - t) / vi.iter)
    so, st = float(np.median(t_o)), float(np.median(t_t))
    print(f"  VI sweep   mdpsandbox {so * 1e3:7.2f} ms   mdptoolbox {st * 1e3:7.2f} ms   "
          f"speed-up {st / so:5.2f}x   (goal >= 5x)")

    # ---- full solve
    sol = solve(env)  # warm-up
    t_o, t_t = [], []
    for _ in range(max(3, repeats // 2)):
        t = time.perf_counter()
        sol = solve(env)
        t_o.append(time.perf_counter() - t)
        pi_tb = tb.PolicyIteration(P_tb, R, gamma)
        t = time.perf_counter()
        pi_tb.run()
        t_t.append(time.perf_counter() - t)
    so, st = float(np.median(t_o)), float(np.median(t_t))
    print(f"  solve      mdpsandbox {so * 1e3:7.1f} ms ({sol.method}, {sol.iterations} steps)   "
          f"mdptoolbox PolicyIteration {st * 1e3:7.1f} ms ({pi_tb.iter} steps)   speed-up {st / so:5.2f}x   "
          f"(goal > 1x)")

    # ---- accuracy against the exact linear solve of each returned policy
    act = np.argmax(sol.policy, axis=1)
    v_exact = exact_policy_value(P, R, gamma, act)
    err_ours = float(np.max(np.abs(sol.v - v_exact)))
    v_pi_tb = np.asarray(pi_tb.V)
    err_pi_tb = float(np.max(np.abs(v_pi_tb - exact_policy_value(P, R, gamma, np.asarray(pi_tb.policy)))))
    vi_tb = tb.ValueIteration(P_tb, R, gamma)  # the toolbox's defaults (epsilon=0.01, span stop)
    vi_tb.run()
    err_vi_tb = float(np.max(np.abs(np.asarray(vi_tb.V) - v_exact)))
    sol_vi = solve(env, method="vi", tol=1e-7)
    err_vi = float(np.max(np.abs(sol_vi.v - v_exact)))
    same = bool(np.array_equal(act, np.asarray(pi_tb.policy)))
    print(f"  max |V − V_exact|: mdpsandbox PI {err_ours:.1e}   mdpsandbox VI(tol=1e-7) {err_vi:.1e}   "
          f"toolbox PI {err_pi_tb:.1e}   toolbox VI (default, span stop, {vi_tb.iter} sweeps) {err_vi_tb:.1e}")
    print(f"  optimal policies identical: {same}")
    assert err_ours < 1e-6, err_ours
    return so, st


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=1000)
    ap.add_argument("--actions", type=int, default=8)
    ap.add_argument("--gamma", type=float, default=0.95)
    ap.add_argument("--branching", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    run(a.states, a.actions, a.gamma, a.branching, a.repeats)


if __name__ == "__main__":
    sys.exit(main())
