r"""numba kernels of the categorical CDF operator TF = MF + b, M = blockdiag_x(C^{(r(x))})(P ⊗ I_{m−1})
(docs/math.md §7), shared by CDP and DCFP so that both pay the same per-application cost.

* ``build_columns`` — the compact C: column j of C^{(u)} has its (at most) two non-zeros in rows
  ``c_rows[u, j]`` and ``c_rows[u, m1 + j]`` with weights ``c_vals[u, j]``, ``c_vals[u, m1 + j]``
  (the arrays `_build_operator` always stored, by the same floating-point operations as the former
  vectorised numpy code, so the numbers are unchanged).
* ``build_gather`` — the same C^{(u)} as row blocks that read one contiguous window of columns
  (stride-1, vectorised multiply-adds); the two-entry column scatter stays as the fallback for
  small γ, whose windows are wide.
* ``m_row`` — one state's row block of M F: (P F)(x) from P's CSR row (or a precomputed dense
  P @ F), then C^{(r(x))}. No scipy matrix, no temporaries; bit-identical to scipy's
  ``blockC @ (P @ F)`` for a CSR P (same summation orders).
* ``apply_m``, ``residual``, ``cdp_loop``, ``bicgstab`` — whole loops in one call, every vector
  update fused with the ℓ∞,1 norm / dot products it feeds (reductions with eight accumulators).
* ``stationary``, ``coarse_band``, ``band_lu``, ``band_solve`` — the one-aggregate coarse correction
  that right-preconditions BiCGSTAB (see ``bicgstab``).

Arrays are 2-D ``(n, m1)`` (row x = the m−1 CDF values of state x). P is passed both ways and
``dense`` says which one is live: CSR ``indptr, indices, data`` (int64, int64, float64), or a dense
C-contiguous ``Pd`` whose product ``Pd @ F`` goes to BLAS (``np.dot`` inside numba) into ``PF``.
With NUMBA_DISABLE_JIT=1 the same code runs as plain Python (slow; for small problems and tests).
"""
from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

_jit = numba.njit(cache=True, fastmath=False, nogil=True)


# Reductions over one row with eight independent accumulators: a single running sum is a chain of
# dependent additions (~4 cycles each, no vectorising under strict IEEE order), which made the
# norms and dot products of the Krylov loop cost more than the operator itself. The order of the
# additions changes (as np.add.reduce's pairwise order differed from a plain loop); each is still a
# float64 sum of the same terms.
@_jit
def _sum_abs(a):
    n = a.size
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    i = 0
    while i + 8 <= n:
        s0 += abs(a[i])
        s1 += abs(a[i + 1])
        s2 += abs(a[i + 2])
        s3 += abs(a[i + 3])
        s4 += abs(a[i + 4])
        s5 += abs(a[i + 5])
        s6 += abs(a[i + 6])
        s7 += abs(a[i + 7])
        i += 8
    t = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while i < n:
        t += abs(a[i])
        i += 1
    return t


@_jit
def _dot(a, b):
    n = a.size
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    i = 0
    while i + 8 <= n:
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        s4 += a[i + 4] * b[i + 4]
        s5 += a[i + 5] * b[i + 5]
        s6 += a[i + 6] * b[i + 6]
        s7 += a[i + 7] * b[i + 7]
        i += 8
    t = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while i < n:
        t += a[i] * b[i]
        i += 1
    return t


@_jit
def _sum_abs_diff(a, b):
    n = a.size
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    i = 0
    while i + 8 <= n:
        s0 += abs(a[i] - b[i])
        s1 += abs(a[i + 1] - b[i + 1])
        s2 += abs(a[i + 2] - b[i + 2])
        s3 += abs(a[i + 3] - b[i + 3])
        s4 += abs(a[i + 4] - b[i + 4])
        s5 += abs(a[i + 5] - b[i + 5])
        s6 += abs(a[i + 6] - b[i + 6])
        s7 += abs(a[i + 7] - b[i + 7])
        i += 8
    t = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while i < n:
        t += abs(a[i] - b[i])
        i += 1
    return t



