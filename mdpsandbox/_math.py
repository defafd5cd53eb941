"""Numerically stable primitives shared by every layer (envs, solvers, learners)."""
from __future__ import annotations

import numpy as np

__all__ = ["logsumexp", "log_softmax"]


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""Stable :math:`\log\sum_i e^{x_i}` along ``axis``.

    Subtracts the maximum first; a slice that is entirely ``-inf`` gives ``-inf`` (never NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m_safe), axis=axis, keepdims=True)) + m_safe
    return np.squeeze(out, axis=axis)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""Stable :math:`\ell_a - \mathrm{LSE}(\ell)` along ``axis``."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits - np.expand_dims(logsumexp(logits, axis=axis), axis)
