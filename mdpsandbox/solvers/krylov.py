r"""Policy evaluation by a Krylov solve (sparse CSR or dense) with a certified residual (docs/math.md §1, §11).

The evaluation system :math:`(I - \gamma D P_\pi)V = r_\pi` (D = diag of non-terminal states) has
:math:`\|(I - \gamma D P_\pi)^{-1}\|_\infty \le 1/(1-\gamma)`, so any approximate solution V̂ with
residual :math:`\rho = \|r_\pi - (I - \gamma DP_\pi)\hat V\|_\infty` satisfies

.. math:: \|\hat V - V^\pi\|_\infty \le \rho/(1-\gamma).

A sparse direct solve fills in on random transition graphs (seconds at S = 3000, minutes beyond),
while BiCGSTAB needs a few dozen sparse mat-vecs: P_π's spectrum away from 1 is what sets its
iteration count, not S. We iterate until the *certified* bound ρ/(1−γ) is below the requested
accuracy (checked with a true residual, not the solver's recurrence), refine once if needed, and fall
back to the direct solve only if the Krylov method stalls (never a silent inexact answer).
"""
from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["policy_system", "solve_policy_system", "KRYLOV_MIN_STATES"]

#: Sparse systems with at least this many states are solved by BiCGSTAB (below it SuperLU is as fast).
KRYLOV_MIN_STATES = 400


def policy_system(P_pi, gamma: float, terminal: np.ndarray):
    r"""The sparse CSR matrix :math:`I - \gamma\,\mathrm{diag}(1-\mathbb 1_{\mathcal T})P_\pi`."""
    S = P_pi.shape[0]
    keep = (~np.asarray(terminal, dtype=bool)).astype(np.float64)
    return (sp.identity(S, format="csr") - gamma * (sp.diags(keep) @ sp.csr_matrix(P_pi))).tocsr()


@numba.njit(cache=True)
def _csr_matvec(indptr, indices, data, x, out):
    for i in range(out.shape[0]):
        acc = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * x[indices[k]]
        out[i] = acc


@numba.njit(cache=True)
def _bicgstab(indptr, indices, data, dinv, b, x, atol, maxiter):
    r"""Right-preconditioned BiCGSTAB (van der Vorst 1992) for a CSR matrix, preconditioner
    diag(dinv); in place on x. Returns (iterations, status): status 0 = max|r| ≤ atol by the
    recurrence, 1 = maxiter, 2 = breakdown. The caller checks the true residual."""
    n = b.shape[0]
    r = np.empty(n)
    _csr_matvec(indptr, indices, data, x, r)
    for i in range(n):
        r[i] = b[i] - r[i]
    rhat = r.copy()
    p = np.zeros(n)
    v = np.zeros(n)
    y = np.empty(n)
    z = np.empty(n)
    t = np.empty(n)
    rho, alpha, omega = 1.0, 1.0, 1.0
    for it in range(1, maxiter + 1):
        rmax = 0.0
        for i in range(n):
            if abs(r[i]) > rmax:
                rmax = abs(r[i])
        if rmax <= atol:
            return it - 1, 0
        rho_new = 0.0
        for i in range(n):
            rho_new += rhat[i] * r[i]
        if rho_new == 0.0 or omega == 0.0:
            return it, 2
        beta = (rho_new / rho) * (alpha / omega)
        for i in range(n):
            p[i] = r[i] + beta * (p[i] - omega * v[i])
            y[i] = dinv[i] * p[i]
        _csr_matvec(indptr, indices, data, y, v)
        den = 0.0
        for i in range(n):
            den += rhat[i] * v[i]
        if den == 0.0:
            return it, 2
        alpha = rho_new / den
        for i in range(n):
            r[i] = r[i] - alpha * v[i]          # r now holds s
            z[i] = dinv[i] * r[i]
        _csr_matvec(indptr, indices, data, z, t)
        tt = 0.0
        ts = 0.0
        for i in range(n):
            tt += t[i] * t[i]
            ts += t[i] * r[i]
        omega = ts / tt if tt > 0.0 else 0.0
        for i in range(n):
            x[i] += alpha * y[i] + omega * z[i]
            r[i] = r[i] - omega * t[i]
        rho = rho_new
    return maxiter, 1


