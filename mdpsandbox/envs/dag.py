r"""Finite DAGs for GFlowNets (docs/math.md §8): enumerable state graphs with several parents per state.

A :class:`DAG` is stored as flat arrays, states in a **topological order** (every edge goes from a
lower to a higher index; state 0 is the initial state s0):

* ``children`` ``(S, A)`` int64 — the state reached by move action ``a`` from ``s`` (``-1``: no such
  action);
* ``can_stop`` ``(S,)`` bool — ``s`` is a terminal object x: the extra action ``stop`` (index ``A``,
  the last column of every ``(S, A + 1)`` policy array) ends the episode and pays R(x);
* derived: ``valid`` ``(S, A + 1)``, ``objects`` ``(n_objects,)`` (the terminal states, ascending —
  the order of every ``log_reward`` array), ``object_index`` ``(S,)``, parents in CSR form
  (``parent_ptr``, ``parent_state``, ``parent_action``), ``n_parents``, ``level`` (longest-path depth)
  and ``levels`` (states grouped by depth, the order every push runs in), and ``n_paths`` n(s): the
  number of action sequences from s0 to s (n(s0) = 1, n(s') = Σ_{parents} n(s)).

Two constructions:

* :func:`multiset_dag` — building a multiset of tokens: states are count vectors c ∈ ℕ^V with
  |c| ≤ n; "add token v" increments c_v; objects are the multisets with |c| ≥ ``min_size``. A state
  has one parent per distinct token it contains, so n(c) = |c|! / Π_v c_v! (a multinomial
  coefficient): the same object is reached by many paths.
* :func:`tree_dag` — the DAG view of a :class:`~mdpsandbox.envs.TokenMDP` tree: the reachable
  nodes in canonical order, then one state per complete sequence (in ``env.leaves()`` order), whose
  only action is ``stop``. Every state has one parent (n ≡ 1, P_B ≡ 1).
"""
from __future__ import annotations

import itertools
import math
from typing import Optional

import numpy as np

from .._validate import check_int, check_shape, fmt
from .token import TokenMDP

__all__ = ["DAG", "MultisetDAG", "TreeDAG", "multiset_dag", "tree_dag", "random_log_reward"]


