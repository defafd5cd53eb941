r"""Exact return laws on token trees and the Q♯ identity (docs/math.md §4, §6, §7).

On a token tree the reward-to-go of a fixed policy π after (s, a) is a *finite* discrete law

.. math:: Z^\pi(s,a) = r(s,a) + \gamma\,G^\pi(s\cdot a),\qquad
          G^\pi(s) = \sum_a \pi(a|s)\,Z^\pi(s,a)\ (\text{a mixture}),\qquad G = \delta_0 \text{ at terminals},

computed here exactly, one level at a time (equal values merged). With γ = 1 the Q♯ identity
(Zhou et al. 2025, "Q♯: Provably optimal distributional RL for LLM post-training") reads

.. math:: Q^*_\beta(s,a) = \beta\log E_{z\sim Z^{\pi_{ref}}(s,a)}\,e^{z/\beta}

— the KL-regularised optimal Q is a functional of the *reference* policy's return law (no
bootstrapping). It relies on deterministic transitions; :func:`jensen_gap_example` shows the
over-estimate (Jensen) with one stochastic transition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp

from .._math import log_softmax
from .._validate import check_distribution, check_gamma, check_int, check_positive, check_shape, fmt
from ..envs.tabular import TabularMDP
from ..envs.token import TokenMDP, TreeTooLargeError
from .distributional import DiscreteLaw, policy_mrp
from .backups import SMALL_SPREAD
from .dp import evaluate, solve

__all__ = [
    "ReturnLaws",
    "return_distribution",
    "qsharp_q",
    "cd_policy",
    "tabular_return_distribution",
    "JensenGapExample",
    "jensen_gap_example",
]

#: Largest number of stored atoms (over all edges) :func:`return_distribution` builds.
MAX_ATOMS = 30_000_000


@dataclass
class ReturnLaws:
    r"""Exact finite laws of Z^π(s, a) for every edge and G^π(s) for every node of a token tree,
    stored ragged (no Python object per node).

    Edge e = (p·n_nodes + node)·V + a holds atoms ``edge_values[edge_offsets[e]:edge_offsets[e+1]]``
    with probabilities ``edge_probs[...]`` (values sorted ascending, equal values merged, zero
    probabilities dropped). Nodes likewise with ``node_offsets`` (index p·n_nodes + node).
    """

    vocab_size: int
    n_nodes: int
    n_prompts: int
    edge_values: np.ndarray
    edge_probs: np.ndarray
    edge_offsets: np.ndarray
    node_values: np.ndarray
    node_probs: np.ndarray
    node_offsets: np.ndarray

    def law(self, node: int, action: int, prompt: int = 0) -> DiscreteLaw:
        """Z^π(node, action) as a :class:`DiscreteLaw`."""
        e = (prompt * self.n_nodes + int(node)) * self.vocab_size + int(action)
        a, b = self.edge_offsets[e], self.edge_offsets[e + 1]
        return DiscreteLaw(self.edge_values[a:b].copy(), self.edge_probs[a:b].copy())

    def node_law(self, node: int, prompt: int = 0) -> DiscreteLaw:
        """G^π(node) = Σ_a π(a|node) Z^π(node, a) as a :class:`DiscreteLaw`."""
        i = prompt * self.n_nodes + int(node)
        a, b = self.node_offsets[i], self.node_offsets[i + 1]
        return DiscreteLaw(self.node_values[a:b].copy(), self.node_probs[a:b].copy())

    def _shape(self, a: np.ndarray, per_edge: bool) -> np.ndarray:
        tail = (self.vocab_size,) if per_edge else ()
        a = a.reshape((self.n_prompts, self.n_nodes) + tail)
        return a[0] if self.n_prompts == 1 else a

    def edge_expectation(self, fn) -> np.ndarray:
        """E f(Z(s, a)) for every edge, shaped like the tree's ``(n_nodes, V)`` arrays."""
        vals = fn(self.edge_values) * self.edge_probs
        return self._shape(np.add.reduceat(vals, self.edge_offsets[:-1]), True)

    @property
    def mean(self) -> np.ndarray:
        """E Z^π(s, a) = Q^π(s, a) (unregularised), ``(n_nodes, V)``."""
        return self.edge_expectation(lambda v: v)

    def edge_sizes(self) -> np.ndarray:
        return self._shape(np.diff(self.edge_offsets), True)


