r"""Pure Bellman backups: hard, entropy-regularised and KL-regularised (MATH.md §1–3).

All three are one operator. With entropy weight :math:`\alpha = \tau \ge 0` and KL weight
:math:`\beta \ge 0` to a reference policy :math:`\pi_{ref}`, the per-state problem
:math:`\max_\pi \sum_a \pi(a)[Q(a) - \beta\log(\pi(a)/\pi_{ref}(a)) - \alpha\log\pi(a)]` has the
solution (λ = α + β, c = β/λ)

.. math::
    V(s) = \lambda\,\mathrm{LSE}_a\big(Q(s,a)/\lambda + c\log\pi_{ref}(a|s)\big),\qquad
    \pi(a|s) = \exp\big(Q(s,a)/\lambda + c\log\pi_{ref}(a|s) - V(s)/\lambda\big).

* hard control: λ = 0, :math:`V = \max_a Q` (Bellman 1957);
* entropy (soft) control, temperature τ: λ = τ, c = 0 (Ziebart 2010; Haarnoja et al. 2017);
* KL control, coefficient β: λ = β, c = 1, :math:`V = \beta\log\sum_a\pi_{ref}(a)e^{Q(a)/\beta}`
  (Todorov 2007; Rawlik et al. 2012; the LLM form of Clavier et al. 2025 and Zhou et al. 2025);
* both ("entropy + KL"): same as entropy with temperature α+β and reward r + β log π_ref (MATH §3).

Every log-sum-exp subtracts the row maximum, so β or τ from 1e-8 to 1e8 stay finite.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import numba
import numpy as np

from .._math import log_softmax, logsumexp

__all__ = [
    "logsumexp",
    "log_softmax",
    "Regulariser",
    "q_backup",
    "bellman_backup",
    "tree_level_value",
    "NUMBA_DISABLED",
]

NUMBA_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


@dataclass(frozen=True)
class Regulariser:
    r"""The per-state regulariser of MATH.md §1–3: entropy weight ``temperature`` (α) and KL
    weight ``beta`` (β) to ``log_ref`` (log π_ref, shape ``(S, A)``; ``-inf`` excludes an action).

    ``lam`` = α + β (0 means hard control) and ``c`` = β/λ.
    """

    temperature: float = 0.0
    beta: float = 0.0
    log_ref: Optional[np.ndarray] = None

    @property
    def lam(self) -> float:
        return self.temperature + self.beta

    @property
    def c(self) -> float:
        return self.beta / self.lam if self.lam > 0 else 0.0

    @property
    def is_hard(self) -> bool:
        return self.lam == 0.0

    def scores(self, q: np.ndarray) -> np.ndarray:
        r"""Per-action scores :math:`Q/\lambda + c\log\pi_{ref}` whose LSE times λ is V."""
        z = q / self.lam
        if self.beta > 0.0:
            z = z + self.c * self.log_ref
        return z

    def value(self, q: np.ndarray) -> np.ndarray:
        r"""V(s) from Q(s, ·): max (hard) or :math:`\lambda\,\mathrm{LSE}(Q/\lambda + c\log\pi_{ref})`."""
        if self.is_hard:
            return np.max(q, axis=-1)
        return self.lam * logsumexp(self.scores(q), axis=-1)

    def policy(self, q: np.ndarray, v: Optional[np.ndarray] = None) -> np.ndarray:
        r"""Optimal policy for Q: uniform over argmax ties (hard), else
        :math:`\exp(Q/\lambda + c\log\pi_{ref} - V/\lambda)` normalised (exactly, to round-off)."""
        if self.is_hard:
            best = q >= (np.max(q, axis=-1, keepdims=True) - 1e-12 * (1 + np.abs(q).max(axis=-1, keepdims=True)))
            return best / best.sum(axis=-1, keepdims=True)
        z = self.scores(q)
        z = z - np.max(z, axis=-1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=-1, keepdims=True)

    def penalty(self, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""Per-state (cost, KL(π‖π_ref), H(π)) where cost = β KL − α H is subtracted from the
        expected reward (so the regularised objective is E Σ γ^t (r_t − cost_t))."""
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.where(policy > 0, np.log(np.where(policy > 0, policy, 1.0)), 0.0)
            ent = -np.sum(policy * logp, axis=-1)
            if self.log_ref is not None:
                diff = np.where(policy > 0, logp - self.log_ref, 0.0)
                kl = np.sum(policy * diff, axis=-1)
            else:
                kl = np.zeros(policy.shape[:-1])
        cost = self.beta * kl - self.temperature * ent
        return cost, kl, ent


