r"""One trainer for every learner: an algorithm registry, the objectives that gather tensors from a
model and a dataset and call the pure losses, and :func:`train`, which records errors against the
exact solution as it goes.

Registering a new algorithm (other learner modules do this)::

    from mdpsandbox.learners.trainer import AlgorithmSpec, register_algorithm

    def my_objective(model, batch, ctx):       # -> scalar torch loss
        g = ctx.logits_at(model, batch.prompts, batch.nodes)
        ...
        return my_pure_loss(...)

    register_algorithm(AlgorithmSpec(name="mine", objective=my_objective, data="transitions",
                                     convention="shiq", description="...", reference="..."))

``data`` names the dataset kind the objective expects — ``"transitions"`` (:class:`Transitions`),
``"sequences"`` (:class:`Paths`), ``"preferences"`` (:class:`Preferences`) — or any other kind when
the spec supplies ``full_data(env)`` and ``batch(dataset)`` itself. ``convention`` says how
:func:`~mdpsandbox.learners.compare.compare` reads the logits (or pass ``metrics`` for a custom
evaluation).
"""
from __future__ import annotations

import copy
import logging
import math
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from .._validate import check_int, check_positive
from ..envs.token import TokenMDP
from ..solvers import Solution, solve
from . import losses as L
from .compare import CONVENTIONS, compare
from .data import Paths, Preferences, Transitions, all_sequences, full_coverage, preference_pairs
from .models import MODELS, TabularLogits, TreeModel, make_model

__all__ = [
    "AlgorithmSpec", "ALGORITHMS", "register_algorithm", "algorithm_names", "get_algorithm", "TrainContext",
    "TrainResult", "NonFiniteLossError", "train", "OPTIMIZERS", "to_batch", "Door", "DOORS", "register_door",
    "NegativeControlWarning", "check_known", "read_off",
]

OPTIMIZERS = ("auto", "adam", "sgd", "lbfgs")
_log = logging.getLogger("mdpsandbox.learners")


