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
sums, the log is fdlibm's instead of libm's), not bit for bit; tests/test_tree_fast.py checks both against a 40-digit recursion.

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
4. per node: Σ e^w and the normalised policy (and the narrow-spread rows);
5. the values Q̄ + λ log Σ over the block's nodes as one flat loop (a branch-free fdlibm log, ≤ 1 ulp
   like libm's, vectorised: ``math.log`` is a scalar call per node);
6. copies Q and π from the block's scratch (L1/L2) to the outputs with streaming (non-temporal)
   stores on the 64-byte-aligned lines: the 19 MB outputs are not read again, and a plain store
   would first fetch every line from memory (read-for-ownership: a third of the traffic of a solve).

Flat indices are cast to np.uint64: numba adds a negative-index fix-up to every signed index, which
kept LLVM from vectorising the flat loops. Parallelism is over subtrees, not levels: one task per
node of a split level hs (its subtree's nodes on level h are V^(h−hs) consecutive rows), each task
running its levels backwards with no barrier in between (one parallel region per solve); the few
nodes above hs run serially. Arrays are 1-D views of the row-major (P·N, V) arrays, so no
view is created per node inside the parallel loop. With NUMBA_DISABLE_JIT=1 the same code runs as
plain Python (agreeing with the jitted numbers to ~1e-15; the FMA is a·b + c there unless
``math.fma`` exists; plain stores). :class:`OutputPool` recycles the output memory of dropped solutions
(64-byte aligned). The kernel uses numpy's error model: its divisions (1/λ, 1/Σ, f/(2 + f) in the log)
never divide by zero, and the checked division of the Python model would keep the log from vectorising.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .backups import (_EXP_MIN, _LN2_HI, _LN2_LO, _LOG2E, _SHIFTER, NUMBA_DISABLED, _exp_nonpos,
                      _expm1_small, _pow2)

__all__ = ["tree_backward_fast", "OutputPool", "BLOCK_NODES"]

if NUMBA_DISABLED:
    import struct as _struct

    if hasattr(math, "fma"):  # Python ≥ 3.13: correctly rounded, as the hardware instruction
        _fma = math.fma
    else:
        def _fma(a, b, c):
            # a·b + c rounded twice (≤ 1 ulp from the fused result; the exp below stays ≤ 1 ulp)
            return a * b + c

    def _f64_bits(x):
        return _struct.unpack("<q", _struct.pack("<d", x))[0]

    def _bits_f64(i):
        return _struct.unpack("<d", _struct.pack("<q", i))[0]

    def _nt_copy8(dst, k, src, j):
        dst[k:k + 8] = src[j:j + 8]

    def _store_fence():
        pass

    def _next_task(counter):
        t = int(counter[0])
        counter[0] = t + 1
        return t
else:
    from llvmlite import ir as _ir
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    from .backups import _bits_f64, _f64_bits

    @_intrinsic
    def _fma_intr(typingctx, a, b, c):
        def codegen(context, builder, signature, args):
            return builder.fma(*args)
        return _types.float64(_types.float64, _types.float64, _types.float64), codegen

    @numba.njit(inline="always")
    def _fma(a, b, c):
        """a·b + c with one rounding (the FMA instruction; fastmath=False never contracts a*b + c)."""
        return _fma_intr(a, b, c)

    @_intrinsic
    def _nt_copy8(typingctx, dst, k, src, j):
        """dst[k : k + 8] = src[j : j + 8] as one non-temporal (streaming) 64-byte store: the line goes
        to memory without being read first (no read-for-ownership). &dst[k] must be 64-byte aligned."""
        def codegen(context, builder, signature, args):
            d = context.make_array(signature.args[0])(context, builder, args[0])
            s = context.make_array(signature.args[2])(context, builder, args[2])
            vty = _ir.VectorType(_ir.DoubleType(), 8)
            val = builder.load(builder.bitcast(builder.gep(s.data, [args[3]]), vty.as_pointer()), align=8)
            st = builder.store(val, builder.bitcast(builder.gep(d.data, [args[1]]), vty.as_pointer()), align=64)
            st.set_metadata("nontemporal", builder.module.add_metadata([_ir.Constant(_ir.IntType(32), 1)]))
            return context.get_dummy_value()
        return _types.void(dst, k, src, j), codegen

    @_intrinsic
    def _store_fence(typingctx):
        """A full memory fence (mfence on x86): orders the weakly ordered streaming stores before
        anything that follows (the end of the parallel task)."""
        def codegen(context, builder, signature, args):
            builder.fence("seq_cst")
            return context.get_dummy_value()
        return _types.void(), codegen

    @_intrinsic
    def _next_task(typingctx, counter):
        """Atomically counter[0] += 1 (int64 array); returns the old value: the next task of a shared
        work counter (dynamic scheduling inside a prange over workers)."""
        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.gep(ary.data, [_ir.Constant(_ir.IntType(64), 0)])
            return builder.atomic_rmw("add", ptr, _ir.Constant(_ir.IntType(64), 1), "monotonic")
        return _types.int64(counter), codegen


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


# fdlibm's log (e_log.c; musl's log.c before 2018): x = 2^k (1 + f), 1 + f in [√2/2, √2),
# log(1 + f) = f − f²/2 + s(f²/2 + R(s²)), s = f/(2 + f), R a degree-14 minimax polynomial in s
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@numba.njit(inline="always")
def _log_pos(x):
    """log x for a positive normal x (< 1 ulp): fdlibm's algorithm (the reduction to [√2/2, √2) by
    exponent bits, k·ln 2 in two parts) written branch-free, so that a loop over the nodes of a block
    vectorises (``math.log`` is a scalar libm call per node). Against log x in 30 digits: ≤ 1 ulp
    (tests/test_tree_fast.py)."""
    ix = _f64_bits(x)
    hx = (ix >> 32) + (0x3ff00000 - 0x3fe6a09e)
    k = (hx >> 20) - 0x3ff
    hx = (hx & 0x000fffff) + 0x3fe6a09e
    f = _bits_f64((hx << 32) | (ix & 0xffffffff)) - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    dk = float(k)
    return s * (hfsq + (t2 + t1)) + dk * _LN2_LO - hfsq + f + dk * _LN2_HI


#: below this Σ_a e^{w_a} a row is redone with the max-shift (see pass 4 of ``_block``): above it the
#: terms e^w < 1e-308 that the exp flushes to 0 weigh < 1e-28 relative
TINY_SUM = 1e-280

#: nodes per block (a block's Q and policy stay in L1/L2 scratch between the passes)
BLOCK_NODES = 256


@numba.njit(inline="always")
def _u(k):
    # flat indices go through np.uint64: numba adds a negative-index fix-up to a signed index,
    # which costs two instructions per access and keeps LLVM from vectorising the flat loops
    return np.uint64(k)


@numba.njit(inline="always")
def _max_min(q, l0, V):
    """(max, min) of q[l0 : l0 + V] (exact in any order: four accumulators break the chains)."""
    x = q[_u(l0)]
    mx0, mx1, mx2, mx3 = x, x, x, x
    mn0, mn1, mn2, mn3 = x, x, x, x
    V4 = V - V % 4
    for a in range(0, V4, 4):
        y0 = q[_u(l0 + a)]
        y1 = q[_u(l0 + a + 1)]
        y2 = q[_u(l0 + a + 2)]
        y3 = q[_u(l0 + a + 3)]
        mx0 = max(mx0, y0)
        mx1 = max(mx1, y1)
        mx2 = max(mx2, y2)
        mx3 = max(mx3, y3)
        mn0 = min(mn0, y0)
        mn1 = min(mn1, y1)
        mn2 = min(mn2, y2)
        mn3 = min(mn3, y3)
    for a in range(V4, V):
        mx0 = max(mx0, q[_u(l0 + a)])
        mn0 = min(mn0, q[_u(l0 + a)])
    return max(max(mx0, mx1), max(mx2, mx3)), min(min(mn0, mn1), min(mn2, mn3))


@numba.njit(inline="always")
def _support_max_min(q, l0, ell, r0, V):
    """(max, min) of q[l0 : l0 + V] over the actions with a finite reference logit ell[r0 + a]."""
    qmax = -np.inf
    qmin = np.inf
    for a in range(V):
        sup = ell[_u(r0 + a)] > -np.inf
        qmax = max(qmax, q[_u(l0 + a)] if sup else -np.inf)
        qmin = min(qmin, q[_u(l0 + a)] if sup else np.inf)
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
def _shifted_logits(q, l0, ell, r0, V, qmax, inv, c, use_ref, pol):
    """w_a = min((Q_a − Q̄)/λ, 0) + c ℓ_a (just (Q_a − Q̄)/λ when c = 0) into pol[l0 : l0 + V]
    (Q in q[l0:], ℓ in ell[r0:]); returns m = max_a w_a."""
    m = -np.inf
    for a in range(V):
        if use_ref:
            w = min((q[_u(l0 + a)] - qmax) * inv, 0.0) + c * ell[_u(r0 + a)]
        else:
            w = (q[_u(l0 + a)] - qmax) * inv
        pol[_u(l0 + a)] = w
        m = max(m, w)
    return m


@numba.njit(inline="always")
def _row_sum(pol, l0, V):
    """Σ pol[l0 : l0 + V] (four partial sums)."""
    s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0
    V4 = V - V % 4
    for a in range(0, V4, 4):
        s0 += pol[_u(l0 + a)]
        s1 += pol[_u(l0 + a + 1)]
        s2 += pol[_u(l0 + a + 2)]
        s3 += pol[_u(l0 + a + 3)]
    for a in range(V4, V):
        s0 += pol[_u(l0 + a)]
    return (s0 + s1) + (s2 + s3)


@numba.njit(inline="always")
def _narrow_row(q, l0, ell, r0, lse, V, qmax, lam, inv, pol):
    """The c = 1, small-spread row: π = π_ref(1 + expm1(u))/(1 + x), V = Q̄ + λ log1p(x),
    x = Σ π_ref expm1(u) — operation for operation the branch of ``backups._soft_row``
    (Q and π in q[l0:], pol[l0:]; ℓ in ell[r0:])."""
    for a in range(V):
        r = _exp_nonpos(ell[_u(r0 + a)] - lse)
        pol[_u(l0 + a)] = r * _expm1_small(min(max((q[_u(l0 + a)] - qmax) * inv, -0.03125), 0.0))
    x = 0.0
    for a in range(V):
        x += pol[_u(l0 + a)]
    inv_s = 1.0 / (1.0 + x)
    for a in range(V):
        r = _exp_nonpos(ell[_u(r0 + a)] - lse)
        pol[_u(l0 + a)] = (r + pol[_u(l0 + a)]) * inv_s
    return qmax + lam * math.log1p(x)


@numba.njit(inline="always")
def _copy_out(dst, k0, src, n, phase):
    """dst[k0 : k0 + n] = src[:n]; with ``phase`` ≥ 0 (dst[phase] is 64-byte aligned) the whole
    cache lines go as streaming stores (the output is not read again by the solve: writing it
    through the cache would first read every line from memory)."""
    h = 0
    if phase >= 0:
        h = min((phase - k0) % 8, n)
    for l in range(h):
        dst[_u(k0 + l)] = src[_u(l)]
    if phase >= 0:
        n8 = h + (n - h) // 8 * 8
        for l in range(h, n8, 8):
            _nt_copy8(dst, _u(k0 + l), src, _u(l))
        h = n8
    for l in range(h, n):
        dst[_u(k0 + l)] = src[_u(l)]


@numba.njit(inline="always")
def _block(rew, ell, lse_ell, V, gamma, eos, lam, c, finite, has_child, i0, i1, d, q, v, pol, qs, ps, mark, sv,
           mv, phq, php):
    """Rows i0..i1−1 (consecutive nodes of one level of one prompt); the child of edge k is row k − d.
    ``finite``: every logit is known finite (no row needs the support test). Q and π are computed
    in the scratch ``qs``, ``ps`` (≥ (i1 − i0)·V floats; ``mark``, ``sv``, ``mv`` ≥ i1 − i0: one
    allocation per task, not per block) and copied out at the end (streaming stores when
    ``phq``/``php`` ≥ 0, see :func:`_copy_out`)."""
    inv = 1.0 / lam
    use_ref = c != 0.0
    kl = c == 1.0
    n = i1 - i0
    k0 = i0 * V
    ne = n * V
    # 1. Q = r + γ V(child) over the block (flat); Q = r for EOS and on the last level
    if has_child:
        for l in range(ne):
            qs[_u(l)] = rew[_u(k0 + l)] + gamma * v[_u(k0 + l - d)]
        if eos >= 0:
            for j in range(n):
                qs[_u(j * V + eos)] = rew[_u(k0 + j * V + eos)]
    else:
        for l in range(ne):
            qs[_u(l)] = rew[_u(k0 + l)]
    # 2. per node: Q̄ over supp π_ref (kept in v[i]), the spread test, and the exponent
    #    w_a = min((Q_a − Q̄)/λ, 0) + c(ℓ_a − LSE ℓ) ≤ 0 into ps. The shift by LSE ℓ (log π_ref ≤ 0)
    #    replaces the max-shift of the general kernel: w ≤ 0 already and the action of Q̄ has
    #    w = c log π_ref, so Σ e^w ≥ π_ref(Q̄'s action)^c; a row where that sum is < TINY_SUM
    #    (π_ref of the best action < 1e-280) is redone max-shifted in pass 4. mark = 1 flags a
    #    narrow-spread row (finished in pass 4). (c = 1 whenever use_ref: c·x is x.)
    for j in range(n):
        l0 = j * V
        r0 = k0 + l0
        if use_ref and not finite and _has_excluded(ell, r0, V):
            qmax, qmin = _support_max_min(qs, l0, ell, r0, V)
        else:
            qmax, qmin = _max_min(qs, l0, V)
        v[_u(i0 + j)] = qmax
        if kl and (qmax - qmin) * inv <= 0.03125:  # SMALL_SPREAD
            mark[_u(j)] = 1.0
            for a in range(V):
                ps[_u(l0 + a)] = 0.0
        else:
            mark[_u(j)] = 0.0
            if use_ref:
                lse = lse_ell[_u(i0 + j)]
                for a in range(V):
                    ps[_u(l0 + a)] = min((qs[_u(l0 + a)] - qmax) * inv, 0.0) + (ell[_u(r0 + a)] - lse)
            else:
                for a in range(V):
                    ps[_u(l0 + a)] = (qs[_u(l0 + a)] - qmax) * inv
    # 3. e^w over the block (flat, vectorised): the bulk of the arithmetic
    for l in range(ne):
        ps[_u(l)] = _exp_fma(ps[_u(l)])
    # 4. per node: Σ and the normalised policy (or the narrow-spread form, value included);
    #    the sum s and the shift m of the value Q̄ + λ(m + log s) go to sv, mv
    for j in range(n):
        l0 = j * V
        if mark[_u(j)] != 0.0:
            v[_u(i0 + j)] = _narrow_row(qs, l0, ell, k0 + l0, lse_ell[_u(i0 + j)], V, v[_u(i0 + j)], lam, inv, ps)
            sv[_u(j)] = 1.0
            mv[_u(j)] = 0.0
            continue
        s = _row_sum(ps, l0, V)
        m = 0.0
        if s < TINY_SUM:  # only with a reference: its best-Q action is nearly excluded
            m = _shifted_logits(qs, l0, ell, k0 + l0, V, v[_u(i0 + j)], inv, c, use_ref, ps)
            for a in range(V):
                ps[_u(l0 + a)] = _exp_fma(ps[_u(l0 + a)] - m)
            s = _row_sum(ps, l0, V)
            m = m - c * lse_ell[_u(i0 + j)]
        inv_s = 1.0 / s
        for a in range(V):
            ps[_u(l0 + a)] *= inv_s
        sv[_u(j)] = s
        mv[_u(j)] = m
    # 5. the values, V = Q̄ + λ(m + log s), over the block's nodes (flat: the log vectorises)
    for j in range(n):
        x = v[_u(i0 + j)] + lam * (mv[_u(j)] + _log_pos(sv[_u(j)]))
        v[_u(i0 + j)] = x if mark[_u(j)] == 0.0 else v[_u(i0 + j)]
    # 6. Q and π out of the scratch
    _copy_out(q, k0, qs, ne, phq)
    _copy_out(pol, k0, ps, ne, php)


@numba.njit(parallel=True, fastmath=False, cache=True, error_model="numpy")
def _tree_fast_kernel(rew, ell, lse_ell, level_start, n_nodes, V, gamma, eos, lam, c, finite, block, hs,
                      q, v, pol, phq, php):
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
            qs = np.empty(block * V)
            ps = np.empty(block * V)
            mark = np.empty(block)
            sv = np.empty(block)
            mv = np.empty(block)
            width = 1
            for _ in range(H - 1 - hs):
                width *= V
            for h in range(H - 1, hs - 1, -1):
                a0 = level_start[h]
                first = p * n_nodes + a0 + j * width
                d = p * n_nodes * (V - 1) + a0 * V - level_start[h + 1]
                for b0 in range(0, width, block):
                    _block(rew, ell, lse_ell, V, gamma, eos, lam, c, finite, h < H - 1, first + b0,
                           first + min(b0 + block, width), d, q, v, pol, qs, ps, mark, sv, mv, phq, php)
                width //= V
            _store_fence()
    qs = np.empty(block * V)
    ps = np.empty(block * V)
    mark = np.empty(block)
    sv = np.empty(block)
    mv = np.empty(block)
    for h in range(min(hs, H) - 1, -1, -1):
        a0 = level_start[h]
        n_h = level_start[h + 1] - a0
        for p in range(Pn):
            first = p * n_nodes + a0
            d = p * n_nodes * (V - 1) + a0 * V - level_start[h + 1]
            for b0 in range(0, n_h, block):
                _block(rew, ell, lse_ell, V, gamma, eos, lam, c, finite, h < H - 1, first + b0,
                       first + min(b0 + block, n_h), d, q, v, pol, qs, ps, mark, sv, mv, phq, php)
    _store_fence()


def _phase(a):
    """The index of the first 64-byte-aligned element of the flat float64 array ``a`` (−1 when its
    elements are not 8-byte aligned: then no streaming stores)."""
    addr = a.__array_interface__["data"][0]
    if addr % 8:
        return -1
    return (-(addr // 8)) % 8


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
                      q.reshape(-1), v.reshape(-1), pol.reshape(-1), _phase(q), _phase(pol))
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
    H = 7 tree). :meth:`empty` hands out plain 64-byte-aligned ndarrays whose memory returns to the pool once every
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
            # 64-byte aligned (a cache line): the kernel's streaming stores then cover every row
            buf = np.empty(n + 8)
            off = (-(buf.__array_interface__["data"][0] // 8)) % 8
            raw = buf[off:off + n].view(_Raw)
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
