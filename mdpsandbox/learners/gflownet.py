r"""GFlowNet learners (docs/math.md §8): pure losses in log space, a tabular (and a token-tree neural)
parametrisation, trajectory sampling with exploration, and one training function.

Losses — pure functions of tensors, unreduced unless stated; ``log`` everywhere:

* :func:`fm_residual` — flow matching (Bengio et al. 2021, "Flow network based generative models
  for non-iterative diverse candidate generation"), per state s':
  LSE_{s→s'} log F(s→s') − LSE[log R(s'), log F(s'→·)].
* :func:`db_residual` — detailed balance (Bengio et al. 2023, "GFlowNet foundations"), per transition:
  log F(s) + log P_F(s'|s) − log F(s') − log P_B(s|s'), with F := R at the exit.
* :func:`tb_residual` — trajectory balance (Malkin et al. 2022, "Trajectory balance: improved credit
  assignment in GFlowNets"): log Z + Σ log P_F − log R(x) − Σ log P_B.
* :func:`subtb_loss` — SubTB(λ) (Madan et al. 2023, "Learning GFlowNets from partial episodes for
  improved convergence and stability"): Σ_{i<j} λ^{j−i} δ_{ij}² / Σ_{i<j} λ^{j−i} over all
  sub-trajectories, δ_{ij} = log F(s_i) + Σ_{i..j−1} log P_F − log F(s_j) − Σ_{i..j−1} log P_B.
* :func:`zvar_loss` — log-partition variance (Zhang et al. 2023, "Robust scheduling with
  GFlowNets"): the batch variance of ζ(τ) = log R(x) + Σ log P_B − Σ log P_F (no Z parameter; at
  the optimum ζ ≡ log Z).

Trajectories on a :class:`~mdpsandbox.envs.dag.DAG` (:class:`GFlowNetTrajectories`): states
s_0 … s_T = x, actions a_0 … a_T with a_T = stop; the "state after stop" has flow R(x).

Off-policy training: :func:`sample_trajectories` draws from an exploratory *sampler*
(tempered P_F mixed with ε-uniform); the losses always evaluate log P_F under the *policy* model,
never the sampler (the sampler's log-probabilities are returned separately, for diagnostics).

Two training paths through one front door (``mdpsandbox.learners.train``), one loss code
(:func:`gflownet_loss`):

* ``train("tb" | "db" | "subtb" | "fm" | "zvar", dag, log_reward=...)`` — any :class:`DAG` (non-tree
  ones included) and any log R, with on-policy / exploratory sampling or full enumeration, a
  :class:`TabularGFlowNet` or :class:`TreeModelGFlowNet`; :func:`train_gflownet` is a thin wrapper of it
  returning the :class:`GFlowNetResult` (``.raw``).
* the shared trainer, ``mdpsandbox.learners.train("tb" | "db" | "subtb" | "fm" | "zvar", token_env,
  beta=β, model=...)`` (and ``mdpsandbox learn tb``): the tree model of the Learners I framework
  wrapped by :class:`TreeModelGFlowNet` on ``tree_dag(env)`` with the KL-control reward
  R(x) = π_ref(x) e^{R_seq(x)/β} (:func:`~mdpsandbox.solvers.flows.kl_control_log_reward`), so the
  fixed point is P_F = π*_β and log Z = V*(root)/β. Its history holds the shared ``compare()``
  metrics (convention ``"policy"``) plus ``log_z``, ``log_z_star``, ``log_z_error``, ``tv_terminal``
  and, for DB/SubTB, ``log_flow_error``; log Z and the sequence flows live in
  ``result.model.gflownet`` (:class:`TreeFlowParams`). Data: every complete sequence once
  (``data="full"``) or any :class:`GFlowNetTrajectories` of ``tree_dag(env)`` (e.g. sampled off-policy).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from .._validate import check_int, check_positive
from ..envs.dag import DAG, TreeDAG, tree_dag
from ..solvers.flows import (Flows, as_dag, backward_log_policy, flows, kl_control_log_reward,
                             terminating_distribution, terminating_log_probs, tv_distance)

__all__ = [
    "fm_residual", "fm_loss", "db_residual", "db_loss", "tb_residual", "tb_loss", "subtb_residuals",
    "subtb_loss", "zvar_loss", "check_lambda",
    "GFlowNetTrajectories", "sample_trajectories", "enumerate_trajectories",
    "GFlowNetModel", "TabularGFlowNet", "TreeFlowParams", "TreeModelGFlowNet",
    "GFlowNetConfig", "GFlowNetResult", "train_gflownet", "gflownet_loss", "LOSSES", "ALGORITHMS",
]

#: Loss names accepted by :func:`train_gflownet`.
LOSSES = ("fm", "db", "tb", "subtb", "zvar")


# ---------------------------------------------------------------------- pure losses (mdpsandbox.learners.losses.gflownet)
from .losses.gflownet import (check_lambda, db_loss, db_residual, fm_loss, fm_residual, subtb_loss,  # noqa: E402,F401
                              subtb_residuals, tb_loss, tb_residual, zvar_loss)


# ---------------------------------------------------------------------- trajectories
@dataclass(frozen=True)
class GFlowNetTrajectories:
    r"""A batch of complete trajectories on a DAG, padded.

    states ``(n, T + 1)`` int64: s_0 … s_{len−1} = x then ``-1``; actions ``(n, T)`` int64: a_0 …
    a_{len−1} (the last is stop) then ``-1``; lengths ``(n,)`` number of actions (stop included);
    objects ``(n,)`` object index of x (order of ``dag.objects``); log_p_sampler ``(n,)`` log-probability
    of each trajectory under the sampler that drew it (not used by the losses). T = dag.depth + 1.
    """

    states: np.ndarray
    actions: np.ndarray
    lengths: np.ndarray
    objects: np.ndarray
    log_p_sampler: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def check_env(self, env) -> None:
        """Raise ``ValueError`` unless every row is a complete trajectory of ``as_dag(env)`` from s0
        (valid moves, ending with stop at an object)."""
        dag = as_dag(env)
        T = dag.depth + 1
        st, ac, L = np.asarray(self.states), np.asarray(self.actions), np.asarray(self.lengths)
        if st.ndim != 2 or ac.ndim != 2 or st.shape != (len(L), T + 1) or ac.shape != (len(L), T):
            raise ValueError(f"trajectories must have states (n, {T + 1}) and actions (n, {T}) for this env, "
                             f"got {st.shape} and {ac.shape}")
        if len(L) and (L.min() < 1 or L.max() > T):
            raise ValueError(f"trajectory lengths must lie in [1, {T}]")
        rows = np.arange(len(L))
        live = np.arange(T)[None, :] < L[:, None]
        s, a = st[:, :-1], ac
        ok = (~live) | ((s >= 0) & (s < dag.n_states) & (a >= 0) & (a <= dag.n_actions))
        if len(L) and (np.any(st[:, 0] != 0) or not ok.all()):
            raise ValueError("trajectories are not paths of this env (bad state or action index)")
        sc, ac_c = np.clip(s, 0, dag.n_states - 1), np.clip(a, 0, dag.n_actions)
        valid = dag.valid[sc, ac_c]
        move = live & (np.arange(T)[None, :] < (L - 1)[:, None])
        nxt = np.where(ac_c < dag.n_actions, dag.children[sc, np.minimum(ac_c, dag.n_actions - 1)], -1)
        if not (valid | ~live).all() or not ((nxt == st[:, 1:]) | ~move).all() \
                or not (ac[rows, L - 1] == dag.stop).all():
            raise ValueError("trajectories are not paths of this env (an action is unavailable, a transition "
                             "does not follow the DAG, or a row does not end with stop)")


def _sampler_probs(dag: DAG, log_pf: np.ndarray, epsilon: float, temperature: float) -> np.ndarray:
    """(1 − ε) softmax(log P_F / T) + ε Uniform(available actions), ``(S, A + 1)``."""
    z = np.where(dag.valid, log_pf / temperature, -np.inf)
    z = z - np.max(z, axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    u = dag.valid / dag.valid.sum(axis=1, keepdims=True)
    return (1.0 - epsilon) * p + epsilon * u


def sample_trajectories(env, log_pf, n: int, seed: int = 0, *, epsilon: float = 0.0,
                        temperature: float = 1.0) -> GFlowNetTrajectories:
    r"""Sample ``n`` complete trajectories from s0 with the exploratory sampler

        π_s(a|s) = (1 − ε) softmax(log P_F(·|s) / temperature)_a + ε / |A(s)|

    (ε-uniform over the available actions, tempering with ``temperature`` > 0; ε = 0 and
    temperature = 1 is on-policy). One vectorised step per depth level. ``log_pf`` ``(S, A + 1)``
    (numpy, -inf on unavailable actions). Losses must evaluate log P_F under the policy model, not
    ``log_p_sampler``.
    """
    dag = as_dag(env)
    n = check_int(n, "n")
    if not (0.0 <= float(epsilon) <= 1.0):
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon!r}")
    temperature = check_positive(temperature, "temperature")
    lp = np.asarray(log_pf, dtype=np.float64)
    probs = _sampler_probs(dag, lp, float(epsilon), temperature)
    cdf = np.cumsum(probs, axis=1)
    rng = np.random.default_rng(seed)
    T = dag.depth + 1
    states = -np.ones((n, T + 1), dtype=np.int64)
    actions = -np.ones((n, T), dtype=np.int64)
    logp = np.zeros(n)
    cur = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    lengths = np.zeros(n, dtype=np.int64)
    A = dag.n_actions
    with np.errstate(divide="ignore"):
        logprobs = np.log(probs)
    for t in range(T):
        idx = np.nonzero(alive)[0]
        if idx.size == 0:
            break
        s = cur[idx]
        states[idx, t] = s
        u = rng.random(idx.size) * cdf[s, -1]
        a = np.minimum((u[:, None] >= cdf[s]).sum(axis=1), A)
        # guard against round-off landing on an unavailable action
        bad = ~dag.valid[s, a]
        if bad.any():
            a[bad] = np.argmax(dag.valid[s[bad]] * probs[s[bad]], axis=1)
        actions[idx, t] = a
        logp[idx] += logprobs[s, a]
        lengths[idx] += 1
        stop = a == A
        alive[idx[stop]] = False
        cur[idx[~stop]] = dag.children[s[~stop], a[~stop]]
    if alive.any():  # pragma: no cover - every path reaches a stop within depth + 1 actions
        raise RuntimeError("a trajectory did not stop within depth + 1 actions")
    x = states[np.arange(n), lengths - 1]
    return GFlowNetTrajectories(states, actions, lengths, dag.object_index[x], logp)


def enumerate_trajectories(env, *, max_trajectories: int = 200_000) -> GFlowNetTrajectories:
    r"""Every complete trajectory of the DAG (Σ_x n(x) of them), for exact full-batch losses.
    ``log_p_sampler`` is the uniform-over-trajectories log-probability. Refuses more than
    ``max_trajectories``."""
    dag = as_dag(env)
    total = float(dag.n_paths[dag.objects].sum())
    if total > max_trajectories:
        raise ValueError(f"the DAG has {total:.0f} complete trajectories, more than max_trajectories="
                         f"{max_trajectories}; sample them instead")
    T = dag.depth + 1
    out_s, out_a = [], []
    partial = [([0], [])]
    while partial:
        nxt = []
        for st, ac in partial:
            s = st[-1]
            if dag.can_stop[s]:
                out_s.append(st)
                out_a.append(ac + [dag.stop])
            for a in np.nonzero(dag.children[s] >= 0)[0]:
                nxt.append((st + [int(dag.children[s, a])], ac + [int(a)]))
        partial = nxt
    n = len(out_s)
    states = -np.ones((n, T + 1), dtype=np.int64)
    actions = -np.ones((n, T), dtype=np.int64)
    lengths = np.array([len(a) for a in out_a], dtype=np.int64)
    for i, (st, ac) in enumerate(zip(out_s, out_a)):
        states[i, :len(st)] = st
        actions[i, :len(ac)] = ac
    x = states[np.arange(n), lengths - 1]
    return GFlowNetTrajectories(states, actions, lengths, dag.object_index[x], np.full(n, -math.log(n)))


# ---------------------------------------------------------------------- models
class GFlowNetModel(nn.Module):
    r"""Interface of a GFlowNet parametrisation on a DAG (whole-table views; tabular or neural):

    * ``log_pf_table()`` → ``(S, A + 1)`` log P_F (``-inf`` on unavailable actions);
    * ``log_flow_table()`` → ``(S,)`` log F(s) (DB, SubTB);
    * ``log_z()`` → scalar log Z (TB);
    * ``log_edge_flow_table()`` → ``(S, A + 1)`` log F(s→s') over move actions (FM; stop column
      unused — the exit flow is fixed to R).
    """

    dag: DAG

    def log_pf_table(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def log_flow_table(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def log_z(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def log_edge_flow_table(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TabularGFlowNet(GFlowNetModel):
    r"""The exact (tabular) parametrisation: one free log-flow per state, one logit per (state,
    action) including stop, one log Z. P_F = softmax of the logits over the available actions; for
    FM the same logits are the edge log-flows log F(s→s') (and P_F follows from them with the exit
    flow R). All zeros at initialisation (uniform P_F). float64 by default.
    """

    def __init__(self, env, *, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.dag = as_dag(env)
        S, A1 = self.dag.n_states, self.dag.n_actions + 1
        self.logits = nn.Parameter(torch.zeros(S, A1, dtype=dtype))
        self.log_flow = nn.Parameter(torch.zeros(S, dtype=dtype))
        self.log_z_param = nn.Parameter(torch.zeros((), dtype=dtype))
        self.register_buffer("valid", torch.as_tensor(self.dag.valid), persistent=False)

    def log_pf_table(self) -> torch.Tensor:
        z = self.logits.masked_fill(~self.valid, -math.inf)
        return torch.log_softmax(z, dim=1)

    def log_flow_table(self) -> torch.Tensor:
        return self.log_flow

    def log_z(self) -> torch.Tensor:
        return self.log_z_param

    def log_edge_flow_table(self) -> torch.Tensor:
        return self.logits.masked_fill(~self.valid, -math.inf)


class TreeFlowParams(nn.Module):
    r"""The GFlowNet parameters a token-tree model does not have: log Z (``log_z_param``, scalar) and
    log F(x) of every complete sequence x (``leaf_log_flow`` ``(n_objects,)``, ``env.leaves()`` order;
    F(x) = R(x) at the optimum since P_F(stop|x) = 1). Zeros at initialisation."""

    def __init__(self, n_objects: int, *, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.log_z_param = nn.Parameter(torch.zeros((), dtype=dtype))
        self.leaf_log_flow = nn.Parameter(torch.zeros(check_int(n_objects, "n_objects"), dtype=dtype))


class TreeModelGFlowNet(GFlowNetModel):
    r"""A token-tree model of the Learners I framework (:class:`~mdpsandbox.learners.models.TreeModel`:
    :class:`TabularLogits`, :class:`PrefixMLP`, :class:`PrefixTransformer`) as a GFlowNet on the
    :class:`~mdpsandbox.envs.dag.TreeDAG` of the same tree: P_F(·|node) = softmax of the model's
    logits; a complete sequence only stops; log F(node) = the model's value head (built with
    ``value_head=True``; needed by DB/SubTB), log F(x) of a complete sequence and log Z in
    :class:`TreeFlowParams` (``params``; a fresh one unless given). For FM the model's logits are the
    edge log-flows log F(s→s·a) (P_F = their softmax: internal nodes never stop).
    """

    def __init__(self, model, env: TreeDAG, params: Optional[TreeFlowParams] = None):
        super().__init__()
        if not isinstance(env, TreeDAG):
            raise ValueError(f"env must be a TreeDAG (tree_dag(token_env)), got {type(env).__name__}")
        model.check_tree(env.env)
        self.model = model
        self.dag = env
        dtype = next(model.parameters()).dtype
        internal = env.node_of_state >= 0
        self.register_buffer("nodes", torch.as_tensor(env.node_of_state[internal]), persistent=False)
        self.n_internal = int(internal.sum())
        n_leaf = env.n_states - self.n_internal
        if params is None:
            params = TreeFlowParams(n_leaf, dtype=dtype)
        elif not isinstance(params, TreeFlowParams) or params.leaf_log_flow.shape != (n_leaf,):
            raise ValueError(f"params must be a TreeFlowParams with {n_leaf} sequence flows")
        self.params = params

    def log_pf_table(self) -> torch.Tensor:
        dag = self.dag
        logits = self.model.all_logits()[0][self.nodes]  # (n_internal, V)
        lp_int = torch.log_softmax(logits, dim=1)
        lp_int = lp_int.masked_fill(~torch.as_tensor(dag.valid[:self.n_internal, :-1]), -math.inf)
        # a token that would continue past an EOS / the horizon is still a move in the DAG view
        lp_int = torch.cat([lp_int, torch.full_like(lp_int[:, :1], -math.inf)], dim=1)
        n_leaf = dag.n_states - self.n_internal
        lp_leaf = torch.full((n_leaf, dag.n_actions + 1), -math.inf, dtype=lp_int.dtype)
        lp_leaf[:, -1] = 0.0
        return torch.cat([lp_int, lp_leaf], dim=0)

    def log_flow_table(self) -> torch.Tensor:
        v = self.model.all_values()[0][self.nodes]
        return torch.cat([v, self.params.leaf_log_flow])

    def log_z(self) -> torch.Tensor:
        return self.params.log_z_param

    def log_edge_flow_table(self) -> torch.Tensor:
        """Edge log-flows: the model's logits at internal states (``-inf`` on unavailable tokens and
        on stop); a sequence state has no move (its exit flow is R, fixed by the loss)."""
        dag = self.dag
        logits = self.model.all_logits()[0][self.nodes]
        e = logits.masked_fill(~torch.as_tensor(dag.valid[:self.n_internal, :-1]), -math.inf)
        e = torch.cat([e, torch.full_like(e[:, :1], -math.inf)], dim=1)
        leaf = torch.full((dag.n_states - self.n_internal, dag.n_actions + 1), -math.inf, dtype=e.dtype)
        return torch.cat([e, leaf], dim=0)


# ---------------------------------------------------------------------- assembling losses
def _fm_policy(edge: torch.Tensor, stop_lr: torch.Tensor) -> torch.Tensor:
    """P_F implied by edge flows: softmax over [log F(s→·), log R(s)] (the FM forward policy)."""
    z = torch.cat([edge[:, :-1], stop_lr[:, None]], dim=1)
    return torch.log_softmax(z, dim=1)


class _Tables:
    """Constant index tables of a DAG as torch tensors (built once per training run)."""

    def __init__(self, dag: DAG, log_reward: np.ndarray, log_pb: np.ndarray, dtype):
        self.dag = dag
        self.log_reward = torch.as_tensor(log_reward, dtype=dtype)
        stop_lr = np.full(dag.n_states, -np.inf)
        stop_lr[dag.objects] = log_reward
        self.stop_lr = torch.as_tensor(stop_lr, dtype=dtype)
        self.log_pb = torch.as_tensor(np.where(dag.valid, log_pb, 0.0), dtype=dtype)
        P = int(dag.n_parents.max()) if dag.n_states > 1 else 1
        ps = np.zeros((dag.n_states, P), dtype=np.int64)
        pa = np.zeros((dag.n_states, P), dtype=np.int64)
        pm = np.zeros((dag.n_states, P), dtype=bool)
        for s in range(1, dag.n_states):
            st, ac = dag.parents(s)
            ps[s, :len(st)], pa[s, :len(st)], pm[s, :len(st)] = st, ac, True
        self.parent_state, self.parent_action = torch.as_tensor(ps), torch.as_tensor(pa)
        self.parent_mask = torch.as_tensor(pm)


def gflownet_loss(model: GFlowNetModel, batch: GFlowNetTrajectories, loss: str, tables: "_Tables", *,
                  lam: float = 0.9) -> torch.Tensor:
    r"""The mean ``loss`` (one of :data:`LOSSES`) of ``model`` on a batch of trajectories.

    log P_F is always evaluated under ``model`` (the policy), whatever sampler produced the batch.
    FM is evaluated at every visited state except s0 (with its full parent set); DB on every
    transition (the exit one with F := R); TB, SubTB(λ) and ZVar per trajectory.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    st = torch.as_tensor(batch.states)
    ac = torch.as_tensor(batch.actions)
    L = torch.as_tensor(batch.lengths)
    lr = tables.log_reward[torch.as_tensor(batch.objects)]
    T = ac.shape[1]
    mask = torch.arange(T)[None, :] < L[:, None]
    s_t, a_t = st[:, :-1].clamp(min=0), ac.clamp(min=0)
    if loss == "fm":
        edge = model.log_edge_flow_table()
        visited = st[:, 1:][(st[:, 1:] >= 0)]
        if visited.numel() == 0:
            return edge.sum() * 0.0
        inflow = edge[tables.parent_state[visited], tables.parent_action[visited]]
        inflow = inflow.masked_fill(~tables.parent_mask[visited], -math.inf)
        return fm_loss(inflow, edge[visited, :-1], tables.stop_lr[visited]).mean()
    lpf_table = model.log_pf_table()
    zero = torch.zeros((), dtype=lpf_table.dtype)
    lpf = torch.where(mask, lpf_table[s_t, a_t], zero)
    lpb = torch.where(mask, tables.log_pb[s_t, a_t], zero)
    if loss == "tb":
        return tb_loss(model.log_z(), lpf.sum(1), lr, lpb.sum(1)).mean()
    if loss == "zvar":
        return zvar_loss(lpf.sum(1), lr, lpb.sum(1))
    logF = model.log_flow_table()[st.clamp(min=0)]  # (n, T+1)
    exit_pos = torch.nn.functional.one_hot(L, T + 1).bool()
    logF = torch.where(exit_pos, lr[:, None], logF)
    if loss == "db":
        d = db_loss(logF[:, :-1], lpf, logF[:, 1:], lpb)
        return d[mask].mean()
    return subtb_loss(logF, lpf, lpb, L, lam).mean()