def q_backup(P2, R: np.ndarray, gamma: float, v: np.ndarray) -> np.ndarray:
    r""":math:`Q(s,a) = r(s,a) + \gamma\sum_{s'}P(s'|s,a)V(s')` as one matrix–vector product.

    ``P2`` is the ``(S*A, S)`` view (dense ndarray or scipy.sparse CSR, row = s*A + a);
    ``R`` is ``(S, A)``; ``v`` is ``(S,)``. Returns ``(S, A)``.
    """
    S, A = R.shape
    return R + gamma * np.asarray(P2 @ v).reshape(S, A)


def bellman_backup(P2, R, gamma, v, reg: Regulariser, terminal=None):
    r"""One application of the (regularised) Bellman optimality operator T.

    Returns ``(q, Tv)`` with ``q = R + γ P v`` and ``Tv = reg.value(q)``; terminal states have
    value 0 (and Q = 0). T is a γ-contraction in sup-norm for every regulariser.
    """
    q = q_backup(P2, R, gamma, v)
    if terminal is not None and terminal.any():
        q[terminal] = 0.0
    tv = reg.value(q)
    if terminal is not None and terminal.any():
        tv[terminal] = 0.0
    return q, tv


@numba.njit(parallel=True, fastmath=False, cache=False)
def _tree_level_value_kernel(q, ell, lse_ell, lam, c, v_out, pol_out, want_policy):
    # One level of the tree: q, ell are (n, V); lse_ell (n,); writes v_out (n,).
    n, V = q.shape
    for i in numba.prange(n):
        if lam == 0.0:
            m = q[i, 0]
            for a in range(1, V):
                if q[i, a] > m:
                    m = q[i, a]
            v_out[i] = m
            if want_policy:
                cnt = 0
                tol = 1e-12 * (1.0 + abs(m))
                for a in range(V):
                    if q[i, a] >= m - tol:
                        cnt += 1
                for a in range(V):
                    pol_out[i, a] = (1.0 / cnt) if q[i, a] >= m - tol else 0.0
            continue
        inv = 1.0 / lam
        m = -np.inf
        for a in range(V):
            z = q[i, a] * inv + c * ell[i, a]
            if z > m:
                m = z
        s = 0.0
        if want_policy:
            # one exp per edge: keep exp(z - m) in the policy row, normalise after the sum
            for a in range(V):
                e = math.exp(q[i, a] * inv + c * ell[i, a] - m)
                pol_out[i, a] = e
                s += e
            inv_s = 1.0 / s
            for a in range(V):
                pol_out[i, a] *= inv_s
        else:
            for a in range(V):
                s += math.exp(q[i, a] * inv + c * ell[i, a] - m)
        v_out[i] = lam * (m + math.log(s) - c * lse_ell[i])


def tree_level_value(q, ell, lse_ell, reg: Regulariser, want_policy: bool = True):
    r"""Values (and policy) of one tree level from its Q, in the reference-*logit* form
    :math:`V = \lambda[\mathrm{LSE}_a(Q/\lambda + c\,\ell_{ref}) - c\,\mathrm{LSE}\,\ell_{ref}]`,
    which equals ``reg.value`` with log π_ref = ℓ_ref − LSE ℓ_ref but needs one exp per edge
    (the node's LSE ℓ_ref is cached by the tree). ``q, ell``: ``(n, V)``; ``lse_ell``: ``(n,)``.
    """
    n, V = q.shape
    v = np.empty(n)
    pol = np.empty((n, V)) if want_policy else np.empty((0, V))
    _tree_level_value_kernel(q, ell, lse_ell, float(reg.lam), float(reg.c), v, pol, want_policy)
    return v, (pol if want_policy else None)