class DAG:
    r"""A finite DAG with a stop action (the GFlowNet state graph of docs/math.md §8).

    Parameters
    ----------
    children : ``(S, A)`` int — child state of move action ``a`` at ``s``, ``-1`` where ``a`` is not
        available. Must satisfy ``children[s, a] > s`` (topological order; state 0 is s0).
    can_stop : ``(S,)`` bool — ``s`` is a terminal object (the stop action is available there).
    name : label used in ``repr``.

    Every state must be reachable from s0 and must reach at least one terminal object; a state with
    neither a move nor stop action is refused (it would be a dead end).

    Policies on a DAG are ``(S, A + 1)`` arrays whose last column is ``stop``; probabilities of
    unavailable actions are 0 (log-probabilities ``-inf``).
    """

    def __init__(self, children, can_stop, *, name: str = "DAG"):
        ch = np.asarray(children)
        if ch.ndim != 2 or not np.issubdtype(ch.dtype, np.integer):
            raise ValueError(f"children must be an integer array of shape (S, A), got dtype {ch.dtype} "
                             f"shape {ch.shape}")
        ch = ch.astype(np.int64)
        S, A = ch.shape
        if S < 1:
            raise ValueError("children must have at least one state (row)")
        stop = np.asarray(can_stop)
        if stop.dtype != bool:
            raise ValueError(f"can_stop must be a boolean array of shape ({S},), got dtype {stop.dtype}")
        check_shape(stop, (S,), "can_stop")
        has = ch >= 0
        if np.any(ch >= S) or np.any(ch < -1):
            raise ValueError(f"children entries must be -1 or a state index in [0, {S})")
        src = np.repeat(np.arange(S), A).reshape(S, A)
        if np.any(has & (ch <= src)):
            s, a = np.argwhere(has & (ch <= src))[0]
            raise ValueError(f"children must point forward in topological order (children[s, a] > s); "
                             f"children[{s}, {a}] = {ch[s, a]}")
        dead = ~has.any(axis=1) & ~stop
        if dead.any():
            raise ValueError(f"state {int(np.argmax(dead))} has no move and cannot stop (a dead end)")
        self.name = name
        self.children = ch
        self.can_stop = stop.copy()
        self.n_states, self.n_actions = S, A
        self.stop = A  # index of the stop action in (S, A + 1) arrays
        self.valid = np.concatenate([has, stop[:, None]], axis=1)
        self.objects = np.nonzero(stop)[0].astype(np.int64)
        self.object_index = -np.ones(S, dtype=np.int64)
        self.object_index[self.objects] = np.arange(len(self.objects))
        # edges (s, a, s') sorted by source; parents in CSR form sorted by destination
        self.edge_src, self.edge_action = (x.astype(np.int64) for x in np.nonzero(has))
        self.edge_dst = ch[self.edge_src, self.edge_action]
        order = np.argsort(self.edge_dst, kind="stable")
        self.parent_state = self.edge_src[order]
        self.parent_action = self.edge_action[order]
        self.n_parents = np.bincount(self.edge_dst, minlength=S).astype(np.int64)
        self.parent_ptr = np.concatenate([[0], np.cumsum(self.n_parents)]).astype(np.int64)
        if np.any(self.n_parents[1:] == 0):
            raise ValueError(f"state {int(np.argmax(self.n_parents[1:] == 0)) + 1} is unreachable from s0 "
                             "(it has no parent)")
        # longest-path depth; a push in increasing level finalises every state before it is used
        level = np.zeros(S, dtype=np.int64)
        for s in range(S):  # topological order: parents have smaller indices
            lo, hi = self.parent_ptr[s], self.parent_ptr[s + 1]
            if hi > lo:
                level[s] = level[self.parent_state[lo:hi]].max() + 1
        self.level = level
        self.depth = int(level.max())
        self.levels = [np.nonzero(level == h)[0] for h in range(self.depth + 1)]
        n = np.zeros(S)
        n[0] = 1.0
        for h in range(self.depth + 1):
            e = np.isin(self.edge_src, self.levels[h])
            np.add.at(n, self.edge_dst[e], n[self.edge_src[e]])
        self.n_paths = n
        # every state must reach an object (otherwise flows there are 0 and P_F undefined)
        reach = stop.copy()
        for h in range(self.depth, -1, -1):
            st = self.levels[h]
            reach[st] |= np.any(has[st] & reach[np.where(has[st], ch[st], 0)], axis=1)
        if not reach.all():
            raise ValueError(f"state {int(np.argmax(~reach))} cannot reach a terminal object")

    # ------------------------------------------------------------------
    @property
    def n_objects(self) -> int:
        return len(self.objects)

    @property
    def n_edges(self) -> int:
        """Number of move edges (stop actions excluded)."""
        return len(self.edge_src)

    @property
    def is_tree(self) -> bool:
        """True when every non-initial state has exactly one parent."""
        return bool(np.all(self.n_parents[1:] == 1))

    def parents(self, state: int) -> tuple[np.ndarray, np.ndarray]:
        """``(parent states, actions)`` of ``state`` (each ``(n_parents[state],)``)."""
        s = int(state)
        if not 0 <= s < self.n_states:
            raise ValueError(f"state must lie in [0, {self.n_states}), got {state}")
        lo, hi = self.parent_ptr[s], self.parent_ptr[s + 1]
        return self.parent_state[lo:hi], self.parent_action[lo:hi]

    def check_log_reward(self, log_reward, name: str = "log_reward", *, log_reward_floor=None) -> np.ndarray:
        """Validate ``log_reward`` ``(n_objects,)`` (order of ``objects``) and return it as float64.

        log R must be finite (R(x) > 0): a GFlowNet cannot represent R(x) = 0 in log space. Pass
        ``log_reward_floor`` to clip explicitly: log R ← max(log R, floor)."""
        lr = np.asarray(log_reward, dtype=np.float64)
        check_shape(lr, (self.n_objects,), name)
        if np.any(np.isnan(lr)):
            raise ValueError(f"{name} must not contain NaN (entry {int(np.argmax(np.isnan(lr)))})")
        if log_reward_floor is not None:
            f = float(log_reward_floor)
            if not np.isfinite(f):
                raise ValueError(f"log_reward_floor must be finite, got {fmt(log_reward_floor)}")
            lr = np.maximum(lr, f)
        if not np.all(np.isfinite(lr)):
            i = int(np.argmax(~np.isfinite(lr)))
            raise ValueError(
                f"{name} must be finite, i.e. R(x) > 0 for every object; entry {i} is {fmt(lr[i])} "
                f"(R = 0). Pass log_reward_floor=... to clip log R explicitly")
        return lr

    def check_log_policy(self, log_pf, name: str = "log_pf") -> np.ndarray:
        """Validate a forward log-policy ``(S, A + 1)``: -inf exactly on unavailable actions' mass
        is allowed, rows must normalise (LSE = 0 to 1e-8)."""
        lp = np.asarray(log_pf, dtype=np.float64)
        check_shape(lp, (self.n_states, self.n_actions + 1), name)
        if np.any(np.isnan(lp)) or np.any(lp == np.inf):
            raise ValueError(f"{name} must not contain NaN or +inf")
        if np.any(np.isfinite(lp) & ~self.valid):
            s, a = np.argwhere(np.isfinite(lp) & ~self.valid)[0]
            raise ValueError(f"{name} puts mass on an unavailable action (state {s}, action {a})")
        m = np.max(lp, axis=1, keepdims=True)
        tot = np.log(np.sum(np.exp(lp - m), axis=1)) + m[:, 0]
        if np.any(np.abs(tot) > 1e-8):
            s = int(np.argmax(np.abs(tot)))
            raise ValueError(f"{name} must be normalised per state; state {s} has log Σ P = {fmt(tot[s])}")
        return lp

    def __repr__(self) -> str:
        return (f"{self.name}(n_states={self.n_states}, n_actions={self.n_actions}+stop, "
                f"n_objects={self.n_objects}, n_edges={self.n_edges}, depth={self.depth})")