# ---------------------------------------------------------------------- training
@dataclass
class GFlowNetConfig:
    """One GFlowNet training run (readable defaults for the tabular, tree-sized case).

    loss: one of :data:`LOSSES`; n_steps: optimiser updates; batch_size: trajectories per update
    (ignored with ``sampling="enumerate"``: the full enumerated set every update); lr: Adam step
    (``lr_log_z`` for log Z, default 10·lr as is customary for TB); lam: SubTB λ; epsilon,
    temperature: exploration of the sampler; log_pb: ``"uniform"``, ``"path_count"`` or an array;
    sampling: ``"on_policy"`` (sampler built from the current P_F) or ``"enumerate"``; eval_every:
    exact TV/log Z evaluation period; seed; progress (tqdm, off when not a tty).
    """

    loss: str = "tb"
    n_steps: int = 1000
    batch_size: int = 64
    lr: float = 0.05
    lr_log_z: Optional[float] = None
    lam: float = 0.9
    epsilon: float = 0.0
    temperature: float = 1.0
    log_pb: Union[str, np.ndarray] = "uniform"
    sampling: str = "on_policy"
    eval_every: int = 50
    seed: int = 0
    progress: bool = False


@dataclass
class GFlowNetResult:
    r"""Outcome of :func:`train_gflownet`.

    model; exact: the :class:`~mdpsandbox.solvers.flows.Flows` of the task; steps ``(k,)`` evaluation
    steps; tv ``(k,)`` exact TV(p_F, R/Z) (mass pushed forward); log_z ``(k,)`` the model's log Z
    estimate (TB: log Z; DB/SubTB/FM: log F(s0) resp. the total outflow of s0; ZVar: batch mean ζ);
    losses ``(n_steps,)``; wall_time seconds (training only); final_log_pf ``(S, A + 1)``.
    """

    model: GFlowNetModel
    exact: Flows
    steps: np.ndarray
    tv: np.ndarray
    log_z: np.ndarray
    losses: np.ndarray
    wall_time: float
    final_log_pf: np.ndarray

    @property
    def final_tv(self) -> float:
        return float(self.tv[-1])

    @property
    def final_log_z(self) -> float:
        return float(self.log_z[-1])


