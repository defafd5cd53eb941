r"""Samples of the stochastic categorical CDF Bellman equation (reconstructed form; docs/math.md §7)."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numba
import numpy as np

from ..._validate import check_int
from .cdf_operator import _build_operator
from .monte_carlo import _simulate
from .mrp import _check_mrp, _check_support
from .projection import check_atoms, default_atoms

__all__ = ["CDFSamples", "stochastic_cdf_samples"]


@numba.njit(cache=True)
def _unroll_cdf(rec, u_index, c_rows, c_cols, c_vals, b, out):  # pragma: no cover - jitted
    """G_t = C^{(r(X_t))} G_{t+1} + b^{(r(X_t))} backwards from G_{T+1} = 0 (all mass on z_m)."""
    N, T1 = rec.shape
    m1 = b.shape[1]
    K = c_rows.shape[1]
    G = np.zeros(m1)
    H = np.zeros(m1)
    for i in range(N):
        G[:] = 0.0
        for t in range(T1 - 1, -1, -1):
            u = u_index[rec[i, t]]
            for k in range(m1):
                H[k] = b[u, k]
            for k in range(K):
                H[c_rows[u, k]] += c_vals[u, k] * G[c_cols[u, k]]
            G[:] = H
        out[i, :] = G


@dataclass
class CDFSamples:
    r"""Random CDFs of the stochastic categorical CDF Bellman equation: atoms ``(m,)``,
    cdf ``(n, m)`` (last column 1), returns ``(n,)`` realised (truncated) returns."""

    atoms: np.ndarray
    cdf: np.ndarray
    returns: np.ndarray
    horizon: int

    @property
    def probs(self) -> np.ndarray:
        return np.diff(np.concatenate([np.zeros((self.cdf.shape[0], 1)), self.cdf], axis=1), axis=1)

    @property
    def mean(self) -> np.ndarray:
        """Mean of each sampled law, z_m − ς Σ_{i<m} F_i, ``(n,)``."""
        gap = (self.atoms[-1] - self.atoms[0]) / (self.atoms.size - 1)
        return self.atoms[-1] - gap * self.cdf[:, :-1].sum(axis=1)


def stochastic_cdf_samples(P, r, gamma: float, atoms, x0: int, n: int, seed: int = 0, *,
                           tol: float = 1e-12) -> CDFSamples:
    r"""Samples of the stochastic categorical CDF Bellman equation (named in Rowland et al. 2024;
    **reconstructed form**, docs/math.md §7): a random CDF vector per state with

    .. math:: G(x) \overset{d}{=} C^{(r(x))}G(X') + b^{(r(x))},\ X'\sim P(\cdot|x);\qquad
              G(x_0) = \sum_{t\ge0} C^{(r(X_0))}\cdots C^{(r(X_{t-1}))}\,b^{(r(X_t))}

    along a trajectory X_0 = x0, X_1, …. Each sample is computed backwards,
    G_t = C^{(r(X_t))}G_{t+1} + b^{(r(X_t))} from G_{T+1} = 0 (the series cut after T terms,
    i.e. all mass on z_m beyond T, with T chosen so γ^{T+1}·(z_m − z_1)/(1 − γ)... ≤ tol).
    Every sample is a valid CDF (C ≥ 0 and C·1 + b ≤ 1) whose mean equals its realised return
    :math:`\sum_{t\le T}\gamma^t r(X_t) + \gamma^{T+1}z_m` (Π_C preserves means inside the support);
    E G(x0) is the categorical fixed point F_C(x0).

    Returns :class:`CDFSamples` (cdf ``(n, m)``, returns ``(n,)``).
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    if isinstance(atoms, numbers.Integral) and not isinstance(atoms, bool):
        atoms = default_atoms(r, gamma, atoms)
    z, gap = check_atoms(atoms)
    _check_support(z, r, gamma)
    nS = r.size
    if isinstance(x0, bool) or not isinstance(x0, (numbers.Integral, np.integer)) or not 0 <= int(x0) < nS:
        raise ValueError(f"x0 must be a state index in [0, {nS}), got {x0!r}")
    n = check_int(n, "n")
    scale = max(float(np.max(np.abs(z))), 1e-300)
    T = 0 if gamma == 0 else max(0, int(math.ceil(math.log(tol * (1 - gamma) / scale) / math.log(gamma))))
    rng = np.random.default_rng(seed)
    ret, _, disc, rec = _simulate(P, r, gamma, np.full(n, int(x0)), T, rng, record=True)
    # the last recorded state X_T contributes r(X_T)·γ^T and the cut tail γ^{T+1} z_m
    ret = ret + disc * r[rec[:, T]] + disc * gamma * z[-1]
    op = _build_operator(r, gamma, z, gap, with_block=False)
    out = np.empty((n, z.size - 1))
    _unroll_cdf(rec, op.u_index, op.c_rows, op.c_cols, op.c_vals, op.b, out)
    cdf = np.concatenate([out, np.ones((n, 1))], axis=1)
    return CDFSamples(z, cdf, ret, T)