@_jit
def build_columns(uniq, gamma, z, gap):
    """Compact C^{(u)} for each distinct reward uniq[u] and b^{(u)} (docs/math.md §7):
    y_j = r + γ z_j, cell(y) = #{k: z_k ≤ y} − 1 (= searchsorted(z, y, 'right') − 1), the non-zeros of
    column j in rows cell(y_j) + s, s ∈ {0, 1}, with C_ij = g_i(y_j) − g_i(y_{j+1}),
    g_i(y) = clip((z_{i+1} − y)/ς, 0, 1); b_i = g_i(y_m). Returns (c_rows, c_vals, b)."""
    U = uniq.size
    m = z.size
    m1 = m - 1
    c_rows = np.zeros((U, 2 * m1), dtype=np.int64)
    c_vals = np.zeros((U, 2 * m1))
    b = np.zeros((U, m1))
    y = np.empty(m)
    cell = np.empty(m, dtype=np.int64)
    for u in range(U):
        for j in range(m):
            y[j] = uniq[u] + gamma * z[j]
        c = 0  # y is non-decreasing in j (γ ≥ 0), so one forward pointer replaces the binary search
        for j in range(m):
            while c < m and z[c] <= y[j]:
                c += 1
            cell[j] = c - 1
        for s in range(2):
            for j in range(m1):
                i = cell[j] + s
                ic = min(max(i, 0), m - 2)
                c_rows[u, s * m1 + j] = ic
                if 0 <= i <= m - 2:
                    zi1 = z[ic + 1]
                    c_vals[u, s * m1 + j] = (min(max((zi1 - y[j]) / gap, 0.0), 1.0)
                                             - min(max((zi1 - y[j + 1]) / gap, 0.0), 1.0))
        for i in range(m1):
            b[u, i] = min(max((z[i + 1] - y[m1]) / gap, 0.0), 1.0)
    return c_rows, c_vals, b


MAX_COST = 4.0   # gather form only if its estimated cost ≤ this × the column scatter's (else: γ ≲ 0.6)


@_jit
def _row_ranges(c_rows, c_vals, u, first, last):
    """first[i], last[i]: the first and last column with a non-zero in row i of C^{(u)}
    (first = m1, last = −1 for an empty row)."""
    m1 = first.size
    first[:] = m1
    last[:] = -1
    for s in range(2):
        for j in range(m1):
            if c_vals[u, s * m1 + j] != 0.0:
                i = c_rows[u, s * m1 + j]
                first[i] = min(first[i], j)
                last[i] = max(last[i], j)


@_jit
def gather_widths(c_rows, c_vals, m1, blocks):
    """For each candidate row-block size: the gather window width W = max over all C^{(u)} and blocks
    of (max(last − i) − min(first − i) + 1) over the block's non-empty rows (≥ 1)."""
    U = c_rows.shape[0]
    first = np.empty(m1, dtype=np.int64)
    last = np.empty(m1, dtype=np.int64)
    W = np.ones(blocks.size, dtype=np.int64)
    for u in range(U):
        _row_ranges(c_rows, c_vals, u, first, last)
        for c in range(blocks.size):
            block = blocks[c]
            for i0 in range(0, m1, block):
                lo = m1
                hi = -m1
                for i in range(i0, min(i0 + block, m1)):
                    if last[i] >= 0:
                        lo = min(lo, first[i] - i)
                        hi = max(hi, last[i] - i)
                if hi >= lo:
                    W[c] = max(W[c], hi - lo + 1)
    return W


