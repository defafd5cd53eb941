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
    "tree_backward",
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


# ---------------------------------------------------------------------- exp for the tree kernel
# libm's exp is a scalar call (~10 ns here) and dominated the token-tree solve. This exp for
# x ≤ 0 is branch-free so LLVM vectorises it: Cody–Waite reduction x = k ln2 + r, |r| ≤ ln2/2,
# the degree-13 Taylor polynomial of e^r (truncation error < 1e-17 relative) and an exact scaling
# by 2^k built from the exponent bits. Measured against libm: ≤ 1 ulp, ~90 % bit-identical.
# Below x = −708 (where 2^k would be subnormal) it returns 0 instead of a value < 3.3e-308.
# With NUMBA_DISABLE_JIT=1 the same operations run in Python (ldexp instead of the bit trick,
# which is the same exact scaling), so both paths give bit-identical numbers.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: k·_LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5·2^52: adding it rounds to an integer kept in the low mantissa bits
_EXP_MIN = -708.0

if NUMBA_DISABLED:
    def _pow2(t, kf):
        return math.ldexp(1.0, int(kf))
else:
    from llvmlite import ir as _ir
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _f64_bits(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], _ir.IntType(64))
        return _types.int64(_types.float64), codegen

    @_intrinsic
    def _bits_f64(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], _ir.DoubleType())
        return _types.float64(_types.int64), codegen

    @numba.njit(inline="always")
    def _pow2(t, kf):
        # t = x·log2(e) + 1.5·2^52 holds k in its low mantissa bits; (bits + 1023) << 52 = 2^k
        return _bits_f64((_f64_bits(t) + 1023) << 52)


@numba.njit(inline="always")
def _exp_nonpos(x):
    """e^x for x ≤ 0 (≤ 1 ulp; 0 below −708), vectorisable."""
    xc = max(x, _EXP_MIN)
    t = xc * _LOG2E + _SHIFTER
    kf = t - _SHIFTER
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    e = p * _pow2(t, kf)
    return e if x >= _EXP_MIN else 0.0


@numba.njit(parallel=True, fastmath=False, cache=True)
def _tree_backward_kernel(rew, ell, lse_ell, level_start, n_nodes, gamma, eos, lam, c, q, v, pol):
    # Whole-tree backward induction on flat arrays: row p*N + i is node i of prompt p.
    # rew, ell, q, pol: (P*N, V); lse_ell, v: (P*N,). Level h (nodes level_start[h] + j) has
    # children level_start[h+1] + j*V + a; the last level and the EOS action have no child
    # (terminal value 0). Levels run backwards; nodes of a level (over all prompts) run in
    # parallel. The child-value add is fused here so q is written once; each edge costs one
    # (vectorised) exp, each node one log.
    V = rew.shape[1]
    Pn = rew.shape[0] // n_nodes
    H = level_start.shape[0] - 1
    use_ref = c != 0.0
    inv = 1.0 / lam if lam > 0.0 else 0.0
    for h in range(H - 1, -1, -1):
        a0 = level_start[h]
        c0 = level_start[h + 1]
        n_h = c0 - a0
        has_child = h < H - 1
        for k in numba.prange(Pn * n_h):
            p = k // n_h
            j = k - p * n_h
            i = p * n_nodes + a0 + j
            child = p * n_nodes + c0 + j * V
            for a in range(V):
                q[i, a] = rew[i, a]
            if has_child:
                for a in range(V):
                    if a != eos:
                        q[i, a] = q[i, a] + gamma * v[child + a]
            if lam == 0.0:
                m = q[i, 0]
                for a in range(1, V):
                    if q[i, a] > m:
                        m = q[i, a]
                v[i] = m
                cnt = 0
                tol = 1e-12 * (1.0 + abs(m))
                for a in range(V):
                    if q[i, a] >= m - tol:
                        cnt += 1
                for a in range(V):
                    pol[i, a] = (1.0 / cnt) if q[i, a] >= m - tol else 0.0
                continue
            if use_ref:
                for a in range(V):
                    pol[i, a] = q[i, a] * inv + c * ell[i, a]
            else:
                for a in range(V):
                    pol[i, a] = q[i, a] * inv
            m = pol[i, 0]
            for a in range(1, V):
                if pol[i, a] > m:
                    m = pol[i, a]
            for a in range(V):
                pol[i, a] = _exp_nonpos(pol[i, a] - m)
            s = 0.0
            for a in range(V):
                s += pol[i, a]
            inv_s = 1.0 / s
            for a in range(V):
                pol[i, a] *= inv_s
            if use_ref:
                v[i] = lam * (m + math.log(s) - c * lse_ell[i])
            else:
                v[i] = lam * (m + math.log(s))


def tree_backward(rewards, ref_logits, lse_ref, level_start, gamma: float, eos, reg: Regulariser):
    r"""Backward induction on a whole token tree (MATH.md §4), one level at a time, in one call:

    .. math::
        Q(s,a) = r(s,a) + \gamma V(s\cdot a)\quad(V = 0 \text{ after EOS or at length } H),\qquad
        V(s) = \lambda\big[\mathrm{LSE}_a(Q(s,a)/\lambda + c\,\ell_{ref}(s,a)) - c\,\mathrm{LSE}_a\ell_{ref}(s,a)\big]

    (λ, c from ``reg``; λ = 0 gives V = max_a Q and the uniform-over-argmax policy), and
    :math:`\pi(a|s) = \exp(Q/\lambda + c\,\ell_{ref} - \max)/\sum` — the KL form uses the reference
    *logits* ℓ_ref with the node's cached LSE, so each edge costs one exp and each node one log.

    Shapes (canonical node order, leading prompt axis P): ``rewards``, ``ref_logits``
    ``(P, N, V)``; ``lse_ref`` ``(P, N)`` (ignored when c = 0); ``level_start`` ``(H+1,)`` int64.
    ``eos`` is a token index or None. Returns ``(q, v, policy)`` with shapes ``(P, N, V)``,
    ``(P, N)``, ``(P, N, V)``.
    """
    Pn, N, V = rewards.shape
    q = np.empty((Pn, N, V))
    v = np.empty((Pn, N))
    pol = np.empty((Pn, N, V))
    lam, c = float(reg.lam), float(reg.c)
    if c == 0.0:
        ref_logits = rewards  # unread (c = 0); avoids 0·(−inf) on a −inf logit
        lse_ref = v
    rewards = np.ascontiguousarray(rewards)
    ref_logits = np.ascontiguousarray(ref_logits)
    lse_ref = np.ascontiguousarray(lse_ref)
    PN = Pn * N
    _tree_backward_kernel(rewards.reshape(PN, V), ref_logits.reshape(PN, V), lse_ref.reshape(-1),
                          np.asarray(level_start, dtype=np.int64), N, float(gamma), -1 if eos is None else int(eos),
                          lam, c, q.reshape(PN, V), v.reshape(PN), pol.reshape(PN, V))
    return q, v, pol
