r"""Markov reward process input (docs/math.md §7): validation of (P, r, γ) and of a support, and the
reduction of an (MDP, policy) pair to the MRP on state–action pairs (:func:`policy_mrp`)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..._validate import check_finite, check_gamma, check_shape, check_stochastic_rows
from ...envs.tabular import TabularMDP

__all__ = ["policy_mrp"]


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


def policy_mrp(mdp: TabularMDP, policy) -> tuple[sp.csr_matrix, np.ndarray]:
    r"""The MRP on state–action pairs of (MDP, π): X = (s, a) with reward r(s, a) and
    :math:`P((s,a)\to(s',a')) = P(s'|s,a)\,\pi(a'|s')`. Terminal states are absorbing with
    return 0 (self-loop, reward 0). Returns (P ``(S*A, S*A)`` CSR, r ``(S*A,)``), pair index s*A + a."""
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    from ..._validate import check_distribution

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
