r"""``solve_batch``: a stack of small MDPs solved exactly in one jitted call, parallel over the batch.

Many small MDPs are dominated by Python overhead (docs/math.md §11), so the whole solve loop — policy
iteration with exact evaluation, or value iteration with the certified stop — runs inside numba,
``prange`` over MDPs. With ``NUMBA_DISABLE_JIT=1`` the same code runs as plain Python and gives
the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numba
import numpy as np

from .._validate import (STOCHASTIC_ATOL, check_distribution, check_finite, check_gamma, check_int, check_positive,
                         normalise_rows, fmt)
from ._tree_fast import _next_task
from .backups import _kl_term, _soft_row_x

__all__ = ["BatchSolution", "solve_batch"]


@dataclass
class BatchSolution:
    """Exact solutions of B MDPs: q, policy ``(B, S, A)``; v ``(B, S)``; residual (‖TV − V‖∞),
    iterations, converged ``(B,)``."""

    q: np.ndarray
    v: np.ndarray
    policy: np.ndarray
    residual: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    method: str
    beta: Optional[float] = None
    temperature: Optional[float] = None


@numba.njit(cache=True, fastmath={"reassoc", "contract"})  # lets the dot product vectorise
def _q_of_v(P, R, g, v, q):
    S, A = R.shape
    for s in range(S):
        for a in range(A):
            acc = 0.0
            for t in range(S):
                acc += P[s, a, t] * v[t]
            q[s, a] = R[s, a] + g * acc


@numba.njit(cache=True)
def _value_and_policy(q, lam, c, omc, log_ref, ref, v, pol):
    """V = max Q (λ = 0) or λ LSE(Q/λ + c log π_ref) (exact for every λ: backups._soft_row_x, with
    ``omc`` = 1 − c = τ/λ passed as a quotient so that entropy + KL with τ ≪ β does not cancel);
    pol = the matching policy."""
    S, A = q.shape
    for s in range(S):
        if lam == 0.0:
            m = q[s, 0]
            best = 0
            for a in range(1, A):
                if q[s, a] > m:
                    m = q[s, a]
                    best = a
            v[s] = m
            for a in range(A):
                pol[s, a] = 1.0 if a == best else 0.0
        else:
            v[s] = _soft_row_x(q, log_ref, 0.0, lam, c, omc, pol, ref, True, s)


@numba.njit(cache=True, fastmath={"reassoc"})
def _row_suspect(P2, i, lim):
    """1 if row i of P2 may be non-stochastic: its sum is not finite (a NaN or inf entry), an entry is
    negative, or |sum − 1| > lim; else 0."""
    tot = 0.0
    neg = 0
    for j in range(P2.shape[1]):
        x = P2[i, j]
        tot += x
        neg += x < 0.0
    return 1 if neg > 0 or not abs(tot - 1.0) <= lim else 0


_CHECK_ROWS = 2048  # rows of P per task of the parallel stochasticity pass


@numba.njit(parallel=True, cache=True)
def _count_suspect_rows(P2, atol, n_threads):
    """Number of rows that may be non-stochastic (:func:`_row_suspect` with lim = atol − 64·S·ε, a
    margin above the reassociated sum's round-off). One parallel, vectorised pass; any suspect row
    sends the caller to the exact serial check :func:`_check_stochastic`, which decides and names
    the row. Blocks of rows are handed out from a shared counter (see :func:`_solve_batch_kernel`)."""
    lim = atol - 64.0 * P2.shape[1] * 2.220446049250313e-16
    n = P2.shape[0]
    n_tasks = (n + _CHECK_ROWS - 1) // _CHECK_ROWS
    n_w = min(n_threads, n_tasks)
    part = np.zeros(max(n_w, 1), dtype=np.int64)
    counter = np.zeros(1, dtype=np.int64)
    for w in numba.prange(n_w):
        mine = 0  # a local count: adding into part[w] per row would bounce its cache line between threads
        t = _next_task(counter)
        while t < n_tasks:
            for i in range(t * _CHECK_ROWS, min(n, (t + 1) * _CHECK_ROWS)):
                mine += _row_suspect(P2, i, lim)
            t = _next_task(counter)
        part[w] = mine
    return part.sum()


@numba.njit(cache=True)
def _count_suspect_rows_serial(P2, atol):
    """:func:`_count_suspect_rows` without threads, for small P (where starting a parallel region
    costs more than the pass)."""
    lim = atol - 64.0 * P2.shape[1] * 2.220446049250313e-16
    bad = 0
    for i in range(P2.shape[0]):
        bad += _row_suspect(P2, i, lim)
    return bad


_PARALLEL_CHECK_MIN = 1 << 18  # entries of P from which the check runs in parallel


@numba.njit(cache=True)
def _check_stochastic(P2, atol):
    """(code, row, value): 0 if every row is finite, non-negative and sums to 1 within atol;
    else 1 (non-finite), 2 (negative) or 3 (row sum off) for the first bad row."""
    n, S = P2.shape
    for i in range(n):
        tot = 0.0
        for j in range(S):
            x = P2[i, j]
            if not np.isfinite(x):
                return 1, i, x
            if x < 0.0:
                return 2, i, x
            tot += x
        if abs(tot - 1.0) > atol:
            return 3, i, tot
    return 0, 0, 0.0


@numba.njit(cache=True, fastmath={"contract"})
def _lu_solve_inplace(M, x):
    """Solve M y = x in place (x ← y) for M = I − γP_π (P_π stochastic, 0 ≤ γ < 1) by Gaussian
    elimination without pivoting; M is destroyed (U above the diagonal, 1/U on it).

    No pivoting is needed: M is a nonsingular M-matrix with M·1 = (1 − γ)·1, its Schur complements
    are M-matrices with row sums ≥ 1 − γ, so every pivot is ≥ 1 − γ > 0 and M is row-diagonally
    dominant at every step, where elimination without pivoting has growth factor ≤ 2 (Wilkinson
    1961; Higham 2002, ch. 9) — as stable as partial pivoting, without the column searches.
    Rows are updated over their full width (columns left of the pivot get values that are never
    read again): a fixed trip count S lets the inner loop vectorise. Small dense systems (S ≲ 100):
    an explicit loop avoids LAPACK call/copy overhead per MDP."""
    n = M.shape[0]
    for k in range(n):
        inv = 1.0 / M[k, k]
        xk = x[k]
        for i in range(k + 1, n):
            f = M[i, k] * inv
            for j in range(n):
                M[i, j] -= f * M[k, j]
            x[i] -= f * xk
        M[k, k] = inv  # not read again by the elimination
    # back substitution by columns (independent updates, no division on the dependency chain)
    for i in range(n - 1, -1, -1):
        xi = x[i] * M[i, i]
        x[i] = xi
        for r in range(i):
            x[r] -= M[r, i] * xi


@numba.njit(cache=True)
def _evaluate(P, R, g, pol, temp, beta, log_ref, ref, v, M):
    """Exact regularised V^π: solve (I − γP_π) v = Σπ r − β KL + τ H (M is S×S workspace); KL summed
    as Σ π_ref φ(π/π_ref) (backups.kl_terms: no cancellation, 0 exactly at π = π_ref)."""
    S, A = R.shape
    for s in range(S):
        v[s] = 0.0
        for t in range(S):
            M[s, t] = 0.0
        M[s, s] = 1.0
        kl = 0.0
        for a in range(A):
            p = pol[s, a]
            if beta > 0.0:
                kl += _kl_term(p, ref[s, a], log_ref[s, a])
            if p > 0.0:
                v[s] += p * (R[s, a] - temp * math.log(p))
                gp = g * p
                for t in range(S):
                    M[s, t] -= gp * P[s, a, t]
        v[s] -= beta * kl
    _lu_solve_inplace(M, v)


@numba.njit(cache=True)
def _evaluate_deterministic(P, R, g, act, v, M):
    """Exact V^π of a deterministic policy: (I − γP[s, π(s)]) v = R[s, π(s)]."""
    S = R.shape[0]
    for s in range(S):
        a = act[s]
        for t in range(S):
            M[s, t] = -g * P[s, a, t]
        M[s, s] += 1.0
        v[s] = R[s, a]
    _lu_solve_inplace(M, v)


# MDPs per prange task: the scratch arrays are allocated once per task, not once per MDP (every
# MDP's numbers are independent of the task it lands in: scratch is fully rewritten before use)
_CHUNK = 16
# hard PI's start: greedy after this many backups of V_0 = max_a r. Measured at S = 20, A = 4
# (γ = 0.9, 0.99; dense and branching-2 garnet MDPs): evaluations per MDP 1.65–3.09 with one
# backup, 1.12–2.32 with three; at γ = 0.99 the kernel's time drops by ≈ 7%
_LOOKAHEAD = 3


@numba.njit(parallel=True, cache=True)
def _solve_batch_kernel(P, R, gammas, temp, beta, log_ref, ref, extra, use_pi, tol, max_iter, q, v, pol, res, its, conv,
                        n_threads):
    """Every MDP of the batch, in tasks of _CHUNK MDPs handed out one at a time from a shared atomic
    counter (dynamic scheduling): a worker thread that starts late — a vCPU resuming after an idle
    gap, a core shared with another process — leaves its share to the others instead of holding up
    the end by a static half (numba's prange splits statically). Which thread solves an MDP changes
    no number. ``n_threads`` is passed in (numba.get_num_threads() inside would disable caching)."""
    B, S, A, _ = P.shape
    n_tasks = (B + _CHUNK - 1) // _CHUNK
    counter = np.zeros(1, dtype=np.int64)
    for _w in numba.prange(min(n_threads, n_tasks)):
        tv = np.zeros(S)
        M = np.empty((S, S))
        act = np.zeros(S, dtype=np.int64)
        t = _next_task(counter)
        while t < n_tasks:
            for b in range(t * _CHUNK, min(B, (t + 1) * _CHUNK)):
                _solve_one(b, P, R, gammas, temp, beta, log_ref, ref, extra, use_pi, tol, max_iter, q, v, pol, res,
                           its, conv, tv, M, act)
            t = _next_task(counter)


@numba.njit(cache=True)
def _solve_one(b, P, R, gammas, temp, beta, log_ref, ref, extra, use_pi, tol, max_iter, q, v, pol, res, its, conv,
               tv, M, act):
    """MDP b of the batch, solved in place (the arguments after ``conv`` are scratch)."""
    S, A = R.shape[1], R.shape[2]
    lam = temp + beta
    c = beta / lam if lam > 0 else 0.0
    omc = temp / lam if lam > 0 else 1.0  # 1 − c, exact when τ ≪ β
    eps = 2.220446049250313e-16
    g = gammas[b]
    Pb, Rb, lr, rf = P[b], R[b], log_ref[b], ref[b]
    qb = q[b]
    vb = v[b]
    pb = pol[b]
    for s in range(S):
        tv[s] = 0.0
        act[s] = 0
    rmax = 0.0
    for s in range(S):
        for a in range(A):
            rmax = max(rmax, abs(Rb[s, a]))
    # round-off floor of |V|: regularised values stay within (max|r| + τ log A)/(1−γ) for every β
    # (the backup is exact, entropy + KL included); ``extra`` = τ log A per step
    floor = 64.0 * eps * ((rmax + extra[b]) / (1.0 - g) + 1.0)
    it = 0
    done = False
    r_last = np.inf
    for s in range(S):
        vb[s] = 0.0
    if use_pi and lam == 0.0:
        # hard PI: start greedy on _LOOKAHEAD value-iteration backups of V_0 = max_a r (a backup
        # costs S·A·S flops, an evaluation S³/3 + S·A·S: the backups save evaluations), exact
        # evaluation, keep the old action on (near-)ties so that PI stops exactly when the policy
        # is stable (Howard 1960; Puterman 1994 §6.4)
        for s in range(S):
            m0 = Rb[s, 0]
            for a in range(1, A):
                if Rb[s, a] > m0:
                    m0 = Rb[s, a]
            tv[s] = m0
        for look in range(_LOOKAHEAD):
            _q_of_v(Pb, Rb, g, tv, qb)
            if look + 1 < _LOOKAHEAD:
                for s in range(S):
                    m0 = qb[s, 0]
                    for a in range(1, A):
                        if qb[s, a] > m0:
                            m0 = qb[s, a]
                    tv[s] = m0
        for s in range(S):
            best = 0
            for a in range(1, A):
                if qb[s, a] > qb[s, best]:
                    best = a
            act[s] = best
        while it < max_iter:
            _evaluate_deterministic(Pb, Rb, g, act, vb, M)
            it += 1
            _q_of_v(Pb, Rb, g, vb, qb)
            stable = True
            r_last = 0.0
            for s in range(S):
                best = 0
                for a in range(1, A):
                    if qb[s, a] > qb[s, best]:
                        best = a
                m = qb[s, best]
                r_last = max(r_last, abs(m - vb[s]))
                if qb[s, act[s]] < m - 1e-12 * (1.0 + abs(m)):
                    act[s] = best
                    stable = False
            if stable:
                done = True
                break
    elif use_pi:
        for s in range(S):
            for a in range(A):
                qb[s, a] = Rb[s, a]
        _value_and_policy(qb, lam, c, omc, lr, rf, tv, pb)
        thr = max(tol * (1.0 - g), floor)
        while it < max_iter:
            _evaluate(Pb, Rb, g, pb, temp, beta, lr, rf, vb, M)
            it += 1
            _q_of_v(Pb, Rb, g, vb, qb)
            _value_and_policy(qb, lam, c, omc, lr, rf, tv, pb)
            r_last = 0.0
            for s in range(S):
                r_last = max(r_last, abs(tv[s] - vb[s]))
            if r_last <= thr:
                done = True
                break
    else:
        thr = tol * (1.0 - g) / (2.0 * g) if g > 0 else np.inf
        thr = max(thr, floor)
        while it < max_iter:
            _q_of_v(Pb, Rb, g, vb, qb)
            _value_and_policy(qb, lam, c, omc, lr, rf, tv, pb)
            it += 1
            r_last = 0.0
            for s in range(S):
                r_last = max(r_last, abs(tv[s] - vb[s]))
                vb[s] = tv[s]
            if r_last < thr:
                done = True
                break
    if not (use_pi and lam == 0.0 and it > 0):  # hard PI's loop ends with qb = Q of vb
        _q_of_v(Pb, Rb, g, vb, qb)
    _value_and_policy(qb, lam, c, omc, lr, rf, tv, pb)
    res[b] = r_last
    its[b] = it
    conv[b] = done


def solve_batch(P, R, gamma, *, temperature: Optional[float] = None, beta: Optional[float] = None,
                ref_policy=None, method: str = "pi", tol: float = 1e-9, max_iter: int = 100_000) -> BatchSolution:
    r"""Solve a stack of B dense MDPs exactly, in parallel over the batch (numba ``prange``).

    P ``(B, S, A, S)``; R ``(B, S, A)``; gamma a float in [0, 1) or ``(B,)``; ``ref_policy``
    ``(S, A)`` or ``(B, S, A)`` (required with ``beta``). Regularisers as in :func:`solve`:
    hard, entropy (τ), KL (β) or both. ``method="pi"``: policy iteration with exact evaluation
    (an S×S solve per step); ``"vi"``: value iteration with the certified stop
    ‖V_{k+1}−V_k‖∞ < tol(1−γ)/(2γ). The hard policy returned is the first argmax.
    ``max_iter`` (an int ≥ 1) caps the iterations per MDP; an MDP that reaches it has
    ``converged[b] = False``. Values are exact to round-off for β, τ anywhere in [1e-300, 1e300].
    """
    P = np.ascontiguousarray(P, dtype=np.float64)
    if P.ndim != 4 or P.shape[1] != P.shape[3]:
        raise ValueError(f"P must have shape (B, S, A, S), got {P.shape}")
    B, S, A, _ = P.shape
    # one fused pass (numba) instead of several full-size numpy temporaries
    atol = STOCHASTIC_ATOL * max(1, S)
    code = 0
    n_threads = numba.get_num_threads()
    if P.size >= _PARALLEL_CHECK_MIN:
        suspect = _count_suspect_rows(P.reshape(-1, S), atol, n_threads)
    else:
        suspect = _count_suspect_rows_serial(P.reshape(-1, S), atol)
    if suspect:
        code, row, value = _check_stochastic(P.reshape(-1, S), atol)
    if code:
        b, rest = divmod(int(row), S * A)
        s_, a_ = divmod(rest, A)
        what = {1: "finite (no NaN or inf)", 2: "non-negative", 3: f"stochastic (row sums to {fmt(value)})"}[code]
        raise ValueError(f"P must be {what}: violated in P[{b}, {s_}, {a_}, :]")
    R = check_finite(R, "R")
    if R.shape != (B, S, A):
        raise ValueError(f"R must have shape (B, S, A) = {(B, S, A)}, got {R.shape}")
    g = np.asarray(gamma, dtype=np.float64)
    if g.ndim == 0:
        check_gamma(float(g), "gamma", allow_one=False)
        gam = np.full(B, float(g))
    else:
        if g.shape != (B,):
            raise ValueError(f"gamma must be a float or have shape ({B},), got {g.shape}")
        for x in g:
            check_gamma(float(x), "gamma", allow_one=False)
        gam = g.copy()
    t = check_positive(temperature, "temperature") if temperature is not None else 0.0
    bt = check_positive(beta, "beta") if beta is not None else 0.0
    if method not in ("pi", "vi"):
        raise ValueError(f"method must be 'pi' or 'vi', got {method!r}")
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter")
    if bt > 0:
        if ref_policy is None:
            raise ValueError("beta needs ref_policy of shape (S, A) or (B, S, A)")
        ref = check_distribution(ref_policy, "ref_policy")
        if ref.shape == (S, A):
            ref = np.ascontiguousarray(np.broadcast_to(ref, (B, S, A)))
        elif ref.shape != (B, S, A):
            raise ValueError(f"ref_policy must have shape (S, A) or (B, S, A), got {ref.shape}")
        ref = normalise_rows(ref)
        with np.errstate(divide="ignore"):
            log_ref = np.ascontiguousarray(np.log(ref))
    else:
        if ref_policy is not None:
            raise ValueError("ref_policy is only used with beta")
        log_ref = np.zeros((B, S, A))
        ref = np.ones((B, S, A))
    # per MDP, so an MDP's stop (and its numbers) never depend on which batch it was solved in
    # (|V| ≤ (max|r| + τ log A)/(1−γ) for every β, entropy + KL included: the backup is exact, so β does not enter)
    extra = np.full(B, t * math.log(A))
    q = np.empty((B, S, A))
    v = np.empty((B, S))
    pol = np.empty((B, S, A))
    res = np.empty(B)
    its = np.empty(B, dtype=np.int64)
    conv = np.empty(B, dtype=np.bool_)
    _solve_batch_kernel(P, np.ascontiguousarray(R), gam, t, bt, log_ref, np.ascontiguousarray(ref), extra,
                        method == "pi", tol, max_iter, q, v, pol, res, its, conv, n_threads)
    return BatchSolution(q, v, pol, res, its, conv, method, bt or None, t or None)