def _merge(seg: np.ndarray, values: np.ndarray, probs: np.ndarray, n_seg: int):
    """Sort atoms by (segment, value), merge equal values in a segment, drop zero probabilities.
    Returns (values, probs, offsets (n_seg+1,)); every segment must keep at least one atom."""
    keep = probs > 0.0
    seg, values, probs = seg[keep], values[keep], probs[keep]
    order = np.lexsort((values, seg))
    seg, values, probs = seg[order], values[order], probs[order]
    new = np.ones(seg.size, dtype=bool)
    new[1:] = (seg[1:] != seg[:-1]) | (values[1:] != values[:-1])
    starts = np.nonzero(new)[0]
    out_v = values[starts]
    out_p = np.add.reduceat(probs, starts) if starts.size else probs[:0]
    out_s = seg[starts]
    counts = np.bincount(out_s, minlength=n_seg)
    if np.any(counts == 0):
        raise ValueError("a node has no action with positive probability under the policy")
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return out_v, out_p, offsets


def return_distribution(tree: TokenMDP, policy=None) -> ReturnLaws:
    r"""Exact return laws of ``policy`` (default: the tree's reference policy π_ref) on a token tree:

    .. math:: Z^\pi(s,a) = r(s,a) + \gamma\,G^\pi(s\cdot a),\qquad G^\pi(s) = \sum_a\pi(a|s)Z^\pi(s,a),

    with G = δ_0 past EOS or length H; one vectorised pass per level (leaves up), merging equal
    values. Z^π(s, a) is the law of Σ_{t≥h} γ^{t−h} r_t after taking a at s (docs/math.md §4, §7).

    tree : :class:`TokenMDP`; policy : ``(n_nodes, V)`` (or with a prompt axis) probabilities.
    Returns :class:`ReturnLaws`. Refuses (TreeTooLargeError) trees whose laws would need more than
    ``MAX_ATOMS`` atoms (at most H·V^H per prompt).
    """
    if not isinstance(tree, TokenMDP):
        raise ValueError(f"tree must be a TokenMDP, got {type(tree).__name__}")
    Pn, N, V, H, ls, g = tree.n_prompts, tree.n_nodes, tree.vocab_size, tree.horizon, tree.level_start, tree.gamma
    bound = Pn * 2 * H * V**H
    if bound > MAX_ATOMS:
        raise TreeTooLargeError(
            f"exact return laws of a tree with V={V}, H={H}, n_prompts={Pn} may need up to {bound:,} atoms "
            f"({bound * 24:,} bytes); the limit is {MAX_ATOMS:,} atoms — use a smaller tree")
    pi = tree._ref_or(policy)  # (Pn, N, V), validated
    ev_levels, ep_levels, eo_levels = [None] * H, [None] * H, [None] * H
    nv_levels, np_levels, no_levels = [None] * H, [None] * H, [None] * H
    eos = tree.eos
    for h in range(H - 1, -1, -1):
        a, b = ls[h], ls[h + 1]
        n_h = b - a
        E = Pn * n_h * V  # edges of level h, ordered (prompt, node, action)
        rew = tree._rew[:, a:b].reshape(E)
        if h == H - 1:
            vals, probs = rew.copy(), np.ones(E)
            seg = np.arange(E)
        else:
            cv, cp, co = nv_levels[h + 1], np_levels[h + 1], no_levels[h + 1]
            # level-h edge (p, j, a) has child p·n_{h+1} + j·V + a = its own edge index: same segments
            sizes = np.diff(co)
            seg = np.repeat(np.arange(E), sizes)
            vals = rew[seg] + g * cv
            probs = cp.copy()
            if eos is not None:
                is_eos = (seg % V) == eos
                e_idx = np.nonzero((np.arange(E) % V) == eos)[0]
                seg = np.concatenate([seg[~is_eos], e_idx])
                vals = np.concatenate([vals[~is_eos], rew[e_idx]])
                probs = np.concatenate([probs[~is_eos], np.ones(e_idx.size)])
        ev, ep, eo = _merge(seg, vals, probs, E)
        ev_levels[h], ep_levels[h], eo_levels[h] = ev, ep, eo
        # node laws: mixture over the node's V edges with weights π(a|s)
        w = pi[:, a:b].reshape(E)
        eseg = np.repeat(np.arange(E), np.diff(eo))
        nv, npb, no = _merge(eseg // V, ev, ep * w[eseg], Pn * n_h)
        nv_levels[h], np_levels[h], no_levels[h] = nv, npb, no

    def stitch(vs, ps, os_, per):
        # reorder from level-major (prompt inside level) to (prompt, node[, action]) order
        sizes = np.zeros((Pn, N * per), dtype=np.int64)
        chunks_v = [[None] * H for _ in range(Pn)]
        chunks_p = [[None] * H for _ in range(Pn)]
        for h in range(H):
            n_h = (ls[h + 1] - ls[h]) * per
            sz = np.diff(os_[h]).reshape(Pn, n_h)
            sizes[:, ls[h] * per:ls[h + 1] * per] = sz
            for p in range(Pn):
                lo, hi = os_[h][p * n_h], os_[h][(p + 1) * n_h]
                chunks_v[p][h], chunks_p[p][h] = vs[h][lo:hi], ps[h][lo:hi]
        values = np.concatenate([c for p in range(Pn) for c in chunks_v[p]])
        probs = np.concatenate([c for p in range(Pn) for c in chunks_p[p]])
        offsets = np.concatenate([[0], np.cumsum(sizes.ravel())]).astype(np.int64)
        return values, probs, offsets

    ev, ep, eo = stitch(ev_levels, ep_levels, eo_levels, V)
    nv, npb, no = stitch(nv_levels, np_levels, no_levels, 1)
    return ReturnLaws(V, N, Pn, ev, ep, eo, nv, npb, no)


def qsharp_q(tree: TokenMDP, beta: float, laws: Optional[ReturnLaws] = None) -> np.ndarray:
    r"""The Q♯ functional (Zhou et al. 2025; docs/math.md §4, §6):

    .. math:: Q^\sharp(s,a) = \beta\log E_{z\sim Z^{\pi_{ref}}(s,a)}\,e^{z/\beta}
              = \beta\,\mathrm{LSE}_k\big(\log p_k + z_k/\beta\big)

    over the exact reference return law, computed per edge as
    :math:`\bar z + \beta\log\sum_k p_k e^{(z_k-\bar z)/\beta}` with :math:`\bar z` the edge's largest
    atom (no overflow as β → 0: the maximum return) and, when the atoms span at most β/8, as
    :math:`\bar z + \beta\,\mathrm{log1p}(\sum_k p_k\,\mathrm{expm1}((z_k-\bar z)/\beta))` (no
    cancellation as β → ∞: the mean return) — exact to round-off for β in [1e-300, 1e300].
    With deterministic transitions and γ = 1 it equals the KL-regularised optimum
    ``solve(tree, beta=beta).q`` (the Q♯ identity); with γ < 1 it is still computed but is *not*
    Q* in general. ``laws``: a precomputed :func:`return_distribution` of π_ref (optional).
    Returns ``(n_nodes, V)`` (leading prompt axis with several prompts).
    """
    beta = check_positive(beta, "beta")
    if laws is None:
        laws = return_distribution(tree)
    z, p = laws.edge_values, laws.edge_probs
    starts = laws.edge_offsets[:-1]
    sizes = np.diff(laws.edge_offsets)
    zmax = np.maximum.reduceat(z, starts)
    zmin = np.minimum.reduceat(z, starts)
    with np.errstate(over="ignore", under="ignore"):
        u = (z - np.repeat(zmax, sizes)) / beta  # ≤ 0; −inf-safe as β → 0
        wide = beta * (np.log(np.add.reduceat(p * np.exp(u), starts)))
        narrow = beta * np.log1p(np.add.reduceat(p * np.expm1(u), starts))
    out = zmax + np.where((zmax - zmin) / beta <= SMALL_SPREAD, narrow, wide)
    return laws._shape(out, True)


def cd_policy(tree: TokenMDP, beta: float) -> np.ndarray:
    r"""The CD / VAS baseline policy (docs/math.md §6):

    .. math:: \pi^{CD}(a|s) \propto \pi_{ref}(a|s)\,\exp\big(Q^{\pi_{ref}}(s,a)/\beta\big)

    with :math:`Q^{\pi_{ref}}` the *unregularised* expected reward-to-go of π_ref (exact policy
    evaluation) — the wrong target (it ignores that the guided policy itself acts later).
    Computed as softmax(log π_ref + (Q − max Q)/β) (stable for every β: no overflow of Q/β as
    β → 0, where it becomes the argmax of Q^{π_ref} on supp π_ref). Returns ``(n_nodes, V)``.
    """
    beta = check_positive(beta, "beta")
    if not isinstance(tree, TokenMDP):
        raise ValueError(f"tree must be a TokenMDP, got {type(tree).__name__}")
    q_ref = evaluate(tree, tree.ref_policy).q
    log_ref = tree.log_ref_policy
    supp = np.isfinite(log_ref)
    qmax = np.max(np.where(supp, q_ref, -np.inf), axis=-1, keepdims=True)
    with np.errstate(over="ignore"):
        u = np.where(supp, (q_ref - qmax) / beta, -np.inf)
    return np.exp(log_softmax(log_ref + u, axis=-1))


# ====================================================================== tabular: Jensen gap
def tabular_return_distribution(mdp: TabularMDP, policy, horizon: Optional[int] = None) -> list:
    r"""Exact finite return laws :math:`Z^\pi(s,a) = r(s,a) + \gamma G^\pi(S')`, S' ~ P(·|s,a), of a
    tabular MDP whose episodes end (reach a terminal state) within ``horizon`` steps (default S)
    under π — checked, never truncated silently. Small MDPs only (atoms enumerated in dicts).

    Returns a nested list ``laws[s][a]`` of :class:`DiscreteLaw`.
    """
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    pi = check_distribution(policy, "policy")
    S, A = mdp.n_states, mdp.n_actions
    check_shape(pi, (S, A), "policy")
    H = S if horizon is None else check_int(horizon, "horizon")
    Pp, _ = policy_mrp(mdp, pi)
    alive = np.repeat(~mdp.terminal, A).astype(np.float64)
    v = alive.copy()
    for _ in range(H):
        v = Pp @ v * 1.0
    if np.max(v) > 0:
        raise ValueError(f"episodes under the policy do not all end within horizon={H} steps "
                         "(exact return laws need a terminating MDP); pass a larger horizon")
    P = mdp.dense_P()
    g = mdp.gamma
    state = [{0.0: 1.0} if mdp.terminal[s] else {0.0: 1.0} for s in range(S)]  # G with 0 steps to go
    sa = None
    for _ in range(H + 1):
        sa = [[None] * A for _ in range(S)]
        for s in range(S):
            for a in range(A):
                if mdp.terminal[s]:
                    sa[s][a] = {0.0: 1.0}
                    continue
                d: dict = {}
                for s2 in np.nonzero(P[s, a])[0]:
                    for val, p in state[s2].items():
                        key = mdp.R[s, a] + g * val
                        d[key] = d.get(key, 0.0) + P[s, a, s2] * p
                sa[s][a] = d
        new_state = []
        for s in range(S):
            if mdp.terminal[s]:
                new_state.append({0.0: 1.0})
                continue
            d = {}
            for a in range(A):
                if pi[s, a] > 0:
                    for val, p in sa[s][a].items():
                        d[val] = d.get(val, 0.0) + pi[s, a] * p
            new_state.append(d)
        state = new_state
    out = []
    for s in range(S):
        row = []
        for a in range(A):
            items = sorted(sa[s][a].items())
            row.append(DiscreteLaw(np.array([k for k, _ in items]), np.array([p for _, p in items])))
        out.append(row)
    return out


@dataclass
class JensenGapExample:
    r"""Q♯ vs Q* on a tabular MDP with one stochastic transition (docs/math.md §4).

    q_star ``(S, A)``: KL-regularised optimum (``solve``); q_sharp ``(S, A)``: β log E exp(Z/β)
    under π_ref; gap = q_sharp − q_star (> 0 exactly at the stochastic (state, action), 0 elsewhere
    up to round-off)."""

    mdp: TabularMDP
    beta: float
    q_star: np.ndarray
    q_sharp: np.ndarray
    gap: np.ndarray
    stochastic_edge: tuple


def jensen_gap_example(beta: float = 0.5, p: float = 0.5) -> JensenGapExample:
    r"""A 5-state, 2-action MDP, γ = 1, uniform π_ref. From the root s0: action 0 moves to s1
    (deterministic), action 1 moves to s2 w.p. ``p`` and to s3 otherwise (the one stochastic
    transition). At s1 both actions pay 0.5; at s2 action 0 pays 1 and action 1 pays 0; at s3 both
    pay 0; then the episode ends (s4 terminal).

    Q♯(s0, 1) = β log(p·E_{ref}e^{R(s2,·)/β} + (1−p)) > Q*(s0, 1) = p·β log E_{ref}e^{R(s2,·)/β} by
    Jensen (log is strictly concave), while every deterministic edge has zero gap.
    """
    beta = check_positive(beta, "beta")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {fmt(p)}")
    S, A = 5, 2
    P = np.zeros((S, A, S))
    P[0, 0, 1] = 1.0
    P[0, 1, 2], P[0, 1, 3] = p, 1 - p
    P[1:, :, 4] = 1.0
    R = np.zeros((S, A))
    R[1] = 0.5
    R[2, 0] = 1.0
    ref = np.full((S, A), 0.5)
    mdp = TabularMDP(P, R, 1.0, terminal=[4], initial=np.eye(S)[0], ref_policy=ref)
    q_star = solve(mdp, beta=beta, ref_policy=ref, method="pi").q
    laws = tabular_return_distribution(mdp, ref)
    q_sharp = np.zeros((S, A))
    for s in range(S):
        for a in range(A):
            L = laws[s][a]
            x = np.log(L.probs) + L.values / beta
            mx = x.max()
            q_sharp[s, a] = beta * (mx + np.log(np.exp(x - mx).sum()))
    return JensenGapExample(mdp, beta, q_star, q_sharp, q_sharp - q_star, (0, 1))