def solve_policy_system(M, r: np.ndarray, gamma: float, *, x0=None, rel_tol: float = 1e-12,
                        method: str = "auto"):
    r"""Solve ``M V = r`` for the policy-evaluation matrix ``M = I − γDP_π`` (CSR, ``(S, S)``).

    Returns ``(V, info)`` with info = dict(method, iterations, residual ρ, bound = ρ/(1−γ)).
    ``method``: "krylov" (BiCGSTAB with a Jacobi preconditioner, warm-started at ``x0``), "direct"
    (SuperLU) or "auto" (Krylov for γ < 1 and S ≥ :data:`KRYLOV_MIN_STATES`). The Krylov answer is
    accepted only when the certified bound is ≤ ``rel_tol``·(1 + ‖V‖∞)/(1−γ)·(1−γ) — i.e. the true
    residual is at round-off level relative to the values — otherwise refined, then solved directly.
    """
    S = M.shape[0]
    r = np.asarray(r, dtype=np.float64)
    if method not in ("auto", "krylov", "direct"):
        raise ValueError(f"method must be 'auto', 'krylov' or 'direct', got {method!r}")
    use_krylov = method == "krylov" or (method == "auto" and gamma < 1.0 and S >= KRYLOV_MIN_STATES)
    if isinstance(M, np.ndarray):
        return _solve_dense(M, r, gamma, x0, rel_tol, use_krylov)
    if use_krylov and gamma < 1.0:
        M = sp.csr_matrix(M, dtype=np.float64)
        M.sort_indices()
        dinv = 1.0 / M.diagonal()
        x = np.zeros(S) if x0 is None else np.array(x0, dtype=np.float64, copy=True)
        scale = 1.0 + float(np.max(np.abs(r))) / (1.0 - gamma)
        target = rel_tol * scale * (1.0 - gamma)        # residual that certifies |error| <= rel_tol·scale
        total = 0
        for _ in range(3):                               # solve, then at most two restarts from x
            its, status = _bicgstab(M.indptr, M.indices, M.data, dinv, r, x, 0.5 * target, max(200, S // 10))
            total += its
            if not np.all(np.isfinite(x)):
                break
            res = float(np.max(np.abs(r - M @ x))) if S else 0.0
            # the true residual cannot go below its float64 round-off ~ ε·(|r| + ‖M‖∞|x|)
            floor = 64 * np.finfo(np.float64).eps * (float(np.max(np.abs(r))) + 2.0 * float(np.max(np.abs(x))))
            if res <= max(target, floor):
                return x, dict(method="bicgstab", iterations=total, residual=res, bound=res / (1.0 - gamma))
    v = spla.spsolve(M.tocsc(), r)
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    res = float(np.max(np.abs(r - M @ v))) if S and np.all(np.isfinite(v)) else float("inf")
    bound = res / (1.0 - gamma) if gamma < 1.0 else float("nan")
    return v, dict(method="direct", iterations=1, residual=res, bound=bound)


def _dot(a, b) -> float:
    # not BLAS ddot: a threaded BLAS on short vectors is 10–100× slower on a busy 2-core machine
    return float(np.add.reduce(a * b))


def _bicgstab_dense(M, b, x, atol, maxiter):
    """BiCGSTAB (van der Vorst 1992) with the dense mat-vec ``M @ x`` (one BLAS GEMV each) and a Jacobi
    preconditioner; stops when the recurrence residual's max-norm ≤ atol. Returns (x, iterations)."""
    dinv = 1.0 / np.diag(M)
    r = b - M @ x
    rhat = r.copy()
    p = np.zeros_like(r)
    v = np.zeros_like(r)
    rho = alpha = omega = 1.0
    for it in range(1, maxiter + 1):
        if np.max(np.abs(r)) <= atol:
            return x, it - 1
        rho_new = _dot(rhat, r)
        if rho_new == 0.0 or omega == 0.0:
            return x, it
        p = r + (rho_new / rho) * (alpha / omega) * (p - omega * v)
        y = dinv * p
        v = M @ y
        den = _dot(rhat, v)
        if den == 0.0:
            return x, it
        alpha = rho_new / den
        r = r - alpha * v
        z = dinv * r
        t = M @ z
        tt = _dot(t, t)
        omega = _dot(t, r) / tt if tt > 0.0 else 0.0
        x = x + alpha * y + omega * z
        r = r - omega * t
        rho = rho_new
    return x, maxiter


def _solve_dense(M, r, gamma, x0, rel_tol, use_krylov):
    """Dense ``(S, S)`` policy system: BiCGSTAB (a few dozen GEMVs, O(S²) each, instead of an O(S³)
    LU) accepted only with a certified residual; LAPACK otherwise."""
    S = M.shape[0]
    if use_krylov and gamma < 1.0:
        x = np.zeros(S) if x0 is None else np.array(x0, dtype=np.float64, copy=True)
        scale = 1.0 + float(np.max(np.abs(r))) / (1.0 - gamma)
        target = rel_tol * scale * (1.0 - gamma)
        total = 0
        for _ in range(3):
            x, its = _bicgstab_dense(M, r, x, 0.5 * target, max(200, S // 5))
            total += its
            if not np.all(np.isfinite(x)):
                break
            res = float(np.max(np.abs(r - M @ x)))
            floor = 64 * np.finfo(np.float64).eps * (float(np.max(np.abs(r))) + 2.0 * float(np.max(np.abs(x))))
            if res <= max(target, floor):
                return x, dict(method="bicgstab", iterations=total, residual=res, bound=res / (1.0 - gamma))
    v = np.linalg.solve(M, r)
    res = float(np.max(np.abs(r - M @ v))) if np.all(np.isfinite(v)) else float("inf")
    return v, dict(method="direct", iterations=1, residual=res,
                   bound=res / (1.0 - gamma) if gamma < 1.0 else float("nan"))