class MultisetDAG(DAG):
    r"""Multisets of tokens from V types with size ≤ ``max_size`` (see :func:`multiset_dag`).

    ``counts`` ``(S, V)`` int64: the count vector of every state; states are ordered by size, then
    lexicographically (descending counts of token 0 first). ``index(counts)`` inverts it.
    """

    def __init__(self, n_types: int, max_size: int, min_size: int = 1):
        V = check_int(n_types, "n_types")
        n = check_int(max_size, "max_size")
        m = check_int(min_size, "min_size", minimum=0)
        if m > n:
            raise ValueError(f"min_size must be <= max_size ({n}), got {m}")
        n_states = math.comb(n + V, V)
        if n_states * (V + 1) * 8 * 4 > 2**31:
            raise ValueError(f"a multiset DAG with n_types={V}, max_size={n} has {n_states:,} states and "
                             f"would need about {n_states * (V + 1) * 32:,} bytes; reduce n_types or max_size")
        states = []
        for size in range(n + 1):
            level = [c for c in itertools.product(range(size, -1, -1), repeat=V) if sum(c) == size]
            states.extend(level)
        self._lookup = {c: i for i, c in enumerate(states)}
        counts = np.array(states, dtype=np.int64).reshape(len(states), V)
        S = len(states)
        children = -np.ones((S, V), dtype=np.int64)
        for i, c in enumerate(states):
            if sum(c) < n:
                for v in range(V):
                    cc = list(c)
                    cc[v] += 1
                    children[i, v] = self._lookup[tuple(cc)]
        sizes = counts.sum(axis=1)
        super().__init__(children, sizes >= m, name="MultisetDAG")
        self.counts = counts
        self.n_types, self.max_size, self.min_size = V, n, m

    def index(self, counts) -> int:
        """State index of a count vector."""
        key = tuple(int(c) for c in counts)
        if key not in self._lookup:
            raise ValueError(f"counts must be a length-{self.n_types} vector of non-negative ints summing to "
                             f"at most {self.max_size}, got {key}")
        return self._lookup[key]

    def path_count_formula(self) -> np.ndarray:
        r"""n(c) = |c|! / Π_v c_v! for every state (the multinomial coefficient), float64."""
        return np.array([math.factorial(int(c.sum())) / math.prod(math.factorial(int(k)) for k in c)
                         for c in self.counts])


