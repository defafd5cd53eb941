r"""Hypothesis strategies for MDPs and policies (for our tests and for users' property tests).

Each strategy draws the *structure* (sizes, flags, which rows are deterministic) through
hypothesis, and the numbers from a ``numpy.random.Generator`` seeded by a drawn integer: examples
are reproducible, shrink towards small MDPs and simple seeds, and stay fast to generate.

    from hypothesis import given
    from mdpsandbox.testing import tabular_mdps, token_mdps, policies

    @given(tabular_mdps(max_states=6, gamma=0.9))
    def test_my_solver(mdp):
        ...
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
from hypothesis import strategies as st

__all__ = ["tabular_mdps", "token_mdps", "policies", "seeds"]

#: Seeds drawn by the strategies (small, so failures print short reproducible examples).
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _flag(value: Optional[bool]):
    return st.booleans() if value is None else st.just(bool(value))


def _number(value, default):
    """A fixed float, a strategy, or (None) the default strategy."""
    if value is None:
        return default
    if isinstance(value, st.SearchStrategy):
        return value
    return st.just(float(value))


@st.composite
def tabular_mdps(draw, max_states: int = 6, max_actions: int = 3, *, min_states: int = 1,
                 min_actions: int = 1, gamma=None, sparse: Optional[bool] = False,
                 terminal: Optional[bool] = None, reward_scale=None):
    """Random valid :class:`~mdpsandbox.TabularMDP` instances.

    max_states, max_actions : upper bounds on S and A (lower bounds ``min_states``, ``min_actions``).
    gamma : a float, a strategy, or None (default: one of 0, 0.5, 0.9 or a float in [0, 0.95]).
        γ = 1 is only drawn if you pass it (then every example gets a terminal state that every
        policy reaches).
    sparse : True → CSR ``(S*A, S)`` transition matrix; False → dense ``(S, A, S)``; None → either.
    terminal : True → at least one absorbing terminal state; False → none; None → either.
    reward_scale : a float, a strategy or None (default one of 0, 1, 100).

    Transition rows mix full-support rows, sparse rows (some zero probabilities) and
    deterministic rows; rewards are uniform in ``[-scale, scale]``.
    """
    from ..envs.tabular import TabularMDP

    g = draw(_number(gamma, st.one_of(st.sampled_from([0.0, 0.5, 0.9]),
                                      st.floats(0.0, 0.95, allow_nan=False))))
    want_term = draw(_flag(terminal)) or g >= 1.0
    S = draw(st.integers(max(min_states, 2 if want_term else 1), max(max_states, min_states, 2 if want_term else 1)))
    A = draw(st.integers(min_actions, max(max_actions, min_actions)))
    scale = draw(_number(reward_scale, st.sampled_from([0.0, 1.0, 100.0])))
    row_kind = draw(st.sampled_from(["full", "sparse", "deterministic", "mixed"]))
    use_sparse = draw(_flag(sparse))
    rng = np.random.default_rng(draw(seeds))
    w = rng.random((S, A, S))
    if row_kind in ("sparse", "mixed"):
        w = w * (rng.random((S, A, S)) < 0.5)
    if row_kind in ("deterministic", "mixed"):
        det = np.eye(S)[rng.integers(0, S, size=(S, A))]
        pick = np.ones((S, A, 1), bool) if row_kind == "deterministic" else rng.random((S, A, 1)) < 0.4
        w = np.where(pick, det, w)
    empty = w.sum(axis=2) == 0
    w[empty, 0] = 1.0  # rows left without mass go to state 0 (any valid choice)
    P = w / w.sum(axis=2, keepdims=True)
    term = None
    if want_term:
        n_term = int(rng.integers(1, max(1, S // 2) + 1))
        term = np.zeros(S, bool)
        term[S - n_term:] = True
        if g >= 1.0:
            # make every policy proper: each non-terminal action moves to a terminal state w.p. ≥ 1/2
            tgt = np.zeros(S)
            tgt[S - n_term:] = 1.0 / n_term
            P = 0.5 * P + 0.5 * tgt
    R = (2 * rng.random((S, A)) - 1) * scale
    if use_sparse:
        import scipy.sparse as sp

        P = sp.csr_matrix(P.reshape(S * A, S))
    return TabularMDP(P, R, g, terminal=term)


@st.composite
def token_mdps(draw, max_vocab: int = 3, max_horizon: int = 3, *, min_vocab: int = 1, min_horizon: int = 1,
               eos: Optional[bool] = None, n_prompts: Union[int, st.SearchStrategy, None] = 1,
               gamma=1.0, reward: Optional[str] = None, ref: Optional[str] = None):
    """Random valid :class:`~mdpsandbox.TokenMDP` instances (via :meth:`TokenMDP.random`).

    max_vocab, max_horizon : upper bounds on V and H.
    eos : True → the vocabulary has an EOS token (needs V ≥ 2); False → none; None → either.
    n_prompts : an int, a strategy, or None (1–3 prompts).
    gamma : a float (default 1.0), a strategy, or None (one of 1.0, 0.9 or a float in [0.5, 0.99]).
    reward, ref : fix the reward kind (``"terminal"``, ``"dense"``, ``"bernoulli"``) or reference kind
        (``"random"``, ``"uniform"``, ``"ngram"``); None draws one. Reference logits get a random
        per-node offset half the time, as real LLM logits do.
    """
    from ..envs.token import TokenMDP

    want_eos = draw(_flag(eos))
    V = draw(st.integers(max(min_vocab, 2 if want_eos else 1), max(max_vocab, min_vocab, 2 if want_eos else 1)))
    H = draw(st.integers(min_horizon, max(max_horizon, min_horizon)))
    if n_prompts is None:
        n_p = draw(st.integers(1, 3))
    elif isinstance(n_prompts, st.SearchStrategy):
        n_p = draw(n_prompts)
    else:
        n_p = int(n_prompts)
    g = draw(_number(gamma, st.one_of(st.sampled_from([1.0, 0.9]), st.floats(0.5, 0.99, allow_nan=False))))
    rew = reward or draw(st.sampled_from(["terminal", "dense", "bernoulli"]))
    rf = ref or draw(st.sampled_from(["random", "uniform", "ngram"]))
    e = draw(st.integers(0, V - 1)) if want_eos else None
    offset = draw(st.sampled_from([0.0, 3.0]))
    scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    return TokenMDP.random(V, H, reward=rew, ref=rf, seed=draw(seeds), gamma=g, eos=e, n_prompts=n_p,
                           logit_scale=scale, offset_scale=offset)


@st.composite
def policies(draw, env, *, deterministic: Optional[bool] = None):
    """Valid stochastic policies of ``env``'s shape: ``(S, A)`` for a TabularMDP, ``env.shape``
    (``(n_nodes, V)`` or ``(n_prompts, n_nodes, V)``) for a TokenMDP.

    Rows mix full-support distributions, rows with zero entries and deterministic (one-hot)
    rows; ``deterministic=True`` draws only one-hot rows, ``False`` only full-support rows.
    """
    from ..envs.token import TokenMDP

    shape = env.shape if isinstance(env, TokenMDP) else (env.n_states, env.n_actions)
    rng = np.random.default_rng(draw(seeds))
    A = shape[-1]
    rows = int(np.prod(shape[:-1]))
    if deterministic is True:
        kind = "deterministic"
    elif deterministic is False:
        kind = "full"
    else:
        kind = draw(st.sampled_from(["full", "zeros", "deterministic", "mixed"]))
    sharp = draw(st.sampled_from([0.3, 1.0, 5.0]))
    w = rng.gamma(sharp, size=(rows, A)) + 1e-300
    if kind in ("zeros", "mixed"):
        keep = rng.random((rows, A)) < 0.6
        keep[np.arange(rows), rng.integers(0, A, rows)] = True
        w = w * keep
    if kind in ("deterministic", "mixed"):
        det = np.eye(A)[rng.integers(0, A, rows)]
        pick = np.ones((rows, 1), bool) if kind == "deterministic" else rng.random((rows, 1)) < 0.3
        w = np.where(pick, det, w)
    p = w / w.sum(axis=1, keepdims=True)
    return p.reshape(shape)
