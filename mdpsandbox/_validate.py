"""Argument checks shared by every public entry point.

Every check raises :class:`ValueError` naming the argument and the violated condition,
*before* any work is done (DESIGN.md, "Errors").
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

__all__ = [
    "check_gamma",
    "check_positive",
    "check_finite",
    "check_int",
    "check_distribution",
    "check_shape",
    "check_stochastic_rows",
    "normalise_rows",
]

#: float64 tolerance used to accept a row as stochastic.
STOCHASTIC_ATOL = 1e-9


def check_gamma(gamma, name: str = "gamma", *, allow_one: bool = True) -> float:
    """Return ``gamma`` as a float in [0, 1] (or [0, 1) when ``allow_one`` is False)."""
    if not isinstance(gamma, numbers.Real) or isinstance(gamma, bool):
        raise ValueError(f"{name} must be a real number in [0, 1], got {gamma!r}")
    g = float(gamma)
    if not np.isfinite(g) or g < 0.0 or g > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {gamma!r}")
    if not allow_one and g >= 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {gamma!r}")
    return g


def check_positive(value, name: str) -> float:
    """Return ``value`` as a finite float > 0 (used for β, τ, learning rates)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number > 0, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_finite(array, name: str) -> np.ndarray:
    """Return ``array`` as float64 and refuse NaN or ±inf entries (naming the first bad index)."""
    a = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name} must be finite (no NaN or inf); entry {tuple(int(i) for i in bad)} is {a[tuple(bad)]!r}"
        )
    return a


def check_shape(array: np.ndarray, shape: tuple, name: str) -> None:
    """Refuse an array whose shape is not ``shape`` (``None`` entries match any size)."""
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape)
    ):
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {array.shape}")


def check_distribution(array, name: str, *, axis: int = -1) -> np.ndarray:
    """Return ``array`` as float64 if every slice along ``axis`` is a probability vector."""
    a = check_finite(array, name)
    if np.any(a < 0):
        bad = np.argwhere(a < 0)[0]
        raise ValueError(f"{name} must be non-negative; entry {tuple(int(i) for i in bad)} is {a[tuple(bad)]!r}")
    sums = a.sum(axis=axis)
    dev = np.abs(sums - 1.0)
    if np.any(dev > STOCHASTIC_ATOL * max(1, a.shape[axis])):
        bad = np.unravel_index(np.argmax(dev), sums.shape)
        raise ValueError(
            f"{name} must sum to 1 along axis {axis}; slice {tuple(int(i) for i in bad)} sums to {sums[bad]!r}"
        )
    return a


def check_stochastic_rows(P2, name: str = "P", row_label=None):
    """Return a 2-D transition matrix (float64 ndarray, or CSR with duplicates summed) whose rows are
    finite, non-negative and sum to 1 (within ``STOCHASTIC_ATOL·n_cols``).

    ``row_label(i)`` names row i in the error (e.g. ``"(s=3, a=1)"``); default ``"row i"``.
    """
    if sp.issparse(P2):
        M = sp.csr_matrix(P2, dtype=np.float64)
        M.sum_duplicates()
        if not np.all(np.isfinite(M.data)):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        if np.any(M.data < 0):
            raise ValueError(f"{name} must be non-negative (found a negative transition probability)")
        sums = np.asarray(M.sum(axis=1)).ravel()
    else:
        M = check_finite(P2, name)
        if M.ndim != 2:
            raise ValueError(f"{name} must be a 2-D matrix of transition rows, got shape {M.shape}")
        if np.any(M < 0):
            bad = tuple(int(i) for i in np.argwhere(M < 0)[0])
            raise ValueError(f"{name} must be non-negative; entry {bad} is {M[bad]!r}")
        sums = M.sum(axis=1)
    dev = np.abs(sums - 1.0)
    if dev.size and np.any(dev > STOCHASTIC_ATOL * max(1, M.shape[1])):
        i = int(np.argmax(dev))
        label = row_label(i) if row_label is not None else f"row {i}"
        raise ValueError(f"{name} must be stochastic: {label} sums to {sums[i]!r}, not 1")
    return M


def normalise_rows(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rows of an already validated distribution divided by their sums — only where a sum is off 1
    by more than 4 ulps·n, so an exactly normalised array keeps its bits (π = π_ref must give KL = 0
    bit for bit); the KL backups rely on Σ π_ref = 1."""
    p = np.asarray(p, dtype=np.float64)
    sums = p.sum(axis=axis, keepdims=True)
    off = np.abs(sums - 1.0) > 4.0 * np.finfo(np.float64).eps * p.shape[axis]
    if np.any(off):
        p = np.where(off, p / np.where(sums > 0, sums, 1.0), p)
    return p
