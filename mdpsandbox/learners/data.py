r"""Datasets on a token tree, as plain arrays in the canonical node order.

Three containers, each remembering the tree it came from (so training on another tree is refused):

* :class:`Transitions` — single steps (prompt, node s, token a, reward r, next node s' or −1);
* :class:`Paths` — token sequences (rows of consecutive steps, ``-1`` padded), from the root or
  from any node, with the node after the last step (``-1`` when the episode ended there);
* :class:`Preferences` — pairs of complete sequences with the probability that the first is
  preferred (Bradley–Terry on exact returns), for DPO.

Builders: :func:`full_coverage` (every node–action once, or every complete sequence once),
:func:`rollouts` (on-policy samples with ``TokenMDP.sample``), :func:`behaviour_mixture` (offline
data from a mixture of behaviour policies), :func:`preference_pairs` (exact population or sampled
Bradley–Terry labels).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from .._validate import check_int, check_positive
from ..envs.token import TokenMDP, Trajectories
from ._tree import child_nodes

__all__ = [
    "TreeSignature", "Transitions", "Paths", "Preferences", "full_coverage", "all_sequences", "rollouts",
    "behaviour_mixture", "preference_pairs", "as_paths",
]


@dataclass(frozen=True)
class TreeSignature:
    """Shape of the tree a dataset was built on."""

    vocab_size: int
    horizon: int
    n_prompts: int
    eos: Optional[int]
    gamma: float

    @classmethod
    def of(cls, env: TokenMDP) -> "TreeSignature":
        return cls(env.vocab_size, env.horizon, env.n_prompts, env.eos, env.gamma)


def _check_rewards(env: TokenMDP, prompts, nodes, tokens, rewards, what: str) -> None:
    if nodes.size == 0:
        return
    want = env._rew[prompts, nodes, tokens]
    bad = np.abs(want - rewards) > 1e-12 * (1 + np.abs(want))
    if bad.any():
        raise ValueError(f"{what} rewards disagree with env.rewards at {int(bad.sum())} of {bad.size} steps: "
                         f"the dataset comes from another tree (rebuild it from this env)")


class _Dataset:
    signature: TreeSignature

    def check_env(self, env: TokenMDP) -> None:
        """Raise ``ValueError`` when the dataset was built on a tree of another shape or rewards."""
        if not isinstance(env, TokenMDP):
            raise ValueError(f"env must be a TokenMDP, got {type(env).__name__}")
        sig = TreeSignature.of(env)
        if sig != self.signature:
            raise ValueError(f"dataset was built for a tree with {self.signature}, but env has {sig} "
                             "(vocabulary, horizon, prompts, EOS and gamma must agree)")


@dataclass(frozen=True)
class Transitions(_Dataset):
    """Single steps. All arrays ``(n,)``: prompts, nodes, tokens (int64), rewards (float64),
    next_nodes (int64; ``-1`` = the step ends the episode)."""

    prompts: np.ndarray
    nodes: np.ndarray
    tokens: np.ndarray
    rewards: np.ndarray
    next_nodes: np.ndarray
    signature: TreeSignature

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def done(self) -> np.ndarray:
        return self.next_nodes < 0

    def check_env(self, env: TokenMDP) -> None:
        super().check_env(env)
        _check_rewards(env, self.prompts, self.nodes, self.tokens, self.rewards, "Transitions")

    def visited(self) -> np.ndarray:
        """``(n_prompts, n_nodes, V)`` bool: which (node, token) pairs occur."""
        sig = self.signature
        n_nodes = sum(sig.vocab_size**h for h in range(sig.horizon))
        m = np.zeros((sig.n_prompts, n_nodes, sig.vocab_size), dtype=bool)
        m[self.prompts, self.nodes, self.tokens] = True
        return m


@dataclass(frozen=True)
class Paths(_Dataset):
    """Token sequences. prompts ``(n,)``; nodes, tokens ``(n, T)`` int64 (``-1`` after the row ends);
    rewards ``(n, T)`` float64 (0 after the end); end_nodes ``(n,)``: the node reached after the last
    step (``-1`` when the episode ended, so its value is 0; otherwise a truncated row bootstraps
    from it). Rows start anywhere (``start`` = ``nodes[:, 0]``)."""

    prompts: np.ndarray
    nodes: np.ndarray
    tokens: np.ndarray
    rewards: np.ndarray
    end_nodes: np.ndarray
    signature: TreeSignature

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def mask(self) -> np.ndarray:
        """``(n, T)`` bool, True on real steps."""
        return self.tokens >= 0

    @property
    def lengths(self) -> np.ndarray:
        return self.mask.sum(axis=1)

    @property
    def returns(self) -> np.ndarray:
        """Discounted return of each row from its first step, ``(n,)`` (without bootstrap)."""
        return self.rewards @ (self.signature.gamma ** np.arange(self.rewards.shape[1]))

    def check_env(self, env: TokenMDP) -> None:
        super().check_env(env)
        m = self.mask
        _check_rewards(env, np.broadcast_to(self.prompts[:, None], m.shape)[m], self.nodes[m], self.tokens[m],
                       self.rewards[m], "Paths")

    def to_transitions(self) -> Transitions:
        """Every step of every row as a :class:`Transitions` (row-major order)."""
        m = self.mask
        nxt = np.concatenate([self.nodes[:, 1:], -np.ones((len(self), 1), dtype=np.int64)], axis=1)
        L = self.lengths
        rows = np.nonzero(L > 0)[0]
        nxt[rows, L[rows] - 1] = self.end_nodes[rows]
        pr = np.broadcast_to(self.prompts[:, None], m.shape)
        return Transitions(pr[m].copy(), self.nodes[m].copy(), self.tokens[m].copy(), self.rewards[m].copy(),
                           nxt[m].copy(), self.signature)

    def visited(self) -> np.ndarray:
        return self.to_transitions().visited()


@dataclass(frozen=True)
class Preferences(_Dataset):
    """Pairs of complete sequences (from the root): ``chosen`` and ``rejected`` are :class:`Paths` with
    the same prompts; ``p_chosen`` ``(n,)`` is the probability that ``chosen`` is preferred (1 for
    sampled hard labels; the exact Bradley–Terry probability σ((R(x) − R(y))/temperature) for the
    population dataset)."""

    chosen: Paths
    rejected: Paths
    p_chosen: np.ndarray
    signature: TreeSignature

    def __len__(self) -> int:
        return len(self.p_chosen)

    def check_env(self, env: TokenMDP) -> None:
        super().check_env(env)
        self.chosen.check_env(env)
        self.rejected.check_env(env)


# ---------------------------------------------------------------------- builders
def full_coverage(env: TokenMDP, kind: str = "transitions") -> Union[Transitions, Paths]:
    """Every reachable node–action pair once (``kind="transitions"``), or every complete sequence
    once from the root of every prompt (``kind="sequences"``; covers every pair too)."""
    if not isinstance(env, TokenMDP):
        raise ValueError(f"env must be a TokenMDP, got {type(env).__name__}")
    if kind == "sequences":
        return all_sequences(env)
    if kind != "transitions":
        raise ValueError(f"kind must be 'transitions' or 'sequences', got {kind!r}")
    P, V = env.n_prompts, env.vocab_size
    nodes = np.repeat(np.nonzero(env.reachable)[0], V)
    tokens = np.tile(np.arange(V, dtype=np.int64), len(nodes) // V)
    nxt = child_nodes(env, nodes, tokens)
    prompts = np.repeat(np.arange(P, dtype=np.int64), len(nodes))
    nodes, tokens, nxt = np.tile(nodes, P), np.tile(tokens, P), np.tile(nxt, P)
    return Transitions(prompts, nodes, tokens, env._rew[prompts, nodes, tokens].copy(), nxt, TreeSignature.of(env))


def all_sequences(env: TokenMDP) -> Paths:
    """Every complete sequence of every prompt once (``env.leaves()`` order), as root paths."""
    lv = env.leaves()
    L, H, V = len(lv), env.horizon, env.vocab_size
    nodes = -np.ones((L, H), dtype=np.int64)
    nodes[:, 0] = 0
    for t in range(1, H):
        ok = lv.tokens[:, t] >= 0
        nodes[ok, t] = child_nodes(env, nodes[ok, t - 1], lv.tokens[ok, t - 1])
    P = env.n_prompts
    prompts = np.repeat(np.arange(P, dtype=np.int64), L)
    nodes, tokens = np.tile(nodes, (P, 1)), np.tile(lv.tokens, (P, 1))
    m = tokens >= 0
    rew = np.where(m, env._rew[prompts[:, None], nodes.clip(0), tokens.clip(0)], 0.0)
    return Paths(prompts, nodes, tokens, rew, -np.ones(P * L, dtype=np.int64), TreeSignature.of(env))


def as_paths(env: TokenMDP, trajectories: Trajectories) -> Paths:
    """Wrap ``TokenMDP.sample`` output (complete episodes from the root) as :class:`Paths`."""
    return Paths(trajectories.prompts.astype(np.int64), trajectories.nodes, trajectories.tokens,
                 trajectories.rewards, -np.ones(len(trajectories), dtype=np.int64), TreeSignature.of(env))


def rollouts(env: TokenMDP, policy=None, n: int = 100, seed: int = 0) -> Paths:
    """``n`` complete episodes sampled from ``policy`` (``(n_nodes, V)`` probabilities; default π_ref),
    with token-wise rewards (a sequence reward sits on the last step; ``.returns`` gives R(x))."""
    if not isinstance(env, TokenMDP):
        raise ValueError(f"env must be a TokenMDP, got {type(env).__name__}")
    n = check_int(n, "n")
    return as_paths(env, env.sample(policy, n, seed))


def _named_policy(env: TokenMDP, p) -> Optional[np.ndarray]:
    if isinstance(p, str):
        if p == "ref":
            return None
        if p == "uniform":
            return np.full(env.shape, 1.0 / env.vocab_size)
        raise ValueError(f"a behaviour policy must be 'ref', 'uniform' or an array {env.shape}, got {p!r}")
    return env.check_policy(p, "behaviour policy").reshape(env.shape)


def behaviour_mixture(env: TokenMDP, policies: Sequence = ("ref", "uniform"), weights: Optional[Sequence] = None,
                      n: int = 100, seed: int = 0) -> Paths:
    """Offline data: ``n`` episodes, each from one behaviour policy drawn with probability ``weights``
    (default equal). A policy is ``"ref"``, ``"uniform"`` or an array ``(n_nodes, V)``."""
    n = check_int(n, "n")
    pols = [_named_policy(env, p) for p in policies]
    if not pols:
        raise ValueError("policies must name at least one behaviour policy")
    w = np.full(len(pols), 1.0 / len(pols)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(pols),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be {len(pols)} non-negative numbers summing to 1, got {weights!r}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, w)
    parts = [env.sample(p, int(c), int(rng.integers(2**31))) for p, c in zip(pols, counts) if c > 0]
    cat = lambda f: np.concatenate([getattr(t, f) for t in parts])  # noqa: E731
    return Paths(cat("prompts").astype(np.int64), cat("nodes"), cat("tokens"), cat("rewards"),
                 -np.ones(n, dtype=np.int64), TreeSignature.of(env))


def _subset(paths: Paths, idx: np.ndarray) -> Paths:
    return Paths(paths.prompts[idx], paths.nodes[idx], paths.tokens[idx], paths.rewards[idx], paths.end_nodes[idx],
                 paths.signature)


def preference_pairs(env: TokenMDP, n: Optional[int] = None, *, seed: int = 0, policy=None,
                     temperature: float = 1.0) -> Preferences:
    r"""Bradley–Terry preference pairs on exact sequence returns R(x) (``env.leaf_returns()``):
    :math:`P(x \succ y) = \sigma((R(x) - R(y))/\text{temperature})`.

    ``n=None``: the population dataset — every unordered pair of distinct complete sequences (per
    prompt) once, labelled with the exact BT probability (DPO's optimum on it is exactly
    π(x) ∝ π_ref(x) exp(R(x)/β) when temperature = 1). Otherwise ``n`` pairs of independent samples
    from ``policy`` (default π_ref) with a hard label drawn from BT (``p_chosen = 1``).
    """
    t = check_positive(temperature, "temperature")
    if n is None:
        seqs = all_sequences(env)
        P = env.n_prompts
        L = len(seqs) // P
        i, j = np.triu_indices(L, k=1)
        base = (np.arange(P) * L)[:, None]
        a, b = (base + i).ravel(), (base + j).ravel()
        R = seqs.returns
        p = 1.0 / (1.0 + np.exp(-(R[a] - R[b]) / t))
        return Preferences(_subset(seqs, a), _subset(seqs, b), p, TreeSignature.of(env))
    n = check_int(n, "n")
    rng = np.random.default_rng(seed)
    prompts = rng.integers(0, env.n_prompts, size=n)
    x = as_paths(env, env.sample(policy, n, int(rng.integers(2**31)), prompts=prompts))
    y = as_paths(env, env.sample(policy, n, int(rng.integers(2**31)), prompts=prompts))
    px = 1.0 / (1.0 + np.exp(-(x.returns - y.returns) / t))
    x_wins = rng.random(n) < px
    ch = Paths(x.prompts, np.where(x_wins[:, None], x.nodes, y.nodes), np.where(x_wins[:, None], x.tokens, y.tokens),
               np.where(x_wins[:, None], x.rewards, y.rewards), x.end_nodes, x.signature)
    rj = Paths(x.prompts, np.where(x_wins[:, None], y.nodes, x.nodes), np.where(x_wins[:, None], y.tokens, x.tokens),
               np.where(x_wins[:, None], y.rewards, x.rewards), x.end_nodes, x.signature)
    return Preferences(ch, rj, np.ones(n), TreeSignature.of(env))
