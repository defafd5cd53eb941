r"""Inverse RL on token trees (docs/math.md §4, §10).

On a token tree with reference π_ref and KL coefficient β, the optimal policy of a reward r is
:math:`\pi^*(a|s) = \pi_{ref}(a|s)\,e^{(Q^*(s,a) - V^*(s))/\beta}` with :math:`Q^* = r + \gamma V^*(s\cdot a)`.
Summing the log-ratios along a complete sequence x = (a_0 … a_{L−1}) with weights γ^h telescopes:

.. math::
    \beta\sum_{h<L}\gamma^h\log\frac{\pi^*(a_h|s_h)}{\pi_{ref}(a_h|s_h)} = G(x) - V^*(\text{root}),

G(x) = Σ_h γ^h r(s_h, a_h) the discounted return of x. So π* (given π_ref and β) identifies every
sequence's return **up to one constant per prompt** — for a sequence reward R(x) at γ = 1,
:math:`\hat R(x) = \beta\log(\pi^*(x)/\pi_{ref}(x)) = R(x) - \beta\log Z` — and nothing finer: any
token-level reward with the same returns has the same π*. The member with V ≡ 0 everywhere is the
token reward :math:`\hat r(s,a) = \beta\log(\pi^*(a|s)/\pi_{ref}(a|s))` (a potential shaping of r with
Φ = V*). :func:`tree_irl` computes these exactly from population statistics (π* itself);
:func:`tree_irl_from_samples` from sampled demonstrations (empirical conditional frequencies; the
maximum-likelihood estimate, −∞ on unobserved sequences).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._validate import check_int, check_positive
from ..envs.token import TokenMDP, Trajectories

__all__ = ["TreeIRLResult", "tree_irl", "tree_irl_from_samples", "tree_demonstrations"]


@dataclass
class TreeIRLResult:
    r"""Reward recovered on a token tree (user shapes: no prompt axis with one prompt).

    rewards ``(n_nodes, V)``: the canonical member :math:`\hat r = \beta\log(\pi/\pi_{ref})` (V̂ ≡ 0;
        ``solve(env.with_rewards(rewards), beta=β)`` returns π exactly) — ``-inf`` where π(a|s) = 0;
    leaf_returns ``(L,)``: :math:`\hat G(x) = G(x) - V^*(\text{root})` for every complete sequence in the
        order of ``env.leaves()`` (γ = 1 sequence reward: R(x) − β log Z);
    observed ``(L,)`` bool: sequences whose every edge was seen (all True from population statistics);
    counts ``(n_nodes, V)`` edge counts (samples only, else None).
    """

    rewards: np.ndarray
    leaf_returns: np.ndarray
    observed: np.ndarray
    beta: float
    counts: Optional[np.ndarray] = None

    def sequence_rewards(self, env: TokenMDP) -> np.ndarray:
        r"""The recovered class as a *sequence* reward array ``(n_nodes, V)``: :math:`\hat G(x)/\gamma^{L-1}`
        on the edge completing x, 0 elsewhere (its discounted returns are Ĝ). Needs γ > 0 unless H = 1."""
        return _leaf_values_to_rewards(env, np.asarray(self.leaf_returns).reshape(env.n_prompts, -1))


def _check_env(env) -> TokenMDP:
    if not isinstance(env, TokenMDP):
        raise ValueError(f"env must be a TokenMDP, got {type(env).__name__}")
    return env


def _leaf_sums(env: TokenMDP, edge: np.ndarray) -> np.ndarray:
    r"""Σ_h γ^h edge(s_h, a_h) along every leaf's path, ``(P, L)`` (edge: ``(P, N, V)``)."""
    Pn, N, V = edge.shape
    acc = np.zeros((Pn, N))  # discounted sum over the edges above each node
    ls = env.level_start
    for h in range(env.horizon - 1):
        a, b, c = ls[h], ls[h + 1], ls[h + 2]
        with np.errstate(invalid="ignore"):
            acc[:, b:c] = (acc[:, a:b, None] + env.gamma**h * edge[:, a:b, :]).reshape(Pn, -1)
    lv = env.leaves()
    lev = np.searchsorted(ls, lv.node, side="right") - 1
    with np.errstate(invalid="ignore"):
        return acc[:, lv.node] + (env.gamma ** lev) * edge[:, lv.node, lv.action]