def _policy_table(model: GFlowNetModel, loss: str, tables: _Tables) -> torch.Tensor:
    if loss == "fm":
        return _fm_policy(model.log_edge_flow_table(), tables.stop_lr)
    return model.log_pf_table()


def _log_z_estimate(model, loss, tables, zeta_mean) -> float:
    with torch.no_grad():
        if loss == "tb":
            return float(model.log_z())
        if loss in ("db", "subtb"):
            return float(model.log_flow_table()[0])
        if loss == "fm":
            e = model.log_edge_flow_table()[0]
            return float(torch.logsumexp(torch.cat([e[:-1], tables.stop_lr[:1]]), dim=0))
        return float(zeta_mean)


def train_gflownet(env, log_reward, config: Optional[GFlowNetConfig] = None, *,
                   model: Optional[GFlowNetModel] = None, log_reward_floor: Optional[float] = None,
                   callback: Optional[Callable[[int, GFlowNetModel], None]] = None, **overrides) -> GFlowNetResult:
    r"""Train a GFlowNet on ``env`` (a :class:`DAG` or a single-prompt TokenMDP tree) towards
    p(x) = R(x)/Z and report the exact TV(p_F, R/Z) along the way (mass pushed forward) — a thin
    wrapper of ``train(loss, as_dag(env), log_reward=log_reward, config=config, model=model,
    log_reward_floor=..., callback=..., **overrides).raw`` (:func:`mdpsandbox.learners.train`, the one
    training front door; its TrainResult also holds the learned arrays next to the exact flows).

    Each update: draw a batch (``sampling="on_policy"``: from the exploratory sampler of the current
    P_F, detached; ``"enumerate"``: all trajectories), evaluate the chosen loss (TB, DB, SubTB(λ), FM or
    ZVar, :func:`gflownet_loss`) with log P_F *of the model* and take one Adam step. ``config`` fields
    can be overridden by keyword (``ValueError`` naming unknown ones); the seed and the progress flag
    are the config's (``train``'s own defaults would replace them). ``callback(step, model)`` runs after
    every update. Returns :class:`GFlowNetResult`.
    """
    from .trainer import train

    if config is not None and not isinstance(config, GFlowNetConfig):
        raise ValueError(f"config must be a GFlowNetConfig, got {type(config).__name__}")
    fields = set(GFlowNetConfig.__dataclass_fields__)
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown options for train_gflownet: {sorted(unknown)} (GFlowNetConfig fields: "
                         f"{sorted(fields)})")
    cfg = replace(config or GFlowNetConfig(), **overrides)
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {cfg.loss!r}")
    return train(cfg.loss, as_dag(env), log_reward=log_reward, config=cfg, model="tabular" if model is None else model,
                 seed=cfg.seed, progress=cfg.progress, log_reward_floor=log_reward_floor, callback=callback).raw