@_jit
def build_gather(c_rows, c_vals, m1, block, W):
    """Gather form of each C^{(u)}: the rows i of block k = [k·block, (k+1)·block) read the contiguous
    columns j = i + off[u, k] + q, q < W, with weights w[u, q, i] (zero-padded), so a block is W
    stride-1 multiply-add loops (vectorised) instead of a scatter. Adding the padding zeros (0·g = ±0)
    leaves every sum unchanged, and each row still sums its non-zeros in ascending j (scipy's CSR
    order), so the product is bit-identical to blockC @ vec. Returns (off ``(U, nblk)``, w ``(U, W, m1)``)."""
    U = c_rows.shape[0]
    nblk = (m1 + block - 1) // block
    first = np.empty(m1, dtype=np.int64)
    last = np.empty(m1, dtype=np.int64)
    kof = np.empty(m1, dtype=np.int64)
    for i in range(m1):
        kof[i] = i // block
    off = np.zeros((U, nblk), dtype=np.int64)
    w = np.zeros((U, W, m1))
    for u in range(U):
        _row_ranges(c_rows, c_vals, u, first, last)
        for k in range(nblk):
            lo = m1
            for i in range(k * block, min((k + 1) * block, m1)):
                if last[i] >= 0:
                    lo = min(lo, first[i] - i)
            off[u, k] = lo if lo < m1 else 0
        for s in range(2):
            for j in range(m1):
                v = c_vals[u, s * m1 + j]
                if v != 0.0:
                    i = c_rows[u, s * m1 + j]
                    w[u, j - i - off[u, kof[i]], i] += v
    return off, w


@_jit
def prepare(dense, Pd, F, PF):
    """Dense P: PF = Pd @ F once per application (BLAS); CSR P: nothing (rows are fused in m_row)."""
    if dense:
        np.dot(Pd, F, PF)


@_jit
def m_row(x, indptr, indices, data, dense, PF, F, u, gather, block, off, w, pad, c_rows, c_vals, buf, row):
    """row = (M F)(x) = C^{(u)} (P F)(x) (after ``prepare``). buf is scratch of length m1 + 2·pad whose
    pads stay zero: (P F)(x) goes to buf[pad:pad + m1]."""
    m1 = row.size
    # views with a known non-negative start: indexing them needs no wrap-around test, so LLVM vectorises
    g = buf[pad:pad + m1]
    if dense:
        src = PF[x]
        for i in range(m1):
            g[i] = src[i]
    else:
        for i in range(m1):
            g[i] = 0.0
        k = indptr[x]
        e = indptr[x + 1]
        # up to eight successors per pass over the row (fewer loads/stores of g); the sum is still
        # accumulated one successor at a time, in CSR order, exactly as scipy's P @ F
        while k + 8 <= e:
            a0 = data[k]
            a1 = data[k + 1]
            a2 = data[k + 2]
            a3 = data[k + 3]
            a4 = data[k + 4]
            a5 = data[k + 5]
            a6 = data[k + 6]
            a7 = data[k + 7]
            F0 = F[indices[k]]
            F1 = F[indices[k + 1]]
            F2 = F[indices[k + 2]]
            F3 = F[indices[k + 3]]
            F4 = F[indices[k + 4]]
            F5 = F[indices[k + 5]]
            F6 = F[indices[k + 6]]
            F7 = F[indices[k + 7]]
            for i in range(m1):
                g[i] = (((((((g[i] + a0 * F0[i]) + a1 * F1[i]) + a2 * F2[i]) + a3 * F3[i]) + a4 * F4[i])
                         + a5 * F5[i]) + a6 * F6[i]) + a7 * F7[i]
            k += 8
        while k + 4 <= e:
            a0 = data[k]
            a1 = data[k + 1]
            a2 = data[k + 2]
            a3 = data[k + 3]
            F0 = F[indices[k]]
            F1 = F[indices[k + 1]]
            F2 = F[indices[k + 2]]
            F3 = F[indices[k + 3]]
            for i in range(m1):
                g[i] = (((g[i] + a0 * F0[i]) + a1 * F1[i]) + a2 * F2[i]) + a3 * F3[i]
            k += 4
        while k < e:
            a = data[k]
            Fr = F[indices[k]]
            for i in range(m1):
                g[i] += a * Fr[i]
            k += 1
    c_row(u, gather, block, off, w, pad, c_rows, c_vals, buf, row)


