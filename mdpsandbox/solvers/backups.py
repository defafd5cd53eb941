r"""Pure Bellman backups: hard, entropy-regularised and KL-regularised (docs/math.md §1–3).

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
* both ("entropy + KL"): same as entropy with temperature α+β and reward r + β log π_ref (docs/math.md §3).

Every log-sum-exp is taken of u = (Q − max Q)/λ (no overflow as λ → 0) and, for KL with λ large
against the spread of Q, in the form max Q + β log1p(Σ π_ref expm1(u)) (no cancellation as β → ∞):
V is exact to round-off for β or τ anywhere in [1e-300, 1e300] (:func:`soft_value_and_policy`).
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
    "soft_value_and_policy",
    "kl_terms",
    "SMALL_SPREAD",
    "NUMBA_DISABLED",
]

NUMBA_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


@dataclass(frozen=True)
class Regulariser:
    r"""The per-state regulariser of docs/math.md §1–3: entropy weight ``temperature`` (α) and KL
    weight ``beta`` (β) to ``log_ref`` (log π_ref, shape ``(S, A)``; ``-inf`` excludes an action).

    ``lam`` = α + β (0 means hard control) and ``c`` = β/λ.
    """

    temperature: float = 0.0
    beta: float = 0.0
    log_ref: Optional[np.ndarray] = None
    ref: Optional[np.ndarray] = None  # π_ref itself (default exp(log_ref)); the KL penalty compares with it

    @property
    def lam(self) -> float:
        return self.temperature + self.beta

    @property
    def c(self) -> float:
        return self.beta / self.lam if self.lam > 0 else 0.0

    @property
    def omc(self) -> float:
        """1 − c = τ/λ, computed as a quotient (``1 - c`` would lose its relative accuracy when τ ≪ β)."""
        return self.temperature / self.lam if self.lam > 0 else 1.0

    @property
    def is_hard(self) -> bool:
        return self.lam == 0.0

    def __post_init__(self):
        if self.log_ref is not None and self.ref is None:
            object.__setattr__(self, "ref", np.exp(self.log_ref))

    def value_and_policy(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""V(s) and π(·|s) from Q(s, ·) (last axis = actions), computed without cancellation or
        overflow for every λ in [1e-300, 1e300] (:func:`soft_value_and_policy`)."""
        if self.is_hard:
            return np.max(q, axis=-1), self.policy(q)
        return soft_value_and_policy(q, self.lam, self.c, self.log_ref, self.ref, omc=self.omc)

    def value(self, q: np.ndarray) -> np.ndarray:
        r"""V(s) from Q(s, ·): max (hard) or :math:`\lambda\,\mathrm{LSE}(Q/\lambda + c\log\pi_{ref})`."""
        if self.is_hard:
            return np.max(q, axis=-1)
        return self.value_and_policy(q)[0]

    def policy(self, q: np.ndarray, v: Optional[np.ndarray] = None) -> np.ndarray:
        r"""Optimal policy for Q: uniform over argmax ties (hard), else
        :math:`\pi_{ref}^c\exp((Q - V)/\lambda)` normalised (exactly, to round-off)."""
        if self.is_hard:
            best = q >= (np.max(q, axis=-1, keepdims=True) - 1e-12 * (1 + np.abs(q).max(axis=-1, keepdims=True)))
            return best / best.sum(axis=-1, keepdims=True)
        return self.value_and_policy(q)[1]

    def penalty(self, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""Per-state (cost, KL(π‖π_ref), H(π)) where cost = β KL − α H is subtracted from the
        expected reward (so the regularised objective is E Σ γ^t (r_t − cost_t)).

        KL is summed as :math:`\sum_a \pi_{ref}(a)\,\varphi(\pi(a)/\pi_{ref}(a))`,
        :math:`\varphi(x) = x\log x - x + 1 \ge 0` (equal to KL for normalised rows): every term is
        non-negative, so π = π_ref gives exactly 0 and π ≈ π_ref gives KL to full relative accuracy
        (the form Σ π log(π/π_ref) cancels to ~ε, which β = 1e8 would turn into an error of 1e-8)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.where(policy > 0, np.log(np.where(policy > 0, policy, 1.0)), 0.0)
            ent = -np.sum(policy * logp, axis=-1)
            if self.log_ref is not None:
                kl = np.sum(kl_terms(policy, self.ref, logp, self.log_ref), axis=-1)
            else:
                kl = np.zeros(policy.shape[:-1])
        cost = self.beta * kl - self.temperature * ent
        return cost, kl, ent


#: Below this spread max−min of Q/λ over supp π_ref the KL backup uses the log1p/expm1 form (above
#: it λ < 32·spread, so the max-shifted LSE loses at most ~32·ε·|log π_ref| relative to the spread).
SMALL_SPREAD = 0.03125


def kl_terms(p: np.ndarray, ref: np.ndarray, logp: Optional[np.ndarray] = None,
             log_ref: Optional[np.ndarray] = None) -> np.ndarray:
    r"""Elementwise :math:`\pi_{ref}\,\varphi(p/\pi_{ref})`, :math:`\varphi(x) = x\log x - x + 1`
    (0 where p = π_ref exactly, +inf where p > 0 = π_ref); their sum over actions is KL(p‖π_ref)
    for normalised rows. Near x = 1 (|x − 1| ≤ 1/8) φ is summed from its series
    :math:`\sum_{k\ge2}(-d)^k/(k(k-1))`, d = x − 1, so there is no cancellation."""
    p = np.asarray(p, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if logp is None:
            logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
        if log_ref is None:
            log_ref = np.log(ref)
        d = np.where(ref > 0, (p - ref) / np.where(ref > 0, ref, 1.0), np.inf)
        near = np.abs(d) <= 0.125
        dn = np.where(near, d, 0.0)
        ser = np.zeros_like(dn)
        for k in range(20, 1, -1):  # Horner in d: Σ_{k=2}^{20} (−1)^k d^k / (k(k−1))
            ser = ser * dn + (1.0 if k % 2 == 0 else -1.0) / (k * (k - 1))
        ser = ser * dn * dn
        far = np.where(p > 0, p * (logp - log_ref), 0.0) - p + ref
        out = np.where(near, ref * ser, far)
        out = np.where(ref > 0, out, np.where(p > 0, np.inf, 0.0))
    return out


def soft_value_and_policy(q: np.ndarray, lam: float, c: float, log_ref: Optional[np.ndarray] = None,
                          ref: Optional[np.ndarray] = None, *, omc: Optional[float] = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    r"""The regularised per-state maximum (docs/math.md §2–3) along the last axis:

    .. math:: V = \lambda\,\mathrm{LSE}_a\big(Q_a/\lambda + c\log\pi_{ref}(a)\big),\qquad
              \pi(a) = \pi_{ref}(a)^c\,e^{(Q_a - V)/\lambda},

    exact to round-off for every λ in [1e-300, 1e300] (Todorov 2007; Rawlik et al. 2012). Q is
    shifted by its maximum Q̄ over supp π_ref first, so u = (Q − Q̄)/λ ≤ 0 never overflows (λ → 0
    gives the hard maximum on the support). With a reference (c > 0) write
    π_ref^c e^u = π_ref e^d, d = u − (1 − c) log π_ref; when d is small on the whole support
    (max |d| ≤ :data:`SMALL_SPREAD`, i.e. λ large against the spread of Q and against τ|log π_ref|)
    the value is

    .. math:: V = \bar Q + \lambda\,\mathrm{log1p}\big(\textstyle\sum_a \pi_{ref}(a)\,\mathrm{expm1}(d_a)\big),

    which uses Σ π_ref = 1 exactly instead of recovering a tiny log from a sum ≈ 1: the naive
    β·LSE(log π_ref + Q/β) loses ~β·ε (β = 1e300 gave V = 0); this form tends to E_{π_ref} Q and
    π → π_ref bitwise. For pure KL (c = 1) d = u. For entropy + KL with τ ≪ β, 1 − c = τ/λ must be
    accurate: pass ``omc`` = τ/λ (the default ``1 - c`` has an absolute error ~ε, which λ = 1e12
    turned into an error of 1e-4 in V). ``log_ref``/``ref`` ``(…, A)`` (rows of ref summing to 1) are
    needed when c > 0. Returns (v ``q.shape[:-1]``, policy ``q.shape``).
    """
    q = np.asarray(q, dtype=np.float64)
    use_ref = c != 0.0
    if omc is None:
        omc = 1.0 - c
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        supp = np.isfinite(log_ref) if use_ref else np.ones(q.shape, dtype=bool)
        qmax = np.max(np.where(supp, q, -np.inf), axis=-1, keepdims=True)
        u = np.where(supp, (q - qmax) / lam, -np.inf)
        w = u + c * np.where(supp, log_ref, 0.0) if use_ref else u
        m = np.max(w, axis=-1, keepdims=True)
        e = np.exp(w - m)
        s = np.sum(e, axis=-1, keepdims=True)
        v = qmax + lam * (m + np.log(s))
        pol = e / s
        if use_ref:
            if c == 1.0 or omc == 0.0:
                qmin = np.min(np.where(supp, q, np.inf), axis=-1, keepdims=True)
                narrow = (qmax - qmin) / lam <= SMALL_SPREAD
                d = np.where(supp, u, 0.0)
                if omc != 0.0:
                    d = d - omc * np.where(supp, log_ref, 0.0)
            else:
                d = np.where(supp, u - omc * np.where(supp, log_ref, 0.0), 0.0)
                narrow = np.max(np.abs(d), axis=-1, keepdims=True) <= SMALL_SPREAD
            if np.any(narrow):
                r = np.exp(log_ref) if ref is None else ref
                em1 = np.expm1(np.where(narrow, d, 0.0))
                x = np.sum(np.where(supp, r * em1, 0.0), axis=-1, keepdims=True)
                v = np.where(narrow, qmax + lam * np.log1p(x), v)
                pol = np.where(narrow, np.where(supp, r * (1.0 + em1), 0.0) / (1.0 + x), pol)
    return v[..., 0], pol


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


@numba.njit(inline="always")
def _expm1_small(u):
    """e^u − 1 for |u| ≤ SMALL_SPREAD = 1/32 (the narrow-spread KL branch): Taylor series to u^9/9!,
    truncation < 3e-18 relative, no cancellation (u·(1 + u/2 + …)); branch-free, vectorisable."""
    p = 1.0 / 362880.0
    p = p * u + 1.0 / 40320.0
    p = p * u + 1.0 / 5040.0
    p = p * u + 1.0 / 720.0
    p = p * u + 1.0 / 120.0
    p = p * u + 1.0 / 24.0
    p = p * u + 1.0 / 6.0
    p = p * u + 0.5
    p = p * u + 1.0
    return u * p


@numba.njit(inline="always")
def _kl_term(p, ref, log_ref):
    """π_ref φ(p/π_ref), φ(x) = x log x − x + 1 (scalar form of :func:`kl_terms`)."""
    if ref <= 0.0:
        return np.inf if p > 0.0 else 0.0
    d = (p - ref) / ref
    if abs(d) <= 0.125:
        ser = 0.0
        for k in range(20, 1, -1):
            ser = ser * d + (1.0 if k % 2 == 0 else -1.0) / (k * (k - 1))
        return ref * ser * d * d
    if p > 0.0:
        return p * (math.log(p) - log_ref) - p + ref
    return ref


@numba.njit(inline="always")
def _soft_row(q, ell, lse, lam, c, pol, ref, have_ref, i):
    """:func:`_soft_row_x` with 1 − c computed as ``1.0 - c`` (exact for pure KL, c = 1, and pure
    entropy, c = 0; for entropy + KL pass τ/λ to :func:`_soft_row_x` instead — ``1.0 - c`` has an
    absolute error of ~ε, i.e. a relative one of ε/(1 − c) when τ ≪ β)."""
    return _soft_row_x(q, ell, lse, lam, c, 1.0 - c, pol, ref, have_ref, i)


@numba.njit(inline="always")
def _soft_row_x(q, ell, lse, lam, c, omc, pol, ref, have_ref, i):
    """V of state (row) i and its policy (written to ``pol[i]``) from Q ``q[i]`` (A,), reference logits
    ``ell[i]`` (A,) with LSE ``lse`` (unused when c = 0), λ = τ + β, c = β/λ and ``omc`` = 1 − c = τ/λ
    (passed separately: it must be accurate when τ ≪ β): the two-branch form of
    :func:`soft_value_and_policy`. With a reference (c > 0), d_a = (Q_a − Q̄)/λ − (1 − c) log π_ref(a)
    on the support; when max |d_a| ≤ SMALL_SPREAD (λ large against the spread of Q and τ|log π_ref|)
    V = Q̄ + λ log1p(Σ π_ref expm1(d)) — which uses Σ π_ref = 1 and does not cancel — else the
    max-shifted LSE. One exp per action. With ``have_ref`` the narrow branch weighs by ``ref``
    (π_ref itself, so π = π_ref bit for bit as β → ∞) instead of exp(ℓ − lse).
    The 2-D arrays and the row index are passed, not row views: a view created inside a prange
    loop costs atomic reference counting (it made the tree kernel ~5x slower on 2 threads)."""
    A = q.shape[1]
    use_ref = c != 0.0
    inv = 1.0 / lam
    qmax = -np.inf
    qmin = np.inf
    if use_ref:
        for a in range(A):
            sup = ell[i, a] > -np.inf
            qmax = max(qmax, q[i, a] if sup else -np.inf)
            qmin = min(qmin, q[i, a] if sup else np.inf)
    else:
        for a in range(A):
            qmax = max(qmax, q[i, a])
            qmin = min(qmin, q[i, a])
    narrow = False
    if c == 1.0 or omc == 0.0:
        narrow = (qmax - qmin) * inv <= 0.03125  # SMALL_SPREAD
    elif use_ref:
        # entropy + KL: π_ref^c e^u = π_ref e^d, d = u − (1 − c) log π_ref ∈ [u, −(1 − c) log π_ref]
        dlo = 0.0
        dhi = 0.0
        for a in range(A):
            if ell[i, a] > -np.inf:
                d = (q[i, a] - qmax) * inv - omc * (ell[i, a] - lse)
                dlo = min(dlo, d)
                dhi = max(dhi, d)
        narrow = dhi <= 0.03125 and dlo >= -0.03125
    if narrow:
        # branch-free: on the support d ∈ [−1/32, 1/32] already (the clamp is a no-op); off it π_ref = 0
        # and the clamp keeps expm1 finite, so the action adds exactly 0. The maps and the reduction
        # are separate loops so the maps vectorise (a float reduction does not, without reassociation).
        for a in range(A):
            r = ref[i, a] if have_ref else _exp_nonpos(ell[i, a] - lse)
            d = (q[i, a] - qmax) * inv
            if omc != 0.0:
                d = d - omc * (ell[i, a] - lse) if ell[i, a] > -np.inf else d
            pol[i, a] = r * _expm1_small(min(max(d, -0.03125), 0.03125))
        x = 0.0
        for a in range(A):
            x += pol[i, a]
        inv_s = 1.0 / (1.0 + x)
        for a in range(A):
            r = ref[i, a] if have_ref else _exp_nonpos(ell[i, a] - lse)
            pol[i, a] = (r + pol[i, a]) * inv_s
        return qmax + lam * math.log1p(x)
    m = -np.inf
    if use_ref:
        for a in range(A):
            # min(·, 0): an action off the support may have Q > qmax; with ℓ = −inf it stays −inf (no inf − inf)
            pol[i, a] = min((q[i, a] - qmax) * inv, 0.0) + c * ell[i, a]
    else:
        for a in range(A):
            pol[i, a] = (q[i, a] - qmax) * inv
    for a in range(A):
        m = max(m, pol[i, a])
    for a in range(A):
        pol[i, a] = _exp_nonpos(pol[i, a] - m)
    s = 0.0
    for a in range(A):
        s += pol[i, a]
    inv_s = 1.0 / s
    for a in range(A):
        pol[i, a] *= inv_s
    if use_ref:
        return qmax + lam * (m + math.log(s) - c * lse)
    return qmax + lam * (m + math.log(s))


@numba.njit(parallel=True, fastmath=False, cache=True)
def _tree_backward_kernel(rew, ell, lse_ell, level_start, n_nodes, gamma, eos, lam, c, omc, q, v, pol):
    # Whole-tree backward induction on flat arrays: row p*N + i is node i of prompt p.
    # rew, ell, q, pol: (P*N, V); lse_ell, v: (P*N,). Level h (nodes level_start[h] + j) has
    # children level_start[h+1] + j*V + a; the last level and the EOS action have no child
    # (terminal value 0). Levels run backwards; nodes of a level (over all prompts) run in
    # parallel. The child-value add is fused here so q is written once; each edge costs one
    # (vectorised) exp, each node one log.
    V = rew.shape[1]
    Pn = rew.shape[0] // n_nodes
    H = level_start.shape[0] - 1
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
            v[i] = _soft_row_x(q, ell, lse_ell[i], lam, c, omc, pol, ell, False, i)


def tree_backward(rewards, ref_logits, lse_ref, level_start, gamma: float, eos, reg: Regulariser, *,
                  finite_ref: bool = False, out=None):
    r"""Backward induction on a whole token tree (docs/math.md §4), one level at a time, in one call:

    .. math::
        Q(s,a) = r(s,a) + \gamma V(s\cdot a)\quad(V = 0 \text{ after EOS or at length } H),\qquad
        V(s) = \lambda\big[\mathrm{LSE}_a(Q(s,a)/\lambda + c\,\ell_{ref}(s,a)) - c\,\mathrm{LSE}_a\ell_{ref}(s,a)\big]

    (λ, c from ``reg``; λ = 0 gives V = max_a Q and the uniform-over-argmax policy), and
    :math:`\pi(a|s) = \exp(Q/\lambda + c\,\ell_{ref} - \max)/\sum` — the KL form uses the reference
    *logits* ℓ_ref with the node's cached LSE, so each edge costs one exp and each node one log.
    Per node the value is computed as in :func:`soft_value_and_policy` (Q shifted by its max on the
    support; the log1p/expm1 form when c = 1 and the spread of Q/λ is small), so it is exact to
    round-off for every λ in [1e-300, 1e300] (docs/math.md §4).

    Shapes (canonical node order, leading prompt axis P): ``rewards``, ``ref_logits``
    ``(P, N, V)``; ``lse_ref`` ``(P, N)`` (ignored when c = 0); ``level_start`` ``(H+1,)`` int64.
    ``eos`` is a token index or None. Returns ``(q, v, policy)`` with shapes ``(P, N, V)``,
    ``(P, N)``, ``(P, N, V)``.

    Pure KL (τ = 0, c = 1) and pure entropy (β = 0, c = 0) run the block-vectorised kernel of
    :mod:`mdpsandbox.solvers._tree_fast` (same equations and branches; its exp uses fused
    multiply–adds, so values agree with the general kernel to a few ulp, not bit for bit);
    ``finite_ref=True`` promises every reference logit is finite (a TokenMDP's own logits are
    checked finite), which skips the per-row test for excluded actions (π_ref = 0). Hard control
    and entropy + KL run the general kernel. ``out``: optional ``(q, v, policy)`` C-contiguous
    float64 arrays of the output shapes to write into (every element is overwritten).
    """
    from ._tree_fast import _check_out, tree_backward_fast

    if reg.lam > 0.0 and (reg.temperature == 0.0 or reg.beta == 0.0):
        return tree_backward_fast(rewards, ref_logits, lse_ref, level_start, gamma, eos, float(reg.lam),
                                  1.0 if reg.temperature == 0.0 else 0.0, finite_ref=finite_ref, out=out)
    Pn, N, V = rewards.shape
    if out is None:
        q, v, pol = np.empty((Pn, N, V)), np.empty((Pn, N)), np.empty((Pn, N, V))
    else:
        q, v, pol = _check_out(out, Pn, N, V)
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
                          lam, c, float(reg.omc), q.reshape(PN, V), v.reshape(PN), pol.reshape(PN, V))
    return q, v, pol
