r"""Representations of return laws (docs/math.md §7): :class:`Categorical` (atoms + probabilities,
with a CDF view), :class:`Quantile` (equally weighted locations), :class:`DiscreteLaw` (an exact
finite law), and :func:`as_values_probs`, the common ``(values, probs)`` view of all of them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._validate import check_finite

__all__ = ["Categorical", "Quantile", "DiscreteLaw", "as_values_probs"]


@dataclass
class Categorical:
    r"""A batch of categorical laws on shared atoms: :math:`\eta = \sum_i p_i\delta_{z_i}`.

    atoms ``(m,)`` strictly increasing; probs ``(..., m)`` (rows sum to 1).
    ``cdf`` ``(..., m)``: :math:`F_i = P(G \le z_i)` (last entry 1).
    """

    atoms: np.ndarray
    probs: np.ndarray

    @property
    def cdf(self) -> np.ndarray:
        return np.cumsum(self.probs, axis=-1)

    @property
    def mean(self) -> np.ndarray:
        """E G, shape ``probs.shape[:-1]``."""
        return self.probs @ self.atoms

    @property
    def variance(self) -> np.ndarray:
        mu = self.mean
        return self.probs @ (self.atoms**2) - mu**2

    def __getitem__(self, index) -> "Categorical":
        return Categorical(self.atoms, self.probs[index])

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.probs, dtype=dtype)


@dataclass
class Quantile:
    r"""A batch of quantile laws :math:`\frac1m\sum_i\delta_{\theta_i}`: locations ``(..., m)``."""

    locations: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        m = self.locations.shape[-1]
        return np.full(self.locations.shape, 1.0 / m)

    @property
    def mean(self) -> np.ndarray:
        return self.locations.mean(axis=-1)

    def __getitem__(self, index) -> "Quantile":
        return Quantile(self.locations[index])

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.locations, dtype=dtype)


@dataclass
class DiscreteLaw:
    r"""An exact finite law :math:`\sum_k p_k\delta_{v_k}`: values ``(k,)`` sorted, probs ``(k,)``."""

    values: np.ndarray
    probs: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.probs @ self.values)

    def cdf(self, y) -> np.ndarray:
        """F(y) = P(G ≤ y) at the points ``y``."""
        y = np.asarray(y, dtype=np.float64)
        c = np.concatenate([[0.0], np.cumsum(self.probs)])
        return c[np.searchsorted(self.values, y, side="right")]


def as_values_probs(dist, name: str = "dist") -> tuple[np.ndarray, np.ndarray]:
    """``(values (..., k), probs (..., k))`` of a :class:`Categorical`, :class:`Quantile`,
    :class:`DiscreteLaw`, a ``(values, probs)`` pair, or a 1-D/2-D array of samples (equal weights)."""
    if isinstance(dist, Categorical):
        return np.broadcast_to(dist.atoms, dist.probs.shape), np.asarray(dist.probs, dtype=np.float64)
    if isinstance(dist, Quantile):
        return np.asarray(dist.locations, dtype=np.float64), dist.probs
    if isinstance(dist, DiscreteLaw):
        return np.asarray(dist.values, dtype=np.float64), np.asarray(dist.probs, dtype=np.float64)
    if isinstance(dist, tuple) and len(dist) == 2:
        v = check_finite(dist[0], f"{name}[0] (values)")
        p = check_finite(dist[1], f"{name}[1] (probs)")
        shape = np.broadcast_shapes(v.shape, p.shape)
        return np.broadcast_to(v, shape), np.broadcast_to(p, shape)
    a = check_finite(dist, name)
    if a.ndim == 0:
        raise ValueError(f"{name} must be a distribution object, a (values, probs) pair or an array of samples")
    return a, np.full(a.shape, 1.0 / a.shape[-1])