def multiset_dag(n_types: int, max_size: int, *, min_size: int = 1) -> MultisetDAG:
    r"""The multiset-building DAG: states are count vectors c ∈ ℕ^V, |c| ≤ ``max_size``;
    action v adds one token of type v (available while |c| < ``max_size``); ``stop`` is available
    at every c with |c| ≥ ``min_size`` (objects). A state with k distinct token types has k parents,
    and the number of paths from ∅ to c is the multinomial coefficient |c|!/Π c_v!.

    Sizes: S = C(n + V, V) states, A = V move actions (+ stop).
    """
    return MultisetDAG(n_types, max_size, min_size)


class TreeDAG(DAG):
    r"""The DAG view of a single-prompt :class:`TokenMDP` tree (see :func:`tree_dag`).

    ``node_of_state`` ``(S,)``: token-tree node of each internal state (``-1`` for sequence
    states); ``state_of_node`` ``(n_nodes,)`` (``-1`` for unreachable nodes); objects are the
    complete sequences in ``env.leaves()`` order, so ``log_reward[i]`` belongs to leaf i.
    """

    def __init__(self, env: TokenMDP):
        if not isinstance(env, TokenMDP):
            raise ValueError(f"env must be a TokenMDP, got {type(env).__name__}")
        if env.n_prompts != 1:
            raise ValueError(f"env must have a single prompt for the DAG view, got n_prompts={env.n_prompts}")
        V = env.vocab_size
        reach = np.nonzero(env.reachable)[0]
        n_int = len(reach)
        state_of_node = -np.ones(env.n_nodes, dtype=np.int64)
        state_of_node[reach] = np.arange(n_int)
        lv = env.leaves()
        L = len(lv)
        S = n_int + L
        children = -np.ones((S, V), dtype=np.int64)
        term = env.terminal_edges()
        for s, node in enumerate(reach):
            ch = env.children(int(node))
            ok = (ch >= 0) & ~term[node]
            children[s, ok] = state_of_node[ch[ok]]
        children[state_of_node[lv.node], lv.action] = n_int + np.arange(L)
        can_stop = np.zeros(S, dtype=bool)
        can_stop[n_int:] = True
        super().__init__(children, can_stop, name="TreeDAG")
        self.env = env
        self.node_of_state = np.concatenate([reach, -np.ones(L, dtype=np.int64)])
        self.state_of_node = state_of_node
        self.leaves = lv

    def token_policy(self, log_pf) -> np.ndarray:
        """A DAG forward log-policy ``(S, V + 1)`` as the TokenMDP's ``(n_nodes, V)`` policy
        (probabilities; unreachable nodes get a uniform row)."""
        lp = self.check_log_policy(log_pf)
        pol = np.full((self.env.n_nodes, self.env.vocab_size), 1.0 / self.env.vocab_size)
        internal = self.node_of_state >= 0
        pol[self.node_of_state[internal]] = np.exp(lp[internal, :-1])
        return pol


def tree_dag(env: TokenMDP) -> TreeDAG:
    r"""The token tree of ``env`` as a :class:`DAG`: reachable nodes (canonical order), then one state
    per complete sequence x (``env.leaves()`` order) whose only action is ``stop``. Move action a at
    a node goes to the child node, or to the sequence state when a ends the episode (EOS or
    length H). Every state has one parent, so P_B ≡ 1 and F(s) = Σ_{x below s} R(x)."""
    return TreeDAG(env)


def random_log_reward(dag: DAG, *, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """log R(x) ~ N(0, scale²) i.i.d. per object, ``(n_objects,)`` (seeded)."""
    if not isinstance(dag, DAG):
        raise ValueError(f"dag must be a DAG, got {type(dag).__name__}")
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be finite and >= 0, got {fmt(scale)}")
    return np.random.default_rng(seed).normal(0.0, scale, size=dag.n_objects)
