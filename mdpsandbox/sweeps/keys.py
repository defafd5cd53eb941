"""Canonical parameters, stable cell keys and per-cell seeds.

A cell is a dict of scalar parameters. Its *key* is the sha256 of the canonical JSON of
``{"task": task, "params": params}`` (keys sorted, no whitespace; floats written by ``repr``, the
shortest string that round-trips, so ``0.1`` always hashes the same). Its seed is derived from
the key through :class:`numpy.random.SeedSequence`, so a cell's numbers never depend on where, in
which order, in which chunk or on which backend it runs.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
from typing import Any, Mapping

import numpy as np

__all__ = ["canonical_value", "canonical_json", "cell_key", "cell_seed", "SCALAR_TYPES"]

SCALAR_TYPES = "bool, int, float (finite), str or None"


def canonical_value(value: Any, name: str = "value") -> Any:
    """A parameter value as a plain JSON scalar: bool, int, float (finite), str or None.

    numpy scalars are converted to the Python type; anything else (lists, arrays, dicts, NaN, inf)
    raises ``ValueError`` naming ``name``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return x
    raise ValueError(f"{name} must be a scalar ({SCALAR_TYPES}), got {type(value).__name__} {value!r}")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, compact separators, floats by ``repr``)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def cell_key(task: str, params: Mapping[str, Any], *, canonical: bool = False) -> str:
    """sha256 hex digest of the canonical JSON of ``{"task": task, "params": params}``
    (``canonical=True``: the values are already canonical scalars, e.g. from a :class:`Sweep`)."""
    if not canonical:
        params = {k: canonical_value(v, k) for k, v in params.items()}
    text = canonical_json({"task": task, "params": params})
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def cell_seed(key: str) -> int:
    """A non-negative 63-bit seed for the cell with ``key``: ``SeedSequence(int(key, 16))``'s first
    64-bit word, shifted right by one (fits a signed int64 column and ``numpy.random.default_rng``)."""
    word = np.random.SeedSequence(int(key, 16)).generate_state(1, np.uint64)[0]
    return int(word >> np.uint64(1))
