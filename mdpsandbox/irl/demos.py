r"""Demonstrations: batched, seeded trajectory sampling on a TabularMDP and empirical feature
expectations (docs/math.md §10).

:func:`sample_trajectories` draws all n trajectories at once: one vectorised inverse-CDF draw per
step for the actions (policy rows of the n current states) and one for the next states (a
searchsorted on the row-offset cumulative sums of the CSR transition matrix) — no Python loop per
step per trajectory. An episode ends on arrival at a terminal state; the arrays are padded with −1
after it (ragged lengths).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp

from .._validate import check_distribution, check_finite, check_int, check_shape
from ..envs.tabular import TabularMDP

__all__ = ["Demonstrations", "sample_trajectories", "empirical_feature_expectations",
           "empirical_occupancy"]


@dataclass(frozen=True)
class Demonstrations:
    """A batch of n trajectories, padded to length T.

    states, actions : ``(n, T)`` int64 — (s_t, a_t) for t < lengths[i], ``-1`` after (padding).
    lengths : ``(n,)`` number of actions taken in each trajectory (0 ≤ length ≤ T).
    final_states : ``(n,)`` the state reached after the last action (a terminal state if the episode
        ended, else s_T), or ``-1`` when unknown (user data without it).
    """

    states: np.ndarray
    actions: np.ndarray
    lengths: np.ndarray
    final_states: Optional[np.ndarray] = None

    def __post_init__(self):
        for name in ("states", "actions", "lengths"):
            val = getattr(self, name)
            try:
                arr = np.asarray(val)
            except ValueError:
                arr = np.asarray(val, dtype=object)
            if arr.dtype == object:
                raise ValueError(f"{name} is ragged (rows of different lengths); pad with -1 to a common length "
                                 f"or use Demonstrations.from_lists")
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                    raise ValueError(f"{name} must hold integers, got non-integer values")
            object.__setattr__(self, name, arr.astype(np.int64))
        s, a, L = self.states, self.actions, self.lengths
        if s.ndim != 2:
            raise ValueError(f"states must have shape (n, T), got {s.shape}")
        check_shape(a, s.shape, "actions")
        check_shape(L, (s.shape[0],), "lengths")
        if self.final_states is not None:
            fs = np.asarray(self.final_states).astype(np.int64)
            check_shape(fs, (s.shape[0],), "final_states")
            object.__setattr__(self, "final_states", fs)
        if L.size and (L.min() < 0 or L.max() > s.shape[1]):
            raise ValueError(f"lengths must lie in [0, T={s.shape[1]}], got min {L.min()} max {L.max()}")
        real = self.mask
        for name, arr in (("states", s), ("actions", a)):
            if np.any(arr[real] < 0):
                i, t = np.argwhere((arr < 0) & real)[0]
                raise ValueError(f"{name} must be >= 0 on real steps; trajectory {i}, step {t} is {arr[i, t]} "
                                 f"(length {L[i]})")
            if np.any(arr[~real] != -1):
                i, t = np.argwhere((arr != -1) & ~real)[0]
                raise ValueError(f"{name} must be padded with -1 after each trajectory's length; trajectory {i}, "
                                 f"step {t} is {arr[i, t]} but the length is {L[i]} (ragged/inconsistent lengths)")

    @classmethod
    def from_lists(cls, states, actions) -> "Demonstrations":
        """From ragged lists of per-trajectory state and action sequences (equal length per pair)."""
        if len(states) != len(actions):
            raise ValueError(f"states and actions must list the same number of trajectories, got {len(states)} "
                             f"and {len(actions)}")
        L = np.array([len(x) for x in states], dtype=np.int64)
        for i, (x, y) in enumerate(zip(states, actions)):
            if len(x) != len(y):
                raise ValueError(f"trajectory {i} has {len(x)} states but {len(y)} actions")
        T = int(L.max()) if L.size else 0
        S_ = -np.ones((len(L), T), dtype=np.int64)
        A_ = -np.ones((len(L), T), dtype=np.int64)
        for i, (x, y) in enumerate(zip(states, actions)):
            S_[i, :len(x)] = np.asarray(x, dtype=np.int64)
            A_[i, :len(y)] = np.asarray(y, dtype=np.int64)
        return cls(S_, A_, L)

    @property
    def mask(self) -> np.ndarray:
        """``(n, T)`` bool, True on real steps (t < length)."""
        return np.arange(self.states.shape[1])[None, :] < self.lengths[:, None]

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def validate(self, n_states: int, n_actions: int) -> "Demonstrations":
        """Refuse states ∉ [0, S) or actions ∉ [0, A) on real steps (naming the first bad entry)."""
        real = self.mask
        for name, arr, hi in (("states", self.states, n_states), ("actions", self.actions, n_actions)):
            bad = real & (arr >= hi)
            if bad.any():
                i, t = np.argwhere(bad)[0]
                raise ValueError(f"demonstrations.{name} must lie in [0, {hi}); trajectory {i}, step {t} is "
                                 f"{arr[i, t]}")
        if self.final_states is not None and np.any(self.final_states >= n_states):
            i = int(np.argmax(self.final_states >= n_states))
            raise ValueError(f"demonstrations.final_states must lie in [0, {n_states}); trajectory {i} has "
                             f"{self.final_states[i]}")
        return self


def _row_sampler(P2):
    """(indices, keys) for vectorised inverse-CDF draws from the rows of a (sparse) stochastic
    matrix: keys = row index + cumulative probability within the row (strictly inside (r, r+1])."""
    M = sp.csr_matrix(P2)
    M.sum_duplicates()
    M.sort_indices()
    n_rows = M.shape[0]
    counts = np.diff(M.indptr)
    row_of = np.repeat(np.arange(n_rows), counts)
    cum = np.cumsum(M.data)
    start = np.concatenate([[0.0], cum])[M.indptr[:-1]]
    within = cum - np.repeat(start, counts)
    ends = M.indptr[1:] - 1
    # normalise each row's last key to exactly 1 (round-off in Σ P = 1 ± 1e-12)
    tot = np.zeros(n_rows)
    nz = counts > 0
    tot[nz] = within[ends[nz]]
    within = within / np.repeat(np.where(tot > 0, tot, 1.0), counts)
    keys = row_of + within
    return M.indices, keys, M.indptr


def _draw_rows(sampler, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    idx, keys, indptr = sampler
    pos = np.searchsorted(keys, rows + u, side="right")
    pos = np.minimum(pos, indptr[rows + 1] - 1)  # u → 1 round-off stays in the row
    return idx[pos]


def sample_trajectories(mdp: TabularMDP, policy, n: int, horizon: int, *, seed: int,
                        initial=None) -> Demonstrations:
    r"""Sample ``n`` trajectories of at most ``horizon`` actions from ``policy`` (``(S, A)``, or
    ``(H, S, A)`` time-indexed), starting from ``initial`` (default ``mdp.initial``), seeded.

    Batched over trajectories: per step one inverse-CDF action draw and one inverse-CDF next-state
    draw for all live trajectories (vectorised; no Python loop per step per trajectory). A trajectory
    ends on arrival at a terminal state (it starts ended if s_0 is terminal); the arrays are padded
    with −1 after its length. The law: :math:`\Pr(s_t = s,\ t < \text{length}) = \rho_t(s)` of
    :func:`~mdpsandbox.solvers.occupancy.finite_horizon_occupancy` (tested within binomial error).
    """
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    n = check_int(n, "n")
    H = check_int(horizon, "horizon")
    S, A = mdp.n_states, mdp.n_actions
    pol = check_distribution(policy, "policy")
    if pol.ndim == 2:
        check_shape(pol, (S, A), "policy")
    else:
        check_shape(pol, (H, S, A), "policy")
    if initial is None:
        mu = mdp.initial
    else:
        mu = check_distribution(initial, "initial")
        check_shape(mu, (S,), "initial")
    rng = np.random.default_rng(seed)
    trans = _row_sampler(mdp.P2)
    cmu = np.cumsum(mu)
    cmu /= cmu[-1]
    s = np.minimum(np.searchsorted(cmu, rng.random(n), side="right"), S - 1)
    states = -np.ones((n, H), dtype=np.int64)
    actions = -np.ones((n, H), dtype=np.int64)
    alive = ~mdp.terminal[s]
    u_act = rng.random((H, n))
    u_next = rng.random((H, n))
    for t in range(H):
        idx = np.nonzero(alive)[0]
        if idx.size == 0:
            break
        st = s[idx]
        p = pol[t] if pol.ndim == 3 else pol
        cdf = np.cumsum(p[st], axis=1)
        a = np.minimum((u_act[t, idx, None] * cdf[:, -1:] >= cdf).sum(axis=1), A - 1)
        states[idx, t] = st
        actions[idx, t] = a
        s_next = _draw_rows(trans, st * A + a, u_next[t, idx])
        s[idx] = s_next
        alive[idx] = ~mdp.terminal[s_next]
    lengths = (actions >= 0).sum(axis=1)
    return Demonstrations(states, actions, lengths, final_states=s.copy())


def empirical_feature_expectations(demos: Demonstrations, features, gamma: float) -> np.ndarray:
    r"""Empirical discounted feature expectations
    :math:`\hat\mu_E = \frac1n\sum_i\sum_{t<L_i}\gamma^t\phi(s^i_t, a^i_t)`, ``(d,)`` — the unbiased
    estimate of :math:`E\sum_{t<T}\gamma^t\phi(s_t,a_t)` (T = the demonstrations' horizon)."""
    from .._validate import check_gamma

    if not isinstance(demos, Demonstrations):
        raise ValueError(f"demos must be a Demonstrations, got {type(demos).__name__}")
    g = check_gamma(gamma)
    phi = check_finite(features, "features")
    if phi.ndim != 3:
        raise ValueError(f"features must have shape (S, A, d), got {phi.shape}")
    counts = _discounted_counts(demos, phi.shape[0], phi.shape[1], g)
    return counts.reshape(-1) @ phi.reshape(-1, phi.shape[2])


def _discounted_counts(demos: Demonstrations, S: int, A: int, g: float) -> np.ndarray:
    demos.validate(S, A)
    n, T = demos.states.shape
    if n == 0:
        raise ValueError("demos must hold at least one trajectory")
    mask = demos.mask
    w = np.where(mask, g ** np.arange(T)[None, :], 0.0)
    s = np.where(mask, demos.states, 0)
    a = np.where(mask, demos.actions, 0)
    counts = np.bincount((s * A + a).ravel(), weights=w.ravel(), minlength=S * A).reshape(S, A)
    return counts / n


def empirical_occupancy(demos: Demonstrations, n_states: int, n_actions: int, gamma: float) -> np.ndarray:
    r"""Empirical discounted state–action occupancy :math:`\hat\rho(s,a) = \frac1n\sum_i\sum_{t<L_i}
    \gamma^t 1[s^i_t = s, a^i_t = a]`, ``(S, A)``."""
    from .._validate import check_gamma

    if not isinstance(demos, Demonstrations):
        raise ValueError(f"demos must be a Demonstrations, got {type(demos).__name__}")
    S = check_int(n_states, "n_states")
    A = check_int(n_actions, "n_actions")
    return _discounted_counts(demos, S, A, check_gamma(gamma))