def _leaf_values_to_rewards(env: TokenMDP, leaf_values: np.ndarray) -> np.ndarray:
    lv = env.leaves()
    lev = np.searchsorted(env.level_start, lv.node, side="right") - 1
    if env.gamma == 0.0 and np.any(lev > 0):
        raise ValueError("gamma = 0: a sequence reward below the root is never seen; use the token rewards")
    out = np.zeros((env.n_prompts, env.n_nodes, env.vocab_size))
    out[:, lv.node, lv.action] = leaf_values / env.gamma ** lev
    return env._user(out)


def tree_irl(env: TokenMDP, policy, beta: float) -> TreeIRLResult:
    r"""Exact token-tree IRL from population statistics: the expert's policy π (``env.shape``; the
    KL-optimal π* of an unknown reward) with the env's π_ref and β. Returns the identified class:
    token rewards :math:`\hat r = \beta\log(\pi/\pi_{ref})` and leaf returns
    :math:`\hat G(x) = \beta\sum_h\gamma^h\log(\pi/\pi_{ref})(s_h,a_h) = G(x) - V^*(\text{root})`."""
    env = _check_env(env)
    beta = check_positive(beta, "beta")
    pol = env.check_policy(policy)
    log_ref = env._ref - env.lse_ref.reshape(env.n_prompts, env.n_nodes)[..., None]
    with np.errstate(divide="ignore"):
        r_hat = beta * (np.log(pol) - log_ref)
    G = _leaf_sums(env, r_hat)
    return TreeIRLResult(env._user(r_hat), env._user(G), env._user(np.isfinite(G)), beta)


def tree_irl_from_samples(env: TokenMDP, trajectories: Trajectories, beta: float) -> TreeIRLResult:
    r"""Token-tree IRL from sampled episodes (``env.sample`` output): the empirical conditional policy
    :math:`\hat\pi(a|s) = n(s,a)/n(s)` replaces π in :func:`tree_irl` (the maximum-likelihood estimate of
    the identified class; :math:`\hat G(x) = \beta\log(\hat p(x)/\pi_{ref}(x))` at γ = 1, with p̂ the
    sequence frequencies). Unobserved edges get ``-inf`` and their sequences ``observed = False``."""
    env = _check_env(env)
    beta = check_positive(beta, "beta")
    if not isinstance(trajectories, Trajectories):
        raise ValueError(f"trajectories must be a Trajectories (TokenMDP.sample), got {type(trajectories).__name__}")
    tr = trajectories
    Pn, N, V = env.n_prompts, env.n_nodes, env.vocab_size
    if tr.nodes.ndim != 2 or tr.nodes.shape[1] != env.horizon:
        raise ValueError(f"trajectories must have {env.horizon} steps (the env's horizon), got shape {tr.nodes.shape}")
    m = tr.tokens >= 0
    if np.any(tr.nodes[m] >= N) or np.any(tr.tokens[m] >= V) or np.any(tr.prompts >= Pn) or np.any(tr.prompts < 0):
        raise ValueError("trajectories hold nodes, tokens or prompts outside this env's tree")
    counts = np.zeros((Pn, N, V))
    pr = np.broadcast_to(tr.prompts[:, None], tr.nodes.shape)
    np.add.at(counts, (pr[m], tr.nodes[m], tr.tokens[m]), 1.0)
    tot = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        pi_hat = np.where(tot > 0, counts / np.where(tot > 0, tot, 1.0), 1.0 / V)
    log_ref = env._ref - env.lse_ref.reshape(Pn, N)[..., None]
    with np.errstate(divide="ignore"):
        r_hat = beta * (np.log(pi_hat) - log_ref)
    G = _leaf_sums(env, r_hat)
    return TreeIRLResult(env._user(r_hat), env._user(G), env._user(np.isfinite(G)), beta, env._user(counts))


def tree_demonstrations(env: TokenMDP, beta: float, n: int, *, seed: int) -> Trajectories:
    """``n`` episodes sampled from the KL-optimal policy π* = ``solve(env, beta=β).policy`` (seeded)."""
    from ..solvers.dp import solve

    env = _check_env(env)
    beta = check_positive(beta, "beta")
    n = check_int(n, "n")
    return env.sample(solve(env, beta=beta).policy, n, seed=seed)
