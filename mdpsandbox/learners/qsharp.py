r"""Q♯: distributional guidance for KL-regularised RL, with the CD/VAS baseline (docs/math.md §6).

Zhou, Wang, Swamy, Sun et al. (2025), "Q♯: Provably optimal distributional RL for LLM
post-training". On a token tree (deterministic transitions, γ = 1) the KL-regularised optimal
Q is a functional of the *reference* policy's reward-to-go law Z^{π_ref}(s, a) (docs/math.md §4):

.. math:: Q^*(s,a) = \beta\log E_{z\sim Z^{\pi_{ref}}(s,a)} e^{z/\beta},
          \qquad \pi^*(a|s)\propto\pi_{ref}(a|s)\,e^{Q^*(s,a)/\beta}.

Q♯ learns Ẑ ≈ Z^{π_ref} by maximum likelihood — a target that never moves (no bootstrapping) —
and decodes with logits ℓ_ref + Q̂/β. The baseline CD/VAS (controlled decoding / value-augmented
sampling) regresses the *expected* reward-to-go Q^{π_ref} with a squared loss and decodes with
ℓ_ref + Q̂^{π_ref}/β: the wrong target, which fails on the counterexample tree of the paper
(:func:`mdpsandbox.envs.qsharp_counterexample`).

Layout (rlax-style pure math first, then the readable algorithm):

* Q̂ from a head: :func:`bernoulli_q_over_beta`, :func:`bernoulli_logit_q_over_beta`,
  :func:`histogram_q_over_beta`; guidance :func:`guided_logits`, :func:`guided_policy`.
* Losses (torch, pure): :func:`bernoulli_nll`, :func:`histogram_nll`, :func:`cd_squared_loss`;
  histogram targets :func:`histogram_targets` (the hat projection of the distributional solver).
* Heads: :class:`QSharpHead` (Bernoulli or histogram, on a tabular or a neural model),
  :class:`CDHead` (scalar regression, same models).
* Data (Algorithm 1): :func:`qsharp_rollouts` — roll in with the guided policy for h−1 steps
  (h uniform on 1..H), then π_ref; every later (prefix, token) labelled with its reward-to-go.
* Training: ``train("qsharp", env, rounds=...)`` / its thin wrapper :func:`train_qsharp` (Q♯ and CD
  on the *same* aggregated data, round by round).
* Evaluation: :func:`policy_report` — exact J(π) = E_π R − β KL(π‖π_ref), E_π R and KL by pushing
  mass on the tree (:func:`mdpsandbox.evaluate`), next to π* from :func:`mdpsandbox.solve`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .._math import log_softmax, logsumexp
from .._validate import check_finite, check_int, check_positive

__all__ = [
    "bernoulli_q_over_beta",
    "bernoulli_logit_q_over_beta",
    "histogram_q_over_beta",
    "guided_logits",
    "guided_policy",
    "bernoulli_nll",
    "histogram_nll",
    "cd_squared_loss",
    "histogram_targets",
    "RewardToGo",
    "qsharp_rollouts",
    "PolicyReport",
    "policy_report",
    "QSharpHead",
    "CDHead",
    "fit_head",
    "QSharpResult",
    "train_qsharp",
]


# ====================================================================== Q̂ from a head (numpy, float64)
def _check_beta(beta) -> float:
    return check_positive(beta, "beta")


def _bernoulli_from_logs(log_p: np.ndarray, log_1mp: np.ndarray, inv_beta: float) -> np.ndarray:
    # log((1 − p) + p e^{1/β}) = logaddexp(log(1 − p), log p + 1/β): never forms e^{1/β}
    return np.logaddexp(log_1mp, log_p + inv_beta)


def bernoulli_q_over_beta(p_success, beta: float) -> np.ndarray:
    r"""Q̂/β of a Bernoulli reward-to-go law (0/1 rewards), Zhou et al. (2025), §4:

    .. math:: \hat Q(s,a)/\beta = \log E_{z\sim\mathrm{Bern}(\hat p)}e^{z/\beta}
              = \log\big(1 - \hat p + \hat p\,e^{1/\beta}\big)

    computed as ``logaddexp(log1p(−p̂), log p̂ + 1/β)`` so that β down to 1e-8 stays finite.

    p_success : any shape, values in [0, 1] (the success probability p̂(s, a)).
    beta : β > 0.  Returns Q̂/β, same shape as ``p_success``.
    """
    beta = _check_beta(beta)
    p = check_finite(p_success, "p_success")
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"p_success must lie in [0, 1]; got values in [{p.min()!r}, {p.max()!r}]")
    with np.errstate(divide="ignore"):
        return _bernoulli_from_logs(np.log(p), np.log1p(-p), 1.0 / beta)


def bernoulli_logit_q_over_beta(logit, beta: float) -> np.ndarray:
    r"""Q̂/β from a Bernoulli head's *logit* u (p̂ = σ(u)), the same formula as
    :func:`bernoulli_q_over_beta` with the logs taken in logit space:
    log p̂ = −softplus(−u), log(1 − p̂) = −softplus(u) (no cancellation when p̂ ≈ 0 or 1).

    logit : any shape, finite. Returns Q̂/β, same shape.
    """
    beta = _check_beta(beta)
    u = check_finite(logit, "logit")
    return _bernoulli_from_logs(-np.logaddexp(0.0, -u), -np.logaddexp(0.0, u), 1.0 / beta)


def histogram_q_over_beta(log_probs, atoms, beta: float) -> np.ndarray:
    r"""Q̂/β of a histogram (categorical) reward-to-go law on fixed atoms z_1..z_K
    (Zhou et al. 2025, the histogram head):

    .. math:: \hat Q(s,a)/\beta = \log\sum_k \hat p_k(s,a)\,e^{z_k/\beta}
              = \mathrm{LSE}_k\big(\log\hat p_k(s,a) + z_k/\beta\big).

    log_probs : ``(..., K)`` log p̂ (−inf allowed for empty bins; each slice must normalise).
    atoms : ``(K,)`` finite support. Returns Q̂/β of shape ``(...)``.
    """
    beta = _check_beta(beta)
    z = check_finite(atoms, "atoms")
    if z.ndim != 1:
        raise ValueError(f"atoms must be 1-D (K,), got shape {z.shape}")
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.shape[-1:] != z.shape:
        raise ValueError(f"log_probs must have last axis K = {z.size} (len(atoms)), got shape {lp.shape}")
    if np.any(np.isnan(lp)) or np.any(lp == np.inf):
        raise ValueError("log_probs must not contain NaN or +inf")
    return logsumexp(lp + z / beta, axis=-1)


def guided_logits(ref_logits, q_over_beta) -> np.ndarray:
    r"""Logits of the guided policy, Zhou et al. (2025) eq. (π^{Ẑ}):

    .. math:: \pi(a|s)\propto\pi_{ref}(a|s)\,e^{\hat Q(s,a)/\beta}
              \iff \ell(s,a) = \ell_{ref}(s,a) + \hat Q(s,a)/\beta.

    With Q̂ = Q* (from the exact Z^{π_ref}) this is π*; with Q̂ = Q^{π_ref} (expected reward-to-go)
    it is the CD/VAS baseline. ref_logits, q_over_beta : same shape ``(..., V)``.
    """
    ell = np.asarray(ref_logits, dtype=np.float64)
    qb = np.asarray(q_over_beta, dtype=np.float64)
    if ell.shape != qb.shape:
        raise ValueError(f"ref_logits {ell.shape} and q_over_beta {qb.shape} must have the same shape")
    if np.any(np.isnan(qb)):
        raise ValueError("q_over_beta contains NaN")
    return ell + qb


def guided_policy(ref_logits, q_over_beta) -> np.ndarray:
    """softmax(ℓ_ref + Q̂/β) along the last axis (see :func:`guided_logits`)."""
    return np.exp(log_softmax(guided_logits(ref_logits, q_over_beta), axis=-1))


# ====================================================================== data: Algorithm 1 rollouts
@dataclass(frozen=True)
class RewardToGo:
    r"""Labelled (prefix, token) pairs: ``targets[i]`` is a sample of Z^{π_ref}(s_i, a_i), the
    reward-to-go Σ_{k≥t} r_k after taking ``tokens[i]`` at node ``nodes[i]`` and following π_ref.

    prompts, nodes, tokens, rounds : ``(n,)`` int64; targets : ``(n,)`` float64.
    """

    prompts: np.ndarray
    nodes: np.ndarray
    tokens: np.ndarray
    targets: np.ndarray
    rounds: np.ndarray

    def __len__(self) -> int:
        return len(self.nodes)

    def concat(self, other: "RewardToGo") -> "RewardToGo":
        """Aggregate data over rounds (Algorithm 1 refits on everything collected so far)."""
        return RewardToGo(*(np.concatenate([getattr(self, f), getattr(other, f)])
                            for f in ("prompts", "nodes", "tokens", "targets", "rounds")))

    @staticmethod
    def empty() -> "RewardToGo":
        i = np.zeros(0, dtype=np.int64)
        return RewardToGo(i, i, i, np.zeros(0), i)


def _check_qsharp_env(env):
    from ..envs.token import TokenMDP

    if not isinstance(env, TokenMDP):
        raise ValueError(f"env must be a TokenMDP (Q♯ lives on token trees), got {type(env).__name__}")
    if env.gamma != 1.0:
        raise ValueError(f"env.gamma must be 1 for the Q♯ identity Q* = β log E exp(Z/β) (docs/math.md §4); "
                         f"got gamma={env.gamma}")
    return env


def qsharp_rollouts(env, policy=None, n: int = 256, seed: int = 0, *, round_index: int = 0) -> RewardToGo:
    r"""One round of Q♯ data collection (Zhou et al. 2025, Algorithm 1).

    For each of ``n`` episodes: draw h uniformly from {1, …, H}; roll in with ``policy`` (the
    current guided policy) for the first h−1 tokens, then follow π_ref to the end; label every
    (prefix, token) from position h−1 on ("prefix = all") with its reward-to-go
    :math:`z_t = \sum_{k\ge t} r_k` — an unbiased sample of Z^{π_ref}(s_t, a_t), because every
    token after a_t comes from π_ref. Positions before h−1 are not labelled (their continuation
    contains guided tokens).

    env : TokenMDP with γ = 1. policy : ``env.shape`` probabilities (default π_ref).
    Returns :class:`RewardToGo`. Vectorised: one step per level for all episodes.
    """
    env = _check_qsharp_env(env)
    n = check_int(n, "n")
    ref = np.exp(env._ref - logsumexp(env._ref, axis=-1)[..., None])
    guide = ref if policy is None else env.check_policy(policy)
    rng = np.random.default_rng(seed)
    Pn, H, V = env.n_prompts, env.horizon, env.vocab_size
    prompt = rng.integers(0, Pn, size=n)
    h = rng.integers(1, H + 1, size=n)  # roll-in length h−1 ∈ {0, …, H−1}
    u = rng.random((n, H))
    nodes = -np.ones((n, H), dtype=np.int64)
    tokens = -np.ones((n, H), dtype=np.int64)
    rewards = np.zeros((n, H))
    off = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    for t in range(H):
        idx = np.nonzero(alive)[0]
        if idx.size == 0:
            break
        node = env.level_start[t] + off[idx]
        use_guide = (t < h[idx] - 1)[:, None]
        p = np.where(use_guide, guide[prompt[idx], node], ref[prompt[idx], node])
        cdf = np.cumsum(p, axis=1)
        a = np.minimum((u[idx, t, None] * cdf[:, -1:] >= cdf).sum(axis=1), V - 1)
        nodes[idx, t], tokens[idx, t] = node, a
        rewards[idx, t] = env._rew[prompt[idx], node, a]
        off[idx] = off[idx] * V + a
        if env.eos is not None:
            alive[idx[a == env.eos]] = False
    rtg = np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]  # Σ_{k≥t} r_k (γ = 1)
    keep = (tokens >= 0) & (np.arange(H)[None, :] >= (h - 1)[:, None])
    ep, t = np.nonzero(keep)
    return RewardToGo(prompt[ep].astype(np.int64), nodes[ep, t], tokens[ep, t], rtg[ep, t].copy(),
                      np.full(ep.size, int(round_index), dtype=np.int64))


# ====================================================================== exact evaluation
@dataclass(frozen=True)
class PolicyReport:
    r"""Exact numbers of a policy on a token tree (pushed mass, no sampling).

    objective : J(π) = E_π R − β KL(π‖π_ref) (trajectory KL = Σ of per-token KLs, docs/math.md §4);
    reward : E_π R; kl : E_π Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t)); averages over prompts.
    """

    objective: float
    reward: float
    kl: float

    def as_dict(self) -> dict:
        return {"objective": self.objective, "reward": self.reward, "kl": self.kl}


def policy_report(env, policy, beta: float) -> PolicyReport:
    """Exact J(π), E_π R and KL(π‖π_ref) of ``policy`` (``env.shape``) via :func:`mdpsandbox.evaluate`."""
    from ..solvers.dp import evaluate

    beta = _check_beta(beta)
    J = evaluate(env, policy, beta=beta).value_initial
    R = evaluate(env, policy).value_initial
    return PolicyReport(float(J), float(R), float((R - J) / beta))


# ====================================================================== losses (mdpsandbox.learners.losses.qsharp)
from .losses.qsharp import bernoulli_nll, cd_squared_loss, histogram_nll, histogram_targets  # noqa: E402,F401


# ====================================================================== heads
def _torch():
    import torch

    return torch


class QSharpHead:
    r"""Distributional head Ẑ(s, a) ≈ Z^{π_ref}(s, a) on every edge of a token tree.

    kind : ``"bernoulli"`` (0/1 rewards; one logit per edge, p̂ = σ(u)) or ``"histogram"`` (K logits
        per edge on ``atoms``).
    model : ``"tabular"`` (a free table — :class:`~mdpsandbox.learners.TabularLogits` for the
        Bernoulli head, a ``(P, N, V, K)`` table for the histogram head) or a neural model:
        Bernoulli — ``"mlp"`` / ``"transformer"`` from :func:`~mdpsandbox.learners.make_model` (its V
        outputs per node are the V Bernoulli logits); histogram — ``"mlp"`` (the
        :class:`~mdpsandbox.learners.PrefixMLP` prefix features, an MLP with V·K outputs).

    The histogram head is exact when every reward-to-go is an atom (one-hot targets). A return
    between atoms is split by the hat projection (two-hot target): mean-preserving, but it adds
    variance, so Q̂ = β LSE(log p̂ + z/β) then over-estimates (convexity of exp), by at most one atom
    gap ς (each e^{y/β} becomes a value in [e^{y/β}, e^{(y+ς)/β}]) — use atoms on the reward grid
    when it exists.
    """

    def __init__(self, env, kind: str = "bernoulli", *, atoms=None, model: str = "tabular", seed: int = 0,
                 hidden: int = 64):
        from .models import PrefixMLP, make_model

        torch = _torch()
        if kind not in ("bernoulli", "histogram"):
            raise ValueError(f"kind must be 'bernoulli' or 'histogram', got {kind!r}")
        self.env, self.kind = env, kind
        P, N, V = env.n_prompts, env.n_nodes, env.vocab_size
        if kind == "bernoulli":
            if atoms is not None:
                raise ValueError("atoms is only used by the histogram head (kind='histogram')")
            self.atoms = None
            self.net = make_model(model, env, init="zero", seed=seed)
            self.params = list(self.net.parameters())
            return
        from ..solvers.distributional import check_atoms

        if atoms is None:
            raise ValueError("the histogram head needs atoms (K,) containing every reward-to-go")
        self.atoms, _ = check_atoms(atoms, "atoms", even=False)
        K = self.atoms.size
        if model == "tabular":
            self.table = torch.zeros((P, N, V, K), dtype=torch.float64, requires_grad=True)
            self.params = [self.table]
        elif model == "mlp":
            self.features = PrefixMLP(V, env.horizon, P, seed=seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.net = torch.nn.Sequential(
                    torch.nn.Linear(self.features.n_features, hidden, dtype=torch.float64), torch.nn.SiLU(),
                    torch.nn.Linear(hidden, hidden, dtype=torch.float64), torch.nn.SiLU(),
                    torch.nn.Linear(hidden, V * K, dtype=torch.float64))
            self.params = list(self.net.parameters())
        else:
            raise ValueError(f"model for the histogram head must be 'tabular' or 'mlp', got {model!r}")
        self.model = model

    def all_outputs(self):
        """Head outputs on every edge: Bernoulli logits ``(P, N, V)`` or histogram logits ``(P, N, V, K)``."""
        torch = _torch()
        env = self.env
        if self.kind == "bernoulli":
            return self.net.all_logits()
        if self.model == "tabular":
            return self.table
        nodes = torch.arange(env.n_nodes).repeat(env.n_prompts)
        prompts = torch.arange(env.n_prompts).repeat_interleave(env.n_nodes)
        out = self.net(self.features.features(nodes, prompts))
        return out.reshape(env.n_prompts, env.n_nodes, env.vocab_size, -1)

    def loss_fn(self, data: "RewardToGo", weights=None):
        """A closure computing the maximum-likelihood loss (:func:`bernoulli_nll` /
        :func:`histogram_nll`) on labelled edges; targets are checked and projected once."""
        idx = (data.prompts, data.nodes, data.tokens)
        if self.kind == "bernoulli":
            y = data.targets
            if np.any((y != 0) & (y != 1)):
                raise ValueError("the Bernoulli head needs 0/1 rewards-to-go; use kind='histogram' with atoms")
            return lambda: bernoulli_nll(self.all_outputs()[idx], y, weights)
        t = histogram_targets(data.targets, self.atoms)
        return lambda: histogram_nll(self.all_outputs()[idx], t, weights)

    def loss(self, data: "RewardToGo", weights=None):
        """Maximum-likelihood loss on labelled edges (scalar tensor)."""
        return self.loss_fn(data, weights)()

    def q_over_beta(self, beta: float) -> np.ndarray:
        """Q̂/β on every edge, ``env.shape`` (numpy float64): Bernoulli or histogram formula."""
        torch = _torch()
        with torch.no_grad():
            out = self.all_outputs().detach().to(torch.float64).numpy()
        if self.kind == "bernoulli":
            qb = bernoulli_logit_q_over_beta(out, beta)
        else:
            qb = histogram_q_over_beta(log_softmax(out, axis=-1), self.atoms, beta)
        return self.env._user(qb)

    def policy(self, beta: float) -> np.ndarray:
        """Guided policy softmax(ℓ_ref + Q̂/β), ``env.shape``."""
        return guided_policy(self.env.ref_logits, self.q_over_beta(beta))


class CDHead:
    r"""CD/VAS baseline: a scalar Q̂(s, a) ≈ Q^{π_ref}(s, a) per edge (any model of
    :func:`~mdpsandbox.learners.make_model`, started at 0), fitted by :func:`cd_squared_loss`;
    guidance softmax(ℓ_ref + Q̂/β)."""

    def __init__(self, env, *, model: str = "tabular", seed: int = 0):
        from .models import make_model

        self.env = env
        self.net = make_model(model, env, init="zero", seed=seed)
        self.params = list(self.net.parameters())

    def loss_fn(self, data: "RewardToGo", weights=None):
        idx = (data.prompts, data.nodes, data.tokens)
        return lambda: cd_squared_loss(self.net.all_logits()[idx], data.targets, weights)

    def loss(self, data: "RewardToGo", weights=None):
        """Squared loss to the reward-to-go on labelled edges (scalar tensor)."""
        return self.loss_fn(data, weights)()

    def q_over_beta(self, beta: float) -> np.ndarray:
        torch = _torch()
        beta = _check_beta(beta)
        with torch.no_grad():
            q = self.net.all_logits().detach().to(torch.float64).numpy()
        return self.env._user(q / beta)

    def policy(self, beta: float) -> np.ndarray:
        return guided_policy(self.env.ref_logits, self.q_over_beta(beta))


def _aggregate(data: RewardToGo):
    """Unique (prompt, node, token, target) rows with empirical weights (count / n): the same loss,
    one term per distinct row (full-batch fits stay cheap as data accumulate)."""
    keys = np.stack([data.prompts, data.nodes, data.tokens], axis=1).astype(np.float64)
    rows = np.concatenate([keys, data.targets[:, None]], axis=1)
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    agg = RewardToGo(uniq[:, 0].astype(np.int64), uniq[:, 1].astype(np.int64), uniq[:, 2].astype(np.int64),
                     uniq[:, 3].copy(), np.zeros(len(uniq), dtype=np.int64))
    return agg, counts / counts.sum()


def fit_head(head, data: RewardToGo, *, steps: int = 300, lr: float = 0.1) -> float:
    """Refit ``head`` (:class:`QSharpHead` or :class:`CDHead`) on all data by full-batch Adam on its
    loss; returns the final loss. Raises on a non-finite loss (never continues on NaN)."""
    torch = _torch()
    steps = check_int(steps, "steps")
    lr = check_positive(lr, "lr")
    agg, w = _aggregate(data)
    w = torch.as_tensor(w)
    opt = torch.optim.Adam(head.params, lr=lr)
    loss, loss_fn = None, head.loss_fn(agg, w)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} while fitting {type(head).__name__}")
        loss.backward()
        opt.step()
    return float(loss.item())


# ====================================================================== Algorithm 1
@dataclass
class QSharpResult:
    r"""Output of :func:`train_qsharp`.

    qsharp, cd : the fitted heads; data : all aggregated :class:`RewardToGo` rows;
    history : per round {round, n_data, qsharp: PolicyReport, cd: PolicyReport};
    optimal : PolicyReport of π* (exact, from :func:`mdpsandbox.solve`).
    """

    qsharp: QSharpHead
    cd: CDHead
    data: RewardToGo
    history: list
    optimal: PolicyReport
    beta: float

    @property
    def qsharp_policy(self) -> np.ndarray:
        return self.qsharp.policy(self.beta)

    @property
    def cd_policy(self) -> np.ndarray:
        return self.cd.policy(self.beta)


def _is_bernoulli(env) -> bool:
    g = env.leaf_returns()
    return bool(np.all((g == 0) | (g == 1)) and np.all(env.rewards >= 0))


def train_qsharp(env, beta: float, *, kind: str = "auto", atoms=None, model: str = "tabular",
                 n_rounds: int = 4, n_per_round: int = 512, steps: int = 300, lr: float = 0.1,
                 seed: int = 0, progress: bool = False) -> QSharpResult:
    r"""Q♯ (Zhou et al. 2025, Algorithm 1) and the CD/VAS baseline on the same data — a thin wrapper of
    ``train("qsharp", env, beta=beta, head=kind, atoms=atoms, model=model, rounds=n_rounds,
    n_per_round=n_per_round, steps=steps, lr=lr, seed=seed, progress=progress).raw``
    (:func:`mdpsandbox.learners.train`, the one training front door; its TrainResult also holds the
    learned Q̂ and guided policy next to the exact Q* and π*).

    Round k = 0..n_rounds−1: collect ``n_per_round`` episodes with :func:`qsharp_rollouts`, rolling in
    with the current Q♯-guided policy (round 0: π_ref), aggregate with all earlier rounds, refit the
    Q♯ head by maximum likelihood and the CD head by squared loss (both on all data, ``steps`` full-batch
    Adam steps of size ``lr``, :func:`fit_head`), and record the exact J, E R and KL of both guided
    policies (:func:`policy_report`).

    kind : ``"auto"`` (Bernoulli when every complete sequence pays 0 or 1, else histogram),
        ``"bernoulli"`` or ``"histogram"`` (needs ``atoms`` containing every reward-to-go; ``train`` with
        ``head="histogram"`` defaults them to the exact reward-to-go support instead).
    Returns :class:`QSharpResult`; the seed and the progress flag keep this function's defaults
    (``train``'s own would replace them).
    """
    from .trainer import train

    if kind not in ("auto", "bernoulli", "histogram"):
        raise ValueError(f"kind must be 'auto', 'bernoulli' or 'histogram', got {kind!r}")
    n_rounds = check_int(n_rounds, "n_rounds")
    if kind == "auto":
        kind = "bernoulli" if atoms is None and _is_bernoulli(_check_qsharp_env(env)) else "histogram"
    if kind == "histogram" and atoms is None:
        raise ValueError("kind='histogram' needs atoms (K,) that contain every reward-to-go")
    return train("qsharp", env, beta=beta, head=kind, atoms=atoms, model=model, rounds=n_rounds,
                 n_per_round=n_per_round, steps=steps, lr=lr, seed=seed, progress=progress).raw


def _train_qsharp_engine(env, beta: float, kind: str, atoms, model, n_rounds: int, n_per_round: int, steps: int,
                         lr: float, seed: int, progress: bool, solution=None) -> QSharpResult:
    """The Algorithm-1 loop behind ``train("qsharp", env, rounds=...)`` (and so :func:`train_qsharp`):
    ``kind`` ``"bernoulli"`` | ``"histogram"`` (with ``atoms``), arguments validated by the caller;
    ``solution`` = ``solve(env, beta=beta)`` when already computed."""
    from ..solvers.dp import solve

    head = QSharpHead(env, kind, atoms=atoms, model=model, seed=seed)
    cd = CDHead(env, model=model, seed=seed)
    sol = solve(env, beta=beta) if solution is None else solution
    opt = policy_report(env, sol.policy, beta)
    data, history = RewardToGo.empty(), []
    rounds = range(n_rounds)
    if progress:
        import sys

        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc="Q♯ rounds", leave=False, disable=not sys.stderr.isatty())
    for k in rounds:
        roll_in = None if k == 0 else head.policy(beta)
        data = data.concat(qsharp_rollouts(env, roll_in, n_per_round, seed=seed * 100_003 + k, round_index=k))
        fit_head(head, data, steps=steps, lr=lr)
        fit_head(cd, data, steps=steps, lr=lr)
        history.append({"round": k, "n_data": len(data),
                        "qsharp": policy_report(env, head.policy(beta), beta),
                        "cd": policy_report(env, cd.policy(beta), beta)})
    return QSharpResult(head, cd, data, history, opt, beta)


# ====================================================================== trainer registry
def _population_rows(env, values_fn):
    """Every edge (s, a) with the exact atoms of Z^{π_ref}(s, a) (``return_distribution``) as rows,
    weighted by their probabilities / number of edges: the population ML / regression data."""
    from ..solvers.return_laws import return_distribution

    laws = return_distribution(env)
    sizes = np.diff(laws.edge_offsets)
    e = np.repeat(np.arange(sizes.size), sizes)
    V, N = env.vocab_size, env.n_nodes
    node, tok, prompt = (e // V) % N, e % V, e // (V * N)
    w = laws.edge_probs / sizes.size
    return values_fn(prompt, node, tok, laws.edge_values, w)


def _full_bernoulli(env):
    _check_qsharp_env(env)
    if not _is_bernoulli(env):
        raise ValueError("algorithm 'qsharp' (Bernoulli head) needs 0/1 sequence rewards; use train('qsharp', env, "
                         "head='histogram') for other rewards (atoms default to the exact reward-to-go support)")
    return _population_rows(env, lambda p, n, t, z, w: (RewardToGo(p, n, t, z, np.zeros_like(p)), w))


def _full_cd(env):
    _check_qsharp_env(env)
    return _population_rows(env, lambda p, n, t, z, w: (RewardToGo(p, n, t, z, np.zeros_like(p)), w))


def _batch(dataset):
    import torch
    from types import SimpleNamespace

    data, w = dataset
    return SimpleNamespace(prompts=torch.as_tensor(data.prompts), nodes=torch.as_tensor(data.nodes),
                           tokens=torch.as_tensor(data.tokens), targets=torch.as_tensor(data.targets),
                           weights=torch.as_tensor(w), n=len(data))


def _weights(batch):
    return batch.weights / batch.weights.sum()


def _qsharp_objective(model, batch, ctx):
    u = ctx.logits_at(model, batch.prompts, batch.nodes).gather(-1, batch.tokens[:, None])[:, 0]
    return bernoulli_nll(u, batch.targets, _weights(batch))


def _cd_objective(model, batch, ctx):
    q = ctx.logits_at(model, batch.prompts, batch.nodes).gather(-1, batch.tokens[:, None])[:, 0]
    return cd_squared_loss(q, batch.targets, _weights(batch))


def _qsharp_metrics(model, env, beta, sol):
    """The shared :func:`~mdpsandbox.learners.compare` metrics of the guided logits ℓ_ref + Q̂/β (the
    "shiq" convention: target ℓ_ref + Q*/β), plus the Q error max|β·Q̂/β − Q*|."""
    import torch

    from .compare import compare

    with torch.no_grad():
        u = model.all_logits().detach().to(torch.float64).numpy()
    qb = env._user(bernoulli_logit_q_over_beta(u, beta))
    out = compare(guided_logits(env.ref_logits, qb), env, beta=beta, convention="shiq", solution=sol)
    out["q_error"] = float(np.max(np.abs(beta * qb - sol.q)))
    return out


def _cd_metrics(model, env, beta, sol):
    """:func:`~mdpsandbox.learners.compare` metrics of the CD guided logits ℓ_ref + Q̂^{π_ref}/β."""
    import torch

    from .compare import compare

    with torch.no_grad():
        q = env._user(model.all_logits().detach().to(torch.float64).numpy())
    return compare(guided_logits(env.ref_logits, q / beta), env, beta=beta, convention="shiq", solution=sol)


def _qsharp_arrays(model, env, beta, sol):
    """learned/exact for the Bernoulli population fit: ``q`` = β·Q̂/β vs Q*, ``policy`` guided vs π*."""
    import torch

    with torch.no_grad():
        u = model.all_logits().detach().to(torch.float64).numpy()
    qb = env._user(bernoulli_logit_q_over_beta(u, beta))
    return ({"q": beta * qb, "policy": guided_policy(env.ref_logits, qb)},
            {"q": np.asarray(sol.q), "policy": np.asarray(sol.policy)})


def _cd_arrays(model, env, beta, sol):
    """learned/exact for CD: ``q`` = Q̂^{π_ref} vs the exact Q^{π_ref} (the CD target), ``policy`` guided vs π*
    (CD's guided policy is not π*: a negative control for KL control)."""
    import torch

    from ..solvers.dp import evaluate

    with torch.no_grad():
        q = env._user(model.all_logits().detach().to(torch.float64).numpy())
    q_ref = np.asarray(evaluate(env, env.ref_policy).q)
    return ({"q": q, "policy": guided_policy(env.ref_logits, q / beta)},
            {"q": q_ref, "policy": np.asarray(sol.policy)})


def _door_applies(env, kwargs) -> bool:
    from ..envs.token import TokenMDP

    if any(kwargs.get(k) is not None for k in ("head", "atoms", "rounds")):
        return True
    return isinstance(env, TokenMDP) and env.gamma == 1.0 and not _is_bernoulli(env)


def _qsharp_door(env, *, name, beta=None, model="tabular", data="full", steps=None, lr=None, optimizer="auto",
                 seed=0, eval_every=None, progress=True, batch_size=None, dtype=None, solution=None, head=None,
                 atoms=None, rounds=None, n_per_round=512, **unknown):
    """``train("qsharp", env, head=..., atoms=..., rounds=...)``: the histogram head (default on trees whose
    rewards are not 0/1; atoms default to the exact reward-to-go support) and/or Algorithm 1 rounds
    (:func:`_train_qsharp_engine`, Q♯ and CD on the same data; ``raw`` = :class:`QSharpResult`, what
    :func:`train_qsharp` returns). Every argument is checked before any work."""
    import torch

    from ..solvers.dp import solve
    from ..solvers.return_laws import return_distribution
    from .compare import compare
    from .trainer import DEFAULT_BETA, TrainResult, _flag

    if unknown:
        raise ValueError(f"unknown options for qsharp: {sorted(unknown)} (head, atoms, rounds, n_per_round)")
    if dtype is not None and dtype != torch.float64:
        raise ValueError(f"dtype must be torch.float64 for qsharp with head=/rounds= (float64 heads), got {dtype!r}")
    for arg, val, default in (("data", data, "full"), ("batch_size", batch_size, None)):
        if not (val is default or val == default):
            raise ValueError(f"{arg} is not used by qsharp with head=/rounds= (exact laws or Algorithm-1 rollouts); "
                             f"got {arg}={val!r}")
    if optimizer not in ("auto", "adam", "lbfgs"):
        raise ValueError(f"qsharp with head=/rounds= fits its heads with 'adam' or 'lbfgs' (population fit); "
                         f"got optimizer={optimizer!r}")
    if rounds is not None and optimizer == "lbfgs":
        raise ValueError("optimizer='lbfgs' is not used by qsharp with rounds= (each round refits both heads with "
                         "full-batch Adam, fit_head); got optimizer='lbfgs'")
    env = _check_qsharp_env(env)
    beta = DEFAULT_BETA if beta is None else _check_beta(beta)
    seed = check_int(seed, "seed", minimum=0)
    if rounds is not None:
        rounds = check_int(rounds, "rounds")
        n_per_round = check_int(n_per_round, "n_per_round")
    # the population fit is a deterministic full-batch loss: L-BFGS unless an lr / Adam is asked for
    lbfgs = rounds is None and (optimizer == "lbfgs" or (optimizer == "auto" and lr is None))
    steps = (10 if lbfgs else 300) if steps is None else check_int(steps, "steps")
    lr = (1.0 if lbfgs else 0.1) if lr is None else check_positive(lr, "lr")
    if head is None:
        head = "bernoulli" if atoms is None and _is_bernoulli(env) else "histogram"
    if head not in ("bernoulli", "histogram"):
        raise ValueError(f"head must be 'bernoulli' or 'histogram', got {head!r}")
    if head == "bernoulli" and not _is_bernoulli(env):
        raise ValueError("head='bernoulli' needs 0/1 sequence rewards; use head='histogram' (atoms default to the "
                         "exact reward-to-go support)")
    if head == "histogram" and atoms is None:
        support = np.unique(return_distribution(env).edge_values)
        atoms = support if support.size >= 2 else np.array([support[0], support[0] + 1.0])
    elif head == "histogram":
        from ..solvers.distributional import check_atoms

        check_atoms(atoms, "atoms", even=False)
    elif atoms is not None:
        raise ValueError("atoms is only used by the histogram head (head='histogram')")
    from .models import MODELS

    allowed = ("tabular", "mlp") if head == "histogram" else MODELS
    # a model instance: the Bernoulli population fit trains it in place; Algorithm 1 builds two heads (Q♯, CD)
    instance_ok = head == "bernoulli" and rounds is None and not isinstance(model, str)
    if not (instance_ok or (isinstance(model, str) and model in allowed)):
        raise ValueError(f"model for the {head} head of qsharp must be one of {allowed}"
                         f"{' or a TreeModel instance' if head == 'bernoulli' and rounds is None else ''}, "
                         f"got {model!r}")
    sol = solve(env, beta=beta) if solution is None else solution

    def metrics(h, step, loss):
        qb = h.q_over_beta(beta)
        out = compare(guided_logits(env.ref_logits, qb), env, beta=beta, convention="shiq", solution=sol)
        out["q_error"] = float(np.max(np.abs(beta * qb - np.asarray(sol.q))))
        return dict(step=int(step), loss=float(loss), **out)

    history = []
    if rounds is None:  # population fit on the exact reference return laws (every edge, exact weights)
        rows, w = _population_rows(env, lambda p, n, t, z, w: (RewardToGo(p, n, t, z, np.zeros_like(p)), w))
        qhead = QSharpHead(env, head, atoms=atoms, model=model, seed=seed)
        loss_fn = qhead.loss_fn(rows, torch.as_tensor(w / w.sum()))
        if lbfgs:
            opt = torch.optim.LBFGS(qhead.params, lr=lr, max_iter=20, history_size=50, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-14, tolerance_change=1e-16)
        else:
            opt = torch.optim.Adam(qhead.params, lr=lr)
        every = max(1, steps // 20) if eval_every is None else check_int(eval_every, "eval_every")
        with torch.no_grad():
            history.append(metrics(qhead, 0, float(loss_fn())))

        def closure():
            opt.zero_grad()
            loss = loss_fn()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"qsharp: non-finite loss {loss.item()}")
            loss.backward()
            return loss

        steps_run = steps
        for k in range(1, steps + 1):
            before = [q.detach().clone() for q in qhead.params] if lbfgs else None
            loss = opt.step(closure) if lbfgs else (closure(), opt.step())[0]
            # L-BFGS has converged when a step moves no parameter by more than 1e-10
            stalled = before is not None and all(float((a - q.detach()).abs().max()) <= 1e-10
                                                 for a, q in zip(before, qhead.params))
            if k % every == 0 or k == steps or stalled:
                history.append(metrics(qhead, k, float(loss.detach())))
            if stalled:
                steps_run = k
                break
        raw = qhead
    else:
        steps_run = steps
        raw = _train_qsharp_engine(env, beta, head, atoms, model, rounds, n_per_round, steps, lr, seed, progress,
                                   solution=sol)
        qhead = raw.qsharp
        for rec in raw.history:
            history.append({**metrics(qhead, rec["round"], float("nan")), "n_data": rec["n_data"],
                            "objective": rec["qsharp"].objective, "cd_objective": rec["cd"].objective,
                            "optimal_objective": raw.optimal.objective})
        # the metrics above are of the final head; per-round exact objectives are in objective/cd_objective
    qb = qhead.q_over_beta(beta)
    learned = {"q": beta * qb, "policy": qhead.policy(beta)}
    exact = {"q": np.asarray(sol.q), "policy": np.asarray(sol.policy)}
    out = TrainResult(getattr(qhead, "net", None), None, history, "qsharp", "shiq", beta, sol, learned, exact,
                      steps_run=steps_run, raw=raw)
    tv = history[-1]["tv_max"]
    _flag(out, tv > 1e-2 if rounds is not None else tv > 1e-3, "qsharp", False, f"policy TV max {tv:.3g}")
    return out


def _register():
    from .trainer import ALGORITHMS, AlgorithmSpec, Door, register_algorithm, register_door

    register_door(Door("qsharp", _qsharp_door, applies=_door_applies,
                       description="Q♯ with head='bernoulli'|'histogram' (atoms=), rounds= (Algorithm 1)",
                       reference="Zhou et al. 2025, Q♯: Provably optimal distributional RL for LLM post-training"))

    if "qsharp" not in ALGORITHMS:
        register_algorithm(AlgorithmSpec(
            name="qsharp", objective=_qsharp_objective, data="reward_to_go", convention="shiq", init="zero",
            sequence_level=True, full_data=_full_bernoulli, batch=_batch, metrics=_qsharp_metrics, arrays=_qsharp_arrays,
            description="Q♯ Bernoulli head (logits = Bernoulli logits per edge), ML on the exact reference "
                        "return laws; guidance ℓ_ref + Q̂/β (Algorithm 1: rounds=k)",
            reference="Zhou et al. 2025, Q♯: Provably optimal distributional RL for LLM post-training"))
    if "cd" not in ALGORITHMS:
        register_algorithm(AlgorithmSpec(
            name="cd", objective=_cd_objective, data="reward_to_go", convention="shiq", init="zero",
            sequence_level=True, full_data=_full_cd, batch=_batch, metrics=_cd_metrics, arrays=_cd_arrays,
            negative_control=True,
            description="CD/VAS baseline: squared loss to the reward-to-go (logits = Q̂^{π_ref}); guidance "
                        "ℓ_ref + Q̂^{π_ref}/β", reference="Zhou et al. 2025 (baseline); Mudgal et al. 2024 (CD)"),
            aliases=("vas",))


_register()