def _train_gflownet_engine(env, log_reward, cfg: GFlowNetConfig, *, model: Optional[GFlowNetModel] = None,
                           log_reward_floor: Optional[float] = None,
                           callback: Optional[Callable[[int, GFlowNetModel], None]] = None,
                           dtype: torch.dtype = torch.float64) -> GFlowNetResult:
    """The GFlowNet training loop behind ``train("tb" | "db" | "subtb" | "fm" | "zvar", dag, ...)`` (and so
    :func:`train_gflownet`): validates ``cfg`` before any work, builds the exact flows of the task and a
    :class:`TabularGFlowNet` (``dtype``) unless ``model`` is given, then runs ``cfg.n_steps`` Adam updates."""
    if not isinstance(cfg, GFlowNetConfig):
        raise ValueError(f"config must be a GFlowNetConfig, got {type(cfg).__name__}")
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {cfg.loss!r}")
    if cfg.sampling not in ("on_policy", "enumerate"):
        raise ValueError(f"sampling must be 'on_policy' or 'enumerate', got {cfg.sampling!r}")
    check_int(cfg.n_steps, "n_steps")
    check_int(cfg.batch_size, "batch_size", minimum=2 if cfg.loss == "zvar" else 1)
    check_int(cfg.eval_every, "eval_every")
    check_positive(cfg.lr, "lr")
    if cfg.lr_log_z is not None:
        check_positive(cfg.lr_log_z, "lr_log_z")
    if cfg.loss == "subtb":
        check_lambda(cfg.lam)
    if not 0.0 <= cfg.epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {cfg.epsilon!r}")
    check_positive(cfg.temperature, "temperature")
    dag = as_dag(env)
    exact = flows(dag, log_reward, log_pb=cfg.log_pb, log_reward_floor=log_reward_floor)
    if model is None:
        model = TabularGFlowNet(dag, dtype=dtype)
    elif model.dag is not dag and (model.dag.n_states, model.dag.n_actions) != (dag.n_states, dag.n_actions):
        raise ValueError("model was built for a different DAG")
    dtype = next(model.parameters()).dtype
    tables = _Tables(dag, exact.log_reward, exact.log_pb, dtype)
    z_params = [p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] == "log_z_param"]
    other = [p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] != "log_z_param"]
    opt = torch.optim.Adam([{"params": other, "lr": cfg.lr},
                            {"params": z_params, "lr": cfg.lr_log_z or 10 * cfg.lr}])
    full = enumerate_trajectories(dag) if cfg.sampling == "enumerate" else None
    rng = np.random.default_rng(cfg.seed)
    steps, tvs, lzs, losses = [], [], [], np.zeros(cfg.n_steps)
    zeta_mean = float("nan")
    if cfg.loss == "zvar":
        # ZVar's log Z estimate is the batch mean of log R + log P_B − log P_F; give step 0 one from a batch
        # of the initial sampler (its own generator, so the training stream is unchanged), not NaN
        with torch.no_grad():
            lp0 = _policy_table(model, cfg.loss, tables).to(torch.float64).numpy()
            b0 = full if full is not None else sample_trajectories(
                dag, lp0, cfg.batch_size, int(np.random.default_rng([cfg.seed, 1]).integers(2**63 - 1)),
                epsilon=cfg.epsilon, temperature=cfg.temperature)
            zeta_mean = _zeta_mean(model, b0, tables)
    bar = None
    if cfg.progress:
        import sys
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.n_steps, desc=f"gflownet-{cfg.loss}", disable=not sys.stderr.isatty())

    def evaluate(step):
        with torch.no_grad():
            lp = _policy_table(model, cfg.loss, tables).to(torch.float64).numpy()
        lp = np.where(dag.valid, lp - _lse_rows(np.where(dag.valid, lp, -np.inf))[:, None], -np.inf)
        steps.append(step)
        tvs.append(tv_distance(terminating_distribution(dag, lp), exact.target))
        lzs.append(_log_z_estimate(model, cfg.loss, tables, zeta_mean))
        return lp

    t0 = time.perf_counter()
    eval_time = 0.0
    for step in range(cfg.n_steps):
        if step % cfg.eval_every == 0:
            te = time.perf_counter()
            evaluate(step)
            eval_time += time.perf_counter() - te
        if full is not None:
            batch = full
        else:
            with torch.no_grad():
                lp = _policy_table(model, cfg.loss, tables).to(torch.float64).numpy()
            batch = sample_trajectories(dag, lp, cfg.batch_size, int(rng.integers(2**63 - 1)),
                                        epsilon=cfg.epsilon, temperature=cfg.temperature)
        opt.zero_grad()
        loss = gflownet_loss(model, batch, cfg.loss, tables, lam=cfg.lam)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{cfg.loss} loss became {float(loss)} at step {step}")
        loss.backward()
        opt.step()
        losses[step] = float(loss.detach())
        if cfg.loss == "zvar":
            with torch.no_grad():
                zeta_mean = _zeta_mean(model, batch, tables)
        if callback is not None:
            callback(step, model)
        if bar is not None:
            bar.update(1)
    wall = time.perf_counter() - t0 - eval_time
    if bar is not None:
        bar.close()
    final = evaluate(cfg.n_steps)
    return GFlowNetResult(model, exact, np.array(steps), np.array(tvs), np.array(lzs), losses, wall, final)


