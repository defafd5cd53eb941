r"""BiCGSTAB for the DCFP system (I − M)F = b (docs/math.md §7) that stops on DCFP's own certified
norm: the ℓ∞,1 residual max_x Σ_i |res_{x,i}| (which bounds the sup-W1 error by ς·res/(1−γ)), checked on
the recurrence residual at each half step, instead of a 2-norm target that must be made √(m−1) times
stricter to be safe. The caller re-checks the true residual and restarts if round-off left it above.

This plain-Python version is the reference of the numba kernel ``_dcfp_fast.bicgstab`` that
categorical_fixed_point runs (same stop; tests/test_dcfp_fast.py compares them)."""
from __future__ import annotations

import numpy as np

__all__ = ["bicgstab_l1inf"]


def _dot(a, b) -> float:
    # not BLAS ddot: a threaded BLAS on short vectors is 10–100× slower on a busy 2-core machine
    return float(np.add.reduce(a * b))


def bicgstab_l1inf(apply_A, b: np.ndarray, x: np.ndarray, n: int, m1: int, stop: float, maxiter: int):
    r"""BiCGSTAB (van der Vorst 1992) on A x = b from ``x`` (returned updated); stops when the
    recurrence residual's ℓ∞,1 norm (rows of length m1) is ≤ ``stop``. Returns (x, iterations, status)
    with status 0 (stop reached), 1 (maxiter) or 2 (breakdown)."""

    def l1inf(v):
        return float(np.max(np.abs(v).reshape(n, m1).sum(axis=1)))

    r = b - apply_A(x)
    rhat = r.copy()
    p = np.zeros_like(r)
    v = np.zeros_like(r)
    rho = alpha = omega = 1.0
    for it in range(1, maxiter + 1):
        if l1inf(r) <= stop:
            return x, it - 1, 0
        rho_new = _dot(rhat, r)
        if rho_new == 0.0 or omega == 0.0:
            return x, it, 2
        beta = (rho_new / rho) * (alpha / omega)
        p = r + beta * (p - omega * v)
        v = apply_A(p)
        den = _dot(rhat, v)
        if den == 0.0:
            return x, it, 2
        alpha = rho_new / den
        r = r - alpha * v                      # s
        if l1inf(r) <= stop:
            return x + alpha * p, it, 0
        t = apply_A(r)
        tt = _dot(t, t)
        omega = _dot(t, r) / tt if tt > 0.0 else 0.0
        x = x + alpha * p + omega * r
        r = r - omega * t
        rho = rho_new
    return x, maxiter, 1
