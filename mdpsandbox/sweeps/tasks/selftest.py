r"""Built-in task ``selftest``: a cheap task with known answers, for checking a backend, a cluster or
the store (and for the package's own tests).

Metrics: ``y`` = x² (exact), ``u`` = the first ``numpy.random.default_rng(cell_seed).random()`` draw
(so its value proves the seed came from the cell's key), ``cell_seed``-free ``n_draws_mean`` = the
mean of ``n`` draws. ``sleep`` seconds of wall time per cell (to test progress and kills);
``fail`` = ``"raise"`` (a ValueError), ``"nan"`` (metric ``y`` is NaN), ``"array"`` (metric ``y``
is an array) or ``"none"``; ``with_arrays=True`` also returns an array (the ``.npz`` sidecar).
"""
from __future__ import annotations

import time

import numpy as np

from .registry import Param, task

__all__ = ["selftest_task"]


def selftest_task(*, x: float = 0.0, n: int = 1, fail: str = "none", sleep: float = 0.0, with_arrays: bool = False,
                  cell_seed=None) -> dict:
    """Known-answer task: y = x², u = first uniform draw of ``default_rng(cell_seed)``."""
    if sleep > 0:
        time.sleep(sleep)
    if fail == "raise":
        raise ValueError(f"selftest asked to fail at x={x!r}")
    rng = np.random.default_rng(cell_seed)
    draws = rng.random(n)
    out = {"y": float(x) ** 2, "u": float(draws[0]), "n_draws_mean": float(draws.mean())}
    if fail == "nan":
        out["y"] = float("nan")
    elif fail == "array":
        out["y"] = np.array([x, x])
    if with_arrays:
        out["arrays"] = {"draws": draws}
    return out


task("selftest", params={
    "x": Param((float,), "input; y = x**2"), "n": Param((int,), "number of draws"),
    "fail": Param((str,), "failure mode", choices=("none", "raise", "nan", "array")),
    "sleep": Param((float,), "seconds to sleep per cell"), "with_arrays": Param((bool,), "return an array too"),
}, metrics=("y", "u", "n_draws_mean"))(selftest_task)