@_jit
def c_row(u, gather, block, off, w, pad, c_rows, c_vals, buf, row):
    """row = C^{(u)} g with g = buf[pad:pad + m1] (the pads of buf are zero)."""
    m1 = row.size
    for i in range(m1):
        row[i] = 0.0
    if gather:
        W = w.shape[1]
        for kb in range(off.shape[1]):
            i0 = kb * block
            i1 = min(i0 + block, m1)
            base = pad + off[u, kb]   # ≥ 0 (see build_gather)
            for q in range(W):
                wq = w[u, q]
                # unsigned indices: numba adds a negative-index fix-up to signed ones (no vectorising)
                sh = np.uint64(base + q)
                for i in range(np.uint64(i0), np.uint64(i1)):
                    row[i] += wq[i] * buf[sh + i]
    else:
        for j in range(m1):
            gj = buf[pad + j]
            row[c_rows[u, j]] += c_vals[u, j] * gj
            row[c_rows[u, m1 + j]] += c_vals[u, m1 + j] * gj


@_jit
def apply_m(indptr, indices, data, dense, Pd, PF, u_index, gather, block, off, w, pad, c_rows, c_vals, F, out):
    """out = M F (``(n, m1)``)."""
    n, m1 = F.shape
    buf = np.zeros(m1 + 2 * pad)
    prepare(dense, Pd, F, PF)
    for x in range(n):
        m_row(x, indptr, indices, data, dense, PF, F, u_index[x], gather, block, off, w, pad, c_rows, c_vals, buf, out[x])


@_jit
def residual(indptr, indices, data, dense, Pd, PF, u_index, gather, block, off, w, pad, c_rows, c_vals, b, F, out):
    """out = b − (I − M) F; returns its ℓ∞,1 norm max_x Σ_i |out_{x,i}|."""
    n, m1 = F.shape
    buf = np.zeros(m1 + 2 * pad)
    row = np.empty(m1)
    prepare(dense, Pd, F, PF)
    worst = 0.0
    for x in range(n):
        m_row(x, indptr, indices, data, dense, PF, F, u_index[x], gather, block, off, w, pad, c_rows, c_vals, buf, row)
        o = out[x]
        bx = b[x]
        Fx = F[x]
        for i in range(m1):
            o[i] = bx[i] - (Fx[i] - row[i])
        worst = max(worst, _sum_abs(o))
    return worst


@_jit
def cdp_loop(indptr, indices, data, dense, Pd, PF, u_index, gather, block, off, w, pad, c_rows, c_vals, b, F, G, stop, limit):
    """CDP: F ← M F + b until d = ‖F_{k+1} − F_k‖∞,1 ≤ stop (or d = 0), at most ``limit`` steps.
    F holds F_0 on entry; G is scratch of the same shape. Returns (F_k, k, d, converged), F_k being
    one of the two arrays."""
    n, m1 = F.shape
    buf = np.zeros(m1 + 2 * pad)
    k = 0
    d = np.inf
    converged = False
    while k < limit:
        prepare(dense, Pd, F, PF)
        d = 0.0
        for x in range(n):
            row = G[x]
            m_row(x, indptr, indices, data, dense, PF, F, u_index[x], gather, block, off, w, pad, c_rows, c_vals, buf, row)
            bx = b[x]
            for i in range(m1):
                row[i] = row[i] + bx[i]
            d = max(d, _sum_abs_diff(row, F[x]))
        F, G = G, F
        k += 1
        if d <= stop or d == 0.0:
            converged = True
            break
    return F, k, d, converged


