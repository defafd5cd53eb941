r"""Categorical supports and the hat-function projection Π_C (docs/math.md §7; Rowland et al. 2018)."""
from __future__ import annotations

import numpy as np

from ..._validate import check_finite, check_gamma, check_int, fmt

__all__ = ["check_atoms", "default_atoms", "categorical_projection"]


def check_atoms(atoms, name: str = "atoms", *, even: bool = True) -> tuple[np.ndarray, float]:
    """Validate a support: 1-D, at least 2 atoms, finite, strictly increasing and (``even``)
    evenly spaced (relative tolerance 1e-9). Returns ``(atoms, gap)`` (gap = mean spacing)."""
    z = check_finite(atoms, name)
    if z.ndim != 1 or z.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 atoms, got shape {z.shape}")
    dz = np.diff(z)
    if np.any(dz <= 0):
        i = int(np.argmax(dz <= 0))
        raise ValueError(f"{name} must be strictly increasing; {name}[{i}] = {z[i]!r} >= {name}[{i + 1}] = {z[i + 1]!r}")
    gap = float((z[-1] - z[0]) / (z.size - 1))
    if even and np.max(np.abs(dz - gap)) > 1e-9 * max(gap, 1e-300) + 1e-12 * max(1.0, float(np.max(np.abs(z)))):
        raise ValueError(f"{name} must be evenly spaced (the CDF form of the categorical operator needs one gap); "
                         f"spacings range over [{dz.min()!r}, {dz.max()!r}]")
    return z, gap


def default_atoms(r, gamma: float, n_atoms: int) -> np.ndarray:
    r"""``n_atoms`` evenly spaced atoms on :math:`[\min r/(1-\gamma), \max r/(1-\gamma)]` (docs/math.md §7):
    with this range every target r + γ z_j stays inside the support (no clipping). A constant
    reward gets the interval ±1 around r/(1−γ)."""
    r = check_finite(r, "r")
    gamma = check_gamma(gamma, allow_one=False)
    m = check_int(n_atoms, "n_atoms", minimum=2)
    lo, hi = float(r.min()) / (1 - gamma), float(r.max()) / (1 - gamma)
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        lo, hi = lo - 1.0, hi + 1.0
    return np.linspace(lo, hi, m)


def categorical_projection(atoms, values, probs=None, *, signed: bool = False) -> np.ndarray:
    r"""Hat-function projection Π_C onto a categorical support (Rowland et al. 2018, "An analysis
    of categorical distributional reinforcement learning", Prop. 1):

    .. math:: \Pi_C\Big(\sum_k q_k\delta_{y_k}\Big) = \sum_i\Big(\sum_k q_k\,h_i(y_k)\Big)\delta_{z_i},
              \qquad h_i(y) = \Big(1 - \frac{|y - z_i|}{z_{i\pm1} - z_i}\Big)_+

    (the right gap for y > z_i, the left gap for y < z_i), with y first clipped to
    [z_1, z_m] so that mass outside the range goes entirely to the end atom. For y in
    [z_i, z_{i+1}] only two hats are non-zero: weight (z_{i+1} − y)/(z_{i+1} − z_i) on z_i and the
    complement on z_{i+1}; the cell is found with ``searchsorted`` and the upper weight is
    ``1 − lower``, so a value exactly on an atom puts all its mass there and every Dirac's
    mass sums to 1 (the floor/ceil form drops it — a recurring C51 bug).

    atoms : ``(m,)`` strictly increasing (uneven spacing allowed here).
    values : ``(..., k)`` Dirac locations y_k (k ≥ 1).
    probs : ``(..., k)`` weights q_k (broadcast with ``values``; default uniform 1/k). By default
        they must be probabilities: non-negative and summing to 1 over the last axis (within
        1e-9·k) — a negative or unnormalised weight raises ``ValueError``.
    signed : allow any finite weights (signed or unnormalised measures, e.g. differences of laws
        or rlax-style tests); Π_C is linear, so the result is the same linear map of q, with total
        mass Σ q_k instead of 1.
    Returns ``(..., m)`` weights on the atoms (batched over the leading axes).
    """
    z, _ = check_atoms(atoms, even=False)
    y = check_finite(values, "values")
    if y.ndim == 0:
        y = y[None]
    if y.shape[-1] == 0:
        raise ValueError(f"values must hold at least one Dirac location on its last axis, got shape {y.shape}")
    if probs is None:
        q = np.full(y.shape, 1.0 / y.shape[-1])
    else:
        q = check_finite(probs, "probs")
        if q.ndim == 0:
            q = q[None]
        if not signed:
            if np.any(q < 0):
                bad = tuple(int(i) for i in np.argwhere(q < 0)[0])
                raise ValueError(f"probs must be non-negative; entry {bad} is {fmt(q[bad])} "
                                 "(pass signed=True to project a signed measure)")
            tot = q.sum(axis=-1)
            dev = np.abs(tot - 1.0)
            if np.any(dev > 1e-9 * max(1, q.shape[-1])):
                bad = tuple(int(i) for i in np.unravel_index(np.argmax(dev), tot.shape))
                raise ValueError(f"probs must sum to 1 over the last axis; slice {bad} sums to {fmt(tot[bad])} "
                                 "(pass signed=True to project an unnormalised measure)")
    try:
        shape = np.broadcast_shapes(y.shape, q.shape)
    except ValueError:
        raise ValueError(f"values {y.shape} and probs {q.shape} must have broadcastable shapes "
                         "(the Diracs on the last axis)") from None
    y = np.broadcast_to(y, shape)
    q = np.broadcast_to(q, shape)
    m = z.size
    yc = np.clip(y, z[0], z[-1])
    i = np.clip(np.searchsorted(z, yc, side="right") - 1, 0, m - 2)  # cell [z_i, z_{i+1}] holding y
    lower = (z[i + 1] - yc) / (z[i + 1] - z[i])                     # hat of z_i at y
    upper = 1.0 - lower                                             # hat of z_{i+1} at y
    lead = shape[:-1]
    B = int(np.prod(lead)) if lead else 1
    base = (np.arange(B) * m).reshape(lead + (1,)) if lead else np.zeros((1,), np.int64)
    idx_lo = (base + i).ravel()
    out = np.bincount(idx_lo, weights=(q * lower).ravel(), minlength=B * m)
    out += np.bincount(idx_lo + 1, weights=(q * upper).ravel(), minlength=B * m)
    return out.reshape(lead + (m,))
