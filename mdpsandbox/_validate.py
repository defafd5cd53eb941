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
    "fmt",
    "check_seed",
    "as_real_array",
    "check_scale",
]

#: float64 tolerance used to accept a row as stochastic.
STOCHASTIC_ATOL = 1e-9


def fmt(x) -> str:
    """A value for an error message: numbers as plain numbers (``0.5``, not ``np.float64(0.5)``),
    anything else by its repr."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return f"{x!r}"
    return repr(x)


def check_gamma(gamma, name: str = "gamma", *, allow_one: bool = True) -> float:
    """Return ``gamma`` as a float in [0, 1] (or [0, 1) when ``allow_one`` is False)."""
    if not isinstance(gamma, numbers.Real) or isinstance(gamma, bool):
        raise ValueError(f"{name} must be a real number in [0, 1], got {fmt(gamma)}")
    g = float(gamma)
    if not np.isfinite(g) or g < 0.0 or g > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {fmt(gamma)}")
    if not allow_one and g >= 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {fmt(gamma)}")
    return g


def check_positive(value, name: str) -> float:
    """Return ``value`` as a finite float > 0 (used for β, τ, learning rates)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number > 0, got {fmt(value)}")
    v = float(value)
    if not np.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {fmt(value)}")
    return v


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {fmt(value)}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_finite(array, name: str) -> np.ndarray:
    """Return ``array`` as float64 and refuse NaN or ±inf entries (naming the first bad index);
    complex, non-numeric (e.g. strings) and ragged input is refused naming ``name``."""
    a = as_real_array(array, name)
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name} must be finite (no NaN or inf); entry {tuple(int(i) for i in bad)} is {fmt(a[tuple(bad)])}"
        )
    return a


def as_real_array(x, name: str) -> np.ndarray:
    """``x`` as a real float64 array; a clear ValueError naming ``name`` for complex, non-numeric
    (strings, objects) or ragged input instead of numpy's ComplexWarning / conversion errors."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        return x
    try:
        a = np.asarray(x)
    except ValueError as e:  # ragged nested lists (numpy >= 1.24)
        raise ValueError(f"{name} must be a rectangular numeric array; got ragged input ({e})") from None
    if a.dtype == object:
        raise ValueError(f"{name} must be a rectangular numeric array; got an object array (ragged or mixed input)")
    if np.iscomplexobj(a):
        raise ValueError(f"{name} must be real; got a complex array (dtype {a.dtype})")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must be numeric; got dtype {a.dtype} (e.g. strings)")
    return a.astype(np.float64, copy=False)


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
        raise ValueError(f"{name} must be non-negative; entry {tuple(int(i) for i in bad)} is {fmt(a[tuple(bad)])}")
    sums = a.sum(axis=axis)
    dev = np.abs(sums - 1.0)
    if np.any(dev > STOCHASTIC_ATOL * max(1, a.shape[axis])):
        bad = np.unravel_index(np.argmax(dev), sums.shape)
        raise ValueError(
            f"{name} must sum to 1 along axis {axis}; slice {tuple(int(i) for i in bad)} sums to {fmt(sums[bad])}"
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
            raise ValueError(f"{name} must be non-negative; entry {bad} is {fmt(M[bad])}")
        sums = M.sum(axis=1)
    dev = np.abs(sums - 1.0)
    if dev.size and np.any(dev > STOCHASTIC_ATOL * max(1, M.shape[1])):
        i = int(np.argmax(dev))
        label = row_label(i) if row_label is not None else f"row {i}"
        raise ValueError(f"{name} must be stochastic: {label} sums to {fmt(sums[i])}, not 1")
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


def check_seed(seed, name: str = "seed"):
    """A seed for ``numpy.random.default_rng``: an int >= 0 (or a ``numpy.random.Generator``, passed through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= 0, got {fmt(seed)}")
    if int(seed) < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {int(seed)}")
    return int(seed)


def check_scale(value, name: str) -> float:
    """A finite real >= 0 (a standard deviation such as ``logit_scale``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite real number >= 0, got {fmt(value)}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite real number >= 0, got {fmt(value)}")
    return v