@_jit
def band_lu(A, lo, hi):
    """In-place LU without pivoting of a band matrix stored as A[i, lo + j − i] (lower bandwidth lo,
    upper hi): L (unit, below the diagonal) and U overwrite A. No pivoting is needed for the coarse
    operator I − C̄: C̄ ≥ 0 with columns summing to γ < 1 makes it strictly column diagonally dominant,
    which every Schur complement inherits (Wilkinson 1961), so pivots stay ≥ 1 − γ and the band
    keeps its width."""
    m = A.shape[0]
    for k in range(m):
        piv = A[k, lo]
        for i in range(k + 1, min(k + lo + 1, m)):
            l = A[i, lo + k - i] / piv
            A[i, lo + k - i] = l
            for j in range(k + 1, min(k + hi + 1, m)):
                A[i, lo + j - i] -= l * A[k, lo + j - k]


@_jit
def band_solve(A, lo, hi, y):
    """Solve (LU) x = y in place with the factors of band_lu."""
    m = y.size
    for i in range(m):
        s = y[i]
        for k in range(max(0, i - lo), i):
            s -= A[i, lo + k - i] * y[k]
        y[i] = s
    for i in range(m - 1, -1, -1):
        s = y[i]
        for j in range(i + 1, min(i + hi + 1, m)):
            s -= A[i, lo + j - i] * y[j]
        y[i] = s / A[i, lo]


@_jit
def _finish(x, xc):
    n, m1 = x.shape
    for xx in range(n):
        xr = x[xx]
        for i in range(m1):
            xr[i] = xr[i] + xc[i]


