r"""The categorical Bellman operator in CDF form, TF = C^{(r)} P F + b^{(r)} (docs/math.md §7)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..._validate import check_finite, check_gamma, check_shape
from ._dcfp_fast import build_columns
from .mrp import _check_mrp, _check_support
from .projection import check_atoms

__all__ = ["categorical_cdf_operator", "categorical_bellman_cdf"]


@dataclass(frozen=True)
class _CDFOperator:
    """Sparse pieces of (T F)(x) = C^{(r(x))} (P F)(x) + b^{(r(x))} (see categorical_cdf_operator)."""

    u_index: np.ndarray   # (n,) index of r(x) among the distinct rewards
    c_rows: np.ndarray    # (U, K) row index of each stored entry of C^{(u)} (K = 2(m-1)): entry j and
    c_vals: np.ndarray    # (U, K)  m−1+j are the two candidate rows of column j (zero value if unused)
    b: np.ndarray         # (U, m-1)
    blockC: sp.csr_matrix  # (n(m-1), n(m-1)) blockdiag_x C^{(r(x))}
    bvec: np.ndarray       # (n(m-1),)

    @property
    def c_cols(self) -> np.ndarray:
        """(U, K) column of each stored entry: j for entries j and m−1+j (built on demand: a (U, K)
        int64 array costs page faults on every solve that does not need it)."""
        m1 = self.b.shape[1]
        return np.tile(np.concatenate([np.arange(m1), np.arange(m1)]), (self.b.shape[0], 1))


def categorical_cdf_operator(r, gamma: float, atoms):
    r"""The matrices of the categorical Bellman operator in CDF form (docs/math.md §7):

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
    m1 = z.size - 1
    uniq, u_index = np.unique(r, return_inverse=True)
    # for each distinct reward: targets y_j = r + γ z_j, the cell of each (searchsorted 'right' − 1),
    # the non-zero rows of column j in {cell(y_j), cell(y_j) + 1} (numba; the former vectorised
    # numpy code's operations one element at a time, so the same numbers)
    c_rows, c_vals, b = build_columns(np.ascontiguousarray(uniq, dtype=np.float64), float(gamma),
                                      np.ascontiguousarray(z, dtype=np.float64), float(gap))
    blockC, bvec = None, None
    if with_block:
        n = r.size
        off = (np.arange(n) * m1)[:, None]
        R = (c_rows[u_index] + off).ravel()
        Cc = (np.concatenate([np.arange(m1), np.arange(m1)])[None, :] + off).ravel()
        V = c_vals[u_index].ravel()
        keep = V != 0.0
        blockC = sp.csr_matrix((V[keep], (R[keep], Cc[keep])), shape=(n * m1, n * m1))
        bvec = b[u_index].ravel()
    return _CDFOperator(u_index.astype(np.int64), c_rows, c_vals, b, blockC, bvec)


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
