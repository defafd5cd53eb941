"""Plot helpers for sweep tables: lines are the group means, bands the stated intervals, the heat
map is the pivot, and the log-log fit recovers a known power law exactly."""
import matplotlib

matplotlib.use("Agg")  # tests only: the library never selects a backend
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.stats import t as student_t

from mdpsandbox.plots import fit_loglog, plot_heatmap, plot_loglog, plot_metric


def _table():
    rng = np.random.default_rng(0)
    rows = []
    for g in (0.9, 0.99):
        for beta in (0.01, 0.1, 1.0):
            for seed in range(5):
                rows.append(dict(gamma=g, beta=beta, seed=seed, err=beta * g + rng.normal(0, 0.01), status="ok"))
    rows.append(dict(gamma=0.9, beta=0.1, seed=99, err=1e6, status="error"))  # must be ignored
    return pd.DataFrame(rows)


def test_plot_metric_lines_are_group_means_and_bands_the_t_interval():
    df = _table()
    fig = plot_metric(df, "beta", "err", hue="gamma", logx=True)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 2 and ax.get_xscale() == "log"
    ok = df[df.status == "ok"]
    for line, g in zip(lines, (0.9, 0.99)):
        sub = ok[ok.gamma == g]
        expect = sub.groupby("beta").err.mean().to_numpy()
        assert np.allclose(line.get_ydata(), expect, rtol=0, atol=1e-15)
    # band of the first line at beta = 0.01: mean ± t_{0.975,4} sd/√5
    v = ok[(ok.gamma == 0.9) & (ok.beta == 0.01)].err.to_numpy()
    h = student_t.ppf(0.975, 4) * v.std(ddof=1) / np.sqrt(5)
    verts = ax.collections[0].get_paths()[0].vertices
    at = verts[np.isclose(verts[:, 0], 0.01)][:, 1]
    assert np.isclose(at.min(), v.mean() - h) and np.isclose(at.max(), v.mean() + h)


def test_plot_metric_rejects_unknown_columns_and_bands():
    with pytest.raises(ValueError, match="column 'nope' is not in the table"):
        plot_metric(_table(), "nope", "err")
    with pytest.raises(ValueError, match="band must be"):
        plot_metric(_table(), "beta", "err", band="iqr")


def test_plot_heatmap_image_is_the_pivot_of_means():
    df = _table()
    fig = plot_heatmap(df, "beta", "gamma", "err")
    img = fig.axes[0].get_images()[0].get_array()
    ok = df[df.status == "ok"]
    expect = np.array([[ok[(ok.gamma == g) & (ok.beta == b)].err.mean() for b in (0.01, 0.1, 1.0)] for g in (0.9, 0.99)])
    assert np.allclose(np.asarray(img), expect, rtol=0, atol=1e-15)


@pytest.mark.parametrize("slope", [-0.5, -1.0, 2.0])
def test_loglog_fit_recovers_the_slope_of_an_exact_power_law(slope):
    x = np.logspace(1, 5, 9)
    y = 3.0 * x ** slope
    s, c = fit_loglog(x, y)
    assert s == pytest.approx(slope, abs=1e-12) and 10 ** c == pytest.approx(3.0, rel=1e-12)
    fig = plot_loglog(x, y, theory_slope=slope, label="err")
    assert fig.fitted_slope == pytest.approx(slope, abs=1e-12)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels == ["err", f"fit: slope {slope:.3f}", f"theory: slope {slope:g}"]
    fit = ax.get_lines()[1]
    assert np.allclose(fit.get_ydata(), 3.0 * np.asarray(fit.get_xdata()) ** slope, rtol=1e-10)
    with pytest.raises(ValueError, match="at least two distinct positive"):
        fit_loglog([1.0, 1.0], [2.0, 3.0])
