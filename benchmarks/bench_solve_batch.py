"""Benchmark (c): `solve_batch` on B=2000 small MDPs (S=20, A=4) vs a per-MDP numpy loop.

    python benchmarks/bench_solve_batch.py [--batch 2000] [--states 20] [--actions 4] [--gamma 0.95]
                                           [--methods pi,vi] [--repeat 5]

The baseline runs the same algorithms one MDP at a time in numpy: policy iteration (exact
evaluation with np.linalg.solve, greedy improvement, stop when the policy is stable) and value
iteration (stop when ‖V_{k+1} − V_k‖∞ < tol(1−γ)/(2γ)). `solve_batch` runs the whole loop in numba,
prange over MDPs. Times are medians over ``--repeat`` interleaved runs (solve_batch, then the
loop) after a warm-up; values are checked to agree. The machine load is printed with the times,
and the CPU time of both (all threads) below them.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mdpsandbox import solve_batch


def numpy_pi(P, R, gamma):
    S, A = R.shape
    P2 = P.reshape(S * A, S)
    act = np.argmax(R, axis=1)
    idx = np.arange(S)
    while True:
        v = np.linalg.solve(np.eye(S) - gamma * P[idx, act], R[idx, act])
        q = R + gamma * (P2 @ v).reshape(S, A)
        best = q.max(axis=1)
        new = np.where(q[idx, act] >= best - 1e-12 * (1 + np.abs(best)), act, np.argmax(q, axis=1))
        if np.array_equal(new, act):
            return v
        act = new


def numpy_vi(P, R, gamma, tol=1e-9):
    S, A = R.shape
    P2 = P.reshape(S * A, S)
    v = np.zeros(S)
    thr = tol * (1 - gamma) / (2 * gamma)
    while True:
        w = (R + gamma * (P2 @ v).reshape(S, A)).max(axis=1)
        d = np.max(np.abs(w - v))
        v = w
        if d < thr:
            return v


def run(B=2000, S=20, A=4, gamma=0.95, seed=0, methods=("pi", "vi"), repeat=5):
    rng = np.random.default_rng(seed)
    P = rng.random((B, S, A, S)) ** 8  # uneven rows so MDPs differ from uniform mixing
    P /= P.sum(-1, keepdims=True)
    R = rng.random((B, S, A))
    print(f"solve_batch: B={B} MDPs, S={S}, A={A}, gamma={gamma}, {repeat} runs, "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    bases = {"pi": numpy_pi, "vi": numpy_vi}
    for method in methods:
        base = bases[method]
        solve_batch(P[:2], R[:2], gamma, method=method)  # JIT warm-up
        to, tn, co, cn = [], [], [], []
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            sol = solve_batch(P, R, gamma, method=method)
            to.append(time.perf_counter() - t)
            co.append(time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            vb = np.stack([base(P[b], R[b], gamma) for b in range(B)])
            tn.append(time.perf_counter() - t)
            cn.append(time.process_time() - c)
        err = float(np.max(np.abs(sol.v - vb)))
        mo, mn = float(np.median(to)), float(np.median(tn))
        print(f"  {method}: solve_batch {mo * 1e3:8.1f} ms   numpy loop {mn * 1e3:8.1f} ms   "
              f"speed-up {mn / mo:6.1f}x (goal >= 20x)   max |Δv| = {err:.1e}   "
              f"(solve_batch min {min(to) * 1e3:.1f} ms; load {os.getloadavg()[0]:.2f})")
        # CPU time of all threads (includes numba's worker threads waiting for each other): on a busy
        # machine it tells a slow solve from a descheduled one
        print(f"      CPU time: solve_batch {np.median(co) * 1e3:8.1f} ms   numpy loop {np.median(cn) * 1e3:8.1f} ms")
        assert err < 1e-6, err


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--states", type=int, default=20)
    ap.add_argument("--actions", type=int, default=4)
    ap.add_argument("--gamma", type=float, default=0.95)
    ap.add_argument("--methods", default="pi,vi", help="comma-separated subset of pi,vi")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved runs per method (medians reported)")
    a = ap.parse_args(argv)
    methods = tuple(m.strip() for m in a.methods.split(",") if m.strip())
    if not methods or any(m not in ("pi", "vi") for m in methods):
        ap.error(f"--methods must be a comma-separated subset of pi,vi, got {a.methods!r}")
    if a.repeat < 1:
        ap.error(f"--repeat must be >= 1, got {a.repeat}")
    run(a.batch, a.states, a.actions, a.gamma, methods=methods, repeat=a.repeat)


if __name__ == "__main__":
    main()
