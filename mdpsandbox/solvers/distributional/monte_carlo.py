r"""Monte-Carlo ground truth of the return law of an MRP (numba, seeded, truncated with an explicit tail
bound; docs/math.md §7)."""
from __future__ import annotations

import math
import numbers
from typing import Optional

import numba
import numpy as np
import scipy.sparse as sp

from ..._validate import check_int
from .mrp import _check_mrp

__all__ = ["monte_carlo_returns"]


def _truncation(r: np.ndarray, gamma: float, tol: float) -> int:
    r"""Smallest T with :math:`\gamma^T\max|r|/(1-\gamma) \le` tol (the neglected tail)."""
    rmax = float(np.max(np.abs(r))) if r.size else 0.0
    if gamma == 0.0 or rmax == 0.0:
        return 1
    return max(1, int(math.ceil(math.log(tol * (1 - gamma) / rmax) / math.log(gamma))))


def _row_cdfs(P) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Pc = sp.csr_matrix(P)
    Pc.eliminate_zeros()
    Pc.sort_indices()
    cum = np.empty_like(Pc.data)
    for i in range(Pc.shape[0]):
        a, b = Pc.indptr[i], Pc.indptr[i + 1]
        c = np.cumsum(Pc.data[a:b])
        cum[a:b] = c / c[-1]
    return Pc.indptr.astype(np.int64), Pc.indices.astype(np.int64), cum


@numba.njit(cache=True)
def _mc_steps(indptr, indices, cum, r, gamma, state, ret, disc, u, record, t0):  # pragma: no cover - jitted
    """Advance every trajectory by u.shape[1] steps: collect γ^t r(X_t), then draw X_{t+1}."""
    N, T = u.shape
    for i in range(N):
        s = state[i]
        for t in range(T):
            if record.shape[1] > 0:
                record[i, t0 + t] = s
            ret[i] += disc[i] * r[s]
            disc[i] *= gamma
            a, b = indptr[s], indptr[s + 1]
            lo, hi = a, b - 1
            while lo < hi:  # first k with cum[k] > u
                mid = (lo + hi) // 2
                if cum[mid] > u[i, t]:
                    hi = mid
                else:
                    lo = mid + 1
            s = indices[lo]
        state[i] = s


def _simulate(P, r, gamma, starts, T, rng, record=False, progress=False):
    indptr, indices, cum = _row_cdfs(P)
    N = starts.size
    state = starts.astype(np.int64).copy()
    ret = np.zeros(N)
    disc = np.ones(N)
    rec = np.empty((N, T + 1 if record else 0), dtype=np.int64)
    chunk = max(1, min(T, (1 << 23) // max(N, 1)))
    steps = range(0, T, chunk)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="Monte Carlo", unit="chunk")
    for t0 in steps:
        c = min(chunk, T - t0)
        _mc_steps(indptr, indices, cum, r, gamma, state, ret, disc, rng.random((N, c)), rec, t0)
    if record:
        rec[:, T] = state
    return ret, state, disc, rec


#: Default work budget of :func:`monte_carlo_returns` (simulated transitions, ~ seconds of work).
MC_MAX_STEPS = 200_000_000


def monte_carlo_returns(P, r, gamma: float, n_samples: int, seed: int = 0, *, states=None,
                        tol: float = 1e-10, progress: bool = False,
                        max_steps: Optional[int] = MC_MAX_STEPS) -> np.ndarray:
    r"""Monte-Carlo ground truth of the return law: ``n_samples`` independent returns
    :math:`\sum_{t<T}\gamma^t r(X_t)` from each start state, with T the smallest horizon whose
    neglected tail :math:`\gamma^T\max|r|/(1-\gamma)` is ≤ ``tol`` (so each sample is within tol of
    an exact draw of G(x)). Uniforms come from ``numpy.random.default_rng(seed)`` in chunks; the
    trajectory loop is a numba kernel (also runs with NUMBA_DISABLE_JIT=1, slowly).

    P ``(n, n)`` dense or sparse, r ``(n,)``, states: optional start indices (default all n).
    max_steps : work budget in simulated transitions, len(states)·n_samples·T. The horizon grows
        like log(tol(1−γ)/max|r|)/log γ ≈ 27/(1−γ) at the default tol (γ = 0.9999999 needs
        T ≈ 3e8 steps per sample): beyond the budget it raises ``ValueError`` stating T and the
        work, before simulating; pass ``max_steps=None`` (ideally with ``progress=True``) to run it.
    Returns ``(len(states), n_samples)`` samples.
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    N = check_int(n_samples, "n_samples")
    n = r.size
    st = np.arange(n) if states is None else np.asarray(states, dtype=np.int64).ravel()
    if st.size == 0 or st.min() < 0 or st.max() >= n:
        raise ValueError(f"states must be indices in [0, {n}), got {st.tolist()[:10]}")
    if not (isinstance(tol, numbers.Real) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite real > 0, got {tol!r}")
    T = _truncation(r, gamma, tol)
    work = int(st.size) * N * T
    if max_steps is not None and work > check_int(max_steps, "max_steps"):
        raise ValueError(
            f"monte_carlo_returns at gamma={gamma:.10g} needs a truncation horizon T = {T:,} steps per sample "
            f"(tail gamma^T max|r|/(1-gamma) <= tol={tol:g}), i.e. {st.size:,} states x {N:,} samples x {T:,} "
            f"= {work:,} simulated transitions, above max_steps={max_steps:,}; raise tol, lower gamma, or pass "
            f"max_steps=None (with progress=True) to run it anyway")
    rng = np.random.default_rng(seed)
    starts = np.repeat(st, N)
    ret, *_ = _simulate(P, r, gamma, starts, T, rng, progress=progress)
    return ret.reshape(st.size, N)