def _zeta_mean(model, batch, tables) -> float:
    st = torch.as_tensor(batch.states)[:, :-1].clamp(min=0)
    ac = torch.as_tensor(batch.actions)
    mask = ac >= 0
    lpf = torch.where(mask, model.log_pf_table()[st, ac.clamp(min=0)], 0.0).sum(1)
    lpb = torch.where(mask, tables.log_pb[st, ac.clamp(min=0)], 0.0).sum(1)
    lr = tables.log_reward[torch.as_tensor(batch.objects)]
    return float((lr + lpb - lpf).mean())


def _lse_rows(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=1, keepdims=True)
    return np.log(np.sum(np.exp(x - m), axis=1)) + m[:, 0]


#: Default :class:`GFlowNetConfig` of :func:`train_gflownet` (the DAG path) by name. On token trees the
#: same losses are registered in the shared trainer (:data:`mdpsandbox.learners.trainer.ALGORITHMS`) as
#: ``"tb"``, ``"db"``, ``"subtb"``, ``"fm"``, ``"zvar"`` (aliases ``"gflownet-<loss>"``).
ALGORITHMS = {f"gflownet-{name}": GFlowNetConfig(loss=name) for name in LOSSES}


# ---------------------------------------------------------------------- shared trainer (token trees)
# ``mdpsandbox.learners.train("tb", token_env, beta=β, model=...)``: the GFlowNet with reward
# R(x) = π_ref(x) exp(R_seq(x)/β) (KL-control ≡ GFlowNet, docs/math.md §8) on the TreeDAG of the env, the
# tree model wrapped by TreeModelGFlowNet and the loss computed by gflownet_loss — the same loss code as
# the DAG path. Its fixed point is P_F = π*_β (softmax of the model's logits: convention "policy")
# and log Z = V*(root)/β.

