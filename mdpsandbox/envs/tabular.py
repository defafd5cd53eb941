r"""Tabular MDPs (MATH.md §1).

``TabularMDP(P, R, gamma, terminal=None, initial=None)``

* ``P``: dense ``(S, A, S)`` array with ``P[s, a, s'] = P(s'|s, a)``, or a scipy.sparse matrix of
  shape ``(S*A, S)`` (row ``s*A + a``), converted to CSR.
* ``R``: ``(S, A)`` expected rewards, or ``(S, A, S)`` rewards ``r(s, a, s')`` reduced to
  ``r(s, a) = Σ_{s'} P(s'|s,a) r(s,a,s')``.
* ``gamma`` in [0, 1]. γ = 1 is accepted only if every policy reaches a terminal state with
  probability 1 (checked on the support graph), or if the MDP is solved with a finite horizon.
* ``terminal``: boolean mask ``(S,)`` or a list of state indices. Terminal states are absorbing
  with value 0 (their rows of P and R are ignored).
* ``initial``: initial distribution μ0 ``(S,)`` (default: uniform over non-terminal states).
* ``ref_policy`` (keyword): optional reference policy π_ref ``(S, A)`` used by
  ``solve(mdp, beta=...)`` when no ``ref_policy`` is passed (``TokenMDP.to_tabular`` sets it).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp

from .._validate import check_distribution, check_finite, check_gamma, check_shape, check_stochastic_rows

__all__ = ["TabularMDP"]


class TabularMDP:
    r"""A finite MDP ``(P, R, γ)`` with optional terminal set and initial distribution.

    Attributes
    ----------
    n_states, n_actions : int
    P : ndarray ``(S, A, S)`` or scipy.sparse.csr_matrix ``(S*A, S)`` (as given)
    P2 : the ``(S*A, S)`` view used by every backup (one BLAS / sparse mat-vec per sweep)
    R : ndarray ``(S, A)`` float64
    gamma : float
    terminal : bool ndarray ``(S,)``
    initial : ndarray ``(S,)``
    has_proper_policies : bool — every policy terminates w.p. 1 (needed for γ = 1 without horizon)

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    >>> mdp = TabularMDP(P, np.array([[0.0, 1.0], [0.0, 0.0]]), gamma=0.9)
    >>> mdp.n_states, mdp.n_actions
    (2, 2)
    """

    def __init__(self, P, R, gamma, terminal=None, initial=None, *, ref_policy=None):
        gamma = check_gamma(gamma)
        if sp.issparse(P):
            if P.ndim != 2 or P.shape[1] < 1 or P.shape[0] % P.shape[1] != 0:
                raise ValueError(f"P (sparse) must have shape (S*A, S) with rows a multiple of S; got {P.shape}")
            S = P.shape[1]
            A = P.shape[0] // S
            raw = P
        else:
            raw = check_finite(P, "P")
            if raw.ndim != 3 or raw.shape[0] != raw.shape[2]:
                raise ValueError(f"P must have shape (S, A, S) (or be sparse (S*A, S)), got {raw.shape}")
            S, A = raw.shape[0], raw.shape[1]
            raw = raw.reshape(S * A, S)
        if S < 1 or A < 1:
            raise ValueError(f"P must have at least one state and one action, got S={S}, A={A}")
        P2 = check_stochastic_rows(raw, "P", row_label=lambda i: f"row (s={i // A}, a={i % A})")
        dense_P = None if sp.issparse(P2) else P2.reshape(S, A, S)
        R = check_finite(R, "R")
        if R.shape == (S, A, S):
            if dense_P is not None:
                R = np.einsum("ijk,ijk->ij", dense_P, R)
            else:
                R = np.asarray(P2.multiply(R.reshape(S * A, S)).sum(axis=1)).reshape(S, A)
        check_shape(R, (S, A), "R")

        term = np.zeros(S, dtype=bool)
        if terminal is not None:
            t = np.asarray(terminal)
            if t.dtype == bool:
                check_shape(t, (S,), "terminal")
                term = t.copy()
            else:
                if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer) and t.size:
                    raise ValueError("terminal must be a boolean mask (S,) or a list of state indices")
                if t.size and (t.min() < 0 or t.max() >= S):
                    raise ValueError(f"terminal indices must lie in [0, {S}), got {t.tolist()}")
                term[t.astype(int)] = True
        if initial is None:
            mu = (~term).astype(np.float64)
            if mu.sum() == 0:
                mu = np.ones(S)
            mu /= mu.sum()
        else:
            mu = check_distribution(initial, "initial")
            check_shape(mu, (S,), "initial")

        if ref_policy is not None:
            ref_policy = check_distribution(ref_policy, "ref_policy")
            check_shape(ref_policy, (S, A), "ref_policy")

        self.n_states, self.n_actions = S, A
        self.ref_policy = ref_policy
        self.P = P if sp.issparse(P) else dense_P
        self.P2 = P2
        self.R = R
        self.gamma = gamma
        self.terminal = term
        self.initial = mu
        self.has_proper_policies = _all_policies_proper(P2, S, A, term)
        if gamma == 1.0 and not self.has_proper_policies:
            # Refuse here rather than iterate forever in a solver (MATH.md §1).
            self._gamma_one_error = (
                "gamma = 1 requires every policy to reach a terminal state with probability 1, but "
                "some policy can avoid the terminal set forever (I - P_pi is singular); use gamma < 1, "
                "add terminal states, or solve with a finite horizon"
            )
        else:
            self._gamma_one_error = None

    # ------------------------------------------------------------------ helpers
    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.P2)

    def dense_P(self) -> np.ndarray:
        """P as a dense ``(S, A, S)`` array (a copy for sparse input)."""
        if self.is_sparse:
            return self.P2.toarray().reshape(self.n_states, self.n_actions, self.n_states)
        return self.P2.reshape(self.n_states, self.n_actions, self.n_states)

    def policy_matrix(self, policy: np.ndarray):
        r""":math:`P_\pi(s'|s) = \sum_a \pi(a|s)P(s'|s,a)`, ``(S, S)`` (sparse if P is sparse)."""
        S, A = self.n_states, self.n_actions
        if self.is_sparse:
            D = sp.csr_matrix(
                (policy.ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A)
            )
            return (D @ self.P2).tocsr()
        P3 = self.P2.reshape(S, A, S)
        act = np.argmax(policy, axis=1)
        if np.all(policy[np.arange(S), act] == 1.0):
            return P3[np.arange(S), act]  # deterministic policy: gather S rows (1/A of the memory traffic)
        return np.matmul(policy[:, None, :], P3)[:, 0, :]  # batched GEMV over states

    def check_solvable(self, horizon: Optional[int] = None) -> None:
        """Raise ValueError if γ = 1 and no horizon is given and some policy is improper."""
        if horizon is None and self._gamma_one_error is not None:
            raise ValueError(self._gamma_one_error)

    def __repr__(self) -> str:
        kind = "sparse" if self.is_sparse else "dense"
        return (
            f"TabularMDP(S={self.n_states}, A={self.n_actions}, gamma={self.gamma}, {kind}, "
            f"terminal={int(self.terminal.sum())})"
        )


def _all_policies_proper(P2, S: int, A: int, terminal: np.ndarray) -> bool:
    """True iff no policy can stay among non-terminal states forever.

    Greatest fixed point: W = non-terminal states; remove s from W if every action has positive
    probability of leaving W. Some policy is improper iff W ends non-empty (it can choose, in each
    s ∈ W, an action whose support stays in W).
    """
    W = ~terminal.copy()
    if not W.any():
        return True
    support = (P2 > 0) if sp.issparse(P2) else sp.csr_matrix(P2 > 0)
    support = sp.csr_matrix(support, dtype=np.float64)
    while True:
        leaves = np.asarray(support @ (~W).astype(np.float64)).reshape(S, A) > 0  # action may exit W
        stay = W & ~leaves.all(axis=1)
        if np.array_equal(stay, W):
            return not W.any()
        W = stay
