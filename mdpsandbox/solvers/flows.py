r"""Exact GFlowNet flows and their soft-RL equivalence (docs/math.md §8).

Target: sample terminal objects x with p(x) = R(x)/Z, Z = Σ_x R(x), by a forward policy P_F on a
DAG (:class:`~mdpsandbox.envs.dag.DAG`) from s0.

* :func:`flows` — with a fixed backward policy P_B, the unique flow is the reverse-topological
  recursion (Bengio et al. 2021, 2023 "GFlowNet foundations")

      F(s) = 1[s terminal] R(s) + Σ_{s→s'} F(s') P_B(s|s'),   P_F*(s'|s) = F(s') P_B(s|s') / F(s),
      P_F*(stop|s) = R(s)/F(s),   Z = F(s0).

  On a tree (P_B ≡ 1) this is F(s) = Σ_{x below s} R(x).
* :func:`backward_log_policy` — uniform P_B(s|s') = 1/|Pa(s')|, or the path-count P_B(s|s') =
  n(s)/n(s') (n = number of paths from s0), under which P_F* is the uniform-over-paths sampler.
* :func:`terminating_log_probs` — the exact terminating distribution of ANY forward policy, by
  pushing probability mass forward in topological order (never by sampling).
* :func:`soft_values` / :func:`soft_rl_mdp` / :func:`soft_rl_solve` — the soft-RL equivalence
  (Tiapkin et al. 2024, "Generative flow networks as entropy-regularized RL"): with rewards
  r(s→s') = log P_B(s|s'), r(x→stop) = log R(x), entropy weight 1 and γ = 1,
  V*_soft = log F, Q*_soft(s, s') = log F(s') + log P_B(s|s'), π*_soft = P_F*, V*_soft(s0) = log Z.
  Without the log P_B rewards soft-Q samples x ∝ n(x) R(x) (biased on a non-tree DAG); γ < 1
  breaks proportionality.
* :func:`kl_control_log_reward` — on a token tree, KL-regularised control with π_ref and sequence
  reward R_seq is the GFlowNet with R(x) = π_ref(x) exp(R_seq(x)/β).

All arithmetic is in log space with stable log-sum-exp; arrays are float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import scipy.sparse as sp

from .._math import logsumexp
from .._validate import check_gamma, check_positive, check_shape, fmt
from ..envs.dag import DAG, TreeDAG, tree_dag
from ..envs.tabular import TabularMDP
from ..envs.token import TokenMDP

__all__ = [
    "Flows",
    "SoftSolution",
    "flows",
    "backward_log_policy",
    "terminating_log_probs",
    "terminating_distribution",
    "state_log_probs",
    "tv_distance",
    "soft_values",
    "soft_rl_mdp",
    "soft_rl_solve",
    "kl_control_log_reward",
    "as_dag",
    "log_reward_from_reward",
]

LogPB = Union[None, str, np.ndarray]


def as_dag(env) -> DAG:
    """A :class:`DAG` as is; a single-prompt :class:`TokenMDP` as its :func:`tree_dag` view."""
    if isinstance(env, DAG):
        return env
    if isinstance(env, TokenMDP):
        return tree_dag(env)
    raise ValueError(f"env must be a DAG or a TokenMDP, got {type(env).__name__}")


def log_reward_from_reward(reward, *, log_reward_floor: Optional[float] = None) -> np.ndarray:
    r"""log R from a reward array R ``(n_objects,)``. GFlowNets need R(x) > 0: zero or negative
    entries raise ``ValueError`` unless ``log_reward_floor`` is given, in which case
    log R ← max(log R, floor) and R ≤ 0 maps to the floor (an explicit clip)."""
    r = np.asarray(reward, dtype=np.float64)
    if np.any(~np.isfinite(r)):
        raise ValueError("reward must be finite (no NaN or inf)")
    if log_reward_floor is None:
        if np.any(r <= 0):
            i = int(np.argmax(r <= 0))
            raise ValueError(f"reward must be > 0 where log R is needed; entry {i} is {fmt(r[i])}. "
                             "Pass log_reward_floor=... to clip log R explicitly")
        return np.log(r)
    f = float(log_reward_floor)
    if not np.isfinite(f):
        raise ValueError(f"log_reward_floor must be finite, got {fmt(log_reward_floor)}")
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.where(r > 0, np.log(np.where(r > 0, r, 1.0)), -np.inf)
    return np.maximum(lr, f)


def backward_log_policy(dag: DAG, kind: LogPB = "uniform") -> np.ndarray:
    r"""log P_B(s | s') on every forward edge, as a ``(S, A + 1)`` array aligned with the forward
    action table: entry ``[s, a]`` is log P_B(s | children[s, a]); the stop column is 0 (a stopped
    object has one parent); unavailable actions are ``-inf``.

    kind : ``"uniform"`` — P_B(s|s') = 1/|Pa(s')|; ``"path_count"`` — P_B(s|s') = n(s)/n(s') with
        n(s) the number of paths from s0 (so every path to s is equally likely backwards); or an
        ``(S, A + 1)`` array, validated (Σ_{parents} P_B(·|s') = 1 for every s' ≠ s0) and returned.
    """
    dag = as_dag(dag)
    S, A = dag.n_states, dag.n_actions
    if isinstance(kind, str):
        out = np.full((S, A + 1), -np.inf)
        src, act, dst = dag.edge_src, dag.edge_action, dag.edge_dst
        if kind == "uniform":
            out[src, act] = -np.log(dag.n_parents[dst])
        elif kind == "path_count":
            out[src, act] = np.log(dag.n_paths[src]) - np.log(dag.n_paths[dst])
        else:
            raise ValueError(f"log_pb must be 'uniform', 'path_count' or an (S, A + 1) array, got {kind!r}")
        out[dag.can_stop, A] = 0.0
        return out
    lp = np.asarray(kind, dtype=np.float64)
    check_shape(lp, (S, A + 1), "log_pb")
    if np.any(np.isnan(lp)) or np.any(lp > 1e-12):
        raise ValueError("log_pb must be log-probabilities (<= 0, no NaN)")
    if np.any(np.isfinite(lp) & ~dag.valid):
        raise ValueError("log_pb is finite on an unavailable action")
    e = lp[dag.edge_src, dag.edge_action]
    tot = np.zeros(S)
    np.add.at(tot, dag.edge_dst, np.exp(e))
    bad = np.abs(tot[1:] - 1.0) > 1e-9
    if bad.any():
        s = int(np.argmax(bad)) + 1
        raise ValueError(f"log_pb must normalise over the parents of every state; state {s} sums to {fmt(tot[s])}")
    out = lp.copy()
    out[dag.can_stop, A] = 0.0
    return out


@dataclass
class Flows:
    r"""The exact flow of a reward on a DAG with a fixed P_B.

    log_flow ``(S,)`` log F(s); log_edge_flow ``(S, A + 1)`` log F(s→s') = log F(s') + log P_B(s|s')
    (stop column: log R(s)); log_pf ``(S, A + 1)`` log P_F*(a|s) = log F(s→·) − log F(s) (-inf on
    unavailable actions); log_pb ``(S, A + 1)``; log_z = log F(s0) = log Σ_x R(x);
    log_reward ``(n_objects,)``; target ``(n_objects,)`` R(x)/Z.

    shift = max log R: the recursion runs on log R − shift (flows are shift-invariant: F scales by
    e^{shift}, P_F* is unchanged), so log-rewards like 1e300 keep P_F* and R/Z exact; log_flow,
    log_edge_flow and log_z have the shift added back (rounded at that magnitude), and
    ``log_z_rel`` = log Z − shift is kept unrounded.
    """

    log_flow: np.ndarray
    log_edge_flow: np.ndarray
    log_pf: np.ndarray
    log_pb: np.ndarray
    log_z: float
    log_reward: np.ndarray
    dag: DAG
    shift: float = 0.0
    log_z_rel: Optional[float] = None

    @property
    def target(self) -> np.ndarray:
        """R(x)/Z in the order of ``dag.objects`` (from the shifted log-rewards: exact for any scale)."""
        if self.log_z_rel is None:
            return np.exp(self.log_reward - self.log_z)
        return np.exp((self.log_reward - self.shift) - self.log_z_rel)

    @property
    def pf(self) -> np.ndarray:
        return np.exp(self.log_pf)


def _edge_values(dag: DAG, values: np.ndarray, states: np.ndarray) -> np.ndarray:
    """values[children[s, a]] for s in ``states`` (``(n, A)``; arbitrary where unavailable)."""
    ch = dag.children[states]
    return values[np.where(ch >= 0, ch, 0)]


def flows(env, log_reward, *, log_pb: LogPB = "uniform", log_reward_floor: Optional[float] = None) -> Flows:
    r"""Exact flows of R on ``env`` (a :class:`DAG`, or a :class:`TokenMDP` tree via
    :func:`tree_dag` with ``log_reward`` in ``env.leaves()`` order).

    Reverse-topological recursion (docs/math.md §8; Bengio et al. 2023, "GFlowNet foundations", Prop. on
    the flow induced by a backward policy)::

        log F(s) = LSE( [log R(s) if s can stop] ∪ {log F(s') + log P_B(s|s') : s→s'} )
        log P_F*(a|s) = log F(s→s'_a) − log F(s),   log Z = log F(s0)

    log_reward : ``(n_objects,)`` finite (R > 0); ``log_reward_floor`` clips explicitly.
    log_pb : ``"uniform"``, ``"path_count"`` or an ``(S, A + 1)`` array (see
        :func:`backward_log_policy`); irrelevant on a tree.
    The recursion runs on log R − max log R (shift-invariant), so any finite scale of log R is exact.
    """
    dag = as_dag(env)
    lr_in = dag.check_log_reward(log_reward, log_reward_floor=log_reward_floor)
    shift = float(np.max(lr_in)) if lr_in.size else 0.0
    lr = lr_in - shift  # shift-invariance: exact P_F* for log R ~ 1e17 or 1e300 (issue: P_F summed to 3)
    lpb = backward_log_policy(dag, log_pb)
    S, A = dag.n_states, dag.n_actions
    log_flow = np.full(S, -np.inf)
    edge = np.full((S, A + 1), -np.inf)
    stop_lr = np.full(S, -np.inf)
    stop_lr[dag.objects] = lr
    for h in range(dag.depth, -1, -1):
        st = dag.levels[h]
        e = np.where(dag.valid[st, :A], _edge_values(dag, log_flow, st) + lpb[st, :A], -np.inf)
        edge[st, :A] = e
        edge[st, A] = stop_lr[st]
        log_flow[st] = logsumexp(edge[st], axis=1)
    with np.errstate(invalid="ignore"):
        log_pf = np.where(dag.valid, edge - log_flow[:, None], -np.inf)
    if not np.all(np.isfinite(log_flow)):
        raise ValueError("a state has zero flow (every object below it has P_B = 0 paths); "
                         "P_F* is undefined there")  # pragma: no cover - DAG validation prevents it
    log_z_rel = float(log_flow[0])
    return Flows(log_flow + shift, edge + shift, log_pf, lpb, log_z_rel + shift, lr_in, dag, shift, log_z_rel)


def state_log_probs(env, log_pf) -> np.ndarray:
    r"""log P(reach s) under the forward policy ``log_pf`` ``(S, A + 1)`` for every state ``(S,)``,
    pushed forward level by level: log m(s') = LSE_{s→s'} (log m(s) + log P_F(s'|s)), m(s0) = 1."""
    dag = as_dag(env)
    lp = dag.check_log_policy(log_pf)
    m = np.full(dag.n_states, -np.inf)
    m[0] = 0.0
    for h in range(dag.depth + 1):
        st = dag.levels[h]
        e = np.isin(dag.edge_src, st)
        src, act, dst = dag.edge_src[e], dag.edge_action[e], dag.edge_dst[e]
        np.logaddexp.at(m, dst, m[src] + lp[src, act])
    return m


def terminating_log_probs(env, log_pf) -> np.ndarray:
    r"""Exact log p_F(x) = log P(reach x) + log P_F(stop|x) of every object ``(n_objects,)``
    (order of ``dag.objects``) under the forward policy ``log_pf`` ``(S, A + 1)`` — mass pushed
    forward in topological order, no sampling."""
    dag = as_dag(env)
    m = state_log_probs(dag, log_pf)
    lp = np.asarray(log_pf, dtype=np.float64)
    return m[dag.objects] + lp[dag.objects, dag.stop]


def terminating_distribution(env, log_pf) -> np.ndarray:
    """p_F(x) ``(n_objects,)``, the exponential of :func:`terminating_log_probs`."""
    return np.exp(terminating_log_probs(env, log_pf))


def tv_distance(p, q) -> float:
    r"""Total variation ½ Σ_x |p(x) − q(x)| between two distributions of the same shape."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    return 0.5 * float(np.sum(np.abs(p - q)))


# ---------------------------------------------------------------------- soft-RL equivalence
@dataclass
class SoftSolution:
    r"""Soft (entropy weight 1) optimal values on a DAG.

    q ``(S, A + 1)`` Q*_soft(s, a) (-inf on unavailable actions), v ``(S,)`` V*_soft, log_policy
    ``(S, A + 1)`` log π*_soft = Q − V; gamma; edge_rewards ``(S, A + 1)`` the rewards used.
    """

    q: np.ndarray
    v: np.ndarray
    log_policy: np.ndarray
    gamma: float
    edge_rewards: np.ndarray

    @property
    def policy(self) -> np.ndarray:
        return np.exp(self.log_policy)


def _soft_edge_rewards(dag: DAG, lr: np.ndarray, log_pb: LogPB) -> np.ndarray:
    """r(s, a): log P_B(s|s') on move edges (0 when ``log_pb`` is None), log R(s) on stop."""
    S, A = dag.n_states, dag.n_actions
    if log_pb is None:
        r = np.where(dag.valid, 0.0, -np.inf)
    else:
        r = backward_log_policy(dag, log_pb)
    r[:, A] = -np.inf
    r[dag.objects, A] = lr
    return r


def soft_values(env, log_reward, *, log_pb: LogPB = "uniform", gamma: float = 1.0,
                log_reward_floor: Optional[float] = None) -> SoftSolution:
    r"""Soft-optimal values (entropy weight 1) on a DAG by one backward pass in reverse topological
    order (Tiapkin et al. 2024, "Generative flow networks as entropy-regularized RL", Thm. 1)::

        Q(s, a) = r(s, a) + γ V(s'_a),   Q(s, stop) = log R(s),   V(s) = LSE_a Q(s, a),
        π(a|s) = exp(Q(s, a) − V(s))

    with r(s→s') = log P_B(s|s') (``log_pb`` = ``"uniform"``, ``"path_count"`` or an array) or
    r = 0 (``log_pb=None``: plain soft-Q with only the terminal log R, which samples x ∝ n(x)R(x)).
    With log P_B rewards and γ = 1: V = log F, Q = log F(s') + log P_B(s|s'), π = P_F*, V(s0) = log Z.
    """
    dag = as_dag(env)
    gamma = check_gamma(gamma)
    lr = dag.check_log_reward(log_reward, log_reward_floor=log_reward_floor)
    # γ = 1: every path ends in exactly one stop, so V and Q shift by max log R exactly — run the
    # pass on log R − shift (exact π for log R ~ 1e300) and add the shift back
    shift = float(np.max(lr)) if gamma == 1.0 and lr.size else 0.0
    r = _soft_edge_rewards(dag, lr - shift, log_pb)
    S, A = dag.n_states, dag.n_actions
    v = np.full(S, -np.inf)
    q = np.full((S, A + 1), -np.inf)
    for h in range(dag.depth, -1, -1):
        st = dag.levels[h]
        q[st, :A] = np.where(dag.valid[st, :A], r[st, :A] + gamma * _edge_values(dag, v, st), -np.inf)
        q[st, A] = r[st, A]
        v[st] = logsumexp(q[st], axis=1)
    with np.errstate(invalid="ignore"):
        logpi = np.where(dag.valid, q - v[:, None], -np.inf)
    if shift != 0.0:
        r = r.copy()
        r[:, A] += shift
        q, v = q + shift, v + shift
    return SoftSolution(q, v, logpi, gamma, r)


def soft_rl_mdp(env, log_reward, *, log_pb: LogPB = "uniform", gamma: float = 1.0,
                log_reward_floor: Optional[float] = None):
    r"""The DAG as a sparse :class:`TabularMDP` whose KL-regularised solution (β = 1, reference
    uniform over the *available* actions) is the soft solution with entropy weight 1.

    Returns ``(mdp, ref_policy, shift)``. States: the S DAG states then one absorbing terminal
    state (index S). Actions: the A moves then stop. Rewards: r(s, a) + log |A(s)| where r is
    :func:`soft_values`' edge reward and |A(s)| the number of available actions; unavailable
    actions go to the terminal state with reward 0 and have reference probability 0.

    Why the shift: β KL(π‖U_{A(s)}) = β log|A(s)| − β H(π), so with β = 1 and the reward raised by
    ``shift[s] = log |A(s)|`` the KL objective is the entropy objective restricted to A(s), and
    ``solve(mdp, beta=1, ref_policy=ref_policy)`` returns V = V_soft and Q = Q_soft + shift.
    """
    dag = as_dag(env)
    gamma = check_gamma(gamma)
    lr = dag.check_log_reward(log_reward, log_reward_floor=log_reward_floor)
    r = _soft_edge_rewards(dag, lr, log_pb)
    S, A1 = dag.n_states, dag.n_actions + 1
    n_valid = dag.valid.sum(axis=1)
    shift = np.log(n_valid)
    cols = np.full((S, A1), S, dtype=np.int64)
    cols[:, :-1] = np.where(dag.children >= 0, dag.children, S)
    cols = np.concatenate([cols.ravel(), np.full(A1, S)])
    P2 = sp.csr_matrix((np.ones((S + 1) * A1), cols, np.arange((S + 1) * A1 + 1)), shape=((S + 1) * A1, S + 1))
    R = np.zeros((S + 1, A1))
    R[:S] = np.where(dag.valid, r + shift[:, None], 0.0)
    ref = np.zeros((S + 1, A1))
    ref[:S] = dag.valid / n_valid[:, None]
    ref[S] = 1.0 / A1
    mdp = TabularMDP(P2, R, gamma, terminal=[S], initial=np.eye(S + 1)[0], ref_policy=ref)
    return mdp, ref, shift


def soft_rl_solve(env, log_reward, *, log_pb: LogPB = "uniform", gamma: float = 1.0, method: Optional[str] = None,
                  tol: float = 1e-12, log_reward_floor: Optional[float] = None) -> SoftSolution:
    r""":func:`soft_values` computed instead by the package's generic solver
    (:func:`mdpsandbox.solve` with β = 1 on :func:`soft_rl_mdp`): an independent check of the
    soft-RL equivalence. Returns the same :class:`SoftSolution` fields (Q with the shift removed).

    method : default ``"vi"`` at γ = 1 (exact after depth + 1 sweeps on a DAG) and ``"pi"`` at γ < 1
        (whose certificate reaches round-off)."""
    from .dp import solve  # local import: dp imports nothing from here

    dag = as_dag(env)
    mdp, ref, shift = soft_rl_mdp(dag, log_reward, log_pb=log_pb, gamma=gamma, log_reward_floor=log_reward_floor)
    if method is None:
        method = "vi" if mdp.gamma == 1.0 else "pi"
    sol = solve(mdp, beta=1.0, ref_policy=ref, method=method, tol=tol)
    S = dag.n_states
    q = np.where(dag.valid, sol.q[:S] - shift[:, None], -np.inf)
    v = sol.v[:S]
    with np.errstate(divide="ignore"):
        logpi = np.where(dag.valid, np.log(sol.policy[:S]), -np.inf)
    r = _soft_edge_rewards(dag, dag.check_log_reward(log_reward, log_reward_floor=log_reward_floor), log_pb)
    return SoftSolution(q, v, logpi, mdp.gamma, r)


def kl_control_log_reward(env: TokenMDP, beta: float) -> np.ndarray:
    r"""The GFlowNet reward of KL-regularised control on a token tree (docs/math.md §4, §8):

        log R(x) = log π_ref(x) + R_seq(x)/β,     x a complete sequence (``env.leaves()`` order)

    with R_seq(x) = Σ_t r_t the (undiscounted) return of x. Then log Z = V*(root)/β and
    P_F* = π*_β of ``solve(env, beta=β)`` (requires γ = 1)."""
    if not isinstance(env, TokenMDP):
        raise ValueError(f"env must be a TokenMDP, got {type(env).__name__}")
    beta = check_positive(beta, "beta")
    if env.gamma != 1.0:
        raise ValueError(f"the KL-control ≡ GFlowNet identity needs gamma = 1, got env.gamma = {env.gamma}")
    if env.n_prompts != 1:
        raise ValueError(f"env must have a single prompt, got n_prompts={env.n_prompts}")
    return env.leaf_log_probs() + env.leaf_returns() / beta
