r"""Quantile dynamic programming (QDP; docs/math.md §7; Dabney et al. 2018, Rowland et al. 2024)."""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Optional

import numba
import numpy as np
import scipy.sparse as sp

from ..._validate import check_finite, check_int, check_shape
from ..dp import ConvergenceWarning
from .mrp import _check_mrp
from .representations import Quantile

__all__ = ["QuantileFixedPoint", "quantile_levels", "quantile_dp"]


def quantile_levels(n_quantiles: int) -> np.ndarray:
    """Quantile midpoints τ_i = (2i − 1)/(2m), i = 1..m (the W1-optimal levels; Dabney et al. 2018)."""
    m = check_int(n_quantiles, "n_quantiles")
    return (2 * np.arange(1, m + 1) - 1) / (2 * m)


@numba.njit(cache=True)
def _qdp_sweep(indptr, indices, pdata, r, gamma, theta, levels, out):  # pragma: no cover - jitted
    n, m = theta.shape
    for x in range(n):
        k = 0
        for ptr in range(indptr[x], indptr[x + 1]):
            if pdata[ptr] > 0.0:
                k += m
        vals = np.empty(k)
        wts = np.empty(k)
        k = 0
        for ptr in range(indptr[x], indptr[x + 1]):
            w = pdata[ptr]
            if w > 0.0:
                x2 = indices[ptr]
                for j in range(m):
                    vals[k] = r[x] + gamma * theta[x2, j]
                    wts[k] = w / m
                    k += 1
        order = np.argsort(vals, kind="mergesort")
        cum = 0.0
        i = 0
        for t in range(k):
            cum += wts[order[t]]
            while i < m and cum >= levels[i] - 1e-12:
                out[x, i] = vals[order[t]]
                i += 1
            if i == m:
                break
        while i < m:
            out[x, i] = vals[order[k - 1]]
            i += 1


@dataclass
class QuantileFixedPoint(Quantile):
    r"""Fixed point of quantile DP: locations ``(n, m)``; residual = last sup-W∞ step;
    bound = γ·residual/(1−γ) (certified sup-W∞, hence sup-W1, distance to the QDP fixed point)."""

    residual: float = 0.0
    bound: float = 0.0
    iterations: int = 0
    converged: bool = True


def quantile_dp(P, r, gamma: float, n_quantiles: int, *, tol: float = 1e-10, max_iter: Optional[int] = None,
                x0=None) -> QuantileFixedPoint:
    r"""Quantile dynamic programming (Dabney et al. 2018; Rowland et al. 2024, §QDP):

    .. math:: \theta(x) \leftarrow \Pi_{W_1}\Big(\sum_{x'}P(x,x')\frac1m\sum_j\delta_{r(x)+\gamma\theta_j(x')}\Big),
              \qquad \Pi_{W_1}\nu = \frac1m\sum_i\delta_{F_\nu^{-1}(\tau_i)},\ \tau_i = \tfrac{2i-1}{2m}

    (:math:`F^{-1}` the generalised inverse, inf{y : F(y) ≥ τ}). The operator is a γ-contraction
    in sup-W∞, so the stop ‖θ_{k+1} − θ_k‖∞ ≤ tol(1−γ)/γ certifies the result within ``tol``.
    P ``(n, n)`` dense or sparse, r ``(n,)``, gamma in [0, 1). Returns locations ``(n, m)``.
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    m = check_int(n_quantiles, "n_quantiles")
    if not (isinstance(tol, numbers.Real) and tol > 0):
        raise ValueError(f"tol must be > 0, got {tol!r}")
    n = r.size
    Pc = sp.csr_matrix(P)
    Pc.sort_indices()
    levels = quantile_levels(m)
    theta = np.zeros((n, m)) if x0 is None else check_finite(x0, "x0").copy()
    check_shape(theta, (n, m), "x0")
    limit = max_iter if max_iter is not None else 10**7
    stop = tol * (1 - gamma) / gamma if gamma > 0 else np.inf
    out = np.empty_like(theta)
    k, d, converged = 0, np.inf, False
    while k < limit:
        _qdp_sweep(Pc.indptr.astype(np.int64), Pc.indices.astype(np.int64), Pc.data, r, gamma, theta, levels, out)
        d = float(np.max(np.abs(out - theta)))
        theta, out = out, theta
        k += 1
        if d <= stop:
            converged = True
            break
    if not converged:
        warnings.warn(f"QDP stopped at max_iter={limit} with step {d:.3e}", ConvergenceWarning)
    return QuantileFixedPoint(theta.copy(), d, gamma * d / (1 - gamma) if gamma < 1 else np.inf, k, converged)
