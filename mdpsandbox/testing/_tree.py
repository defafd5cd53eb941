"""Index arithmetic on the canonical node order, vectorised for learners (numpy, no per-node objects)."""
from __future__ import annotations

import numpy as np

from ..envs.token import TokenMDP


def level_start(vocab_size: int, horizon: int) -> np.ndarray:
    """``(H+1,)`` first node index of each level (the last entry is n_nodes)."""
    return np.concatenate([[0], np.cumsum([vocab_size**h for h in range(horizon)])]).astype(np.int64)


def node_prefixes(vocab_size: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Prefix tokens ``(n_nodes, max(H-1, 1))`` (``-1`` padded, first token first) and level ``(n_nodes,)``
    of every node in the canonical order."""
    V, H = vocab_size, horizon
    ls = level_start(V, H)
    N = int(ls[-1])
    width = max(H - 1, 1)
    toks = -np.ones((N, width), dtype=np.int64)
    lev = np.zeros(N, dtype=np.int64)
    for h in range(H):
        off = np.arange(V**h, dtype=np.int64)
        sl = slice(ls[h], ls[h + 1])
        lev[sl] = h
        for t in range(h):  # digit t (most significant first)
            toks[sl, t] = (off // V ** (h - 1 - t)) % V
    return toks, lev


def child_nodes(env: TokenMDP, nodes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Child node of (node, token), ``-1`` where the token ends the episode (EOS or level H−1)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    tokens = np.asarray(tokens, dtype=np.int64)
    ls = env.level_start
    lev = np.searchsorted(ls, nodes, side="right") - 1
    off = nodes - ls[lev]
    nxt_level = np.minimum(lev + 1, env.horizon - 1)
    child = ls[nxt_level] + off * env.vocab_size + tokens
    done = lev + 1 >= env.horizon
    if env.eos is not None:
        done = done | (tokens == env.eos)
    return np.where(done, -1, child)


def node_levels(env: TokenMDP, nodes: np.ndarray) -> np.ndarray:
    return np.searchsorted(env.level_start, np.asarray(nodes, dtype=np.int64), side="right") - 1


def prefix_string(env: TokenMDP, node: int, prompt: int = 0) -> str:
    """Human-readable name of a node: its token prefix (and prompt when there are several)."""
    p = env.prefix(int(node))
    s = "(" + ", ".join(str(t) for t in p) + ("," if len(p) == 1 else "") + ")"
    return f"prompt {prompt} prefix {s}" if env.n_prompts > 1 else f"prefix {s}"