@_jit
def bicgstab(indptr, indices, data, dense, Pd, PF, u_index, gather, block, off, w, pad, c_rows, c_vals,
             coarse, mu, lub, lo, hi, rhs, x, stop, maxiter):
    r"""BiCGSTAB (van der Vorst 1992) on A x = rhs, A = I − M, from x = 0 (x is overwritten), with the
    stop of ``_krylov.bicgstab_l1inf``: the recurrence residual's ℓ∞,1 norm, checked at each half step,
    ≤ ``stop``. Returns (iterations, status): 0 stop reached, 1 maxiter, 2 breakdown.

    ``coarse``: right-preconditioned by the two-level correction with one aggregate of all states,
    B^{-1} v = v + 1⊗q, q = (I − C̄)^{-1} Σ_x μ_x v(x), C̄ = Σ_x μ_x C^{(r(x))} — the exact Galerkin
    coarse operator (μ^T ⊗ I)(I − M)(1 ⊗ I), as P 1 = 1 (μ: a stationary law of P, ``lub``: the band
    LU of I − C̄). Right preconditioning keeps r the residual of the original system, so the stop is
    unchanged. The preconditioned vectors are never formed: A(p + 1⊗q) = A p + 1⊗q − (C^{(r(x))} q)_x
    costs one extra C^{(r(x))} product per row inside the same pass, and x keeps its coarse part
    x_c (one m−1 vector) until the end.

    Fusion: every vector update shares its pass with the norms and dot products it feeds; the next
    search direction p = r + β(p − ωv) is formed in the same pass as r = s − ωt, with
    rhat·r_{k+1} = rhat·s − ω rhat·t from dot products of the previous passes."""
    n, m1 = rhs.shape
    buf = np.zeros(m1 + 2 * pad)
    qbuf = np.zeros(m1 + 2 * pad)
    row = np.empty(m1)
    yrow = np.empty(m1)
    acc = np.zeros(m1)          # Σ_x μ_x (vector)(x), then the coarse solution q
    qp = np.zeros(m1)
    xc = np.zeros(m1)
    r = rhs.copy()
    rhat = rhs.copy()
    p = rhs.copy()              # p_1 = r_0 (p_0 = v_0 = 0)
    v = np.zeros((n, m1))
    t = np.empty((n, m1))
    res = 0.0
    rho = 0.0
    for xx in range(n):
        x[xx, :] = 0.0
        res = max(res, _sum_abs(r[xx]))
        rho += _dot(rhat[xx], r[xx])
        if coarse:
            mx = mu[xx]
            px = p[xx]
            for i in range(m1):
                acc[i] += mx * px[i]
    if res <= stop:
        return 0, 0
    if rho == 0.0:
        return 1, 2
    for it in range(1, maxiter + 1):
        # v = A p̂, den = rhat·v
        if coarse:
            band_solve(lub, lo, hi, acc)
            for i in range(m1):
                qp[i] = acc[i]
                qbuf[pad + i] = acc[i]
        prepare(dense, Pd, p, PF)
        den = 0.0
        for xx in range(n):
            m_row(xx, indptr, indices, data, dense, PF, p, u_index[xx], gather, block, off, w, pad, c_rows,
                  c_vals, buf, row)
            vx = v[xx]
            px = p[xx]
            if coarse:
                c_row(u_index[xx], gather, block, off, w, pad, c_rows, c_vals, qbuf, yrow)
                for i in range(m1):
                    vx[i] = (px[i] - row[i]) + (qp[i] - yrow[i])
            else:
                for i in range(m1):
                    vx[i] = px[i] - row[i]
            den += _dot(rhat[xx], vx)
        if den == 0.0:
            _finish(x, xc)
            return it, 2
        alpha = rho / den
        # s = r − α v (kept in r), ‖s‖∞,1, rhat·s
        res_s = 0.0
        rs = 0.0
        acc[:] = 0.0
        for xx in range(n):
            rx = r[xx]
            vx = v[xx]
            for i in range(m1):
                rx[i] = rx[i] - alpha * vx[i]
            res_s = max(res_s, _sum_abs(rx))
            rs += _dot(rhat[xx], rx)
            if coarse:
                mx = mu[xx]
                for i in range(m1):
                    acc[i] += mx * rx[i]
        if res_s <= stop:
            for xx in range(n):
                xr = x[xx]
                px = p[xx]
                for i in range(m1):
                    xr[i] = xr[i] + alpha * px[i]
            for i in range(m1):
                xc[i] = xc[i] + alpha * qp[i]
            _finish(x, xc)
            return it, 0
        # t = A ŝ, t·t, t·s, rhat·t
        if coarse:
            band_solve(lub, lo, hi, acc)   # acc = q_s
            for i in range(m1):
                qbuf[pad + i] = acc[i]
        prepare(dense, Pd, r, PF)
        tt = 0.0
        ts = 0.0
        rt = 0.0
        for xx in range(n):
            m_row(xx, indptr, indices, data, dense, PF, r, u_index[xx], gather, block, off, w, pad, c_rows,
                  c_vals, buf, row)
            tx = t[xx]
            rx = r[xx]
            if coarse:
                c_row(u_index[xx], gather, block, off, w, pad, c_rows, c_vals, qbuf, yrow)
                for i in range(m1):
                    tx[i] = (rx[i] - row[i]) + (acc[i] - yrow[i])
            else:
                for i in range(m1):
                    tx[i] = rx[i] - row[i]
            tt += _dot(tx, tx)
            ts += _dot(tx, rx)
            rt += _dot(rhat[xx], tx)
        omega = ts / tt if tt > 0.0 else 0.0
        rho_new = rs - omega * rt
        go = omega != 0.0 and rho_new != 0.0
        beta = (rho_new / rho) * (alpha / omega) if go else 0.0
        # x += α p̂ + ω ŝ; r = s − ω t, ‖r‖∞,1; p = r + β(p − ω v) and its restriction
        for i in range(m1):
            xc[i] = xc[i] + alpha * qp[i] + omega * acc[i]
        res = 0.0
        qp[:] = 0.0                 # the restriction of the new p is gathered in qp, then moved to acc
        for xx in range(n):
            xr = x[xx]
            px = p[xx]
            rx = r[xx]
            tx = t[xx]
            vx = v[xx]
            for i in range(m1):
                xr[i] = xr[i] + alpha * px[i] + omega * rx[i]
                rx[i] = rx[i] - omega * tx[i]
            res = max(res, _sum_abs(rx))
            if go:
                for i in range(m1):
                    px[i] = rx[i] + beta * (px[i] - omega * vx[i])
                if coarse:
                    mx = mu[xx]
                    for i in range(m1):
                        qp[i] += mx * px[i]
        for i in range(m1):
            acc[i] = qp[i]
        rho = rho_new
        if res <= stop:
            _finish(x, xc)
            return it, 0
        if not go and it < maxiter:
            _finish(x, xc)
            return it + 1, 2
    _finish(x, xc)
    return maxiter, 1


