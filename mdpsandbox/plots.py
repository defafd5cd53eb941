"""Figures: every helper returns a ``matplotlib.figure.Figure``.

The library never selects a matplotlib backend (the caller's choice is kept); the CLI commands pick
``Agg`` inside their ``run``.
"""
from __future__ import annotations

from typing import Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_return_cdfs", "plot_learning_curves", "plot_reward_kl"]


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


def _fig_ax(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_learning_curves(steps, values, exact=None, *, label: Optional[str] = None, band: str = "minmax",
                         logy: bool = False, xlabel: str = "updates", ylabel: str = "value", title: Optional[str] = None,
                         color=None, ax=None):
    """Learned curves over seeds next to the exact value.

    steps : ``(T,)`` x-coordinates; values : ``(n_seeds, T)`` (a ``(T,)`` array is one seed). Draws the
    median over seeds and a band: ``"minmax"`` (range over seeds), ``"iqr"`` (25–75 %) or ``None``.
    exact : optional scalar drawn as a dashed black line labelled "exact".
    Returns the Figure (``ax.figure`` when ``ax`` is given, so several calls can share one axes).
    """
    steps = np.asarray(steps, dtype=np.float64).ravel()
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim == 1:
        vals = vals[None]
    if vals.ndim != 2 or vals.shape[1] != steps.size:
        raise ValueError(f"values must have shape (n_seeds, {steps.size}) to match steps, got {vals.shape}")
    if band not in ("minmax", "iqr", None):
        raise ValueError(f"band must be 'minmax', 'iqr' or None, got {band!r}")
    fig, ax = _fig_ax(ax, (6, 4))
    mid = np.median(vals, axis=0)
    (line,) = ax.plot(steps, mid, color=color, label=(label or "learned") + (f" (median of {vals.shape[0]} seeds)"
                                                                            if vals.shape[0] > 1 else ""))
    if band is not None and vals.shape[0] > 1:
        lo, hi = ((vals.min(axis=0), vals.max(axis=0)) if band == "minmax"
                  else tuple(np.percentile(vals, [25, 75], axis=0)))
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if exact is not None:
        ax.axhline(float(exact), color="k", ls="--", lw=1.2, label="exact")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


_MARKERS = ("o", "s", "^", "x", "D", "v", "P", "*")


def plot_reward_kl(points: Mapping[str, object], frontier=None, *, title: Optional[str] = None, ax=None):
    """Policies in the reward–KL plane next to the exact frontier.

    points : name -> ``(kl, reward)`` pair of equal-length arrays (or scalars), one marker style per
        name. frontier : optional ``(kl, reward)`` arrays of the exact optima π*_β over a β grid, drawn
        as a black line (no policy can lie above it at its KL: E_π R − β KL ≤ V*_β).
    Returns the Figure.
    """
    fig, ax = _fig_ax(ax, (6.5, 4.5))
    if frontier is not None:
        fk, fr = (np.asarray(a, dtype=np.float64).ravel() for a in frontier)
        if fk.shape != fr.shape:
            raise ValueError(f"frontier kl and reward must have the same length, got {fk.shape} and {fr.shape}")
        order = np.argsort(fk, kind="stable")
        ax.plot(fk[order], fr[order], "k-", lw=1.5, label="exact optimum π*_β (frontier)")
    for i, (name, pr) in enumerate(points.items()):
        kl, rew = (np.atleast_1d(np.asarray(a, dtype=np.float64)).ravel() for a in pr)
        if kl.shape != rew.shape:
            raise ValueError(f"points[{name!r}]: kl and reward must have the same length, got {kl.shape}, {rew.shape}")
        ax.plot(kl, rew, _MARKERS[i % len(_MARKERS)], ms=6, alpha=0.8, label=str(name))
    ax.set_xlabel("KL(π ‖ π_ref)")
    ax.set_ylabel("expected reward E_π R")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
