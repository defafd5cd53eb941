"""Figures: every helper returns a ``matplotlib.figure.Figure``.

The library never selects a matplotlib backend (the caller's choice is kept); the CLI commands pick
``Agg`` inside their ``run``.
"""
from __future__ import annotations

from typing import Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_return_cdfs", "plot_learning_curves", "plot_reward_kl", "plot_metric", "plot_heatmap", "plot_loglog",
           "fit_loglog"]


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


# ---------------------------------------------------------------------- sweep tables (mdpsandbox.sweeps)
def _ok_rows(df):
    return df[df["status"] == "ok"] if "status" in df.columns else df


def _band(values: np.ndarray, band: Optional[str]):
    """(lo, hi) of one group: ``ci95`` = mean ± t_{0.975,n−1}·sd/√n (Student t), ``sd``, ``minmax``."""
    v = np.asarray(values, dtype=np.float64)
    m = v.mean()
    if band is None or v.size < 2:
        return m, m
    if band == "minmax":
        return v.min(), v.max()
    sd = v.std(ddof=1)
    if band == "sd":
        return m - sd, m + sd
    from scipy.stats import t

    h = t.ppf(0.975, v.size - 1) * sd / np.sqrt(v.size)
    return m - h, m + h


def plot_metric(df, x: str, y: str, hue: Optional[str] = None, *, band: Optional[str] = "ci95", logx: bool = False,
                logy: bool = False, title: Optional[str] = None, ax=None):
    """Metric ``y`` against the axis ``x`` of a sweep table: one line per value of ``hue``, the mean over
    every other varied parameter (e.g. seeds) and a band (``"ci95"`` Student-t 95% interval of the mean,
    ``"sd"``, ``"minmax"`` or None). Rows with ``status != "ok"`` are left out."""
    if band not in (None, "ci95", "sd", "minmax"):
        raise ValueError(f"band must be 'ci95', 'sd', 'minmax' or None, got {band!r}")
    for c in (x, y) + ((hue,) if hue else ()):
        if c not in df.columns:
            raise ValueError(f"column {c!r} is not in the table; columns: {list(df.columns)}")
    d = _ok_rows(df)
    fig, ax = _fig_ax(ax, (5.5, 3.8))
    groups = [(None, d)] if hue is None else list(d.groupby(hue, sort=True))
    for h, g in groups:
        xs, mean, lo, hi = [], [], [], []
        for xv, gg in g.groupby(x, sort=True):
            vals = gg[y].to_numpy(dtype=np.float64)
            xs.append(xv)
            mean.append(vals.mean())
            a, b = _band(vals, band)
            lo.append(a)
            hi.append(b)
        line, = ax.plot(xs, mean, marker="o", ms=3, label=None if hue is None else f"{hue}={h}")
        if band is not None:
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlabel(x)
    ax.set_ylabel(y if band is None else f"{y} (mean, {band})")
    if hue is not None:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_heatmap(df, x: str, y: str, value: str, *, agg: str = "mean", title: Optional[str] = None,
                 cmap: str = "viridis", ax=None):
    """Heat map of ``value`` over two axes of a sweep table (``agg`` = mean/median/max/min over the
    other parameters; ok rows only). Cell (i, j) is y-value i (rows, ascending) and x-value j."""
    if agg not in ("mean", "median", "max", "min"):
        raise ValueError(f"agg must be 'mean', 'median', 'max' or 'min', got {agg!r}")
    for c in (x, y, value):
        if c not in df.columns:
            raise ValueError(f"column {c!r} is not in the table; columns: {list(df.columns)}")
    d = _ok_rows(df)
    table = d.pivot_table(index=y, columns=x, values=value, aggfunc=agg).sort_index().sort_index(axis=1)
    fig, ax = _fig_ax(ax, (5.5, 4.2))
    im = ax.imshow(table.to_numpy(dtype=np.float64), origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(table.shape[1]), [f"{v:.3g}" if isinstance(v, float) else str(v) for v in table.columns],
                  rotation=45, fontsize=8)
    ax.set_yticks(range(table.shape[0]), [f"{v:.3g}" if isinstance(v, float) else str(v) for v in table.index],
                  fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(im, ax=ax, label=f"{value} ({agg})")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def fit_loglog(x, y) -> tuple:
    """Least-squares fit of log10 y = slope·log10 x + intercept over the positive finite points:
    returns ``(slope, intercept)``."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.unique(x[keep]).size < 2:
        raise ValueError("a log-log fit needs at least two distinct positive (x, y) points")
    slope, intercept = np.polyfit(np.log10(x[keep]), np.log10(y[keep]), 1)
    return float(slope), float(intercept)


def plot_loglog(x, y, theory_slope: Optional[float] = None, *, label: Optional[str] = None, xlabel: str = "x",
                ylabel: str = "y", title: Optional[str] = None, ax=None):
    """Points (x, y) on log-log axes with their least-squares slope (:func:`fit_loglog`; the legend
    and ``fig.fitted_slope`` report it) and, optionally, a reference line of slope ``theory_slope``
    through the geometric mean of the points."""
    slope, intercept = fit_loglog(x, y)
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    keep = (x > 0) & (y > 0)
    xs = np.array([x[keep].min(), x[keep].max()])
    fig, ax = _fig_ax(ax, (5, 3.8))
    pts, = ax.loglog(x[keep], y[keep], "o", ms=4, label=label or "data")
    ax.loglog(xs, 10 ** intercept * xs ** slope, "-", color=pts.get_color(), label=f"fit: slope {slope:.3f}")
    if theory_slope is not None:
        lx, ly = np.log10(x[keep]).mean(), np.log10(y[keep]).mean()
        ax.loglog(xs, 10 ** (ly + theory_slope * (np.log10(xs) - lx)), "k--", lw=1,
                  label=f"theory: slope {theory_slope:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.fitted_slope = slope
    return fig