@_jit
def stationary(indptr, indices, data, dense, Pd, maxiter, tol):
    """A stationary distribution μ = μP of P by power iteration of the lazy chain (P + I)/2 from the
    uniform distribution (the lazy chain has the same stationary laws and no periodicity), stopped
    when ‖Δμ‖₁ ≤ tol or after maxiter steps (then an approximation: only a preconditioner uses it)."""
    n = indptr.size - 1 if not dense else Pd.shape[0]
    mu = np.full(n, 1.0 / n)
    nxt = np.empty(n)
    for _ in range(maxiter):
        for y in range(n):
            nxt[y] = 0.5 * mu[y]
        if dense:
            for x in range(n):
                h = 0.5 * mu[x]
                for y in range(n):
                    nxt[y] += h * Pd[x, y]
        else:
            for x in range(n):
                h = 0.5 * mu[x]
                for k in range(indptr[x], indptr[x + 1]):
                    nxt[indices[k]] += h * data[k]
        d = 0.0
        tot = 0.0
        for y in range(n):
            d += abs(nxt[y] - mu[y])
            tot += nxt[y]
        for y in range(n):
            mu[y] = nxt[y] / tot
        if d <= tol:
            break
    return mu


@_jit
def coarse_band(c_rows, c_vals, u_index, mu):
    """I − C̄, C̄ = Σ_x μ_x C^{(r(x))}, in band storage (A[i, lo + j − i]); returns (A, lo, hi)."""
    U, K = c_rows.shape
    m1 = K // 2
    wu = np.zeros(U)
    for x in range(u_index.size):
        wu[u_index[x]] += mu[x]
    lo = 0
    hi = 0
    for u in range(U):
        if wu[u] == 0.0:
            continue
        for s in range(2):
            for j in range(m1):
                if c_vals[u, s * m1 + j] != 0.0:
                    d = c_rows[u, s * m1 + j] - j
                    lo = max(lo, d)
                    hi = max(hi, -d)
    A = np.zeros((m1, lo + hi + 1))
    for i in range(m1):
        A[i, lo] = 1.0
    for u in range(U):
        if wu[u] == 0.0:
            continue
        for s in range(2):
            for j in range(m1):
                v = c_vals[u, s * m1 + j]
                if v != 0.0:
                    i = c_rows[u, s * m1 + j]
                    A[i, lo + j - i] -= wu[u] * v
    return A, lo, hi

