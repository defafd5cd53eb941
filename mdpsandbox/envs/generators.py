"""Seeded generators of tabular MDPs: garnet, chain, gridworld, bandit.

Every generator takes an explicit ``seed`` (a ``numpy.random.Generator`` is built from it):
the same seed gives the same MDP.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import scipy.sparse as sp

from .._memory import check_memory
from .._validate import check_gamma, check_int, check_seed, fmt
from .tabular import TabularMDP

__all__ = ["garnet", "chain", "gridworld", "bandit"]


def _distinct_successors(rng: np.random.Generator, n_rows: int, S: int, b: int) -> np.ndarray:
    """``(n_rows, b)`` distinct states per row, uniformly without replacement, vectorised: draw with
    replacement, redraw the rows that hold a repeat (a fraction ≈ b²/(2S) of them) until none do."""
    cols = rng.integers(0, S, size=(n_rows, b))
    while True:
        srt = np.sort(cols, axis=1)
        bad = np.flatnonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1)) if b > 1 else np.zeros(0, dtype=int)
        if bad.size == 0:
            return cols
        cols[bad] = rng.integers(0, S, size=(bad.size, b))


def garnet(n_states: int, n_actions: int, branching: int, gamma: float = 0.9, seed: int = 0,
           *, sparse: Optional[bool] = None, reward_scale: float = 1.0) -> TabularMDP:
    """Random 'Generic Average Reward Non-stationary Environment Testbench' MDP (Archibald et al.
    1995; Bhatnagar et al. 2009): each (s, a) moves to ``branching`` distinct states with
    probabilities from a uniform partition of [0, 1]; rewards r(s, a) ~ U[0, reward_scale].

    ``sparse`` (default: S > 500) returns P as CSR ``(S*A, S)``.
    """
    S = check_int(n_states, "n_states")
    A = check_int(n_actions, "n_actions")
    b = check_int(branching, "branching")
    if b > S:
        raise ValueError(f"branching must be <= n_states ({S}), got {b}")
    gamma = check_gamma(gamma)
    # peak of the construction: row/col/prob arrays and the CSR copy (≈ 48 bytes per nonzero), or the
    # (S·A, S) argsort keys for small S — checked before any allocation
    small = S * A * S <= 40_000_000          # argsort keys (S·A, S) stay below ~640 MB
    check_memory(S * A * b * 48 + (S * A * S * 16 if small else 0) + S * A * 8,
                 f"garnet(n_states={S}, n_actions={A}, branching={b})")
    rng = np.random.default_rng(check_seed(seed))
    # distinct successors per row without a Python loop: argsort of random keys
    if small:
        cols = np.argsort(rng.random((S * A, S)), axis=1)[:, :b]
    else:
        cols = _distinct_successors(rng, S * A, S, b)
    cuts = np.sort(rng.random((S * A, b - 1)), axis=1)
    probs = np.diff(np.concatenate([np.zeros((S * A, 1)), cuts, np.ones((S * A, 1))], axis=1), axis=1)
    R = rng.random((S, A)) * reward_scale
    rows = np.repeat(np.arange(S * A), b)
    P2 = sp.csr_matrix((probs.ravel(), (rows, cols.ravel())), shape=(S * A, S))
    P2.sum_duplicates()
    use_sparse = S > 500 if sparse is None else sparse
    P = P2 if use_sparse else P2.toarray().reshape(S, A, S)
    return TabularMDP(P, R, gamma)


def chain(n_states: int = 10, gamma: float = 0.9, *, slip: float = 0.0, reward_left: float = 0.01,
          reward_right: float = 1.0, seed: int = 0) -> TabularMDP:
    """The classic chain: actions 0 = left, 1 = right. Moving left from state 0 pays
    ``reward_left``; moving right at the last state pays ``reward_right``. With probability
    ``slip`` the chosen move is reversed. ``seed`` is accepted for a uniform generator signature
    (the chain is deterministic given its arguments)."""
    S = check_int(n_states, "n_states", minimum=2)
    gamma = check_gamma(gamma)
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must lie in [0, 1], got {fmt(slip)}")
    P = np.zeros((S, 2, S))
    R = np.zeros((S, 2))
    for s in range(S):
        left, right = max(s - 1, 0), min(s + 1, S - 1)
        P[s, 0, left] += 1 - slip
        P[s, 0, right] += slip
        P[s, 1, right] += 1 - slip
        P[s, 1, left] += slip
    R[0, 0] += (1 - slip) * reward_left
    R[0, 1] += slip * reward_left
    R[S - 1, 1] += (1 - slip) * reward_right
    R[S - 1, 0] += slip * reward_right
    return TabularMDP(P, R, gamma, initial=np.eye(S)[0])


_MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])  # up, right, down, left


def gridworld(height: int = 5, width: int = 5, *, walls: Iterable = (), goal=None, start=(0, 0),
              slip: float = 0.1, step_reward: float = -0.01, goal_reward: float = 1.0,
              gamma: float = 0.95, seed: int = 0) -> TabularMDP:
    """A ``height × width`` grid; actions up/right/down/left. With probability ``slip`` the
    agent moves in a uniformly random direction instead. Walls block moves (the agent stays).
    Entering ``goal`` (default bottom-right) pays ``goal_reward`` and ends the episode (the goal is
    a terminal state); every other step pays ``step_reward``. State index = row*width + col.
    ``walls``: iterable of (row, col). ``seed`` fixes nothing random yet; kept for a uniform API.
    """
    Hh = check_int(height, "height")
    Ww = check_int(width, "width")
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must lie in [0, 1], got {fmt(slip)}")
    gamma = check_gamma(gamma)
    goal = (Hh - 1, Ww - 1) if goal is None else tuple(goal)
    wall = np.zeros((Hh, Ww), dtype=bool)
    for w in walls:
        r, c = w
        if not (0 <= r < Hh and 0 <= c < Ww):
            raise ValueError(f"walls entry {w} lies outside the {Hh}x{Ww} grid")
        wall[r, c] = True
    for name, cell in (("goal", goal), ("start", tuple(start))):
        if not (0 <= cell[0] < Hh and 0 <= cell[1] < Ww) or wall[cell]:
            raise ValueError(f"{name} {cell} must be a free cell of the {Hh}x{Ww} grid")
    S = Hh * Ww
    P = np.zeros((S, 4, S))
    R = np.zeros((S, 4))
    g = goal[0] * Ww + goal[1]
    for r in range(Hh):
        for c in range(Ww):
            s = r * Ww + c
            for a in range(4):
                for d in range(4):
                    p = (1 - slip) * (d == a) + slip / 4
                    if p == 0:
                        continue
                    nr, nc = r + _MOVES[d, 0], c + _MOVES[d, 1]
                    if not (0 <= nr < Hh and 0 <= nc < Ww) or wall[nr, nc]:
                        nr, nc = r, c
                    s2 = nr * Ww + nc
                    P[s, a, s2] += p
                    R[s, a] += p * (goal_reward if s2 == g else step_reward)
    terminal = np.zeros(S, dtype=bool)
    terminal[g] = True
    terminal |= wall.ravel()  # wall cells are unreachable; mark them absorbing with value 0
    mu = np.zeros(S)
    mu[start[0] * Ww + start[1]] = 1.0
    return TabularMDP(P, R, gamma, terminal=terminal, initial=mu)


def bandit(n_arms: int = 5, *, means=None, gamma: float = 0.0, seed: int = 0) -> TabularMDP:
    """A one-state, ``n_arms``-action bandit: the single state then moves to an absorbing terminal.
    Arm means default to U[0, 1] draws. ``gamma`` is irrelevant (one step) and defaults to 0."""
    K = check_int(n_arms, "n_arms")
    rng = np.random.default_rng(check_seed(seed))
    mu = rng.random(K) if means is None else np.asarray(means, dtype=np.float64)
    if mu.shape != (K,):
        raise ValueError(f"means must have shape ({K},), got {mu.shape}")
    P = np.zeros((2, K, 2))
    P[0, :, 1] = 1.0
    P[1, :, 1] = 1.0
    R = np.zeros((2, K))
    R[0] = mu
    return TabularMDP(P, R, gamma, terminal=[1], initial=np.array([1.0, 0.0]))
