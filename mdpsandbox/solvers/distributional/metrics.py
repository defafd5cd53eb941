r"""Distances between return laws (docs/math.md §7): :func:`wasserstein1`, :func:`cramer`,
:func:`ks` (batched over leading axes, exact on merged supports) and their ``sup_*`` forms."""
from __future__ import annotations

import numpy as np

from .representations import as_values_probs

__all__ = ["wasserstein1", "cramer", "ks", "sup_wasserstein1", "sup_cramer", "sup_ks"]


def _signed_cdf_diff(p, q):
    """Sorted merged support and F_p − F_q on each interval [v_j, v_{j+1}) (batched)."""
    vp, pp = as_values_probs(p, "p")
    vq, pq = as_values_probs(q, "q")
    lead = np.broadcast_shapes(vp.shape[:-1], vq.shape[:-1])
    vp = np.broadcast_to(vp, lead + vp.shape[-1:])
    pp = np.broadcast_to(pp, lead + pp.shape[-1:])
    vq = np.broadcast_to(vq, lead + vq.shape[-1:])
    pq = np.broadcast_to(pq, lead + pq.shape[-1:])
    v = np.concatenate([vp, vq], axis=-1)
    w = np.concatenate([pp, -pq], axis=-1)
    order = np.argsort(v, axis=-1, kind="stable")
    v = np.take_along_axis(v, order, axis=-1)
    d = np.cumsum(np.take_along_axis(w, order, axis=-1), axis=-1)
    return v, d


def wasserstein1(p, q) -> np.ndarray:
    r""":math:`W_1(p, q) = \int |F_p(y) - F_q(y)|\,dy`, batched over leading axes.

    ``p``, ``q``: any of :func:`as_values_probs`'s inputs (laws with their own supports are merged
    exactly; on a shared grid this is :math:`\varsigma\sum_{i<m}|F_i - G_i|`)."""
    v, d = _signed_cdf_diff(p, q)
    return np.sum(np.abs(d[..., :-1]) * np.diff(v, axis=-1), axis=-1)


def cramer(p, q) -> np.ndarray:
    r"""Cramér (ℓ2) distance :math:`\big(\int (F_p - F_q)^2\,dy\big)^{1/2}`, batched."""
    v, d = _signed_cdf_diff(p, q)
    return np.sqrt(np.sum(d[..., :-1] ** 2 * np.diff(v, axis=-1), axis=-1))


def ks(p, q) -> np.ndarray:
    r"""Kolmogorov–Smirnov distance :math:`\sup_y |F_p(y) - F_q(y)|`, batched (ties merged)."""
    v, d = _signed_cdf_diff(p, q)
    last_of_tie = np.concatenate([np.diff(v, axis=-1) > 0, np.ones(v.shape[:-1] + (1,), bool)], axis=-1)
    return np.max(np.where(last_of_tie, np.abs(d), 0.0), axis=-1)


def sup_wasserstein1(p, q) -> float:
    r""":math:`\sup_x W_1(p(x), q(x))` over every leading (state) index."""
    return float(np.max(wasserstein1(p, q)))


def sup_cramer(p, q) -> float:
    r""":math:`\sup_x \ell_2(p(x), q(x))`."""
    return float(np.max(cramer(p, q)))


def sup_ks(p, q) -> float:
    r""":math:`\sup_x \mathrm{KS}(p(x), q(x))`."""
    return float(np.max(ks(p, q)))