@dataclass
class _TreeTask:
    """Per-run constants of the trainer path, kept next to the parameters they belong to."""

    dag: TreeDAG
    exact: Flows
    tables: _Tables
    gfn: TreeModelGFlowNet
    beta: float


def _task_of(model) -> _TreeTask:
    head = getattr(model, "gflownet", None)
    task = getattr(head, "task", None)
    if task is None:
        raise ValueError("model has no GFlowNet head: train it with mdpsandbox.learners.train('tb'|'db'|...)")
    return task


def _tree_setup(loss: str):
    def setup(model, ctx) -> None:
        """Attach :class:`TreeFlowParams` as ``model.gflownet`` (reused when already there with the right
        shape) and the task constants: the TreeDAG, R(x) = π_ref(x) e^{R_seq(x)/β}, its exact flows."""
        if loss == "subtb":
            check_lambda(ctx.options.get("lam"))
        if ctx.env.n_prompts != 1:
            raise ValueError(f"GFlowNet losses need a single-prompt TokenMDP, got n_prompts={ctx.env.n_prompts}")
        dag = tree_dag(ctx.env)
        exact = flows(dag, kl_control_log_reward(ctx.env, ctx.beta))
        dtype = next(model.parameters()).dtype
        head = getattr(model, "gflownet", None)
        if not isinstance(head, TreeFlowParams) or head.leaf_log_flow.shape != (dag.n_objects,):
            head = TreeFlowParams(dag.n_objects, dtype=dtype)
            model.gflownet = head
        gfn = TreeModelGFlowNet(model, dag, head)
        # a plain attribute (not a submodule): the wrapper points back at the model
        object.__setattr__(head, "task", _TreeTask(dag, exact, _Tables(dag, exact.log_reward, exact.log_pb, dtype),
                                                   gfn, float(ctx.beta)))
    return setup


