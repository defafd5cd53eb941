"""Shared figure helpers of mdpsandbox.plots used by the claims (seed bands, reward–KL frontier),
and the rule that the library never changes the caller's matplotlib backend."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mdpsandbox.plots import plot_learning_curves, plot_reward_kl


def test_importing_plots_keeps_the_callers_backend():
    code = ("import matplotlib; matplotlib.use('svg'); import mdpsandbox.plots, mdpsandbox.claims; "
            "import matplotlib.pyplot as plt; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"


def test_learning_curves_band_spans_the_seeds_and_median_line():
    rng = np.random.default_rng(0)
    steps = np.arange(10)
    vals = rng.normal(size=(5, 10))
    fig = plot_learning_curves(steps, vals, exact=0.25, label="L3")
    ax = fig.axes[0]
    med = ax.lines[0]
    np.testing.assert_array_equal(med.get_ydata(), np.median(vals, axis=0))
    exact = [ln for ln in ax.lines if ln.get_label() == "exact"]
    assert len(exact) == 1 and np.all(np.asarray(exact[0].get_ydata()) == 0.25)
    band = ax.collections[0].get_paths()[0].vertices
    assert np.isclose(band[:, 1].min(), vals.min()) and np.isclose(band[:, 1].max(), vals.max())
    iqr = plot_learning_curves(steps, vals, band="iqr").axes[0].collections[0].get_paths()[0].vertices
    assert iqr[:, 1].max() <= vals.max() and iqr[:, 1].min() >= vals.min()


def test_learning_curves_bad_shapes():
    with pytest.raises(ValueError, match="values must have shape \\(n_seeds, 4\\)"):
        plot_learning_curves(np.arange(4), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="band must be"):
        plot_learning_curves(np.arange(4), np.zeros((2, 4)), band="sd")


def test_reward_kl_draws_the_frontier_sorted_and_every_point():
    fk, fr = np.array([2.0, 0.0, 1.0]), np.array([0.9, 0.1, 0.6])
    fig = plot_reward_kl({"ShiQ": (np.array([0.5, 1.5]), np.array([0.3, 0.7])), "DPO": (0.2, 0.15)},
                         frontier=(fk, fr))
    ax = fig.axes[0]
    front = ax.lines[0]
    np.testing.assert_array_equal(front.get_xdata(), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(front.get_ydata(), [0.1, 0.6, 0.9])
    assert [ln.get_label() for ln in ax.lines[1:]] == ["ShiQ", "DPO"]
    np.testing.assert_array_equal(ax.lines[2].get_xdata(), [0.2])
    with pytest.raises(ValueError, match="same length"):
        plot_reward_kl({"x": (np.zeros(2), np.zeros(3))})
