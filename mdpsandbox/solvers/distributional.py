r"""Distributional dynamic programming for a Markov reward process (MATH.md §7).

Policy evaluation of the *law* of the return :math:`G(x) = \sum_t \gamma^t r(X_t)` of a Markov
reward process (MRP) with transition matrix P ``(n, n)`` (dense or scipy.sparse) and rewards
r ``(n,)``; an (MDP, policy) pair is reduced to the MRP on state–action pairs
(:func:`policy_mrp`).

Representations
    :class:`Categorical` (atoms ``(m,)`` + probabilities ``(..., m)``, with a CDF view),
    :class:`Quantile` (``m`` equally weighted locations ``(..., m)``) and :class:`DiscreteLaw`
    (an exact finite law: values + probabilities).
Distances
    :func:`wasserstein1` :math:`=\int|F-G|`, :func:`cramer` :math:`=(\int(F-G)^2)^{1/2}`,
    :func:`ks` :math:`=\sup|F-G|`, and ``sup_*`` forms (max over states).
Projection
    :func:`categorical_projection`: the hat-function projection Π_C (Rowland et al. 2018).
Fixed points
    :func:`categorical_fixed_point` — CDP (iterate Π_C T^π, certified stop) or DCFP (one linear
    solve of (I − M)F = b in CDF form; Rowland et al. 2024, "Near-minimax-optimal distributional
    reinforcement learning with a generative model"); :func:`quantile_dp` (QDP, W1 projection).
Generative model
    :func:`empirical_model` (P̂ from N draws per row).
Stochastic categorical CDF Bellman equation
    :func:`stochastic_cdf_samples` (reconstructed form, see its docstring).
Ground truth
    :func:`monte_carlo_returns` (numba, seeded, truncated with an explicit tail bound).
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Optional, Union

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._validate import STOCHASTIC_ATOL, check_finite, check_gamma, check_int, check_shape, check_stochastic_rows
from ..envs.tabular import TabularMDP
from .dp import ConvergenceWarning

__all__ = [
    "Categorical",
    "Quantile",
    "DiscreteLaw",
    "CategoricalFixedPoint",
    "QuantileFixedPoint",
    "PolicyReturnDistributions",
    "CDFSamples",
    "as_values_probs",
    "wasserstein1",
    "cramer",
    "ks",
    "sup_wasserstein1",
    "sup_cramer",
    "sup_ks",
    "check_atoms",
    "default_atoms",
    "categorical_projection",
    "categorical_cdf_operator",
    "categorical_bellman_cdf",
    "categorical_fixed_point",
    "categorical_policy_evaluation",
    "policy_mrp",
    "quantile_dp",
    "quantile_levels",
    "empirical_model",
    "monte_carlo_returns",
    "stochastic_cdf_samples",
]


# ====================================================================== representations
@dataclass
class Categorical:
    r"""A batch of categorical laws on shared atoms: :math:`\eta = \sum_i p_i\delta_{z_i}`.

    atoms ``(m,)`` strictly increasing; probs ``(..., m)`` (rows sum to 1).
    ``cdf`` ``(..., m)``: :math:`F_i = P(G \le z_i)` (last entry 1).
    """

    atoms: np.ndarray
    probs: np.ndarray

    @property
    def cdf(self) -> np.ndarray:
        return np.cumsum(self.probs, axis=-1)

    @property
    def mean(self) -> np.ndarray:
        """E G, shape ``probs.shape[:-1]``."""
        return self.probs @ self.atoms

    @property
    def variance(self) -> np.ndarray:
        mu = self.mean
        return self.probs @ (self.atoms**2) - mu**2

    def __getitem__(self, index) -> "Categorical":
        return Categorical(self.atoms, self.probs[index])

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.probs, dtype=dtype)


@dataclass
class Quantile:
    r"""A batch of quantile laws :math:`\frac1m\sum_i\delta_{\theta_i}`: locations ``(..., m)``."""

    locations: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        m = self.locations.shape[-1]
        return np.full(self.locations.shape, 1.0 / m)

    @property
    def mean(self) -> np.ndarray:
        return self.locations.mean(axis=-1)

    def __getitem__(self, index) -> "Quantile":
        return Quantile(self.locations[index])

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.locations, dtype=dtype)


@dataclass
class DiscreteLaw:
    r"""An exact finite law :math:`\sum_k p_k\delta_{v_k}`: values ``(k,)`` sorted, probs ``(k,)``."""

    values: np.ndarray
    probs: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.probs @ self.values)

    def cdf(self, y) -> np.ndarray:
        """F(y) = P(G ≤ y) at the points ``y``."""
        y = np.asarray(y, dtype=np.float64)
        c = np.concatenate([[0.0], np.cumsum(self.probs)])
        return c[np.searchsorted(self.values, y, side="right")]


def as_values_probs(dist, name: str = "dist") -> tuple[np.ndarray, np.ndarray]:
    """``(values (..., k), probs (..., k))`` of a :class:`Categorical`, :class:`Quantile`,
    :class:`DiscreteLaw`, a ``(values, probs)`` pair, or a 1-D/2-D array of samples (equal weights)."""
    if isinstance(dist, Categorical):
        return np.broadcast_to(dist.atoms, dist.probs.shape), np.asarray(dist.probs, dtype=np.float64)
    if isinstance(dist, Quantile):
        return np.asarray(dist.locations, dtype=np.float64), dist.probs
    if isinstance(dist, DiscreteLaw):
        return np.asarray(dist.values, dtype=np.float64), np.asarray(dist.probs, dtype=np.float64)
    if isinstance(dist, tuple) and len(dist) == 2:
        v = check_finite(dist[0], f"{name}[0] (values)")
        p = check_finite(dist[1], f"{name}[1] (probs)")
        shape = np.broadcast_shapes(v.shape, p.shape)
        return np.broadcast_to(v, shape), np.broadcast_to(p, shape)
    a = check_finite(dist, name)
    if a.ndim == 0:
        raise ValueError(f"{name} must be a distribution object, a (values, probs) pair or an array of samples")
    return a, np.full(a.shape, 1.0 / a.shape[-1])


# ====================================================================== distances
def _signed_cdf_diff(p, q):
    """Sorted merged support and F_p − F_q on each interval [v_j, v_{j+1}) (batched)."""
    vp, pp = as_values_probs(p, "p")
    vq, pq = as_values_probs(q, "q")
    lead = np.broadcast_shapes(vp.shape[:-1], vq.shape[:-1])
    vp = np.broadcast_to(vp, lead + vp.shape[-1:])
    pp = np.broadcast_to(pp, lead + pp.shape[-1:])
    vq = np.broadcast_to(vq, lead + vq.shape[-1:])
    pq = np.broadcast_to(pq, lead + pq.shape[-1:])
    v = np.concatenate([vp, vq], axis=-1)
    w = np.concatenate([pp, -pq], axis=-1)
    order = np.argsort(v, axis=-1, kind="stable")
    v = np.take_along_axis(v, order, axis=-1)
    d = np.cumsum(np.take_along_axis(w, order, axis=-1), axis=-1)
    return v, d


def wasserstein1(p, q) -> np.ndarray:
    r""":math:`W_1(p, q) = \int |F_p(y) - F_q(y)|\,dy`, batched over leading axes.

    ``p``, ``q``: any of :func:`as_values_probs`'s inputs (laws with their own supports are merged
    exactly; on a shared grid this is :math:`\varsigma\sum_{i<m}|F_i - G_i|`)."""
    v, d = _signed_cdf_diff(p, q)
    return np.sum(np.abs(d[..., :-1]) * np.diff(v, axis=-1), axis=-1)


def cramer(p, q) -> np.ndarray:
    r"""Cramér (ℓ2) distance :math:`\big(\int (F_p - F_q)^2\,dy\big)^{1/2}`, batched."""
    v, d = _signed_cdf_diff(p, q)
    return np.sqrt(np.sum(d[..., :-1] ** 2 * np.diff(v, axis=-1), axis=-1))


def ks(p, q) -> np.ndarray:
    r"""Kolmogorov–Smirnov distance :math:`\sup_y |F_p(y) - F_q(y)|`, batched (ties merged)."""
    v, d = _signed_cdf_diff(p, q)
    last_of_tie = np.concatenate([np.diff(v, axis=-1) > 0, np.ones(v.shape[:-1] + (1,), bool)], axis=-1)
    return np.max(np.where(last_of_tie, np.abs(d), 0.0), axis=-1)


def sup_wasserstein1(p, q) -> float:
    r""":math:`\sup_x W_1(p(x), q(x))` over every leading (state) index."""
    return float(np.max(wasserstein1(p, q)))


def sup_cramer(p, q) -> float:
    r""":math:`\sup_x \ell_2(p(x), q(x))`."""
    return float(np.max(cramer(p, q)))


def sup_ks(p, q) -> float:
    r""":math:`\sup_x \mathrm{KS}(p(x), q(x))`."""
    return float(np.max(ks(p, q)))


# ====================================================================== atoms and projection
def check_atoms(atoms, name: str = "atoms", *, even: bool = True) -> tuple[np.ndarray, float]:
    """Validate a support: 1-D, at least 2 atoms, finite, strictly increasing and (``even``)
    evenly spaced (relative tolerance 1e-9). Returns ``(atoms, gap)`` (gap = mean spacing)."""
    z = check_finite(atoms, name)
    if z.ndim != 1 or z.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 atoms, got shape {z.shape}")
    dz = np.diff(z)
    if np.any(dz <= 0):
        i = int(np.argmax(dz <= 0))
        raise ValueError(f"{name} must be strictly increasing; {name}[{i}] = {z[i]!r} >= {name}[{i + 1}] = {z[i + 1]!r}")
    gap = float((z[-1] - z[0]) / (z.size - 1))
    if even and np.max(np.abs(dz - gap)) > 1e-9 * max(gap, 1e-300) + 1e-12 * max(1.0, float(np.max(np.abs(z)))):
        raise ValueError(f"{name} must be evenly spaced (the CDF form of the categorical operator needs one gap); "
                         f"spacings range over [{dz.min()!r}, {dz.max()!r}]")
    return z, gap


def default_atoms(r, gamma: float, n_atoms: int) -> np.ndarray:
    r"""``n_atoms`` evenly spaced atoms on :math:`[\min r/(1-\gamma), \max r/(1-\gamma)]` (MATH.md §7):
    with this range every target r + γ z_j stays inside the support (no clipping). A constant
    reward gets the interval ±1 around r/(1−γ)."""
    r = check_finite(r, "r")
    gamma = check_gamma(gamma, allow_one=False)
    m = check_int(n_atoms, "n_atoms", minimum=2)
    lo, hi = float(r.min()) / (1 - gamma), float(r.max()) / (1 - gamma)
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        lo, hi = lo - 1.0, hi + 1.0
    return np.linspace(lo, hi, m)


def categorical_projection(atoms, values, probs=None) -> np.ndarray:
    r"""Hat-function projection Π_C onto a categorical support (Rowland et al. 2018, "An analysis
    of categorical distributional reinforcement learning", Prop. 1):

    .. math:: \Pi_C\Big(\sum_k q_k\delta_{y_k}\Big) = \sum_i\Big(\sum_k q_k\,h_i(y_k)\Big)\delta_{z_i},
              \qquad h_i(y) = \Big(1 - \frac{|y - z_i|}{z_{i\pm1} - z_i}\Big)_+

    (the right gap for y > z_i, the left gap for y < z_i), with y first clipped to
    [z_1, z_m] so that mass outside the range goes entirely to the end atom. For y in
    [z_i, z_{i+1}] only two hats are non-zero: weight (z_{i+1} − y)/(z_{i+1} − z_i) on z_i and the
    complement on z_{i+1}; the cell is found with ``searchsorted`` and the upper weight is
    ``1 − lower``, so a value exactly on an atom puts all its mass there and every Dirac's
    mass sums to 1 (the floor/ceil form drops it — a recurring C51 bug).

    atoms : ``(m,)`` strictly increasing (uneven spacing allowed here).
    values : ``(..., k)`` Dirac locations y_k.
    probs : ``(..., k)`` weights q_k (broadcast with ``values``; default uniform 1/k).
    Returns ``(..., m)`` probabilities on the atoms (batched over the leading axes).
    """
    z, _ = check_atoms(atoms, even=False)
    y = check_finite(values, "values")
    if y.ndim == 0:
        y = y[None]
    if probs is None:
        q = np.full(y.shape, 1.0 / y.shape[-1])
    else:
        q = check_finite(probs, "probs")
        if q.ndim == 0:
            q = q[None]
    shape = np.broadcast_shapes(y.shape, q.shape)
    y = np.broadcast_to(y, shape)
    q = np.broadcast_to(q, shape)
    m = z.size
    yc = np.clip(y, z[0], z[-1])
    i = np.clip(np.searchsorted(z, yc, side="right") - 1, 0, m - 2)  # cell [z_i, z_{i+1}] holding y
    lower = (z[i + 1] - yc) / (z[i + 1] - z[i])                     # hat of z_i at y
    upper = 1.0 - lower                                             # hat of z_{i+1} at y
    lead = shape[:-1]
    B = int(np.prod(lead)) if lead else 1
    base = (np.arange(B) * m).reshape(lead + (1,)) if lead else np.zeros((1,), np.int64)
    idx_lo = (base + i).ravel()
    out = np.bincount(idx_lo, weights=(q * lower).ravel(), minlength=B * m)
    out += np.bincount(idx_lo + 1, weights=(q * upper).ravel(), minlength=B * m)
    return out.reshape(lead + (m,))


# ====================================================================== MRP input
def _check_mrp(P, r, gamma):
    """Validate an MRP: P ``(n, n)`` dense or sparse, non-negative, rows sum to 1; r ``(n,)``
    finite; γ in [0, 1). Returns (P as float ndarray or CSR, r, gamma)."""
    gamma = check_gamma(gamma, allow_one=False)
    if not sp.issparse(P):
        P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 1:
        raise ValueError(f"P must be a square (n, n) matrix (dense or sparse), got shape {np.shape(P)}")
    Pm = check_stochastic_rows(P, "P")
    n = Pm.shape[0]
    r = check_finite(r, "r")
    check_shape(r, (n,), "r")
    return Pm, r, gamma


def _check_support(z: np.ndarray, r: np.ndarray, gamma: float, name: str = "atoms") -> None:
    """Refuse a support that cannot hold the returns: the categorical operator keeps every target
    r + γ z_j inside [z_1, z_m] iff z_1 ≤ min r/(1−γ) and z_m ≥ max r/(1−γ). Never clip silently."""
    lo, hi = float(r.min()) / (1 - gamma), float(r.max()) / (1 - gamma)
    tol = 1e-9 * max(1.0, abs(lo), abs(hi), float(np.max(np.abs(z))))
    if z[0] > lo + tol or z[-1] < hi - tol:
        raise ValueError(
            f"{name} span [{z[0]:.6g}, {z[-1]:.6g}] but returns range over [min r, max r]/(1 - gamma) = "
            f"[{lo:.6g}, {hi:.6g}]: the support cannot hold the returns (targets r + gamma*z would be "
            f"clipped); widen it, e.g. default_atoms(r, gamma, m)")


# ====================================================================== CDF form of the categorical operator
@dataclass(frozen=True)
class _CDFOperator:
    """Sparse pieces of (T F)(x) = C^{(r(x))} (P F)(x) + b^{(r(x))} (see categorical_cdf_operator)."""

    u_index: np.ndarray   # (n,) index of r(x) among the distinct rewards
    c_rows: np.ndarray    # (U, K) row index of each stored entry of C^{(u)} (K = 2(m-1))
    c_cols: np.ndarray    # (U, K)
    c_vals: np.ndarray    # (U, K)
    b: np.ndarray         # (U, m-1)
    blockC: sp.csr_matrix  # (n(m-1), n(m-1)) blockdiag_x C^{(r(x))}
    bvec: np.ndarray       # (n(m-1),)


def categorical_cdf_operator(r, gamma: float, atoms):
    r"""The matrices of the categorical Bellman operator in CDF form (MATH.md §7):

    .. math:: g_i(y) = \mathrm{clip}\big((z_{i+1} - y)/\varsigma, 0, 1\big),\quad
              C^{(r)}_{ij} = g_i(r + \gamma z_j) - g_i(r + \gamma z_{j+1}),\quad
              b^{(r)}_i = g_i(r + \gamma z_m),\qquad i, j = 1..m-1.

    g_i(y) is the projected CDF at z_i of a Dirac at y, so with F_j = P(G ≤ z_j) and p_j =
    F_j − F_{j−1} summation by parts gives Π_C(law of r + γG) = C F + b. C ≥ 0 has at most two
    non-zeros per column (the target interval [r+γz_j, r+γz_{j+1}] is shorter than ς) and every
    column sums to γ (when the support holds the returns).

    r : ``(n,)`` rewards; atoms ``(m,)`` evenly spaced. Returns ``(C, b)`` with C ``(n, m-1, m-1)``
    and b ``(n, m-1)`` dense (for inspection and tests; solvers use the sparse form).
    """
    r = check_finite(r, "r")
    if r.ndim == 0:
        r = r[None]
    gamma = check_gamma(gamma, allow_one=False)
    z, gap = check_atoms(atoms)
    op = _build_operator(r, gamma, z, gap, with_block=False)
    m1 = z.size - 1
    U = op.b.shape[0]
    C = np.zeros((U, m1, m1))
    for u in range(U):
        np.add.at(C[u], (op.c_rows[u], op.c_cols[u]), op.c_vals[u])
    return C[op.u_index], op.b[op.u_index]


def _build_operator(r: np.ndarray, gamma: float, z: np.ndarray, gap: float, with_block: bool = True) -> _CDFOperator:
    m = z.size
    m1 = m - 1
    uniq, u_index = np.unique(r, return_inverse=True)
    U = uniq.size
    y = uniq[:, None] + gamma * z[None, :]                       # (U, m) targets r + γ z_j
    cell = np.searchsorted(z, y, side="right") - 1               # cell of each target, −1..m−1
    j = np.arange(m1)
    rows, cols, vals = [], [], []
    for shift in (0, 1):  # the non-zero rows of column j lie in {cell(y_j), cell(y_j) + 1}
        i = cell[:, :m1] + shift                                  # (U, m−1)
        ok = (i >= 0) & (i <= m - 2)
        ic = np.clip(i, 0, m - 2)
        zi1 = z[ic + 1]
        v = (np.clip((zi1 - y[:, :m1]) / gap, 0.0, 1.0) - np.clip((zi1 - y[:, 1:]) / gap, 0.0, 1.0))
        v = np.where(ok, v, 0.0)
        rows.append(ic)
        cols.append(np.broadcast_to(j, (U, m1)))
        vals.append(v)
    c_rows = np.concatenate(rows, axis=1).astype(np.int64)
    c_cols = np.concatenate(cols, axis=1).astype(np.int64)
    c_vals = np.concatenate(vals, axis=1)
    b = np.clip((z[None, 1:] - y[:, m1:m]) / gap, 0.0, 1.0)        # (U, m−1) g_i(r + γ z_m)
    blockC, bvec = None, None
    if with_block:
        n = r.size
        off = (np.arange(n) * m1)[:, None]
        R = (c_rows[u_index] + off).ravel()
        Cc = (c_cols[u_index] + off).ravel()
        V = c_vals[u_index].ravel()
        keep = V != 0.0
        blockC = sp.csr_matrix((V[keep], (R[keep], Cc[keep])), shape=(n * m1, n * m1))
        bvec = b[u_index].ravel()
    return _CDFOperator(u_index.astype(np.int64), c_rows, c_cols, c_vals, b, blockC, bvec)


def categorical_bellman_cdf(P, r, gamma: float, atoms, cdf) -> np.ndarray:
    r"""One application of the projected categorical Bellman operator Π_C T^π in CDF form:
    :math:`(TF)(x) = C^{(r(x))}\sum_{x'}P(x,x')F(x') + b^{(r(x))}`.

    P ``(n, n)`` dense or sparse, r ``(n,)``, atoms ``(m,)`` evenly spaced, cdf ``(n, m-1)`` or
    ``(n, m)`` (the last column, 1, is ignored). Returns ``(n, m-1)``."""
    P, r, gamma = _check_mrp(P, r, gamma)
    z, gap = check_atoms(atoms)
    _check_support(z, r, gamma)
    F = check_finite(cdf, "cdf")
    m1 = z.size - 1
    if F.ndim == 2 and F.shape[1] == z.size:
        F = F[:, :m1]
    check_shape(F, (r.size, m1), "cdf")
    op = _build_operator(r, gamma, z, gap)
    return (op.blockC @ np.asarray(P @ F).ravel() + op.bvec).reshape(r.size, m1)


# ====================================================================== fixed points
@dataclass
class CategoricalFixedPoint(Categorical):
    r"""The categorical fixed point η_C = Π_C T^π η_C of an MRP: atoms ``(m,)``, probs ``(n, m)``
    (``np.asarray(result)`` gives probs).

    residual : :math:`\max_x\sum_i|((I-M)F - b)_{x,i}|` (ℓ∞,1 norm of the linear-system residual;
        for CDP, of the last step F_{k+1} − F_k).
    bound : certified :math:`\sup_x W_1(\hat\eta(x), \eta_C(x))` — Π_C T^π is a γ-contraction in
        :math:`\varsigma\|\cdot\|_{\infty,1}` on CDF vectors (every column of C sums to γ), so DCFP:
        ς·residual/(1−γ); CDP: γ ς·residual/(1−γ).
    """

    residual: float = 0.0
    bound: float = 0.0
    iterations: int = 0
    method: str = ""
    converged: bool = True
    solver: str = ""


def _cdf_to_probs(F: np.ndarray, tol: float) -> np.ndarray:
    """(n, m−1) CDF values → (n, m) probabilities; round-off negatives (≤ tol) are clipped."""
    n = F.shape[0]
    full = np.concatenate([np.zeros((n, 1)), F, np.ones((n, 1))], axis=1)
    p = np.diff(full, axis=1)
    worst = float(p.min())
    if worst < -tol:
        raise ValueError(f"categorical solve produced a non-monotone CDF (min increment {worst:.3e}); "
                         "the linear solve did not converge")
    p = np.maximum(p, 0.0)
    return p / p.sum(axis=1, keepdims=True)


def categorical_fixed_point(P, r, gamma: float, atoms, *, method: str = "dcfp", tol: float = 1e-10,
                            max_iter: Optional[int] = None, solver: str = "auto", x0=None,
                            progress: bool = False) -> CategoricalFixedPoint:
    r"""The categorical fixed point :math:`\eta_C = \Pi_C T^\pi\eta_C` of an MRP (MATH.md §7).

    In CDF form :math:`F_i(x) = P(G(x)\le z_i)`, i = 1..m−1, the projected operator is affine,
    :math:`TF = MF + b` with :math:`M = \mathrm{blockdiag}_x(C^{(r(x))})(P\otimes I_{m-1})`
    (:func:`categorical_cdf_operator`), and ρ(M) = γ.

    * ``method="cdp"`` — categorical dynamic programming (Rowland et al. 2018): F ← MF + b until
      the certified sup-W1 error γ ς‖ΔF‖∞,1/(1−γ) ≤ tol.
    * ``method="dcfp"`` — direct categorical fixed point (Rowland et al. 2024, "Near-minimax-optimal
      distributional reinforcement learning with a generative model"): solve (I − M)F = b.
      ``solver="bicgstab"`` (the "auto" default; ``"gmres"`` also available) applies M matrix-free (one sparse P @ F and one
      block-diagonal C product per iteration) and restarts until the certified bound
      ς‖b − (I−M)F‖∞,1/(1−γ) ≤ tol; ``solver="splu"`` factorises the sparse n(m−1) system
      (exact but suffers fill-in at large m; see benchmarks/bench_dcfp.py).

    P : ``(n, n)`` dense or scipy.sparse, stochastic. r : ``(n,)``. gamma in [0, 1).
    atoms : ``(m,)`` evenly spaced atoms holding the returns (z_1 ≤ min r/(1−γ), z_m ≥ max r/(1−γ)),
        or an int m for :func:`default_atoms`.
    x0 : optional initial CDF ``(n, m-1)`` for the iterative methods (DCFP's Krylov default: the
        projected Dirac at V^π, whose mean is already exact).
    Returns :class:`CategoricalFixedPoint` (probs ``(n, m)``, residual, certified bound, iterations).
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    if isinstance(atoms, numbers.Integral) and not isinstance(atoms, bool):
        atoms = default_atoms(r, gamma, atoms)
    z, gap = check_atoms(atoms)
    _check_support(z, r, gamma)
    if method not in ("dcfp", "cdp"):
        raise ValueError(f"method must be 'dcfp' or 'cdp', got {method!r}")
    if solver not in ("auto", "gmres", "bicgstab", "splu"):
        raise ValueError(f"solver must be 'auto', 'gmres', 'bicgstab' or 'splu', got {solver!r}")
    if not (isinstance(tol, numbers.Real) and tol > 0):
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter")
    n, m = r.size, z.size
    m1 = m - 1
    if x0 is not None:
        x0 = check_finite(x0, "x0")
        check_shape(x0, (n, m1), "x0")
    op = _build_operator(r, gamma, z, gap)
    Ps = P if sp.issparse(P) else (sp.csr_matrix(P) if np.count_nonzero(P) < 0.25 * P.size else P)
    C, bvec = op.blockC, op.bvec

    def apply_M(F2: np.ndarray) -> np.ndarray:
        return C @ np.asarray(Ps @ F2).ravel()

    def l1inf(vec: np.ndarray) -> float:
        return float(np.max(np.sum(np.abs(vec.reshape(n, m1)), axis=1)))

    if method == "cdp":
        F = np.zeros((n, m1)) if x0 is None else x0.copy()
        F_flat = F.ravel()
        limit = max_iter if max_iter is not None else 10**7
        k, d, converged = 0, np.inf, False
        # certified: ‖F_{k+1} − F*‖ ≤ γ/(1−γ)‖F_{k+1} − F_k‖ in ς‖·‖∞,1 (= sup-W1)
        stop = tol * (1 - gamma) / (gamma * gap) if gamma > 0 else np.inf
        while k < limit:
            new = apply_M(F_flat.reshape(n, m1)) + bvec
            d = l1inf(new - F_flat)
            F_flat = new
            k += 1
            if d <= stop or d == 0.0:
                converged = True
                break
        if not converged:
            warnings.warn(f"CDP stopped at max_iter={limit} with step {d:.3e} (needs {stop:.3e})", ConvergenceWarning)
        bound = gamma * gap * d / (1 - gamma)
        probs = _cdf_to_probs(F_flat.reshape(n, m1), tol=max(1e-9, 10 * d))
        return CategoricalFixedPoint(z, probs, d, bound, k, "cdp", converged, "iteration")

    N = n * m1
    stop = tol * (1 - gamma) / gap
    if solver == "splu":
        A = (sp.identity(N, format="csc") - (C @ sp.kron(sp.csr_matrix(Ps), sp.identity(m1), format="csr"))).tocsc()
        F_flat = spla.splu(A).solve(bvec)
        res = l1inf(bvec - (F_flat - apply_M(F_flat.reshape(n, m1))))
        iters = 1
    else:
        kind = "bicgstab" if solver == "auto" else solver
        A = spla.LinearOperator((N, N), matvec=lambda v: v - apply_M(v.reshape(n, m1)), dtype=np.float64)
        if x0 is None:
            # warm start at the projected Dirac at V^π = (I − γP)^{-1} r: the fixed point has this mean,
            # and it halves the Krylov iterations on garnets at γ = 0.99 (benchmarks/bench_dcfp.py)
            if sp.issparse(Ps):
                v = spla.spsolve((sp.identity(n, format="csc") - gamma * sp.csc_matrix(Ps)), r)
            else:
                v = np.linalg.solve(np.eye(n) - gamma * Ps, r)
            F_flat = np.cumsum(categorical_projection(z, np.asarray(v)[:, None]), axis=1)[:, :m1].ravel()
        else:
            F_flat = x0.ravel().copy()
        iters = 0
        rounds = max_iter if max_iter is not None else 50
        res = l1inf(bvec - A.matvec(F_flat))
        counter = {"k": 0}

        def cb(_):
            counter["k"] += 1

        for _ in range(rounds):
            if res <= stop:
                break
            rhs = bvec - A.matvec(F_flat)
            # relative 2-norm target chosen so the ∞,1 residual lands below `stop`:
            # max_x ‖e_x‖_1 ≤ √(m−1) max_x ‖e_x‖_2 ≤ √(m−1) ‖e‖_2 (the final check below certifies it)
            rtol = max(min(0.5, stop / (np.sqrt(m1) * max(np.linalg.norm(rhs), 1e-300))), 1e-15)
            if kind == "gmres":
                dx, _info = spla.gmres(A, rhs, rtol=rtol, atol=0.0, restart=min(N, 200), maxiter=50,
                                       callback=cb, callback_type="pr_norm")
            else:
                dx, _info = spla.bicgstab(A, rhs, rtol=rtol, atol=0.0, maxiter=20 * N, callback=cb)
            F_flat = F_flat + dx
            res = l1inf(bvec - A.matvec(F_flat))
        iters = counter["k"]
        kind_used = kind
    converged = res <= stop
    if not converged:
        warnings.warn(f"DCFP solve residual {res:.3e} above the target {stop:.3e}", ConvergenceWarning)
    bound = gap * res / (1 - gamma)
    probs = _cdf_to_probs(F_flat.reshape(n, m1), tol=max(1e-9, 10 * res))
    return CategoricalFixedPoint(z, probs, res, bound, iters, "dcfp", bool(converged),
                                 "splu" if solver == "splu" else kind_used)


# ====================================================================== (MDP, policy)
def policy_mrp(mdp: TabularMDP, policy) -> tuple[sp.csr_matrix, np.ndarray]:
    r"""The MRP on state–action pairs of (MDP, π): X = (s, a) with reward r(s, a) and
    :math:`P((s,a)\to(s',a')) = P(s'|s,a)\,\pi(a'|s')`. Terminal states are absorbing with
    return 0 (self-loop, reward 0). Returns (P ``(S*A, S*A)`` CSR, r ``(S*A,)``), pair index s*A + a."""
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    from .._validate import check_distribution

    pi = check_distribution(policy, "policy")
    S, A = mdp.n_states, mdp.n_actions
    check_shape(pi, (S, A), "policy")
    D = sp.csr_matrix((pi.ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A))
    P2 = sp.csr_matrix(mdp.P2)
    Pp = (P2 @ D).tocsr()
    r = mdp.R.ravel().copy()
    term = np.repeat(mdp.terminal, A)
    if term.any():
        keep = sp.diags((~term).astype(np.float64))
        loops = sp.diags(term.astype(np.float64))
        Pp = (keep @ Pp + loops).tocsr()
        r[term] = 0.0
    Pp.eliminate_zeros()
    return Pp, r


@dataclass
class PolicyReturnDistributions:
    r"""Categorical return laws of a policy: ``state`` probs ``(S, m)`` (η(s) = Σ_a π(a|s) η(s,a))
    and ``state_action`` probs ``(S, A, m)`` on shared ``atoms``; ``fixed_point`` holds the
    solve's residual / bound of the state–action MRP."""

    atoms: np.ndarray
    state: Categorical
    state_action: Categorical
    fixed_point: CategoricalFixedPoint


def categorical_policy_evaluation(mdp: TabularMDP, policy, atoms, *, method: str = "dcfp",
                                  tol: float = 1e-10, **kwargs) -> PolicyReturnDistributions:
    r"""Categorical fixed point of (MDP, π): solves the state–action MRP of :func:`policy_mrp` with
    :func:`categorical_fixed_point` and mixes :math:`\eta_C(s) = \sum_a\pi(a|s)\eta_C(s,a)` (Π_C is
    linear in mixtures, so this is also the fixed point of the state-level operator).
    ``atoms``: evenly spaced ``(m,)`` or an int m (default support from r)."""
    Pp, r = policy_mrp(mdp, policy)
    if mdp.gamma >= 1.0:
        raise ValueError(f"gamma must lie in [0, 1) for categorical evaluation, got {mdp.gamma!r}")
    fp = categorical_fixed_point(Pp, r, mdp.gamma, atoms, method=method, tol=tol, **kwargs)
    S, A = mdp.n_states, mdp.n_actions
    sa = fp.probs.reshape(S, A, -1)
    pi = np.asarray(policy, dtype=np.float64)
    st = np.einsum("sa,sam->sm", pi, sa)
    return PolicyReturnDistributions(fp.atoms, Categorical(fp.atoms, st), Categorical(fp.atoms, sa), fp)


# ====================================================================== quantile DP
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


# ====================================================================== generative model
def empirical_model(P, n_samples: int, seed: int = 0):
    r"""Generative-model estimate :math:`\hat P(x'|x) = \frac1N\#\{k : X'_k = x'\}`, N draws per row.

    P : MRP ``(n, n)`` (dense or sparse), MDP ``(S, A, S)`` dense, sparse ``(S*A, S)``, or a
        :class:`TabularMDP` (returns a TabularMDP with P̂ and the same R, γ, terminal, initial).
    n_samples : N ≥ 1 draws per row. seed : seeds a ``numpy.random.Generator``.
    Returns P̂ of the same shape and kind (dense stays dense, sparse stays CSR).
    """
    N = check_int(n_samples, "n_samples")
    rng = np.random.default_rng(seed)
    if isinstance(P, TabularMDP):
        Phat2 = empirical_model(sp.csr_matrix(P.P2), N, seed)
        S, A = P.n_states, P.n_actions
        newP = Phat2 if P.is_sparse else Phat2.toarray().reshape(S, A, S)
        return TabularMDP(newP, P.R, P.gamma, terminal=P.terminal, initial=P.initial, ref_policy=P.ref_policy)
    if sp.issparse(P):
        Pc = sp.csr_matrix(P, dtype=np.float64)
        if Pc.shape[0] % Pc.shape[1] != 0:
            raise ValueError(f"P (sparse) must have shape (n, n) or (S*A, S), got {Pc.shape}")
        _check_rows(Pc.data, np.asarray(Pc.sum(axis=1)).ravel(), Pc.shape[1])
        data = np.empty_like(Pc.data)
        for i in range(Pc.shape[0]):
            a, b = Pc.indptr[i], Pc.indptr[i + 1]
            row = Pc.data[a:b]
            data[a:b] = rng.multinomial(N, row / row.sum()) / N
        out = sp.csr_matrix((data, Pc.indices.copy(), Pc.indptr.copy()), shape=Pc.shape)
        out.eliminate_zeros()
        return out
    Pd = check_finite(P, "P")
    if not (Pd.ndim == 2 and Pd.shape[0] == Pd.shape[1]) and not (Pd.ndim == 3 and Pd.shape[0] == Pd.shape[2]):
        raise ValueError(f"P must have shape (n, n) (MRP) or (S, A, S) (MDP), got {Pd.shape}")
    rows = Pd.reshape(-1, Pd.shape[-1])
    _check_rows(rows, rows.sum(axis=1), Pd.shape[-1])
    counts = rng.multinomial(N, rows / rows.sum(axis=1, keepdims=True))
    return (counts / N).reshape(Pd.shape)


def _check_rows(values, sums, n):
    if np.any(~np.isfinite(values)) or np.any(values < 0):
        raise ValueError("P must be finite and non-negative")
    dev = np.abs(sums - 1.0)
    if np.any(dev > STOCHASTIC_ATOL * max(1, n)):
        i = int(np.argmax(dev))
        raise ValueError(f"P must be stochastic: row {i} sums to {sums[i]!r}, not 1")


# ====================================================================== Monte Carlo and stochastic CDFs
def _truncation(r: np.ndarray, gamma: float, tol: float) -> int:
    r"""Smallest T with :math:`\gamma^T\max|r|/(1-\gamma) \le` tol (the neglected tail)."""
    rmax = float(np.max(np.abs(r))) if r.size else 0.0
    if gamma == 0.0 or rmax == 0.0:
        return 1
    return max(1, int(math.ceil(math.log(tol * (1 - gamma) / rmax) / math.log(gamma))))


def _row_cdfs(P) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Pc = sp.csr_matrix(P)
    Pc.eliminate_zeros()
    Pc.sort_indices()
    cum = np.empty_like(Pc.data)
    for i in range(Pc.shape[0]):
        a, b = Pc.indptr[i], Pc.indptr[i + 1]
        c = np.cumsum(Pc.data[a:b])
        cum[a:b] = c / c[-1]
    return Pc.indptr.astype(np.int64), Pc.indices.astype(np.int64), cum


@numba.njit(cache=True)
def _mc_steps(indptr, indices, cum, r, gamma, state, ret, disc, u, record, t0):  # pragma: no cover - jitted
    """Advance every trajectory by u.shape[1] steps: collect γ^t r(X_t), then draw X_{t+1}."""
    N, T = u.shape
    for i in range(N):
        s = state[i]
        for t in range(T):
            if record.shape[1] > 0:
                record[i, t0 + t] = s
            ret[i] += disc[i] * r[s]
            disc[i] *= gamma
            a, b = indptr[s], indptr[s + 1]
            lo, hi = a, b - 1
            while lo < hi:  # first k with cum[k] > u
                mid = (lo + hi) // 2
                if cum[mid] > u[i, t]:
                    hi = mid
                else:
                    lo = mid + 1
            s = indices[lo]
        state[i] = s


def _simulate(P, r, gamma, starts, T, rng, record=False, progress=False):
    indptr, indices, cum = _row_cdfs(P)
    N = starts.size
    state = starts.astype(np.int64).copy()
    ret = np.zeros(N)
    disc = np.ones(N)
    rec = np.empty((N, T + 1 if record else 0), dtype=np.int64)
    chunk = max(1, min(T, (1 << 23) // max(N, 1)))
    steps = range(0, T, chunk)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="Monte Carlo", unit="chunk")
    for t0 in steps:
        c = min(chunk, T - t0)
        _mc_steps(indptr, indices, cum, r, gamma, state, ret, disc, rng.random((N, c)), rec, t0)
    if record:
        rec[:, T] = state
    return ret, state, disc, rec


def monte_carlo_returns(P, r, gamma: float, n_samples: int, seed: int = 0, *, states=None,
                        tol: float = 1e-10, progress: bool = False) -> np.ndarray:
    r"""Monte-Carlo ground truth of the return law: ``n_samples`` independent returns
    :math:`\sum_{t<T}\gamma^t r(X_t)` from each start state, with T the smallest horizon whose
    neglected tail :math:`\gamma^T\max|r|/(1-\gamma)` is ≤ ``tol`` (so each sample is within tol of
    an exact draw of G(x)). Uniforms come from ``numpy.random.default_rng(seed)`` in chunks; the
    trajectory loop is a numba kernel (also runs with NUMBA_DISABLE_JIT=1, slowly).

    P ``(n, n)`` dense or sparse, r ``(n,)``, states: optional start indices (default all n).
    Returns ``(len(states), n_samples)`` samples.
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    N = check_int(n_samples, "n_samples")
    n = r.size
    st = np.arange(n) if states is None else np.asarray(states, dtype=np.int64).ravel()
    if st.size == 0 or st.min() < 0 or st.max() >= n:
        raise ValueError(f"states must be indices in [0, {n}), got {st.tolist()[:10]}")
    T = _truncation(r, gamma, tol)
    rng = np.random.default_rng(seed)
    starts = np.repeat(st, N)
    ret, *_ = _simulate(P, r, gamma, starts, T, rng, progress=progress)
    return ret.reshape(st.size, N)


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
    **reconstructed form**, MATH.md §7): a random CDF vector per state with

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