def _tree_objective(loss: str):
    def objective(model, batch, ctx) -> torch.Tensor:
        """Mean GFlowNet ``loss`` (:func:`gflownet_loss`) of the wrapped tree model on the trajectories."""
        task = _task_of(model)
        if loss == "zvar" and batch.n < 2:
            raise ValueError(f"zvar needs at least 2 trajectories per update, got batch_size={batch.n}")
        return gflownet_loss(task.gfn, batch, loss, task.tables, lam=ctx.options.get("lam", 0.9))
    objective.__name__ = f"objective_{loss}"
    return objective


def _tree_metrics(loss: str):
    def metrics(model, env, beta, sol) -> dict:
        r""":func:`~mdpsandbox.learners.compare.compare` of P_F = softmax(logits) with π* (convention
        ``"policy"``) plus: ``log_z`` (the loss's estimate: TB log Z; DB/SubTB log F(root); FM the root's
        total outflow; ZVar mean ζ over every complete sequence), ``log_z_star`` = V*(root)/β,
        ``log_z_error``, ``tv_terminal`` = TV(p_F, R/Z) over complete sequences (mass pushed forward),
        and for DB/SubTB ``log_flow_error`` = max_s |log F_θ(s) − log F(s)| over the tree's nodes."""
        from .compare import compare

        task = _task_of(model)
        logits = model.all_logits().detach().to(torch.float64).cpu().numpy()[0]
        out = compare(logits, env, beta=beta, convention="policy", solution=sol)
        dag = task.dag
        lp = _policy_table(task.gfn, loss, task.tables).detach().to(torch.float64).numpy()
        lp = np.where(dag.valid, lp - _lse_rows(np.where(dag.valid, lp, -np.inf))[:, None], -np.inf)
        log_p = terminating_log_probs(dag, lp)
        zeta_mean = float(np.mean(task.exact.log_reward - log_p))  # P_B ≡ 1 on a tree
        log_z = _log_z_estimate(task.gfn, loss, task.tables, zeta_mean)
        log_z_star = float(np.asarray(sol.v).reshape(-1)[0]) / beta
        out.update(log_z=log_z, log_z_star=log_z_star, log_z_error=abs(log_z - log_z_star),
                   tv_terminal=tv_distance(np.exp(log_p), task.exact.target))
        if loss in ("db", "subtb"):
            with torch.no_grad():
                lf = task.gfn.log_flow_table().to(torch.float64).numpy()
            out["log_flow_error"] = float(np.max(np.abs(lf[:task.gfn.n_internal] -
                                                        task.exact.log_flow[:task.gfn.n_internal])))
        return out
    return metrics


def _trajectory_batch(data: GFlowNetTrajectories):
    """Torch view of :class:`GFlowNetTrajectories` for the trainer (rows subsampled together)."""
    from types import SimpleNamespace

    return SimpleNamespace(states=torch.as_tensor(np.asarray(data.states, dtype=np.int64)),
                           actions=torch.as_tensor(np.asarray(data.actions, dtype=np.int64)),
                           lengths=torch.as_tensor(np.asarray(data.lengths, dtype=np.int64)),
                           objects=torch.as_tensor(np.asarray(data.objects, dtype=np.int64)), n=len(data))


def _full_trajectories(env) -> GFlowNetTrajectories:
    """Every complete sequence of the tree once (one trajectory each)."""
    return enumerate_trajectories(tree_dag(env))


_TREE_DESCRIPTIONS = {
    "tb": ("trajectory balance on token trees, R(x) = π_ref(x) e^{R_seq(x)/β}: P_F → π*, log Z → V*(root)/β",
           "Malkin et al. 2022, Trajectory balance; KL-control ≡ GFlowNet (docs/math.md §8)"),
    "db": ("detailed balance on token trees (log F = value head), R(x) = π_ref(x) e^{R_seq(x)/β}: P_F → π*, "
           "log F(s) → V*(s)/β + log π_ref(prefix s)",
           "Bengio et al. 2023, GFlowNet foundations; docs/math.md §8"),
    "subtb": ("SubTB(λ) on token trees (log F = value head; option lam), R(x) = π_ref(x) e^{R_seq(x)/β}: P_F → π*",
              "Madan et al. 2023, Learning GFlowNets from partial episodes; docs/math.md §8"),
    "fm": ("flow matching on token trees (logits = edge log-flows), R(x) = π_ref(x) e^{R_seq(x)/β}: "
           "softmax(logits) → π*, LSE of the root's logits → V*(root)/β",
           "Bengio et al. 2021, Flow network based generative models; docs/math.md §8"),
    "zvar": ("log-partition variance on token trees (no Z parameter), R(x) = π_ref(x) e^{R_seq(x)/β}: P_F → π*",
             "Zhang et al. 2023, Robust scheduling with GFlowNets; docs/math.md §8"),
}


def _register() -> None:
    from .trainer import ALGORITHMS as _SHARED
    from .trainer import AlgorithmSpec, Door, register_algorithm, register_door

    for loss in LOSSES:
        if loss in _SHARED:
            continue
        desc, ref = _TREE_DESCRIPTIONS[loss]
        register_algorithm(AlgorithmSpec(
            name=loss, objective=_tree_objective(loss), data="gflownet_trajectories", convention="policy",
            init="log_ref", value_head=loss in ("db", "subtb"), sequence_level=True,
            full_data=_full_trajectories, batch=_trajectory_batch, metrics=_tree_metrics(loss),
            setup=_tree_setup(loss), defaults={"lam": 0.9} if loss == "subtb" else {},
            description=desc, reference=ref, arrays=_tree_arrays(loss)), aliases=(f"gflownet-{loss}",))
    register_door(Door("tb", _dag_door, applies=_is_dag,
                       description="GFlowNets on a DAG with log_reward= (train_gflownet; tb/db/subtb/fm/zvar)",
                       reference="Malkin et al. 2022; Bengio et al. 2021, 2023; Madan et al. 2023; Zhang et al. 2023"),
                  aliases=tuple(x for loss in LOSSES for x in (loss, f"gflownet-{loss}") if x != "tb"))


