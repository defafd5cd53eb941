r"""Converters between :class:`~mdpsandbox.envs.tabular.TabularMDP` and pymdptoolbox's layout.

pymdptoolbox (and its fork mdptoolbox-hiive) stores transitions *action-first*: ``P[a, s, s']``
as an ``(A, S, S)`` array or a list of A ``(S, S)`` (sparse) matrices, and rewards as ``R[s, a]``
``(S, A)``, ``R[a, s, s']`` ``(A, S, S)`` (or a list of A matrices) or a state reward ``R[s]``
``(S,)``. mdpsandbox is *state-first*, ``P[s, a, s']``. When S = A an action-first array has a
valid state-first shape and would silently describe a different MDP, so the conversion is explicit:

>>> import numpy as np
>>> from mdpsandbox.envs.convert import from_mdptoolbox, to_mdptoolbox
>>> P = np.array([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.1, 0.9]]])   # P[a, s, s']
>>> mdp = from_mdptoolbox(P, np.array([[1.0, 0.0], [0.0, 2.0]]), 0.9)
>>> mdp.P[1, 0].tolist()          # state 1, action 0 = P[0, 1, :]
[1.0, 0.0]
>>> np.allclose(to_mdptoolbox(mdp)[0], P)
True
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .tabular import TabularMDP

__all__ = ["from_mdptoolbox", "to_mdptoolbox"]


def _stack(mats, name: str):
    """A list/tuple of A (S, S) matrices (dense or sparse) → (A, S, S) dense or a list of CSR."""
    if not len(mats):
        raise ValueError(f"{name} must hold at least one action's (S, S) matrix")
    if any(sp.issparse(m) for m in mats):
        out = [sp.csr_matrix(m, dtype=np.float64) for m in mats]
        shapes = {m.shape for m in out}
        if len(shapes) != 1 or next(iter(shapes))[0] != next(iter(shapes))[1]:
            raise ValueError(f"{name}: every action's matrix must be square (S, S) of one size, got {sorted(shapes)}")
        return out
    arrs = [np.asarray(m, dtype=np.float64) for m in mats]
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1:
        raise ValueError(f"{name}: every action's matrix must have the same shape (S, S), got {sorted(shapes)}")
    return np.stack(arrs)


def from_mdptoolbox(P, R, gamma, *, terminal=None, initial=None, ref_policy=None) -> TabularMDP:
    r"""A :class:`TabularMDP` from pymdptoolbox's action-first arrays.

    P : ``(A, S, S)`` array with ``P[a, s, s'] = P(s'|s, a)``, or a list of A ``(S, S)`` matrices
        (dense or scipy.sparse; sparse input gives a sparse MDP).
    R : ``(S, A)`` expected rewards; ``(A, S, S)`` (or a list of A matrices) rewards r(s, a, s'),
        reduced to r(s, a) = Σ_{s'} P(s'|s, a) r(s, a, s'); or ``(S,)`` a state reward r(s, a) = r(s).
    gamma : discount (pymdptoolbox's ``discount``). Other keywords go to :class:`TabularMDP`.
    """
    if isinstance(P, (list, tuple)):
        P = _stack(P, "P")
    if isinstance(P, list):  # sparse actions
        A = len(P)
        S = P[0].shape[0]
        # state-first rows s*A + a: interleave the actions' rows
        P2 = sp.vstack(P, format="csr")  # row a*S + s
        perm = (np.arange(S)[:, None] + S * np.arange(A)[None, :]).ravel()  # new row s*A + a ← old a*S + s
        P_sf = P2[perm]
        dense_for_R = None
    else:
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 3 or P.shape[1] != P.shape[2]:
            raise ValueError(f"P must have pymdptoolbox's shape (A, S, S) (or be a list of A (S, S) matrices), got {P.shape}")
        A, S = P.shape[0], P.shape[1]
        P_sf = np.ascontiguousarray(P.transpose(1, 0, 2))
        dense_for_R = P_sf
    if isinstance(R, (list, tuple)):
        R = _stack(R, "R")
        if isinstance(R, list):
            R = np.stack([m.toarray() for m in R])
    R = np.asarray(R, dtype=np.float64)
    if R.shape == (S,):
        R_sf = np.repeat(R[:, None], A, axis=1)
    elif R.shape == (A, S, S):
        r3 = R.transpose(1, 0, 2)  # (S, A, S)
        if dense_for_R is not None:
            R_sf = np.einsum("ijk,ijk->ij", dense_for_R, r3)
        else:
            R_sf = np.asarray(P_sf.multiply(r3.reshape(S * A, S)).sum(axis=1)).reshape(S, A)
    elif R.shape == (S, A):
        R_sf = R
    else:
        raise ValueError(f"R must have shape (S, A) = {(S, A)}, (A, S, S) = {(A, S, S)} or (S,) = {(S,)}, got {R.shape}")
    return TabularMDP(P_sf, R_sf, gamma, terminal=terminal, initial=initial, ref_policy=ref_policy)


def to_mdptoolbox(mdp: TabularMDP):
    """``(P, R)`` in pymdptoolbox's layout: P ``(A, S, S)`` (dense MDP) or a list of A CSR ``(S, S)``
    matrices (sparse MDP); R ``(S, A)``. pymdptoolbox has no terminal set, so terminal states are
    exported absorbing with reward 0 (the value 0 they have here; their stored rows are ignored by
    mdpsandbox). Inverse of :func:`from_mdptoolbox` (up to the reduction of an ``(A, S, S)`` reward to
    its expectation, and pass ``terminal=`` back in)."""
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    S, A = mdp.n_states, mdp.n_actions
    t = np.flatnonzero(mdp.terminal)
    R = np.array(mdp.R)
    R[t] = 0.0
    if mdp.is_sparse:
        P2 = sp.lil_matrix(mdp.P2)
        rows = (t[:, None] * A + np.arange(A)[None, :]).ravel()
        P2[rows] = sp.csr_matrix((np.ones(rows.size), (np.arange(rows.size), np.repeat(t, A))),
                                 shape=(rows.size, S))
        P2 = P2.tocsr()
        P = [P2[np.arange(S) * A + a] for a in range(A)]
    else:
        P = mdp.dense_P().transpose(1, 0, 2).copy()   # own copy (with A = 1 the transpose is contiguous)
        P[:, t] = 0.0
        P[:, t, t] = 1.0
    return P, R
