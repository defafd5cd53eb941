"""Shared timing helper for the benchmark scripts (run as `python benchmarks/<name>.py`)."""
import time

import numpy as np


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn()`` in seconds."""
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def median_time_and_result(fn, repeats: int):
    """(median wall time in seconds, result of the last call) of ``repeats`` calls of ``fn()``."""
    ts, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out
