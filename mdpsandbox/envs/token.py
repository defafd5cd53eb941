r"""Token MDPs: the MDP an LLM lives in (docs/math.md §4).

State = prompt + prefix of tokens, action = next token from a vocabulary of size V, transition =
deterministic concatenation; an episode ends after the EOS token (if the vocabulary has one) or
at length H. Terminal value is 0. The state space is a tree, stored as flat arrays in the
**canonical node order** (a public contract, see :class:`TokenMDP`) with no Python object per node.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp

from .._validate import check_distribution, check_finite, check_gamma, check_int, check_scale, check_seed, check_shape, fmt
from .._math import logsumexp
from .tabular import TabularMDP

__all__ = [
    "TokenMDP",
    "Trajectories",
    "Leaves",
    "TreeTooLargeError",
    "tree_bytes",
    "n_tree_nodes",
    "target_string",
    "token_count",
    "bernoulli_tree",
    "qsharp_counterexample",
    "DEFAULT_MAX_TREE_BYTES",
]

#: Largest tree (bytes of float64 per-edge arrays a solve needs) built without ``max_bytes``.
DEFAULT_MAX_TREE_BYTES = 8 * 2**30


class TreeTooLargeError(ValueError):
    """A token tree that would not fit in memory; the message says how many bytes it would need."""


def n_tree_nodes(vocab_size: int, horizon: int) -> int:
    """Number of non-terminal nodes Σ_{h<H} V^h (exact Python integer)."""
    return sum(vocab_size**h for h in range(horizon))


def tree_bytes(vocab_size: int, horizon: int, n_prompts: int = 1, n_arrays: int = 4) -> int:
    """Bytes needed by ``n_arrays`` float64 arrays of shape ``(n_prompts, n_nodes, V)``
    (a TokenMDP holds 2 — ref_logits, rewards — and an exact solve adds q and policy)."""
    return int(n_prompts) * n_tree_nodes(vocab_size, horizon) * int(vocab_size) * 8 * int(n_arrays)


def _check_tree_size(vocab_size, horizon, n_prompts, max_bytes, n_arrays=4):
    need = tree_bytes(vocab_size, horizon, n_prompts, n_arrays)
    limit = DEFAULT_MAX_TREE_BYTES if max_bytes is None else int(max_bytes)
    try:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = min(limit, int(0.8 * avail))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        pass
    if need > limit:
        raise TreeTooLargeError(
            f"a token tree with vocab_size={vocab_size}, horizon={horizon}, n_prompts={n_prompts} has "
            f"{n_prompts * n_tree_nodes(vocab_size, horizon):,} nodes and would need {need:,} bytes "
            f"({need / 2**30:.1f} GiB) for its {n_arrays} per-edge float64 arrays, more than the limit of "
            f"{limit:,} bytes; reduce vocab_size or horizon (or pass max_bytes)"
        )
    return need


@dataclass(frozen=True)
class Trajectories:
    """A batch of ``n`` sampled episodes, padded to the horizon H.

    prompts ``(n,)``; nodes, tokens ``(n, H)`` int64 (``-1`` after the episode ended);
    rewards ``(n, H)`` float64 (0 after the end); lengths ``(n,)`` number of actions taken.
    """

    prompts: np.ndarray
    nodes: np.ndarray
    tokens: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray
    gamma: float

    @property
    def mask(self) -> np.ndarray:
        """``(n, H)`` bool, True on real steps."""
        return self.tokens >= 0

    @property
    def returns(self) -> np.ndarray:
        """Discounted return Σ_t γ^t r_t of each episode, ``(n,)``."""
        H = self.rewards.shape[1]
        return self.rewards @ (self.gamma ** np.arange(H))

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass(frozen=True)
class Leaves:
    """Every complete sequence x of a tree (per prompt), as the terminal edge that ends it.

    node, action ``(L,)``: the edge (node, token) that completes x; tokens ``(L, H)`` (``-1``
    padded); length ``(L,)``. The order is node order, then token — the same for every prompt.
    """

    node: np.ndarray
    action: np.ndarray
    tokens: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.node)


class TokenMDP:
    r"""A token MDP over a vocabulary of ``vocab_size`` tokens with maximum length ``horizon``.

    Parameters
    ----------
    vocab_size : int, V ≥ 1
    horizon : int, H ≥ 1 (maximum number of generated tokens)
    ref_logits : ``(n_nodes, V)`` (or ``(n_prompts, n_nodes, V)``): reference-policy logits
        ℓ_ref(s, ·) at every non-terminal node; π_ref = softmax(ℓ_ref). Logits may carry an
        arbitrary per-node offset (as real LLM logits do). Must be finite.
    rewards : same shape as ``ref_logits``: r(s, a), paid on taking token a at node s. A sequence
        reward R(x) is paid on the action that completes x. Must be finite.
    gamma : discount in [0, 1] (γ = 1 is natural: the horizon is finite).
    eos : optional token index; taking it ends the episode from any node.
    n_prompts : number of independent prompts (trees); arrays then have a leading prompt axis.

    Canonical node order (public contract)
    --------------------------------------
    Level-major. Level h holds the V^h prefixes of length h, ordered as base-V numbers with the
    first token most significant. ``node = Σ_{k<h} V^k + offset``; the child of offset j by token
    a is offset ``j·V + a`` at level h+1. Nodes are levels 0..H−1 (``n_nodes = Σ_{h<H} V^h``);
    sequences of length H are terminal and have no node. With EOS, taking EOS ends the episode:
    nodes whose prefix contains EOS exist in the arrays but are unreachable (``reachable`` mask).

    Worked example, V = 2, H = 3 (n_nodes = 1 + 2 + 4 = 7)::

        node 0: ()          level 0
        node 1: (0,)        node 2: (1,)                      level 1, start 1
        node 3: (0, 0)      node 4: (0, 1)
        node 5: (1, 0)      node 6: (1, 1)                    level 2, start 3

    ``index((1, 0)) == 3 + 1*2 + 0 == 5``, ``children(2) == [5, 6]``, ``parent(6) == 2``; the
    sequence (1, 0, 1) is the terminal edge (node 5, token 1).

    Level h's children values are ``v[level h+1].reshape(V**h, V)`` — a whole level is processed
    with one reshape, which is what makes backward induction O(#edges) without per-node objects.
    """

    def __init__(self, vocab_size, horizon, ref_logits, rewards, gamma=1.0, eos=None, n_prompts=1):
        V = check_int(vocab_size, "vocab_size")
        H = check_int(horizon, "horizon")
        Pn = check_int(n_prompts, "n_prompts")
        gamma = check_gamma(gamma)
        if eos is not None:
            eos = check_int(eos, "eos", minimum=0)
            if eos >= V:
                raise ValueError(f"eos must be a token index in [0, {V}), got {eos}")
        N = n_tree_nodes(V, H)
        _check_tree_size(V, H, Pn, None, n_arrays=2)
        shape = (N, V) if Pn == 1 else (Pn, N, V)
        ref = np.asarray(ref_logits, dtype=np.float64)
        rew = np.asarray(rewards, dtype=np.float64)
        check_shape(ref, shape, "ref_logits")
        check_shape(rew, shape, "rewards")
        ref = check_finite(ref, "ref_logits")
        rew = check_finite(rew, "rewards")
        self.vocab_size, self.horizon, self.n_prompts = V, H, Pn
        self.gamma, self.eos = gamma, eos
        self.n_nodes = N
        self._ref = ref.reshape(Pn, N, V)
        self._rew = rew.reshape(Pn, N, V)
        self.level_sizes = np.array([V**h for h in range(H)], dtype=np.int64)
        self.level_start = np.concatenate([[0], np.cumsum(self.level_sizes)]).astype(np.int64)
        self._lse_ref = None
        self._reachable = None
        self._tree_pool = None  # recycled output memory of exact solves (solvers/_tree_fast.OutputPool)

    # ------------------------------------------------------------------ arrays
    @property
    def shape(self) -> tuple:
        """User-facing per-edge array shape: ``(n_nodes, V)`` or ``(n_prompts, n_nodes, V)``."""
        return (self.n_nodes, self.vocab_size) if self.n_prompts == 1 else (self.n_prompts, self.n_nodes, self.vocab_size)

    def _user(self, a3: np.ndarray) -> np.ndarray:
        """Drop the prompt axis of an internal ``(P, N, ...)`` array when there is one prompt."""
        return a3[0] if self.n_prompts == 1 else a3

    def _internal(self, a: np.ndarray, name: str, tail: tuple = ()) -> np.ndarray:
        """Add the prompt axis to a user array (shape-checked)."""
        a = np.asarray(a, dtype=np.float64)
        want = (self.n_nodes,) + tail if self.n_prompts == 1 else (self.n_prompts, self.n_nodes) + tail
        check_shape(a, want, name)
        return a.reshape((self.n_prompts, self.n_nodes) + tail)

    @property
    def ref_logits(self) -> np.ndarray:
        return self._user(self._ref)

    @property
    def rewards(self) -> np.ndarray:
        return self._user(self._rew)

    @property
    def lse_ref(self) -> np.ndarray:
        """LSE ℓ_ref(s, ·) per node (cached), ``(n_nodes,)`` — the per-node logit offset."""
        if self._lse_ref is None:
            self._lse_ref = logsumexp(self._ref, axis=-1)
        return self._user(self._lse_ref)

    @property
    def log_ref_policy(self) -> np.ndarray:
        """log π_ref = ℓ_ref − LSE ℓ_ref, same shape as ``ref_logits``."""
        self.lse_ref
        return self._user(self._ref - self._lse_ref[..., None])

    @property
    def ref_policy(self) -> np.ndarray:
        """π_ref = softmax(ℓ_ref), same shape as ``ref_logits``."""
        return np.exp(self.log_ref_policy)

    @property
    def n_edges(self) -> int:
        return self.n_prompts * self.n_nodes * self.vocab_size

    @property
    def reachable(self) -> np.ndarray:
        """``(n_nodes,)`` bool: False for nodes whose prefix contains EOS."""
        if self._reachable is None:
            r = np.ones(self.n_nodes, dtype=bool)
            if self.eos is not None:
                for h in range(1, self.horizon):
                    parent = r[self.level_start[h - 1]:self.level_start[h]]
                    child = np.repeat(parent[:, None], self.vocab_size, axis=1)
                    child[:, self.eos] = False
                    r[self.level_start[h]:self.level_start[h + 1]] = child.ravel()
            self._reachable = r
        return self._reachable

    def terminal_edges(self) -> np.ndarray:
        """``(n_nodes, V)`` bool: True where taking the token ends the episode (EOS, or level H−1)."""
        t = np.zeros((self.n_nodes, self.vocab_size), dtype=bool)
        t[self.level_start[self.horizon - 1]:] = True
        if self.eos is not None:
            t[:, self.eos] = True
        return t

    # ------------------------------------------------------------------ O(1) index arithmetic
    def level(self, node: int) -> int:
        """Level (prefix length) of a node."""
        node = self._check_node(node)
        return int(np.searchsorted(self.level_start, node, side="right") - 1)

    def _check_node(self, node) -> int:
        node = int(node)
        if not 0 <= node < self.n_nodes:
            raise ValueError(f"node must lie in [0, {self.n_nodes}), got {node}")
        return node

    def index(self, prefix: Sequence[int]) -> int:
        """Node index of a prefix (tuple of tokens, length < H)."""
        prefix = tuple(int(t) for t in prefix)
        h = len(prefix)
        if h >= self.horizon:
            raise ValueError(f"prefix must have length < horizon ({self.horizon}); length-{h} sequences are terminal")
        off = 0
        for t in prefix:
            if not 0 <= t < self.vocab_size:
                raise ValueError(f"prefix tokens must lie in [0, {self.vocab_size}), got {t}")
            off = off * self.vocab_size + t
        return int(self.level_start[h]) + off

    def prefix(self, node: int) -> tuple:
        """The token prefix of a node (inverse of :meth:`index`)."""
        h = self.level(node)
        off = int(node) - int(self.level_start[h])
        toks = []
        for _ in range(h):
            off, t = divmod(off, self.vocab_size)
            toks.append(t)
        return tuple(reversed(toks))

    def children(self, node: int) -> np.ndarray:
        """``(V,)`` child node of each token; ``-1`` where the token ends the episode."""
        h = self.level(node)
        if h + 1 >= self.horizon:
            return -np.ones(self.vocab_size, dtype=np.int64)
        off = int(node) - int(self.level_start[h])
        ch = self.level_start[h + 1] + off * self.vocab_size + np.arange(self.vocab_size, dtype=np.int64)
        if self.eos is not None:
            ch[self.eos] = -1
        return ch

    def parent(self, node: int) -> int:
        """Parent node index (``-1`` for the root)."""
        h = self.level(node)
        if h == 0:
            return -1
        off = int(node) - int(self.level_start[h])
        return int(self.level_start[h - 1]) + off // self.vocab_size

    # ------------------------------------------------------------------ whole-tree pushes
    def check_policy(self, policy, name: str = "policy") -> np.ndarray:
        """Validate a policy ``(n_nodes, V)`` / ``(n_prompts, n_nodes, V)``; returns ``(P, N, V)``."""
        p = self._internal(policy, name, (self.vocab_size,))
        return check_distribution(p, name)

    def node_log_probs(self, policy=None) -> np.ndarray:
        """log P_π(reach node) for every node, ``(n_nodes,)`` / ``(n_prompts, n_nodes)``;
        ``-inf`` for unreachable nodes. Pushed level by level (no sampling)."""
        p = self._ref_or(policy)
        with np.errstate(divide="ignore"):
            logp = np.log(p)
        out = np.full((self.n_prompts, self.n_nodes), -np.inf)
        out[:, 0] = 0.0
        for h in range(self.horizon - 1):
            a, b, c = self.level_start[h], self.level_start[h + 1], self.level_start[h + 2]
            child = out[:, a:b, None] + logp[:, a:b, :]
            if self.eos is not None:
                child[:, :, self.eos] = -np.inf
            out[:, b:c] = child.reshape(self.n_prompts, -1)
        return self._user(out)

    def _ref_or(self, policy) -> np.ndarray:
        if policy is None:
            return np.exp(self._ref - logsumexp(self._ref, axis=-1)[..., None])
        return self.check_policy(policy)

    def leaves(self) -> Leaves:
        """All complete sequences (the terminal edges of reachable nodes), in node-then-token order."""
        term = self.terminal_edges() & self.reachable[:, None]
        node, action = np.nonzero(term)
        L, H, V = len(node), self.horizon, self.vocab_size
        lev = np.searchsorted(self.level_start, node, side="right") - 1
        off = node - self.level_start[lev]
        tokens = -np.ones((L, H), dtype=np.int64)
        for t in range(H - 1):  # digit t of the prefix (most significant first)
            has = lev > t
            shift = np.where(has, lev - 1 - t, 0)
            tokens[has, t] = (off[has] // (V ** shift[has])) % V
        tokens[np.arange(L), lev] = action
        return Leaves(node=node.astype(np.int64), action=action.astype(np.int64), tokens=tokens,
                      length=(lev + 1).astype(np.int64))

    def leaf_log_probs(self, policy=None) -> np.ndarray:
        """log π(x) of every leaf (order of :meth:`leaves`), ``(L,)`` / ``(n_prompts, L)``."""
        lv = self.leaves()
        p = self._ref_or(policy)
        lognode = self.node_log_probs(policy).reshape(self.n_prompts, self.n_nodes)
        with np.errstate(divide="ignore"):
            out = lognode[:, lv.node] + np.log(p[:, lv.node, lv.action])
        return self._user(out)

    def leaf_returns(self) -> np.ndarray:
        """Discounted return Σ_t γ^t r_t of every leaf sequence, ``(L,)`` / ``(n_prompts, L)``."""
        acc = np.zeros((self.n_prompts, self.n_nodes))  # discounted reward collected before node
        for h in range(self.horizon - 1):
            a, b, c = self.level_start[h], self.level_start[h + 1], self.level_start[h + 2]
            acc[:, b:c] = (acc[:, a:b, None] + self.gamma**h * self._rew[:, a:b, :]).reshape(self.n_prompts, -1)
        lv = self.leaves()
        lev = np.searchsorted(self.level_start, lv.node, side="right") - 1
        out = acc[:, lv.node] + (self.gamma ** lev) * self._rew[:, lv.node, lv.action]
        return self._user(out)

    # ------------------------------------------------------------------ sampling
    def sample(self, policy=None, n: int = 1, seed: int = 0, *, prompts=None) -> Trajectories:
        """Sample ``n`` episodes from ``policy`` (default π_ref), batched: one vectorised step per
        level for all samples (no Python loop per token per sample).

        policy : ``(n_nodes, V)`` / ``(n_prompts, n_nodes, V)`` probabilities.
        prompts : optional ``(n,)`` prompt index of each episode (default uniform at random).
        """
        n = check_int(n, "n")
        p = self._ref_or(policy)
        rng = np.random.default_rng(check_seed(seed))
        if prompts is None:
            pr = rng.integers(0, self.n_prompts, size=n)
        else:
            pr = np.asarray(prompts, dtype=np.int64)
            check_shape(pr, (n,), "prompts")
            if pr.min() < 0 or pr.max() >= self.n_prompts:
                raise ValueError(f"prompts must lie in [0, {self.n_prompts})")
        H, V = self.horizon, self.vocab_size
        nodes = -np.ones((n, H), dtype=np.int64)
        tokens = -np.ones((n, H), dtype=np.int64)
        rewards = np.zeros((n, H))
        alive = np.ones(n, dtype=bool)
        off = np.zeros(n, dtype=np.int64)
        u = rng.random((n, H))
        for h in range(H):
            idx = np.nonzero(alive)[0]
            if idx.size == 0:
                break
            node = self.level_start[h] + off[idx]
            cdf = np.cumsum(p[pr[idx], node], axis=1)
            a = np.minimum((u[idx, h, None] * cdf[:, -1:] >= cdf).sum(axis=1), V - 1)
            nodes[idx, h] = node
            tokens[idx, h] = a
            rewards[idx, h] = self._rew[pr[idx], node, a]
            off[idx] = off[idx] * V + a
            if self.eos is not None:
                alive[idx[a == self.eos]] = False
        lengths = (tokens >= 0).sum(axis=1)
        return Trajectories(pr, nodes, tokens, rewards, lengths, self.gamma)

    # ------------------------------------------------------------------ conversion
    def to_tabular(self) -> TabularMDP:
        """The same MDP as a sparse :class:`TabularMDP`.

        States: node ``p*n_nodes + i`` for prompt p, node i, then one absorbing terminal state
        (last). Actions: the V tokens. R = rewards; initial = uniform over the prompts' roots;
        ``ref_policy`` = π_ref (uniform at the terminal state).
        """
        Pn, N, V = self.n_prompts, self.n_nodes, self.vocab_size
        S = Pn * N + 1
        node = np.arange(N, dtype=np.int64)
        lev = np.searchsorted(self.level_start, node, side="right") - 1
        off = node - self.level_start[lev]
        nxt = np.where(
            (lev + 1 < self.horizon)[:, None],
            self.level_start[np.minimum(lev + 1, self.horizon - 1)][:, None] + off[:, None] * V + np.arange(V),
            -1,
        )
        if self.eos is not None:
            nxt[:, self.eos] = -1
        cols = np.empty((Pn, N, V), dtype=np.int64)
        for p in range(Pn):
            cols[p] = np.where(nxt >= 0, nxt + p * N, S - 1)
        cols = np.concatenate([cols.ravel(), np.full(V, S - 1)])
        P2 = sp.csr_matrix((np.ones(S * V), cols, np.arange(S * V + 1)), shape=(S * V, S))
        R = np.concatenate([self._rew.reshape(-1, V), np.zeros((1, V))])
        mu = np.zeros(S)
        mu[np.arange(Pn) * N] = 1.0 / Pn
        ref = np.concatenate([np.exp(self._ref - logsumexp(self._ref, axis=-1)[..., None]).reshape(-1, V),
                              np.full((1, V), 1.0 / V)])
        ref /= ref.sum(axis=1, keepdims=True)
        return TabularMDP(P2, R, self.gamma, terminal=[S - 1], initial=mu, ref_policy=ref)

    def __getstate__(self):
        # the recycled output memory of past solves is a cache of this process, not part of the MDP:
        # pickles and copies carry the tree, rewards and reference only
        state = self.__dict__.copy()
        state["_tree_pool"] = None
        return state

    def with_rewards(self, rewards) -> "TokenMDP":
        """A copy with other rewards (same tree and reference)."""
        return TokenMDP(self.vocab_size, self.horizon, self.ref_logits, rewards, self.gamma, self.eos, self.n_prompts)

    def with_ref_logits(self, ref_logits) -> "TokenMDP":
        """A copy with another reference (same tree and rewards)."""
        return TokenMDP(self.vocab_size, self.horizon, ref_logits, self.rewards, self.gamma, self.eos, self.n_prompts)

    def __repr__(self) -> str:
        return (f"TokenMDP(V={self.vocab_size}, H={self.horizon}, n_prompts={self.n_prompts}, "
                f"n_nodes={self.n_nodes}, gamma={self.gamma}, eos={self.eos})")

    # ------------------------------------------------------------------ generators
    @classmethod
    def random(cls, vocab_size: int, horizon: int, *, reward: str = "terminal", ref: str = "random",
               seed: int = 0, gamma: float = 1.0, eos: Optional[int] = None, n_prompts: int = 1,
               logit_scale: float = 1.0, offset_scale: float = 0.0, ngram_order: int = 2,
               p_success: float = 0.3, max_bytes: Optional[int] = None) -> "TokenMDP":
        """A random token MDP.

        reward : ``"terminal"`` (R(x) ~ U[0, 1] on each complete sequence), ``"dense"``
            (r(s, a) ~ U[0, 1] on every edge) or ``"bernoulli"`` (R(x) ∈ {0, 1}, success w.p.
            ``p_success``).
        ref : ``"random"`` (ℓ ~ N(0, logit_scale²) per edge), ``"uniform"`` (ℓ = 0) or ``"ngram"``
            (ℓ depends only on the last ``ngram_order`` tokens, an n-gram LM).
        offset_scale : adds a per-node constant c(s) ~ N(0, offset_scale²) to the logits, as real
            LLM logits have (π_ref unchanged).
        """
        V = check_int(vocab_size, "vocab_size")
        H = check_int(horizon, "horizon")
        Pn = check_int(n_prompts, "n_prompts")
        if reward not in ("terminal", "dense", "bernoulli"):
            raise ValueError(f"reward must be one of 'terminal', 'dense', 'bernoulli'; got {reward!r}")
        if ref not in ("random", "uniform", "ngram"):
            raise ValueError(f"ref must be one of 'random', 'uniform', 'ngram'; got {ref!r}")
        if not 0.0 <= p_success <= 1.0:
            raise ValueError(f"p_success must lie in [0, 1], got {fmt(p_success)}")
        logit_scale = check_scale(logit_scale, "logit_scale")
        offset_scale = check_scale(offset_scale, "offset_scale")
        seed = check_seed(seed)
        _check_tree_size(V, H, Pn, max_bytes)
        rng = np.random.default_rng(seed)
        N = n_tree_nodes(V, H)
        if ref == "random":
            logits = rng.normal(0.0, logit_scale, size=(Pn, N, V))
        elif ref == "uniform":
            logits = np.zeros((Pn, N, V))
        else:
            k = check_int(ngram_order, "ngram_order")
            table = rng.normal(0.0, logit_scale, size=(Pn, (V + 1) ** k, V))
            ctx = _ngram_context(V, H, k)
            logits = table[:, ctx, :]
        if offset_scale:
            logits = logits + rng.normal(0.0, offset_scale, size=(Pn, N, 1))
        tmp = cls(V, H, np.zeros((N, V)), np.zeros((N, V)), gamma, eos, 1)  # for masks only
        term = tmp.terminal_edges()
        if reward == "dense":
            rew = rng.random((Pn, N, V))
        elif reward == "terminal":
            rew = rng.random((Pn, N, V)) * term
        else:
            rew = (rng.random((Pn, N, V)) < p_success).astype(np.float64) * term
        if Pn == 1:
            logits, rew = logits[0], rew[0]
        return cls(V, H, logits, rew, gamma=gamma, eos=eos, n_prompts=Pn)


def _ngram_context(V: int, H: int, k: int) -> np.ndarray:
    """Context id of every node: its last k tokens in base V+1, with V meaning 'before start'."""
    ctx = [np.array([sum(V * (V + 1) ** i for i in range(k))], dtype=np.int64)]
    for h in range(1, H):
        prev = ctx[-1]  # (V^{h-1},)
        # drop the oldest token (most significant digit) and append the new one
        base = (prev % ((V + 1) ** (k - 1))) * (V + 1) if k > 1 else np.zeros_like(prev)
        ctx.append((base[:, None] + np.arange(V)[None, :]).ravel())
    return np.concatenate(ctx)


# ---------------------------------------------------------------------- tasks
def _ref_logits(ref: str, V: int, H: int, rng, logit_scale: float) -> np.ndarray:
    N = n_tree_nodes(V, H)
    if ref == "uniform":
        return np.zeros((N, V))
    if ref == "random":
        return rng.normal(0.0, logit_scale, size=(N, V))
    raise ValueError(f"ref must be 'random' or 'uniform', got {ref!r}")


def target_string(vocab_size: int, target: Sequence[int], *, ref: str = "random", seed: int = 0,
                  logit_scale: float = 1.0, gamma: float = 1.0) -> TokenMDP:
    """Target-string matching: horizon = len(target); R(x) = 1 if x == target else 0."""
    V = check_int(vocab_size, "vocab_size")
    target = [int(t) for t in target]
    H = check_int(len(target), "len(target)")
    if any(not 0 <= t < V for t in target):
        raise ValueError(f"target tokens must lie in [0, {V}), got {target}")
    _check_tree_size(V, H, 1, None)
    env = TokenMDP(V, H, _ref_logits(ref, V, H, np.random.default_rng(check_seed(seed)),
                                     check_scale(logit_scale, "logit_scale")),
                   np.zeros((n_tree_nodes(V, H), V)), gamma)
    rew = np.zeros((env.n_nodes, V))
    rew[env.index(target[:-1]), target[-1]] = 1.0
    return env.with_rewards(rew)


def token_count(vocab_size: int, horizon: int, *, token: int = 0, ref: str = "random", seed: int = 0,
                logit_scale: float = 1.0, gamma: float = 1.0) -> TokenMDP:
    """Token counting: dense reward r(s, a) = 1[a == token] (the return counts the token)."""
    V = check_int(vocab_size, "vocab_size")
    H = check_int(horizon, "horizon")
    if not 0 <= int(token) < V:
        raise ValueError(f"token must lie in [0, {V}), got {token}")
    _check_tree_size(V, H, 1, None)
    N = n_tree_nodes(V, H)
    rew = np.zeros((N, V))
    rew[:, int(token)] = 1.0
    return TokenMDP(V, H, _ref_logits(ref, V, H, np.random.default_rng(check_seed(seed)),
                                      check_scale(logit_scale, "logit_scale")), rew, gamma)


def bernoulli_tree(vocab_size: int, horizon: int, *, p_success: float = 0.3, ref: str = "random",
                   seed: int = 0, logit_scale: float = 1.0) -> TokenMDP:
    """Bernoulli-success leaves: each complete sequence pays 1 (success) w.p. ``p_success``, else 0
    (drawn once, seeded). The 0/1 reward of Q♯'s Bernoulli head."""
    return TokenMDP.random(vocab_size, horizon, reward="bernoulli", ref=ref, seed=seed,
                           logit_scale=logit_scale, p_success=p_success)


def qsharp_counterexample(p_left: float = 0.5, p_good: float = 0.05, left_reward: float = 0.1) -> TokenMDP:
    """The Q♯ counterexample tree (Zhou et al. 2025, Fig. 4), V = 2, H = 2.

    At the root π_ref goes Left (token 0) w.p. ``p_left``, Right (token 1) otherwise. Left
    subtree: both leaves pay ``left_reward``. Right subtree: token 0 (π_ref prob ``p_good``) pays 1,
    token 1 pays 0. As β → 0 the CD/VAS baseline picks Left (reward 0.1) while the KL-optimal
    policy picks Right then the reward-1 leaf.
    """
    for name, v in (("p_left", p_left), ("p_good", p_good)):
        if not 0.0 < v < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {fmt(v)}")
    ref = np.log(np.array([[p_left, 1 - p_left], [0.5, 0.5], [p_good, 1 - p_good]]))
    rew = np.array([[0.0, 0.0], [left_reward, left_reward], [1.0, 0.0]])
    return TokenMDP(2, 2, ref, rew, gamma=1.0)
