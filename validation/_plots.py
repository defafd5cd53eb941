"""Small figure and table helpers shared by the claim modules (not a claim module: leading underscore)."""
from __future__ import annotations

import numpy as np


def subplots(*args, **kwargs):
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def ok_rows(df):
    """The sweep's rows, after checking that every cell finished (a failed cell fails the claim)."""
    if "status" in df.columns:
        bad = df[df["status"] != "ok"]
        if len(bad):
            err = bad["error"].iloc[0] if "error" in bad.columns else "?"
            raise RuntimeError(f"{len(bad)} of {len(df)} sweep cells failed; first error: {err}")
    return df


def strip_panel(ax, df, x, columns: dict, log=True):
    """Per-x scatter of several metric columns (one colour per column), x treated as categories."""
    xs = sorted(df[x].unique())
    width = 0.35
    for j, (label, col) in enumerate(columns.items()):
        for i, xv in enumerate(xs):
            y = df.loc[df[x] == xv, col].to_numpy(float)
            jitter = (np.arange(y.size) / max(y.size - 1, 1) - 0.5) * 0.2
            ax.plot(np.full(y.size, i + (j - 0.5) * width) + jitter, y, "o", ms=4, alpha=0.7, color=f"C{j}",
                    label=label if i == 0 else None)
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([f"{v:g}" for v in xs])


def loglog_panel(ax, x, y, *, label, color=None, ls="-"):
    ax.loglog(np.asarray(x, float), np.asarray(y, float), ls, marker="o", ms=3, color=color, label=label)
