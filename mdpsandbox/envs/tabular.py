r"""Tabular MDPs (docs/math.md §1).

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

from .._validate import as_real_array, check_distribution, check_finite, check_gamma, check_shape, check_stochastic_rows

__all__ = ["TabularMDP"]


class TabularMDP:
    r"""A finite MDP ``(P, R, γ)`` with optional terminal set and initial distribution.

    Attributes
    ----------
    n_states, n_actions : int
    P : ndarray ``(S, A, S)`` (read-only copy) or scipy.sparse.csr_matrix ``(S*A, S)`` (validated copy)
    P2 : the ``(S*A, S)`` view used by every backup (one BLAS / sparse mat-vec per sweep)
    R : ndarray ``(S, A)`` float64
    gamma : float
    terminal : bool ndarray ``(S,)``
    initial : ndarray ``(S,)``
    has_proper_policies : bool — every policy terminates w.p. 1 (needed for γ = 1 without horizon)

    Assigning ``P``, ``R``, ``gamma``, ``terminal``, ``initial`` or ``ref_policy`` re-validates it
    and recomputes everything derived from it (P2, the properness flag, the default μ0); the stored
    arrays are read-only. ``replace(**changes)`` returns a new MDP.

    **Layout.** P is *state-first*, ``P[s, a, s']``. pymdptoolbox (and some papers) store P
    action-first, ``(A, S, S)``: when S = A such an array passes every check and silently solves a
    different MDP — convert it with :meth:`from_mdptoolbox` (and back with :meth:`to_mdptoolbox`).

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
        P_user, P2, S, A = _check_P(P)
        self.n_states, self.n_actions = S, A
        self._P, self._P2 = P_user, P2
        self._gamma = gamma
        self._R = self._check_R(R)
        self._terminal = self._check_terminal(terminal)
        self._initial_given = initial is not None
        self._initial = self._check_initial(initial)
        self._ref_policy = self._check_ref(ref_policy)
        self._refresh()

    # ------------------------------------------------------------------ consistent state
    # Every array is validated on assignment and every derived quantity (the (S·A, S) view, the
    # properness flag, the γ = 1 error, the default μ0) is recomputed, so ``mdp.P = other`` can never
    # leave a stale cache behind. Stored arrays are read-only (edit by assignment or ``replace``).
    def _refresh(self) -> None:
        self.has_proper_policies = _all_policies_proper(self._P2, self.n_states, self.n_actions, self._terminal)
        if not self._initial_given:
            self._initial = self._check_initial(None)
        if self._gamma == 1.0 and not self.has_proper_policies:
            # Refuse here rather than iterate forever in a solver (docs/math.md §1).
            self._gamma_one_error = (
                "gamma = 1 requires every policy to reach a terminal state with probability 1, but "
                "some policy can avoid the terminal set forever (I - P_pi is singular); use gamma < 1, "
                "add terminal states, or solve with a finite horizon"
            )
        else:
            self._gamma_one_error = None

    def _check_R(self, R) -> np.ndarray:
        S, A = self.n_states, self.n_actions
        R = check_finite(_real_array(R, "R"), "R")
        if R.shape == (S, A, S):
            if not sp.issparse(self._P2):
                R = np.einsum("ijk,ijk->ij", self._P2.reshape(S, A, S), R)
            else:
                R = np.asarray(self._P2.multiply(R.reshape(S * A, S)).sum(axis=1)).reshape(S, A)
        if R.shape != (S, A):
            hint = (" (an action-first (A, S, S) reward is pymdptoolbox's layout: use TabularMDP.from_mdptoolbox)"
                    if R.shape == (A, S, S) else "")
            raise ValueError(f"R must have shape (S, A) = {(S, A)} or (S, A, S), got {R.shape}{hint}")
        return _frozen(R.copy())

    def _check_terminal(self, terminal) -> np.ndarray:
        S = self.n_states
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
        return _frozen(term)

    def _check_initial(self, initial) -> np.ndarray:
        S = self.n_states
        if initial is None:
            mu = (~self._terminal).astype(np.float64)
            if mu.sum() == 0:
                mu = np.ones(S)
            mu /= mu.sum()
        else:
            mu = check_distribution(_real_array(initial, "initial"), "initial").copy()
            check_shape(mu, (S,), "initial")
        return _frozen(mu)

    def _check_ref(self, ref_policy):
        if ref_policy is None:
            return None
        ref = check_distribution(_real_array(ref_policy, "ref_policy"), "ref_policy").copy()
        check_shape(ref, (self.n_states, self.n_actions), "ref_policy")
        return _frozen(ref)

    @property
    def P(self):
        """P as given: dense ``(S, A, S)`` (read-only) or the sparse ``(S*A, S)`` CSR matrix."""
        return self._P

    @P.setter
    def P(self, value):
        P_user, P2, S, A = _check_P(value)
        if (S, A) != (self.n_states, self.n_actions):
            raise ValueError(f"P must keep (S, A) = {(self.n_states, self.n_actions)} on assignment, got {(S, A)}; "
                             "build a new TabularMDP (or use replace(P=..., R=...)) to change sizes")
        self._P, self._P2 = P_user, P2
        self._refresh()

    @property
    def P2(self):
        """The ``(S*A, S)`` view used by every backup (derived from P; read-only)."""
        return self._P2

    @property
    def R(self) -> np.ndarray:
        """Expected rewards ``(S, A)`` (read-only array; assign to change)."""
        return self._R

    @R.setter
    def R(self, value):
        self._R = self._check_R(value)

    @property
    def gamma(self) -> float:
        return self._gamma

    @gamma.setter
    def gamma(self, value):
        self._gamma = check_gamma(value)
        self._refresh()

    @property
    def terminal(self) -> np.ndarray:
        """Boolean mask ``(S,)`` of terminal (absorbing, value 0) states."""
        return self._terminal

    @terminal.setter
    def terminal(self, value):
        self._terminal = self._check_terminal(value)
        self._refresh()

    @property
    def initial(self) -> np.ndarray:
        """Initial distribution μ0 ``(S,)`` (default: uniform over non-terminal states)."""
        return self._initial

    @initial.setter
    def initial(self, value):
        self._initial_given = value is not None
        self._initial = self._check_initial(value)

    @property
    def ref_policy(self):
        return self._ref_policy

    @ref_policy.setter
    def ref_policy(self, value):
        self._ref_policy = self._check_ref(value)

    def replace(self, **changes) -> "TabularMDP":
        """A new, fully validated TabularMDP with some of ``P, R, gamma, terminal, initial,
        ref_policy`` changed (the others kept), e.g. ``mdp.replace(gamma=0.99)``."""
        allowed = {"P", "R", "gamma", "terminal", "initial", "ref_policy"}
        bad = sorted(set(changes) - allowed)
        if bad:
            raise ValueError(f"replace() accepts {sorted(allowed)}, got {bad}")
        kw = dict(P=self._P, R=self._R, gamma=self._gamma, terminal=self._terminal,
                  initial=self._initial if self._initial_given else None, ref_policy=self._ref_policy)
        kw.update(changes)
        return TabularMDP(kw.pop("P"), kw.pop("R"), kw.pop("gamma"), kw.pop("terminal"), kw.pop("initial"),
                          ref_policy=kw.pop("ref_policy"))

    @classmethod
    def from_mdptoolbox(cls, P, R, gamma, **kwargs) -> "TabularMDP":
        """From pymdptoolbox's action-first layout: P ``(A, S, S)`` or a list of A (sparse) ``(S, S)``
        matrices; R ``(S, A)``, ``(A, S, S)`` or ``(S,)``. See :func:`mdpsandbox.envs.convert.from_mdptoolbox`."""
        from .convert import from_mdptoolbox

        return from_mdptoolbox(P, R, gamma, **kwargs)

    def to_mdptoolbox(self):
        """``(P, R)`` in pymdptoolbox's layout: P ``(A, S, S)`` dense (or a list of A CSR matrices when
        sparse), R ``(S, A)``. See :func:`mdpsandbox.envs.convert.to_mdptoolbox`."""
        from .convert import to_mdptoolbox

        return to_mdptoolbox(self)

    @classmethod
    def from_gymnasium(cls, env=None, **kwargs) -> "TabularMDP":
        """From a toy-text environment's table ``P[s][a] = [(p, s', r, terminated)]`` (FrozenLake,
        CliffWalking, Taxi, …), with one absorbing sink for terminated transitions. See
        :func:`mdpsandbox.envs.interop.from_gymnasium`."""
        from .interop import from_gymnasium

        return from_gymnasium(env, **kwargs)

    def to_gymnasium(self, **kwargs):
        """A gymnasium-compatible environment view (see :class:`mdpsandbox.envs.interop.GymnasiumEnv`)."""
        from .interop import to_gymnasium

        return to_gymnasium(self, **kwargs)

    @classmethod
    def from_quantecon(cls, R, Q, beta, s_indices=None, a_indices=None):
        """From QuantEcon DiscreteDP inputs (their ``beta`` is our ``gamma``); returns ``(mdp, feasible)``.
        See :func:`mdpsandbox.envs.interop.from_quantecon`."""
        from .interop import from_quantecon

        return from_quantecon(R, Q, beta, s_indices, a_indices)

    def to_quantecon(self, feasible=None):
        """``(R, Q, beta)`` in DiscreteDP's product form. See :func:`mdpsandbox.envs.interop.to_quantecon`."""
        from .interop import to_quantecon

        return to_quantecon(self, feasible)

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


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _real_array(x, name: str) -> np.ndarray:
    return as_real_array(x, name)


def _check_P(P):
    """Validate P; returns (P as stored, the (S·A, S) view, S, A)."""
    if sp.issparse(P):
        if np.iscomplexobj(P.data if hasattr(P, "data") else P.toarray()):
            raise ValueError(f"P must be real; got a complex sparse matrix (dtype {P.dtype})")
        if P.ndim != 2 or P.shape[1] < 1 or P.shape[0] % P.shape[1] != 0:
            raise ValueError(f"P (sparse) must have shape (S*A, S) with rows a multiple of S; got {P.shape}")
        S = P.shape[1]
        A = P.shape[0] // S
        raw = P
    else:
        raw = check_finite(_real_array(P, "P"), "P")
        if raw.ndim != 3 or raw.shape[0] != raw.shape[2]:
            raise ValueError(f"P must have shape (S, A, S) (or be sparse (S*A, S)), got {raw.shape}; an "
                             "action-first (A, S, S) array is pymdptoolbox's layout: use TabularMDP.from_mdptoolbox")
        S, A = raw.shape[0], raw.shape[1]
        raw = raw.reshape(S * A, S)
    if S < 1 or A < 1:
        raise ValueError(f"P must have at least one state and one action, got S={S}, A={A}")
    P2 = check_stochastic_rows(raw, "P", row_label=lambda i: f"row (s={i // A}, a={i % A})")
    if sp.issparse(P2):
        if P2 is P or (sp.issparse(P) and np.may_share_memory(P2.data, P.data)):
            P2 = P2.copy()  # never alias the caller's matrix (a later in-place edit would bypass validation)
        return P2, P2, S, A
    P2 = np.array(P2, dtype=np.float64)  # own copy
    P2 = _frozen(P2)
    return P2.reshape(S, A, S), P2, S, A


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