def _tree_arrays(loss: str):
    def arrays(model, env, beta, sol):
        """learned/exact: ``policy`` P_F vs π*, ``log_z`` vs V*(root)/β, DB/SubTB ``log_flow`` of the tree's
        internal nodes vs the exact log F."""
        from .trainer import read_off

        m = _tree_metrics(loss)(model, env, beta, sol)
        logits = model.all_logits().detach().to(torch.float64).cpu().numpy()[0]
        learned = {"policy": read_off(logits, env, beta, "policy")["policy"], "log_z": np.float64(m["log_z"])}
        exact = {"policy": np.asarray(sol.policy), "log_z": np.float64(m["log_z_star"])}
        if loss in ("db", "subtb"):
            task = _task_of(model)
            with torch.no_grad():
                lf = task.gfn.log_flow_table().to(torch.float64).numpy()
            learned["log_flow"] = lf[:task.gfn.n_internal]
            exact["log_flow"] = np.asarray(task.exact.log_flow[:task.gfn.n_internal])
        return learned, exact
    return arrays


def _is_dag(env, kwargs) -> bool:
    from ..envs.token import TokenMDP

    return isinstance(env, DAG) and not isinstance(env, TokenMDP)


def _dag_door(env, *, name, beta=None, model="tabular", data="full", steps=None, lr=None, optimizer="auto", seed=0,
              eval_every=None, progress=True, batch_size=None, dtype=torch.float64, solution=None, log_reward=None,
              config: Optional["GFlowNetConfig"] = None, log_reward_floor: Optional[float] = None,
              callback: Optional[Callable[[int, "GFlowNetModel"], None]] = None, **fields):
    """``train("tb" | "db" | "subtb" | "fm" | "zvar", dag, log_reward=..., ...)``: runs the GFlowNet engine
    (:func:`_train_gflownet_engine`, the loop of :func:`train_gflownet`) and returns a TrainResult: learned
    ``log_pf`` / ``log_z`` / ``terminating`` (and ``log_flow`` for DB/SubTB) next to the exact
    :func:`~mdpsandbox.solvers.flows.flows`; ``raw`` is the :class:`GFlowNetResult`.

    Options: ``config=GFlowNetConfig(...)`` and any of its fields as keywords (``steps`` → ``n_steps``;
    ``lr``, ``batch_size``, ``eval_every``, ``seed``, ``progress`` as in ``train``), ``model`` =
    ``"tabular"`` (a :class:`TabularGFlowNet` of ``dtype``) or a :class:`GFlowNetModel`,
    ``log_reward_floor``, ``callback(step, model)``. The algorithm name is the loss; ``train``'s ``seed``
    (default 0) and ``progress`` replace the config's (:func:`train_gflownet` passes the config's)."""
    from .trainer import TrainResult, _flag

    loss = name.replace("gflownet-", "")
    if log_reward is None:
        raise ValueError(f"train({name!r}, dag) needs log_reward= (an (n_objects,) array of log R(x)), e.g. "
                         "mdpsandbox.envs.dag.random_log_reward(dag, seed=0)")
    for arg, val, default in (("data", data, "full"), ("optimizer", optimizer, "auto"), ("beta", beta, None),
                              ("solution", solution, None)):
        if not (val is default or (isinstance(val, str) and val == default)):
            raise ValueError(f"{arg} is not used by {name} on a DAG (Adam on sampled or enumerated trajectories); "
                             f"got {arg}={val!r}")
    if config is not None and not isinstance(config, GFlowNetConfig):
        raise ValueError(f"config must be a GFlowNetConfig, got {type(config).__name__}")
    if "loss" in fields and fields["loss"] != loss:
        raise ValueError(f"loss={fields['loss']!r} contradicts the algorithm name {name!r} (the name is the loss)")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a callable (step, model) -> None, got {callback!r}")
    upd = dict(fields, loss=loss, seed=check_int(seed, "seed", minimum=0), progress=bool(progress))
    if steps is not None:
        upd["n_steps"] = steps
    if lr is not None:
        upd["lr"] = lr
    if batch_size is not None:
        upd["batch_size"] = batch_size
    if eval_every is not None:
        upd["eval_every"] = eval_every
    known = set(GFlowNetConfig.__dataclass_fields__)
    bad = set(upd) - known
    if bad:
        raise ValueError(f"unknown options for {name} on a DAG: {sorted(bad)} (GFlowNetConfig fields: {sorted(known)}; "
                         "also log_reward_floor, callback)")
    gmodel = None if model is None or (isinstance(model, str) and model == "tabular") else model
    if gmodel is not None and not isinstance(gmodel, GFlowNetModel):
        raise ValueError(f"model must be 'tabular' or a GFlowNetModel for {name} on a DAG, got {model!r}")
    res = _train_gflownet_engine(env, log_reward, replace(config or GFlowNetConfig(), **upd), model=gmodel,
                                 log_reward_floor=log_reward_floor, callback=callback, dtype=dtype)
    ex = res.exact
    history = [{"step": int(s), "loss": float(res.losses[min(int(s), len(res.losses) - 1)]), "tv": float(t),
                "log_z": float(z), "log_z_error": abs(float(z) - float(ex.log_z))}
               for s, t, z in zip(res.steps, res.tv, res.log_z)]
    dag = as_dag(env)
    learned = {"log_pf": res.final_log_pf, "log_z": np.float64(res.final_log_z),
               "terminating": terminating_distribution(dag, res.final_log_pf)}
    exact = {"log_pf": np.asarray(ex.log_pf), "log_z": np.float64(ex.log_z), "terminating": np.asarray(ex.target)}
    if loss in ("db", "subtb"):
        with torch.no_grad():
            learned["log_flow"] = res.model.log_flow_table().to(torch.float64).numpy()
        exact["log_flow"] = np.asarray(ex.log_flow)
    out = TrainResult(res.model, None, history, loss, "gflownet", 0.0, None, learned, exact,
                      steps_run=len(res.losses), raw=res)
    _flag(out, res.final_tv > 1e-2, loss, False, f"TV(p_F, R/Z) {res.final_tv:.3g} > 0.01")
    return out


_register()