class FastOperator:
    """M = blockdiag_x(C^{(r(x))})(P ⊗ I_{m−1}) in the kernels' form, for one (P, operator) pair.

    P: CSR (any index dtype; converted to int64) or a dense ``(n, n)`` array (BLAS product).
    op: the ``_CDFOperator`` of cdf_operator (u_index, c_rows, c_vals, b).
    form: "auto" (the gather form unless its windows are too wide), "gather" or "scatter" (tests)."""

    def __init__(self, P, op, form: str = "auto"):
        n = op.u_index.size
        m1 = op.b.shape[1]
        self.n, self.m1 = n, m1
        self.dense = not sp.issparse(P)
        if self.dense:
            self.Pd = np.ascontiguousarray(P, dtype=np.float64)
            self.PF = np.empty((n, m1))
            self.indptr = self.indices = np.zeros(1, dtype=np.int64)
            self.data = np.zeros(1)
        else:
            P = sp.csr_matrix(P)
            self.indptr = np.ascontiguousarray(P.indptr, dtype=np.int64)
            self.indices = np.ascontiguousarray(P.indices, dtype=np.int64)
            self.data = np.ascontiguousarray(P.data, dtype=np.float64)
            self.Pd = self.PF = np.zeros((1, 1))
        self.u_index = np.ascontiguousarray(op.u_index, dtype=np.int64)
        self.c_rows, self.c_vals = op.c_rows, op.c_vals
        # gather form: pick the row-block size with the lowest estimated cost (per block and window
        # column: one stride-1 loop of `block` multiply-adds, 8 per vector, plus ~6 vectors of loop
        # overhead); the column scatter costs ~2·m1 dependent updates ≈ m1/2 vector-equivalents
        blocks = np.array(sorted({min(b, m1) for b in (16, 32, 64, 128, 256, m1)}), dtype=np.int64)
        widths = gather_widths(op.c_rows, op.c_vals, m1, blocks)
        costs = [-(-m1 // int(b)) * int(Wb) * (int(b) / 8.0 + 6.0) for b, Wb in zip(blocks, widths)]
        c = int(np.argmin(costs))
        block, W = int(blocks[c]), int(widths[c])
        self.gather = (costs[c] <= MAX_COST * (m1 / 2.0)) if form == "auto" else form == "gather"
        if self.gather:
            off, w = build_gather(op.c_rows, op.c_vals, m1, block, W)
        else:  # small γ: wide windows, the column scatter is cheaper
            block, off, w, W = 1, np.zeros((1, 1), dtype=np.int64), np.zeros((1, 1, 1)), 0
        self.block, self.off, self.w, self.pad = block, off, w, block + W
        self.b = np.ascontiguousarray(op.b[self.u_index])  # (n, m1)

    @property
    def _args(self):
        return (self.indptr, self.indices, self.data, self.dense, self.Pd, self.PF, self.u_index, self.gather,
                self.block, self.off, self.w, self.pad, self.c_rows, self.c_vals)

    def apply(self, F: np.ndarray) -> np.ndarray:
        """M F for F ``(n, m1)``."""
        out = np.empty((self.n, self.m1))
        apply_m(*self._args, np.ascontiguousarray(F, dtype=np.float64), out)
        return out

    def residual(self, F: np.ndarray, rhs=None):
        """(rhs − (I − M) F, its ℓ∞,1 norm); rhs defaults to b."""
        out = np.empty((self.n, self.m1))
        res = residual(*self._args, self.b if rhs is None else rhs, F, out)
        return out, res

    def cdp(self, F0: np.ndarray, stop: float, limit: int):
        """CDP from F0 (not modified): returns (F_k, k, d, converged)."""
        F = np.array(F0, dtype=np.float64, order="C", copy=True)
        return cdp_loop(*self._args, self.b, F, np.empty_like(F), float(stop), int(limit))

    def setup_coarse(self, maxiter: int = 1000, tol: float = 1e-6):
        """The one-aggregate coarse correction (``coarse_correct``): μ = a stationary law of P, the band
        LU of I − C̄. Returns self."""
        self.mu = stationary(self.indptr, self.indices, self.data, self.dense, self.Pd, int(maxiter), float(tol))
        A, lo, hi = coarse_band(self.c_rows, self.c_vals, self.u_index, self.mu)
        band_lu(A, lo, hi)
        self.lub, self.lo, self.hi = A, lo, hi
        return self

    def bicgstab(self, rhs: np.ndarray, stop: float, maxiter: int, coarse: bool = False):
        """BiCGSTAB on (I − M) x = rhs from x = 0 (``coarse``: right-preconditioned by the coarse
        correction; call ``setup_coarse`` first): returns (x, iterations, status)."""
        x = np.empty((self.n, self.m1))
        if coarse:
            mu, lub, lo, hi = self.mu, self.lub, self.lo, self.hi
        else:
            mu, lub, lo, hi = np.zeros(1), np.zeros((1, 1)), 0, 0
        its, status = bicgstab(*self._args, bool(coarse), mu, lub, lo, hi, np.ascontiguousarray(rhs), x,
                               float(stop), int(maxiter))
        return x, its, status
