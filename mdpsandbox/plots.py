"""Figures: every helper returns a ``matplotlib.figure.Figure``.

The library never selects a matplotlib backend (the caller's choice is kept); the CLI commands pick
``Agg`` inside their ``run``.
"""
from __future__ import annotations

from typing import Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_return_cdfs"]


def _step_cdf(dist):
    from .solvers.distributional import as_values_probs

    v, p = as_values_probs(dist)
    v, p = np.asarray(v, dtype=np.float64).ravel(), np.asarray(p, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    return v[order], np.cumsum(p[order])


def plot_return_cdfs(estimates: Mapping[str, object], truth=None, *, title: Optional[str] = None,
                     xlabel: str = "return", ax=None):
    """Step CDFs of several return-law estimates of *one* state against a ground truth.

    estimates : name -> a single law (:class:`Categorical` / :class:`Quantile` / :class:`DiscreteLaw`
        with no batch axis, a ``(values, probs)`` pair, or a 1-D array of samples).
    truth : optional law of the same kinds (e.g. Monte-Carlo samples), drawn in black.
    Returns the Figure.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    if truth is not None:
        v, F = _step_cdf(truth)
        ax.step(v, F, where="post", color="k", lw=2.0, label="ground truth")
    for name, dist in estimates.items():
        v, F = _step_cdf(dist)
        ax.step(v, F, where="post", lw=1.2, label=str(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("P(G <= x)")
    ax.set_ylim(-0.02, 1.02)
    if title:
        ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
