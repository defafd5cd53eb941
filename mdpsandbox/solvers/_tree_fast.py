r"""Fast token-tree backward induction for pure KL (c = 1) and pure entropy (c = 0) control
(docs/math.md §4; Todorov 2007, Rawlik et al. 2012, Ziebart 2010).

The equations and branches of the general kernel ``backups._tree_backward_kernel``: per node s of
level h, with Q̄ = max of Q over supp π_ref (all actions when c = 0), λ = β or τ,

.. math::
    Q(s,a) = r(s,a) + \gamma V(s\cdot a),\qquad
    V(s) = \bar Q + \lambda\log\textstyle\sum_a e^{w_a},\qquad
    w_a = \min((Q(s,a) - \bar Q)/\lambda, 0) + c\,(\ell_{ref}(s,a) - \mathrm{LSE}\,\ell_{ref}(s)),

:math:`\pi(a|s) = e^{w_a}/\sum_b e^{w_b}` (w ≤ 0: no overflow for any λ; the action of Q̄ has
w = c log π_ref, so the sum is ≥ π_ref(that action)^c — a row whose sum is below ``TINY_SUM`` is
redone shifted by max_a w, as the general kernel does), and for c = 1 with a narrow spread
((max − min of Q on the support)/λ ≤ 1/32) the log1p/expm1 form
:math:`V = \bar Q + \lambda\,\mathrm{log1p}(\sum_a \pi_{ref}(a)\,\mathrm{expm1}(u_a))`, operation for
operation as in the general kernel — exact to round-off for λ in [1e-300, 1e300]. The values agree
with the general kernel to a few ulp (the exp here uses fused multiply–adds, the sums four partial
sums), not bit for bit; tests/test_tree_fast.py checks both against a 40-digit recursion.

What differs is the loop structure. The general kernel runs a handful of loops of length V per
node; with V = 8 they are too short for LLVM's vectoriser, so every exp ran as scalar code. Here a
parallel task takes a block of ``BLOCK_NODES`` consecutive nodes of one level and one prompt (their
edges are contiguous in the flat arrays, and so are their children: the child of edge k = j·V + a
of level h is node ``level_start[h+1] + k``), and

1. computes Q = r + γ V(child) over the whole block as one flat (vectorised) loop;
2. per node: the max/min of Q on the support (four accumulators: max and min are exact in any
   order), the narrow-spread test, w (short scalar loops);
3. takes e^w over the whole block as one flat loop (the branch-free exp, FMA form) — the bulk of
   the arithmetic;
4. per node: Σ e^w, the value and the normalised policy (and the narrow-spread rows).

Flat indices are cast to np.uint64: numba adds a negative-index fix-up to every signed index, which
kept LLVM from vectorising the flat loops. Parallelism is over subtrees, not levels: one task per
node of a split level hs (its subtree's nodes on level h are V^(h−hs) consecutive rows), each task
running its levels backwards with no barrier in between (one parallel region per solve); the few
nodes above hs run serially. Arrays are 1-D views of the row-major (P·N, V) arrays, so no
view is created per node inside the parallel loop. With NUMBA_DISABLE_JIT=1 the same code runs as
plain Python (agreeing with the jitted numbers to ~1e-15; the FMA is a·b + c there unless
``math.fma`` exists). :class:`OutputPool` recycles the output memory of dropped solutions.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .backups import (_EXP_MIN, _LN2_HI, _LN2_LO, _LOG2E, _SHIFTER, NUMBA_DISABLED, _exp_nonpos,
                      _expm1_small, _pow2)

__all__ = ["tree_backward_fast", "OutputPool", "BLOCK_NODES"]

if NUMBA_DISABLED:
    if hasattr(math, "fma"):  # Python ≥ 3.13: correctly rounded, as the hardware instruction
        _fma = math.fma
    else:
        def _fma(a, b, c):
            # a·b + c rounded twice (≤ 1 ulp from the fused result; the exp below stays ≤ 1 ulp)
            return a * b + c
else:
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _fma_intr(typingctx, a, b, c):
        def codegen(context, builder, signature, args):
            return builder.fma(*args)
        return _types.float64(_types.float64, _types.float64, _types.float64), codegen

    @numba.njit(inline="always")
    def _fma(a, b, c):
        """a·b + c with one rounding (the FMA instruction; fastmath=False never contracts a*b + c)."""
        return _fma_intr(a, b, c)


@numba.njit(inline="always")
def _exp_fma(x):
    """e^x for x ≤ 0 (0 below −708): the algorithm of ``backups._exp_nonpos`` (Cody–Waite reduction,
    degree-13 Taylor polynomial of e^r on |r| ≤ ln2/2, exact scaling by 2^k) with the reduction and
    the Horner steps as fused multiply–adds — half the floating-point operations, each step rounded
    once instead of twice. Against e^x in 30 digits on 45,000 points of [−708, 0]: ≤ 1 ulp, 95 %
    correctly rounded (tests/test_tree_fast.py)."""
    xc = max(x, _EXP_MIN)
    t = xc * _LOG2E + _SHIFTER
    kf = t - _SHIFTER
    r = _fma(-kf, _LN2_LO, _fma(-kf, _LN2_HI, xc))
    p = 1.0 / 6227020800.0
    p = _fma(p, r, 1.0 / 479001600.0)
    p = _fma(p, r, 1.0 / 39916800.0)
    p = _fma(p, r, 1.0 / 3628800.0)
    p = _fma(p, r, 1.0 / 362880.0)
    p = _fma(p, r, 1.0 / 40320.0)
    p = _fma(p, r, 1.0 / 5040.0)
    p = _fma(p, r, 1.0 / 720.0)
    p = _fma(p, r, 1.0 / 120.0)
    p = _fma(p, r, 1.0 / 24.0)
    p = _fma(p, r, 1.0 / 6.0)
    p = _fma(p, r, 0.5)
    p = _fma(p, r, 1.0)
    p = _fma(p, r, 1.0)
    e = p * _pow2(t, kf)
    return e if x >= _EXP_MIN else 0.0


#: below this Σ_a e^{w_a} a row is redone with the max-shift (see pass 2 of ``_block``): above it the
#: terms e^w < 1e-308 that the exp flushes to 0 weigh < 1e-28 relative
TINY_SUM = 1e-280

#: nodes per parallel task (a block of BLOCK_NODES·V edges stays in L1/L2 between the passes)
BLOCK_NODES = 256


@numba.njit(inline="always")
def _u(k):
    # flat indices go through np.uint64: numba adds a negative-index fix-up to a signed index,
    # which costs two instructions per access and keeps LLVM from vectorising the flat loops
    return np.uint64(k)


@numba.njit(inline="always")
def _max_min(q, r0, V):
    """(max, min) of q[r0 : r0 + V] (exact in any order: four accumulators break the chains)."""
    x = q[_u(r0)]
    mx0, mx1, mx2, mx3 = x, x, x, x
    mn0, mn1, mn2, mn3 = x, x, x, x
    V4 = V - V % 4
    for a in range(0, V4, 4):
        y0 = q[_u(r0 + a)]
        y1 = q[_u(r0 + a + 1)]
        y2 = q[_u(r0 + a + 2)]
        y3 = q[_u(r0 + a + 3)]
        mx0 = max(mx0, y0)
        mx1 = max(mx1, y1)
        mx2 = max(mx2, y2)
        mx3 = max(mx3, y3)
        mn0 = min(mn0, y0)
        mn1 = min(mn1, y1)
        mn2 = min(mn2, y2)
        mn3 = min(mn3, y3)
    for a in range(V4, V):
        mx0 = max(mx0, q[_u(r0 + a)])
        mn0 = min(mn0, q[_u(r0 + a)])
    return max(max(mx0, mx1), max(mx2, mx3)), min(min(mn0, mn1), min(mn2, mn3))


@numba.njit(inline="always")
def _support_max_min(q, ell, r0, V):
    """(max, min) of q[r0 : r0 + V] over the actions with a finite reference logit."""
    qmax = -np.inf
    qmin = np.inf
    for a in range(V):
        k = _u(r0 + a)
        sup = ell[k] > -np.inf
        qmax = max(qmax, q[k] if sup else -np.inf)
        qmin = min(qmin, q[k] if sup else np.inf)
    return qmax, qmin


@numba.njit(inline="always")
def _has_excluded(ell, r0, V):
    """Whether a logit of row r0 is −inf (π_ref = 0). Logits are finite or −inf (TokenMDP checks
    them finite; log π_ref of a ``ref_policy`` is ≤ 0), so the row sums to −inf exactly when one
    is; a finite sum that overflows to −inf only sends the row to the (equally exact) support path."""
    s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0
    V4 = V - V % 4
    for a in range(0, V4, 4):
        s0 += ell[_u(r0 + a)]
        s1 += ell[_u(r0 + a + 1)]
        s2 += ell[_u(r0 + a + 2)]
        s3 += ell[_u(r0 + a + 3)]
    for a in range(V4, V):
        s0 += ell[_u(r0 + a)]
    return (s0 + s1) + (s2 + s3) == -np.inf


@numba.njit(inline="always")
def _shifted_logits(q, ell, r0, V, qmax, inv, c, use_ref, pol):
    """w_a = min((Q_a − Q̄)/λ, 0) + c ℓ_a (just (Q_a − Q̄)/λ when c = 0) into pol[r0 : r0 + V];
    returns m = max_a w_a."""
    m0, m1, m2, m3 = -np.inf, -np.inf, -np.inf, -np.inf
    V4 = V - V % 4
    if use_ref:
        for a in range(0, V4, 4):
            w0 = min((q[_u(r0 + a)] - qmax) * inv, 0.0) + c * ell[_u(r0 + a)]
            w1 = min((q[_u(r0 + a + 1)] - qmax) * inv, 0.0) + c * ell[_u(r0 + a + 1)]
            w2 = min((q[_u(r0 + a + 2)] - qmax) * inv, 0.0) + c * ell[_u(r0 + a + 2)]
            w3 = min((q[_u(r0 + a + 3)] - qmax) * inv, 0.0) + c * ell[_u(r0 + a + 3)]
            pol[_u(r0 + a)] = w0
            pol[_u(r0 + a + 1)] = w1
            pol[_u(r0 + a + 2)] = w2
            pol[_u(r0 + a + 3)] = w3
            m0 = max(m0, w0)
            m1 = max(m1, w1)
            m2 = max(m2, w2)
            m3 = max(m3, w3)
        for a in range(V4, V):
            w0 = min((q[_u(r0 + a)] - qmax) * inv, 0.0) + c * ell[_u(r0 + a)]
            pol[_u(r0 + a)] = w0
            m0 = max(m0, w0)
    else:
        for a in range(0, V4, 4):
            w0 = (q[_u(r0 + a)] - qmax) * inv
            w1 = (q[_u(r0 + a + 1)] - qmax) * inv
            w2 = (q[_u(r0 + a + 2)] - qmax) * inv
            w3 = (q[_u(r0 + a + 3)] - qmax) * inv
            pol[_u(r0 + a)] = w0
            pol[_u(r0 + a + 1)] = w1
            pol[_u(r0 + a + 2)] = w2
            pol[_u(r0 + a + 3)] = w3
            m0 = max(m0, w0)
            m1 = max(m1, w1)
            m2 = max(m2, w2)
            m3 = max(m3, w3)
        for a in range(V4, V):
            w0 = (q[_u(r0 + a)] - qmax) * inv
            pol[_u(r0 + a)] = w0
            m0 = max(m0, w0)
    return max(max(m0, m1), max(m2, m3))


@numba.njit(inline="always")
def _row_sum(pol, r0, V):
    """Σ pol[r0 : r0 + V] (four partial sums)."""
    s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0
    V4 = V - V % 4
    for a in range(0, V4, 4):
        s0 += pol[_u(r0 + a)]
        s1 += pol[_u(r0 + a + 1)]
        s2 += pol[_u(r0 + a + 2)]
        s3 += pol[_u(r0 + a + 3)]
    for a in range(V4, V):
        s0 += pol[_u(r0 + a)]
    return (s0 + s1) + (s2 + s3)


@numba.njit(inline="always")
def _narrow_row(q, ell, lse, r0, V, qmax, lam, inv, pol):
    """The c = 1, small-spread row: π = π_ref(1 + expm1(u))/(1 + x), V = Q̄ + λ log1p(x),
    x = Σ π_ref expm1(u) — operation for operation the branch of ``backups._soft_row``."""
    for a in range(V):
        k = _u(r0 + a)
        r = _exp_nonpos(ell[k] - lse)
        pol[k] = r * _expm1_small(min(max((q[k] - qmax) * inv, -0.03125), 0.0))
    x = 0.0
    for a in range(V):
        x += pol[_u(r0 + a)]
    inv_s = 1.0 / (1.0 + x)
    for a in range(V):
        k = _u(r0 + a)
        r = _exp_nonpos(ell[k] - lse)
        pol[k] = (r + pol[k]) * inv_s
    return qmax + lam * math.log1p(x)


@numba.njit(inline="always")
def _block(rew, ell, lse_ell, V, gamma, eos, lam, c, finite, has_child, i0, i1, d, q, v, pol, mark):
    """Rows i0..i1−1 (consecutive nodes of one level of one prompt); the child of edge k is row k − d.
    ``finite``: every logit is known finite (no row needs the support test); ``mark``: scratch of
    ≥ i1 − i0 floats (one allocation per task, not per block)."""
    inv = 1.0 / lam
    use_ref = c != 0.0
    kl = c == 1.0
    k0 = i0 * V
    k1 = i1 * V
    # 1. Q = r + γ V(child) over the block (flat); Q = r for EOS and on the last level
    if has_child:
        for k in range(k0, k1):
            q[_u(k)] = rew[_u(k)] + gamma * v[_u(k - d)]
        if eos >= 0:
            for i in range(i0, i1):
                q[_u(i * V + eos)] = rew[_u(i * V + eos)]
    else:
        for k in range(k0, k1):
            q[_u(k)] = rew[_u(k)]
    # 2. per node: Q̄ over supp π_ref (kept in v[i]), the spread test, and the exponent
    #    w_a = min((Q_a − Q̄)/λ, 0) + c(ℓ_a − LSE ℓ) ≤ 0 into pol. The shift by LSE ℓ (log π_ref ≤ 0)
    #    replaces the max-shift of the general kernel: w ≤ 0 already and the action of Q̄ has
    #    w = c log π_ref, so Σ e^w ≥ π_ref(Q̄'s action)^c; a row where that sum is < TINY_SUM
    #    (π_ref of the best action < 1e-280) is redone max-shifted in pass 4. NaN in the scratch
    #    marks a narrow-spread row (finished in pass 4).
    for i in range(i0, i1):
        r0 = i * V
        if use_ref and not finite and _has_excluded(ell, r0, V):
            qmax, qmin = _support_max_min(q, ell, r0, V)
        else:
            qmax, qmin = _max_min(q, r0, V)
        v[_u(i)] = qmax
        if kl and (qmax - qmin) * inv <= 0.03125:  # SMALL_SPREAD
            mark[_u(i - i0)] = np.nan
            for a in range(V):
                pol[_u(r0 + a)] = 0.0
        else:
            mark[_u(i - i0)] = 0.0
            if use_ref:
                lse = lse_ell[_u(i)]
                for a in range(V):
                    k = _u(r0 + a)
                    pol[k] = min((q[k] - qmax) * inv, 0.0) + c * (ell[k] - lse)
            else:
                for a in range(V):
                    k = _u(r0 + a)
                    pol[k] = (q[k] - qmax) * inv
    # 3. e^w over the block (flat, vectorised): the bulk of the arithmetic
    for k in range(k0, k1):
        pol[_u(k)] = _exp_fma(pol[_u(k)])
    # 4. per node: Σ, the normalised policy and the value (or the narrow-spread form)
    for i in range(i0, i1):
        r0 = i * V
        qmax = v[_u(i)]
        if mark[_u(i - i0)] != 0.0:
            v[_u(i)] = _narrow_row(q, ell, lse_ell[_u(i)], r0, V, qmax, lam, inv, pol)
            continue
        s = _row_sum(pol, r0, V)
        m = 0.0
        if s < TINY_SUM:  # only with a reference: its best-Q action is nearly excluded
            m = _shifted_logits(q, ell, r0, V, qmax, inv, c, use_ref, pol)
            for a in range(V):
                k = _u(r0 + a)
                pol[k] = _exp_fma(pol[k] - m)
            s = _row_sum(pol, r0, V)
            m = m - c * lse_ell[_u(i)]
        inv_s = 1.0 / s
        for a in range(V):
            pol[_u(r0 + a)] *= inv_s
        v[_u(i)] = qmax + lam * (m + math.log(s))


@numba.njit(parallel=True, fastmath=False, cache=True)
def _tree_fast_kernel(rew, ell, lse_ell, level_start, n_nodes, V, gamma, eos, lam, c, finite, block, hs,
                      q, v, pol):
    # rew, ell, q, pol: flat (P*N*V,); lse_ell, v: (P*N,). Row (node) i of prompt p is p*N + i;
    # the child of edge k = i*V + a of level h (i = p*N + level_start[h] + j) is row
    # p*N + level_start[h+1] + j*V + a = k − d with d = p*N*(V − 1) + level_start[h]*V − level_start[h+1].
    # Levels hs..H−1: one parallel task per subtree rooted at a node of level hs (its nodes on
    # level h are V^(h−hs) consecutive rows, so the task runs its own levels backwards with no
    # barrier in between); levels 0..hs−1 (few nodes) then run serially.
    Pn = v.shape[0] // n_nodes
    H = level_start.shape[0] - 1
    if hs < H:
        ns = level_start[hs + 1] - level_start[hs]  # V^hs subtrees per prompt
        for t in numba.prange(Pn * ns):
            p = t // ns
            j = t - p * ns
            mark = np.empty(block)
            width = 1
            for _ in range(H - 1 - hs):
                width *= V
            for h in range(H - 1, hs - 1, -1):
                a0 = level_start[h]
                first = p * n_nodes + a0 + j * width
                d = p * n_nodes * (V - 1) + a0 * V - level_start[h + 1]
                for b0 in range(0, width, block):
                    _block(rew, ell, lse_ell, V, gamma, eos, lam, c, finite, h < H - 1, first + b0,
                           first + min(b0 + block, width), d, q, v, pol, mark)
                width //= V
    mark_top = np.empty(block)
    for h in range(min(hs, H) - 1, -1, -1):
        a0 = level_start[h]
        n_h = level_start[h + 1] - a0
        for p in range(Pn):
            first = p * n_nodes + a0
            d = p * n_nodes * (V - 1) + a0 * V - level_start[h + 1]
            for b0 in range(0, n_h, block):
                _block(rew, ell, lse_ell, V, gamma, eos, lam, c, finite, h < H - 1, first + b0,
                       first + min(b0 + block, n_h), d, q, v, pol, mark_top)


def _split_level(V, H, Pn, min_tasks=16, min_edges=1 << 15):
    """The level hs whose nodes root the parallel subtrees: the first with ≥ ``min_tasks`` nodes over
    all prompts (H, i.e. all serial, for trees of fewer than ``min_edges`` edges)."""
    if Pn * V * sum(V**h for h in range(H)) < min_edges:
        return H
    for h in range(H):
        if Pn * V**h >= min_tasks:
            return h
    return H


def _check_out(out, Pn, N, V):
    """Validate ``out`` = (q, v, policy) output arrays."""
    q, v, pol = out
    for a, shape, name in ((q, (Pn, N, V), "q"), (v, (Pn, N), "v"), (pol, (Pn, N, V), "policy")):
        if not (isinstance(a, np.ndarray) and a.shape == shape and a.dtype == np.float64
                and a.flags.c_contiguous and a.flags.writeable):
            raise ValueError(f"out[{name!r}] must be a writeable C-contiguous float64 array of shape {shape}")
    return q, v, pol


def tree_backward_fast(rewards, ref_logits, lse_ref, level_start, gamma: float, eos, lam: float, c: float,
                       finite_ref: bool = False, block: int = BLOCK_NODES, out=None, split=None):
    r"""Backward induction on a whole token tree for pure KL (``c = 1``, λ = β) or pure entropy
    (``c = 0``, λ = τ) control, λ > 0 — the equations and branches of
    :func:`~mdpsandbox.solvers.backups.tree_backward` in a block-vectorised loop order (see the module
    docstring); ``finite_ref=True`` promises every logit is finite (skips the per-row support test).

    Shapes as :func:`~mdpsandbox.solvers.backups.tree_backward`: ``rewards``, ``ref_logits``
    ``(P, N, V)`` C-contiguous float64 (``ref_logits`` unread when c = 0), ``lse_ref`` ``(P, N)``
    (unread when c = 0). ``out``: optional ``(q, v, policy)`` C-contiguous float64 arrays of those
    shapes to write into (every element is overwritten). ``split``: the level whose nodes root the
    parallel subtrees (default :func:`_split_level`; H runs everything serially) — the numbers do
    not depend on it. Returns ``(q, v, policy)``.
    """
    if not (lam > 0.0 and (c == 1.0 or c == 0.0)):
        raise ValueError(f"tree_backward_fast needs lam > 0 and c in {{0, 1}}, got lam={lam!r}, c={c!r}")
    block = int(block)
    if block < 1:
        raise ValueError(f"block must be a positive number of nodes, got {block}")
    Pn, N, V = rewards.shape
    if out is None:
        q, v, pol = np.empty((Pn, N, V)), np.empty((Pn, N)), np.empty((Pn, N, V))
    else:
        q, v, pol = _check_out(out, Pn, N, V)
    if c == 0.0:
        ref_logits, lse_ref = rewards, v  # unread
    _tree_fast_kernel(np.ascontiguousarray(rewards).reshape(-1), np.ascontiguousarray(ref_logits).reshape(-1),
                      np.ascontiguousarray(lse_ref).reshape(-1), np.asarray(level_start, dtype=np.int64), N, V,
                      float(gamma), -1 if eos is None else int(eos), float(lam), float(c), bool(finite_ref), block,
                      _split_level(V, len(level_start) - 1, Pn) if split is None else int(split),
                      q.reshape(-1), v.reshape(-1), pol.reshape(-1))
    return q, v, pol


# ---------------------------------------------------------------------- recycled output memory
class _Raw(np.ndarray):
    """Flat float64 memory kept by an :class:`OutputPool` (a subclass only so that numpy does not
    collapse the base chain of the arrays handed out past their :class:`_Holder`)."""


class _Holder(np.ndarray):
    """View of one pooled buffer; every array handed out has it in its base chain, so it dies when
    the last of them does — and then gives the buffer back to its pool."""

    def __del__(self):
        pool = self.__dict__.get("_pool")
        if pool is not None:
            try:
                pool._release(self.base)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass


class OutputPool:
    """Recycles the output memory (q, v, policy) of the token-tree solves of one env.

    A fresh 19 MB array costs its first-touch page faults (~40 MB of pages per solve of the V = 8,
    H = 7 tree). :meth:`empty` hands out plain ndarrays whose memory returns to the pool once every
    array viewing it is gone (a Solution that was dropped); the next solve reuses it. Memory still
    referenced — a Solution kept, or any view of its arrays — is never reused. At most ``keep`` free
    buffers of each size are kept (q and policy share a size, v has its own: one solve's worth).
    Taking and returning buffers are single list operations (atomic: safe with threads, and from a
    finaliser that runs at any point)."""

    def __init__(self, keep: int = 2):
        self.keep = int(keep)
        self._free = {}

    def empty(self, shape) -> np.ndarray:
        """An uninitialised C-contiguous float64 array of ``shape`` (recycled memory when available)."""
        n = 1
        for d in shape:
            n *= int(d)
        raw = None
        free = self._free.get(n)
        if free:
            try:
                raw = free.pop()
            except IndexError:  # taken concurrently
                raw = None
        if raw is None:
            raw = np.empty(n).view(_Raw)
        holder = raw.view(_Holder)
        holder._pool = self
        return holder.view(np.ndarray).reshape(shape)

    def _release(self, raw):
        free = self._free.setdefault(raw.size, [])
        if len(free) < self.keep:
            free.append(raw)

    @property
    def n_free(self) -> int:
        """Number of free buffers held."""
        return sum(len(f) for f in list(self._free.values()))