class NonFiniteLossError(ValueError):
    """Training produced a NaN/inf loss; the message names the step (training stops, nothing is hidden)."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """How to train one algorithm.

    objective : ``(model, batch, ctx) -> scalar loss``; ``batch`` is :func:`to_batch` of the dataset
        (a namespace of torch tensors) and ``ctx`` a :class:`TrainContext`.
    data : dataset kind (``"transitions"``, ``"sequences"``, ``"preferences"`` or custom).
    convention : how the trained logits are compared with the exact solution (``compare``'s
        conventions) — ignored when ``metrics`` is given.
    init : starting logit table of the model (``"ref"``, ``"log_ref"``, ``"zero"``).
    value_head : the model also learns a value (PCL, DRO).
    uses_target : keeps a lagged copy of the model (``ctx.target``), refreshed every ``target_update`` steps.
    sequence_level : optimises a sequence-level objective: requires γ = 1 (equivalent to the token MDP's then).
    full_data : ``env -> dataset`` for ``data="full"`` (default by kind).
    metrics : optional ``(model, env, beta, solution) -> dict`` replacing ``compare``.
    setup : optional ``(model, ctx) -> None`` called once after the model and the context are built and
        before the optimiser: it may attach algorithm-specific parameters to the model as submodules
        (e.g. a GFlowNet's log Z), which the optimiser, the target copy and the returned model then carry.
    defaults : default keyword options of the objective (``ctx.options``).
    negative_control : the method is *expected* to miss the exact answer (L0, ShiQ L2 under per-node
        offsets, CD): :func:`train` then warns (:class:`NegativeControlWarning`) and flags the result
        when it ends far from it.
    arrays : optional ``(model, env, beta, solution) -> (learned, exact)`` dicts of numpy arrays for
        :attr:`TrainResult.learned` / :attr:`TrainResult.exact` (default: read off the logits by
        ``convention``).
    """

    name: str
    objective: Callable[..., torch.Tensor]
    data: str
    convention: str
    init: str = "ref"
    value_head: bool = False
    uses_target: bool = False
    sequence_level: bool = False
    full_data: Optional[Callable[[TokenMDP], Any]] = None
    batch: Optional[Callable[[Any], Any]] = None
    metrics: Optional[Callable[..., dict]] = None
    setup: Optional[Callable[..., None]] = None
    defaults: dict = field(default_factory=dict)
    description: str = ""
    reference: str = ""
    negative_control: bool = False
    arrays: Optional[Callable[..., tuple]] = None


#: name -> AlgorithmSpec. Aliases map to the same spec.
ALGORITHMS: dict[str, AlgorithmSpec] = {}


class NegativeControlWarning(UserWarning):
    """A negative-control learner ended far from the exact answer (as it is expected to)."""


@dataclass(frozen=True)
class Door:
    """A learner that :func:`train` runs with its own loop (distributional TD on MRPs/MDPs, GFlowNets on
    DAGs, Q♯ with the histogram head or Algorithm-1 rounds): ``run(env, **kwargs) -> TrainResult``,
    used for ``name`` when ``applies(env, kwargs)``; otherwise the :class:`AlgorithmSpec` of the same
    name (if any) trains on the token tree."""

    name: str
    run: Callable[..., Any]
    applies: Callable[[Any, dict], bool] = field(default=lambda env, kwargs: True)
    description: str = ""
    reference: str = ""


#: name -> Door (aliases map to the same door).
DOORS: dict[str, Door] = {}


def register_door(door: Door, *, aliases: tuple = ()) -> Door:
    """Add a :class:`Door` (and aliases) to :data:`DOORS`; re-registering a name replaces it."""
    for name in (door.name, *aliases):
        DOORS[name] = door
    return door


def register_algorithm(spec: AlgorithmSpec, *, aliases: tuple = (), overwrite: bool = False) -> AlgorithmSpec:
    """Add an algorithm (and aliases) to :data:`ALGORITHMS`."""
    if spec.metrics is None and spec.convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)} (or give metrics=), "
                         f"got {spec.convention!r}")
    for name in (spec.name, *aliases):
        if name in ALGORITHMS and not overwrite:
            raise ValueError(f"algorithm {name!r} is already registered (pass overwrite=True to replace it)")
        ALGORITHMS[name] = spec
    return spec


def algorithm_names() -> list:
    """Every name :func:`train` accepts (canonical names, without aliases): the token-tree algorithms
    and the learners with their own loop (:data:`DOORS`)."""
    return sorted({s.name for s in ALGORITHMS.values()} | {d.name for d in DOORS.values()})


def get_algorithm(name: str) -> AlgorithmSpec:
    """The :class:`AlgorithmSpec` of a token-tree algorithm (``ValueError`` listing the valid names)."""
    if isinstance(name, AlgorithmSpec):
        return name
    if name not in ALGORITHMS:
        if name in DOORS:
            raise ValueError(f"algorithm {name!r} has its own training loop ({DOORS[name].description}); "
                             f"call train({name!r}, env, ...) directly")
        aliases = sorted((set(ALGORITHMS) | set(DOORS)) - set(algorithm_names()))
        raise ValueError(f"unknown algorithm {name!r}; valid algorithms: {', '.join(algorithm_names())} "
                         f"(aliases: {', '.join(aliases)})")
    return ALGORITHMS[name]


def check_known(name) -> None:
    """``ValueError`` listing the valid names unless ``name`` is an AlgorithmSpec or a registered name."""
    if isinstance(name, AlgorithmSpec) or name in ALGORITHMS or name in DOORS:
        return
    get_algorithm(name)


# ---------------------------------------------------------------------- batches and context
def _t(x, dtype=None):
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)


def _paths_batch(p: Paths, dtype) -> SimpleNamespace:
    return SimpleNamespace(prompts=_t(p.prompts, torch.long), nodes=_t(p.nodes, torch.long),
                           tokens=_t(p.tokens, torch.long), rewards=_t(p.rewards, dtype), mask=_t(p.mask),
                           end_nodes=_t(p.end_nodes, torch.long), returns=_t(p.returns, dtype), n=len(p))


def to_batch(dataset, dtype: torch.dtype = torch.float64) -> SimpleNamespace:
    """Torch view of a dataset: a namespace of tensors (``n`` = number of rows).

    Transitions → prompts, nodes, tokens, rewards, next_nodes, done; Paths → prompts, nodes, tokens,
    rewards, mask, end_nodes, returns; Preferences → chosen, rejected (Paths views), p_chosen."""
    if isinstance(dataset, Transitions):
        return SimpleNamespace(prompts=_t(dataset.prompts, torch.long), nodes=_t(dataset.nodes, torch.long),
                               tokens=_t(dataset.tokens, torch.long), rewards=_t(dataset.rewards, dtype),
                               next_nodes=_t(dataset.next_nodes, torch.long), done=_t(dataset.done),
                               n=len(dataset))
    if isinstance(dataset, Paths):
        return _paths_batch(dataset, dtype)
    if isinstance(dataset, Preferences):
        return SimpleNamespace(chosen=_paths_batch(dataset.chosen, dtype),
                               rejected=_paths_batch(dataset.rejected, dtype),
                               p_chosen=_t(dataset.p_chosen, dtype), n=len(dataset))
    raise ValueError(f"cannot batch a {type(dataset).__name__}; give the AlgorithmSpec a batch= function")


def _subsample(batch: SimpleNamespace, idx: torch.Tensor) -> SimpleNamespace:
    out = {}
    for k, v in vars(batch).items():
        if isinstance(v, SimpleNamespace):
            out[k] = _subsample(v, idx)
        elif torch.is_tensor(v) and v.ndim >= 1 and v.shape[0] == batch.n:
            out[k] = v[idx]
        else:
            out[k] = v
    out["n"] = len(idx)
    return SimpleNamespace(**out)


@dataclass
class TrainContext:
    """What objectives need besides the model and the batch.

    ref, log_ref : ``(n_prompts, n_nodes, V)`` tensors ℓ_ref and log π_ref; beta, gamma; options
    (the spec's defaults updated by ``train(..., **options)``); target: the lagged model (or None)."""

    env: TokenMDP
    beta: float
    gamma: float
    ref: torch.Tensor
    log_ref: torch.Tensor
    options: dict
    target: Optional[TreeModel] = None

    def logits_at(self, model: TreeModel, prompts: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """Logits ``(*nodes.shape, V)`` at (prompt, node) pairs; ``nodes < 0`` (terminal/padding) give
        the root's logits, which callers mask. Evaluates each distinct pair once (or the whole tree in
        one batched call when that is cheaper)."""
        prompts = torch.broadcast_to(prompts.reshape(prompts.shape + (1,) * (nodes.ndim - prompts.ndim)),
                                     nodes.shape)
        nodes = nodes.clamp(min=0)
        N = model.n_nodes
        key = (prompts * N + nodes).reshape(-1)
        uniq, inv = (None, None) if isinstance(model, TabularLogits) else torch.unique(key, return_inverse=True)
        if uniq is None or len(uniq) * 4 >= model.n_prompts * N:
            table = model.all_logits().reshape(-1, model.vocab_size)
            return table[key].reshape(*nodes.shape, model.vocab_size)
        out = model(uniq % N, uniq // N)
        return out[inv].reshape(*nodes.shape, model.vocab_size)

    def values_at(self, model: TreeModel, prompts: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """Learned values ``(*nodes.shape,)`` (0 where ``nodes < 0``: terminal)."""
        prompts = torch.broadcast_to(prompts.reshape(prompts.shape + (1,) * (nodes.ndim - prompts.ndim)),
                                     nodes.shape)
        v = model.all_values()[prompts, nodes.clamp(min=0)]
        return torch.where(nodes >= 0, v, torch.zeros((), dtype=v.dtype))


# ---------------------------------------------------------------------- objectives
def _gather(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return x.gather(-1, a.clamp(min=0)[..., None])[..., 0]


def _transition_tensors(model, b, ctx, source=None):
    src = model if source is None else source
    g_s = ctx.logits_at(model, b.prompts, b.nodes)
    g_n = ctx.logits_at(src, b.prompts, b.next_nodes)
    return g_s, _gather(g_s, b.tokens), g_n


def objective_naive(model, b, ctx):
    """L0 on transitions (logits as Q-values)."""
    _, g_sa, g_n = _transition_tensors(model, b, ctx)
    return L.naive_q_loss(g_sa, b.rewards, g_n, b.done, ctx.gamma, ctx.options.get("backup", "max"))


def objective_kl_q(model, b, ctx):
    """L1 on transitions (q = logits, residual gradient)."""
    _, q_sa, q_n = _transition_tensors(model, b, ctx)
    return L.kl_q_loss(q_sa, b.rewards, q_n, ctx.log_ref[b.prompts, b.next_nodes.clamp(min=0)], b.done,
                       ctx.gamma, ctx.beta)


def objective_soft_q(model, b, ctx):
    """Soft (KL) Q-learning TD on transitions, target network optional."""
    src = ctx.target if ctx.target is not None else model
    with torch.no_grad():
        q_n = ctx.logits_at(src, b.prompts, b.next_nodes)
    q_sa = _gather(ctx.logits_at(model, b.prompts, b.nodes), b.tokens)
    return L.soft_q_td_loss(q_sa, b.rewards, q_n, ctx.log_ref[b.prompts, b.next_nodes.clamp(min=0)], b.done,
                            ctx.gamma, ctx.beta)


def objective_shiq_l2(model, b, ctx):
    """ShiQ L2 on transitions."""
    _, g_sa, g_n = _transition_tensors(model, b, ctx)
    log_ref_sa = ctx.log_ref[b.prompts, b.nodes, b.tokens]
    return L.shiq_l2_loss(g_sa, log_ref_sa, b.rewards, g_n, b.done, ctx.gamma, ctx.beta)


def objective_shiq_l3(model, b, ctx):
    """ShiQ L3 on transitions."""
    _, g_sa, g_n = _transition_tensors(model, b, ctx)
    ref_sa = ctx.ref[b.prompts, b.nodes, b.tokens]
    ref_n = ctx.ref[b.prompts, b.next_nodes.clamp(min=0)]
    return L.shiq_l3_loss(g_sa, ref_sa, b.rewards, g_n, ref_n, b.done, ctx.gamma, ctx.beta)


def _path_terms(model, p, ctx):
    """log π_g/π_ref at the taken tokens ``(n, T)``, logits ``(n, T, V)``, reference ``(n, T, V)``."""
    g = ctx.logits_at(model, p.prompts, p.nodes)
    ref = ctx.ref[p.prompts[:, None], p.nodes.clamp(min=0)]
    return L.log_ratio(g, ref, torch.where(p.mask, p.tokens, -1)), g, ref


def _end_value_shiq(model, p, ctx):
    if bool((p.end_nodes < 0).all()):
        return None
    g_end = ctx.logits_at(model, p.prompts, p.end_nodes)
    v = L.shiq_v(g_end, ctx.ref[p.prompts, p.end_nodes.clamp(min=0)], ctx.beta)
    return torch.where(p.end_nodes >= 0, v, torch.zeros((), dtype=v.dtype))


def objective_shiq(model, p, ctx):
    """Multi-step ShiQ on sequences (all suffixes of every row)."""
    lr, g, ref = _path_terms(model, p, ctx)
    v_g = torch.where(p.mask, L.shiq_v(g, ref, ctx.beta), torch.zeros((), dtype=g.dtype))
    return L.shiq_loss(lr, v_g, p.rewards, p.mask, ctx.gamma, ctx.beta, _end_value_shiq(model, p, ctx))


def objective_pcl(model, p, ctx):
    """PCL on sequences: policy logits + a learned value head."""
    lr, _, _ = _path_terms(model, p, ctx)
    values = ctx.values_at(model, p.prompts, torch.where(p.mask, p.nodes, -1))
    v_end = ctx.values_at(model, p.prompts, p.end_nodes)
    return L.pcl_loss(lr, values, p.rewards, p.mask, ctx.gamma, ctx.beta, v_end, ctx.options.get("max_len"))


def objective_dro(model, p, ctx):
    """DRO on complete sequences: value at the prompt's root + policy."""
    lr, _, _ = _path_terms(model, p, ctx)
    v0 = ctx.values_at(model, p.prompts, torch.zeros_like(p.prompts))
    return L.dro_loss(p.returns, v0, L.sequence_log_ratio(lr, p.mask), ctx.beta)


def objective_dpo(model, b, ctx):
    """DPO on preference pairs."""
    lw, _, _ = _path_terms(model, b.chosen, ctx)
    ll, _, _ = _path_terms(model, b.rejected, ctx)
    return L.dpo_loss(L.sequence_log_ratio(lw, b.chosen.mask), L.sequence_log_ratio(ll, b.rejected.mask), ctx.beta,
                      b.p_chosen)


_PAPER_SHIQ = "Clavier et al. 2025, ShiQ: Bringing back Bellman to LLMs (reconstructed form, docs/math.md §5)"
register_algorithm(AlgorithmSpec(
    "naive", objective_naive, "transitions", "policy", init="ref", defaults={"backup": "max"}, negative_control=True,
    description="L0: logits regressed as Q-values onto r + γ max g(s'); ignores π_ref and β (negative control)",
    reference=_PAPER_SHIQ), aliases=("l0",))
register_algorithm(AlgorithmSpec(
    "kl_q", objective_kl_q, "transitions", "q", init="zero",
    description="L1: KL-regularised Q-space Bellman residual, q → Q*", reference="docs/math.md §3, §5"), aliases=("l1",))
register_algorithm(AlgorithmSpec(
    "soft_q", objective_soft_q, "transitions", "q", init="zero", uses_target=True,
    description="soft (KL) Q-learning, one-step TD with a stop-gradient target (optional target network)",
    reference="Haarnoja et al. 2017; docs/math.md §9"))
register_algorithm(AlgorithmSpec(
    "shiq_l2", objective_shiq_l2, "transitions", "l2", init="ref", negative_control=True,
    description="ShiQ L2 (easing sampling): β g = q + β log π_ref, g → log π_ref + Q*/β", reference=_PAPER_SHIQ),
    aliases=("l2",))
register_algorithm(AlgorithmSpec(
    "shiq_l3", objective_shiq_l3, "transitions", "shiq", init="ref",
    description="ShiQ L3 (shifted init): β g = q + β ℓ_ref, one-step, g → ℓ_ref + Q*/β", reference=_PAPER_SHIQ),
    aliases=("l3",))
register_algorithm(AlgorithmSpec(
    "shiq", objective_shiq, "sequences", "shiq", init="ref",
    description="ShiQ: multi-step consistency over every suffix, g → ℓ_ref + Q*/β", reference=_PAPER_SHIQ))
register_algorithm(AlgorithmSpec(
    "pcl", objective_pcl, "sequences", "policy", init="ref", value_head=True,
    description="path consistency learning over all sub-paths (policy logits + value)",
    reference="Nachum et al. 2017, Bridging the gap between value and policy based RL"))
register_algorithm(AlgorithmSpec(
    "dpo", objective_dpo, "preferences", "policy", init="ref", sequence_level=True,
    description="direct preference optimisation on Bradley–Terry pairs", reference="Rafailov et al. 2023"))
register_algorithm(AlgorithmSpec(
    "dro", objective_dro, "sequences", "policy", init="ref", value_head=True, sequence_level=True,
    description="direct reward optimisation: (R − V(prompt) − β log π/π_ref)² on single trajectories",
    reference="Richemond et al. 2024, Offline regularised RL for LLM alignment"))


# ---------------------------------------------------------------------- training
#: a result is flagged ``far_from_exact`` when its final policy TV (max over nodes) exceeds this
FAR_TV = 1e-3


@dataclass
class TrainResult:
    """Output of :func:`train` (every learner).

    model : the trained torch model (None for the numpy distributional-TD learners).
    logits : numpy ``(n_nodes, V)`` (``(n_prompts, n_nodes, V)``), canonical order (token trees; else None).
    history : one dict per evaluation (``step``, ``loss`` and the metrics of :func:`compare`, or the
        learner's own metrics). algorithm, convention, beta; solution : the exact ``solve(env, beta=β)``.
    learned, exact : the learned numbers as numpy arrays next to their exact counterparts, same keys
        where both exist — token trees: ``q``, ``v``, ``policy`` (read off the logits by convention),
        ``value_head`` (PCL/DRO; exact ``v``), ``log_z``; GFlowNets on DAGs: ``log_pf``, ``log_z``,
        ``terminating``, ``log_flow`` (DB/SubTB); distributional TD: ``probs`` / ``locations``,
        ``mean``, ``atoms`` / ``edges``; Q♯: ``q``, ``policy``.
    negative_control : the algorithm is a negative control (expected to miss);
    far_from_exact : the final error is above the flag threshold (policy TV max > :data:`FAR_TV`, or
        the learner's own criterion); notes : plain-language messages (e.g. the negative-control warning).
    steps_run : updates actually taken (L-BFGS stops once a step changes nothing; said in ``notes``).
    raw : the specialised result object (GFlowNetResult, QSharpResult, TDResult) when there is one.
    """

    model: Any
    logits: Optional[np.ndarray]
    history: list
    algorithm: str = ""
    convention: str = ""
    beta: float = 0.0
    solution: Optional[Solution] = None
    learned: dict = field(default_factory=dict)
    exact: dict = field(default_factory=dict)
    negative_control: bool = False
    far_from_exact: bool = False
    notes: list = field(default_factory=list)
    steps_run: int = 0
    raw: Any = None

    @property
    def final(self) -> dict:
        """The last evaluation."""
        return self.history[-1]

    def curve(self, key: str = "logit_error") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one recorded metric."""
        return (np.array([h["step"] for h in self.history]), np.array([h[key] for h in self.history], dtype=float))

    def errors(self) -> dict:
        """max |learned − exact| for every key present in both (float64 arrays of the same shape)."""
        out = {}
        for k, v in self.learned.items():
            if k in self.exact:
                a, b = np.asarray(v, dtype=np.float64), np.asarray(self.exact[k], dtype=np.float64)
                if a.shape == b.shape:
                    fin = np.isfinite(a) & np.isfinite(b)
                    same_inf = ~fin & (a == b)
                    d = np.abs(np.where(fin, a, 0.0) - np.where(fin, b, 0.0))
                    out[k] = float(np.max(d, initial=0.0)) if np.all(fin | same_inf) else float("inf")
        return out


def _lse(x: np.ndarray) -> np.ndarray:
    from .._math import logsumexp

    return logsumexp(x, axis=-1)


def read_off(logits: np.ndarray, env: TokenMDP, beta: float, convention: str) -> dict:
    r"""The numbers a logit table stands for under ``convention`` (docs/math.md §5), numpy arrays:
    ``policy`` always; ``q`` (``env.shape``) and ``v`` (``(n_nodes,)``) for the Q-conventions —
    shiq: q = β(g − ℓ_ref), v = β(LSE g − LSE ℓ_ref); l2: q = β(g − log π_ref), v = β LSE g;
    q: q = g, v = β LSE(log π_ref + g/β)."""
    from .compare import policy_from_logits

    g = np.asarray(logits, dtype=np.float64)
    out = {"policy": policy_from_logits(g, env, beta=beta, convention=convention)}
    if convention == "shiq":
        out["q"] = beta * (g - env.ref_logits)
        out["v"] = beta * (_lse(g) - _lse(env.ref_logits))
    elif convention == "l2":
        out["q"] = beta * (g - env.log_ref_policy)
        out["v"] = beta * _lse(g)
    elif convention == "q":
        out["q"] = g
        out["v"] = beta * _lse(env.log_ref_policy + g / beta)
    return out


def _token_arrays(spec: AlgorithmSpec, model, env: TokenMDP, beta: float, sol: Solution, logits) -> tuple:
    if spec.arrays is not None:
        return spec.arrays(model, env, beta, sol)
    exact = {"policy": np.asarray(sol.policy), "q": np.asarray(sol.q), "v": np.asarray(sol.v)}
    learned = read_off(logits, env, beta, spec.convention)
    if getattr(model, "has_value", False):
        with torch.no_grad():
            vh = model.all_values().detach().to(torch.float64).cpu().numpy()
        learned["value_head"] = vh[0] if env.n_prompts == 1 else vh
        exact["value_head"] = exact["v"]
    return learned, exact


def _flag(result: "TrainResult", far: bool, spec_name: str, negative: bool, what: str) -> None:
    import warnings

    result.negative_control = bool(negative)
    result.far_from_exact = bool(far)
    if far and negative:
        msg = (f"{spec_name} is a negative control and ended far from the exact answer ({what}); this is the "
               "expected failure, not a training bug")
        result.notes.append(msg)
        warnings.warn(msg, NegativeControlWarning, stacklevel=3)
    elif far:
        result.notes.append(f"{spec_name} ended far from the exact answer ({what}): train longer or check the "
                            "learning rate")


def _default_data(spec: AlgorithmSpec, env: TokenMDP):
    if spec.full_data is not None:
        return spec.full_data(env)
    if spec.data == "transitions":
        return full_coverage(env)
    if spec.data == "sequences":
        return all_sequences(env)
    if spec.data == "preferences":
        return preference_pairs(env)
    raise ValueError(f"algorithm {spec.name!r} uses data kind {spec.data!r}: give its spec a full_data function")


_KIND = {"transitions": Transitions, "sequences": Paths, "preferences": Preferences}


def _check_dataset(spec: AlgorithmSpec, env: TokenMDP, data):
    want = _KIND.get(spec.data)
    if want is Transitions and isinstance(data, Paths):
        data = data.to_transitions()  # one-step losses use every step of the sequences
    if want is not None and not isinstance(data, want):
        raise ValueError(f"algorithm {spec.name!r} needs a {want.__name__} dataset (data kind {spec.data!r}), "
                         f"got {type(data).__name__}")
    if hasattr(data, "check_env"):
        data.check_env(env)
    if hasattr(data, "__len__") and len(data) == 0:
        raise ValueError("data is empty")
    return data


def _make_optimizer(name: str, params, lr: Optional[float]):
    if name == "adam":
        return torch.optim.Adam(params, lr=0.05 if lr is None else lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.1 if lr is None else lr)
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=1.0 if lr is None else lr, max_iter=20, history_size=50,
                                 line_search_fn="strong_wolfe", tolerance_grad=1e-14, tolerance_change=1e-16)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def _evaluate(spec, model, env, beta, sol, step, loss) -> dict:
    with torch.no_grad():
        if spec.metrics is not None:
            m = spec.metrics(model, env, beta, sol)
        else:
            logits = model.all_logits().detach().to(torch.float64).cpu().numpy()
            logits = logits[0] if env.n_prompts == 1 else logits
            m = compare(logits, env, beta=beta, convention=spec.convention, solution=sol)
    return dict(step=int(step), loss=float(loss), **m)


def _resolve_optimizer(optimizer: str, lr, batch_size) -> str:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if optimizer != "auto":
        return optimizer
    # full-batch deterministic losses: L-BFGS with a strong-Wolfe line search needs no learning rate;
    # an explicit lr or minibatches keep the first-order default
    return "lbfgs" if lr is None and batch_size is None else "adam"


#: default number of updates per optimizer (``steps=None``)
DEFAULT_STEPS = {"lbfgs": 50, "adam": 500, "sgd": 500}
#: default β of the token-tree learners (``beta=None``)
DEFAULT_BETA = 1.0


def _check_dtype(dtype) -> "torch.dtype":
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float64 or torch.float32 (a floating dtype for the model's "
                         f"parameters), got {dtype!r}")
    return dtype


def train(algorithm: Union[str, AlgorithmSpec], env: Any, *, beta: Optional[float] = None,
          model: Union[str, nn.Module] = "tabular", data: Any = "full", steps: Optional[int] = None,
          lr: Optional[float] = None, optimizer: str = "auto", seed: int = 0, eval_every: Optional[int] = None,
          progress: bool = True, batch_size: Optional[int] = None, target_update: int = 1,
          dtype: torch.dtype = torch.float64, solution: Optional[Solution] = None,
          model_kwargs: Optional[dict] = None, **options) -> TrainResult:
    r"""Train any learner and record its errors against the exact answer — the one training front door.

    Token trees (``env`` a TokenMDP; :func:`algorithm_names`): ShiQ family, KL-Q, soft-Q, PCL, DPO, DRO,
    L0, the GFlowNet losses on the tree (tb/db/subtb/fm/zvar) and Q♯ / CD on exact reward-to-go laws.
    Learners with their own loop (:data:`DOORS`), same call:

    * ``"tb" | "db" | "subtb" | "fm" | "zvar"`` on a :class:`~mdpsandbox.envs.dag.DAG` (give
      ``log_reward=``; also ``config=GFlowNetConfig(...)`` with its fields as options, ``model=`` a
      GFlowNetModel, ``callback=``, ``log_reward_floor=``; :func:`~mdpsandbox.learners.gflownet.train_gflownet`
      is its thin wrapper, as :func:`~mdpsandbox.learners.qsharp.train_qsharp` is of ``"qsharp"``);
    * ``"qsharp"`` with ``head="histogram"`` (``atoms=``, default: the exact reward-to-go support) and/or
      ``rounds=k`` (Algorithm 1 of Zhou et al. 2025 with ``n_per_round=``; both heads), or on a tree
      whose rewards are not 0/1 (the histogram head is chosen);
    * ``"c51"`` (categorical TD; ``parametrisation="probs"`` default — the CTD mixture — ``"logits"`` the
      mirror step on a logit table (the same iteration written in logits), ``"logits_sgd"`` the plain C51
      cross-entropy gradient step, slow as γ → 1 and flagged ``far_from_exact``), ``"qr"`` (quantile TD, ``n_quantiles=``, ``kappa=``), ``"hl_gauss"`` (``n_bins=``,
      ``sigma=``) on an MRP ``(P, r, gamma)`` or a TabularMDP with ``policy=`` — ``steps`` = iterations,
      ``lr``/``seed`` and a ``config=TDConfig(...)`` as in :mod:`~mdpsandbox.learners.distributional_td`.

    Parameters (token trees)
    ------------------------
    algorithm : a registered name or an :class:`AlgorithmSpec`.
    env : TokenMDP.  beta : KL coefficient β > 0 (default :data:`DEFAULT_BETA` = 1).
    model : ``"tabular"`` | ``"mlp"`` | ``"transformer"`` (built for ``env`` starting at the
        algorithm's init, e.g. g = ℓ_ref) or a :class:`TreeModel` instance (trained in place).
    data : ``"full"`` (every node–action once / every complete sequence once / every pair of
        sequences with exact Bradley–Terry labels, by the algorithm's data kind) or a dataset built
        on this env (:mod:`mdpsandbox.learners.data`; sequences are split into steps for one-step losses).
    optimizer : ``"auto"`` (default: full-batch L-BFGS with a strong-Wolfe line search when neither
        ``lr`` nor ``batch_size`` is given — the deterministic full-data losses converge to ~1e-8 in
        tens of steps — else Adam; auto-chosen L-BFGS stops early, and says so in ``notes``, once a step
        changes no parameter), ``"adam"``, ``"sgd"`` or ``"lbfgs"`` (one update = one L-BFGS step).
    steps : number of updates (default :data:`DEFAULT_STEPS`: 50 L-BFGS, 500 Adam/SGD).
    lr : learning rate (default 0.05 Adam, 0.1 SGD, 1.0 L-BFGS).
    seed : seeds the model's initial weights and minibatch sampling (same seed → same numbers).
    eval_every : evaluate every this many updates (default steps/20); step 0 and the last are always.
    progress : a tqdm bar on a terminal, and one log line per evaluation (``logging`` logger
        ``mdpsandbox.learners``, INFO) so that runs in logs show progress too.
    batch_size : rows per update (default: the whole dataset).
    target_update : refresh the target network every this many updates (algorithms with a target).
    dtype : torch.float64 (default) or torch.float32.
    options : algorithm options (e.g. ``backup="lse"`` for ``naive``, ``max_len=2`` for ``pcl``).

    Returns a :class:`TrainResult`: ``logits`` numpy ``(n_nodes, V)`` in canonical order, ``learned`` /
    ``exact`` arrays, ``history``; negative controls (L0, ShiQ L2, CD) that end far from the exact
    answer say so (:class:`NegativeControlWarning`, ``far_from_exact``, ``notes``). Raises
    ``ValueError`` on bad input before any work, :class:`NonFiniteLossError` (a ValueError) naming the
    step if the loss becomes NaN/inf.
    """
    dtype = _check_dtype(dtype)
    check_known(algorithm)
    if isinstance(algorithm, str) and algorithm in DOORS:
        door = DOORS[algorithm]
        kwargs = dict(beta=beta, model=model, data=data, steps=steps, lr=lr, optimizer=optimizer, seed=seed,
                      eval_every=eval_every, progress=progress, batch_size=batch_size, dtype=dtype,
                      solution=solution, **options)
        if door.applies(env, kwargs):
            return door.run(env, name=algorithm, **kwargs)
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {algorithm!r} cannot train on a {type(env).__name__} "
                             f"({door.description})")
    spec = get_algorithm(algorithm)
    if not isinstance(env, TokenMDP):
        raise ValueError(f"env must be a TokenMDP for {spec.name!r}, got {type(env).__name__}")
    beta = DEFAULT_BETA if beta is None else check_positive(beta, "beta")
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
    if lr is not None:
        lr = check_positive(lr, "lr")
    auto = optimizer == "auto"
    optimizer = _resolve_optimizer(optimizer, lr, batch_size)
    steps = DEFAULT_STEPS[optimizer] if steps is None else check_int(steps, "steps")
    seed = check_int(seed, "seed", minimum=0)
    eval_every = max(1, steps // 20) if eval_every is None else check_int(eval_every, "eval_every")
    target_update = check_int(target_update, "target_update")
    if isinstance(model, str) and model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)} or a TreeModel instance, got {model!r}")
    if spec.sequence_level and env.gamma != 1.0:
        raise ValueError(f"{spec.name} optimises a sequence-level objective, equal to the token MDP's only when "
                         f"gamma == 1; got gamma={env.gamma}")
    unknown = set(options) - set(spec.defaults) - {"max_len"}
    if unknown:
        raise ValueError(f"unknown options for {spec.name}: {sorted(unknown)} (known: {sorted(spec.defaults)})")
    if isinstance(data, str):
        if data != "full":
            raise ValueError(f"data must be 'full' or a dataset, got {data!r}")
        dataset = _default_data(spec, env)
    else:
        dataset = _check_dataset(spec, env, data)

    net = make_model(model, env, init=spec.init, value_head=spec.value_head, seed=seed, dtype=dtype,
                     **(model_kwargs or {}))
    batch_all = spec.batch(dataset) if spec.batch is not None else to_batch(dataset, dtype)
    ctx = TrainContext(env, beta, env.gamma, torch.as_tensor(env._ref, dtype=dtype),
                       torch.as_tensor(env._ref - env.lse_ref.reshape(env.n_prompts, env.n_nodes)[..., None],
                                       dtype=dtype),
                       {**spec.defaults, **options})
    if spec.setup is not None:
        spec.setup(net, ctx)
    if spec.uses_target:
        ctx.target = copy.deepcopy(net).requires_grad_(False)
    sol = solve(env, beta=beta) if solution is None else solution
    opt = _make_optimizer(optimizer, [p for p in net.parameters() if p.requires_grad], lr)
    gen = torch.Generator().manual_seed(seed)

    history = []
    with torch.no_grad():
        loss0 = spec.objective(net, batch_all, ctx)
    history.append(_evaluate(spec, net, env, beta, sol, 0, loss0.item()))

    from tqdm.auto import tqdm

    show = progress and sys.stderr.isatty()
    bar = tqdm(range(1, steps + 1), desc=f"train {spec.name}", disable=not show, leave=False)
    notes, steps_run = [], steps
    for step in bar:
        if batch_size is not None and batch_size < batch_all.n:
            b = _subsample(batch_all, torch.randperm(batch_all.n, generator=gen)[:batch_size])
        else:
            b = batch_all

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = spec.objective(net, b, ctx)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{spec.name}: the loss became {loss.item()} at step {step} "
                                         f"(lr={lr}, optimizer={optimizer}); lower the learning rate or check the data")
            loss.backward()
            return loss

        # with optimizer="auto", L-BFGS stops once a step changes nothing (an explicit optimizer runs every step)
        before = [p.detach().clone() for p in net.parameters()] if auto and optimizer == "lbfgs" else None
        loss = opt.step(closure) if optimizer == "lbfgs" else (closure(), opt.step())[0]
        for prm in net.parameters():
            if not torch.isfinite(prm).all():
                raise NonFiniteLossError(f"{spec.name}: parameters became non-finite at step {step}")
        if ctx.target is not None and step % target_update == 0:
            ctx.target.load_state_dict(net.state_dict())
        stalled = (before is not None and ctx.target is None
                   and all(torch.equal(a, p.detach()) for a, p in zip(before, net.parameters())))
        if step % eval_every == 0 or step == steps or stalled:
            rec = _evaluate(spec, net, env, beta, sol, step, float(loss.detach()))
            history.append(rec)
            bar.set_postfix(loss=f"{float(loss.detach()):.2e}", err=f"{rec.get('logit_error', float('nan')):.2e}")
            if progress:
                _log.info("train %s step %d/%d loss %.3e tv_max %.3e", spec.name, step, steps, rec["loss"],
                          rec.get("tv_max", float("nan")))
        if stalled:
            steps_run = step
            notes.append(f"L-BFGS stopped at step {step} of {steps}: the step changed no parameter "
                         "(converged to machine precision)")
            break
    bar.close()
    with torch.no_grad():
        logits = net.all_logits().detach().to(torch.float64).cpu().numpy()
    logits = logits[0] if env.n_prompts == 1 else logits
    learned, exact = _token_arrays(spec, net, env, beta, sol, logits)
    res = TrainResult(net, logits, history, spec.name, spec.convention, beta, sol, learned, exact,
                      notes=notes, steps_run=steps_run)
    tv = history[-1].get("tv_max", 0.0)
    _flag(res, bool(tv > FAR_TV), spec.name, spec.negative_control, f"policy TV max {tv:.3g} > {FAR_TV:g}")
    return res
