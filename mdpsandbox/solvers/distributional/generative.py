r"""Generative-model (empirical) estimate P̂ of a transition matrix (docs/math.md §7)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..._validate import STOCHASTIC_ATOL, check_finite, check_int
from ...envs.tabular import TabularMDP

__all__ = ["empirical_model"]


def empirical_model(P, n_samples: int, seed: int = 0):
    r"""Generative-model estimate :math:`\hat P(x'|x) = \frac1N\#\{k : X'_k = x'\}`, N draws per row.

    P : MRP ``(n, n)`` (dense or sparse), MDP ``(S, A, S)`` dense, sparse ``(S*A, S)``, or a
        :class:`TabularMDP` (returns a TabularMDP with P̂ and the same R, γ, terminal, initial).
    n_samples : N ≥ 1 draws per row. seed : seeds a ``numpy.random.Generator``.
    Returns P̂ of the same shape and kind (dense stays dense, sparse stays CSR).
    """
    N = check_int(n_samples, "n_samples")
    rng = np.random.default_rng(seed)
    if isinstance(P, TabularMDP):
        Phat2 = empirical_model(sp.csr_matrix(P.P2), N, seed)
        S, A = P.n_states, P.n_actions
        newP = Phat2 if P.is_sparse else Phat2.toarray().reshape(S, A, S)
        return TabularMDP(newP, P.R, P.gamma, terminal=P.terminal, initial=P.initial, ref_policy=P.ref_policy)
    if sp.issparse(P):
        Pc = sp.csr_matrix(P, dtype=np.float64)
        if Pc.shape[0] % Pc.shape[1] != 0:
            raise ValueError(f"P (sparse) must have shape (n, n) or (S*A, S), got {Pc.shape}")
        _check_rows(Pc.data, np.asarray(Pc.sum(axis=1)).ravel(), Pc.shape[1])
        data = np.empty_like(Pc.data)
        for i in range(Pc.shape[0]):
            a, b = Pc.indptr[i], Pc.indptr[i + 1]
            row = Pc.data[a:b]
            data[a:b] = rng.multinomial(N, row / row.sum()) / N
        out = sp.csr_matrix((data, Pc.indices.copy(), Pc.indptr.copy()), shape=Pc.shape)
        out.eliminate_zeros()
        return out
    Pd = check_finite(P, "P")
    if not (Pd.ndim == 2 and Pd.shape[0] == Pd.shape[1]) and not (Pd.ndim == 3 and Pd.shape[0] == Pd.shape[2]):
        raise ValueError(f"P must have shape (n, n) (MRP) or (S, A, S) (MDP), got {Pd.shape}")
    rows = Pd.reshape(-1, Pd.shape[-1])
    _check_rows(rows, rows.sum(axis=1), Pd.shape[-1])
    counts = rng.multinomial(N, rows / rows.sum(axis=1, keepdims=True))
    return (counts / N).reshape(Pd.shape)


def _check_rows(values, sums, n):
    if np.any(~np.isfinite(values)) or np.any(values < 0):
        raise ValueError("P must be finite and non-negative")
    dev = np.abs(sums - 1.0)
    if np.any(dev > STOCHASTIC_ATOL * max(1, n)):
        i = int(np.argmax(dev))
        raise ValueError(f"P must be stochastic: row {i} sums to {sums[i]!r}, not 1")
