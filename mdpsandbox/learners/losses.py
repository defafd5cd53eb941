r"""Pure loss functions for value-based learners on token MDPs (MATH.md §3–5, §9).

Every function is a pure function of torch tensors: no model, no data loader, no state. Training
loops gather the tensors (see :mod:`mdpsandbox.learners.trainer`) and call these. Each function
states its equation, its shapes and its source; residual functions return per-sample residuals
(so identities can be checked), ``*_loss`` functions return a scalar (mean of squares unless
stated). Notation (MATH.md §5): g trained logits, ℓ_ref reference logits, π_g = softmax(g),
π_ref = softmax(ℓ_ref), β > 0 the KL coefficient, γ the discount, ``done`` = the step ends the
episode (next value 0; "LSE g := 0 at terminals").

Shapes: B = batch of transitions; n = batch of sequences, T = steps per sequence (padded, ``mask``
True on real steps, a prefix of each row); V = vocabulary size.

Conventions (what the logits converge to under full coverage):

==========================  =====================================  ==================
loss                        fixed point                            ``convention``
==========================  =====================================  ==================
L0 :func:`naive_q_residual`  g = hard (or τ=1 soft) Q, ignores π_ref  (negative control)
L1 :func:`kl_q_residual`     q = Q*                                 ``"q"``
soft-Q :func:`soft_q_td_loss` q = Q*                                ``"q"``
L2 :func:`shiq_l2_residual`  g = log π_ref + Q*/β                   ``"l2"``
L3 :func:`shiq_l3_residual`  g = ℓ_ref + Q*/β                       ``"shiq"``
ShiQ :func:`shiq_residuals`  g = ℓ_ref + Q*/β                       ``"shiq"``
PCL :func:`pcl_residuals`    π = π*, V = V*                         ``"policy"``
DPO :func:`dpo_loss`         π(x) ∝ π_ref(x) exp(R(x)/β)           ``"policy"``
DRO :func:`dro_loss`         π = π*, V(prompt) = V*(root)           ``"policy"``
==========================  =====================================  ==================
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = [
    "masked_lse", "shiq_q", "shiq_v", "log_ratio", "discounted_suffix_sums",
    "naive_q_residual", "naive_q_loss",
    "kl_q_residual", "kl_q_loss", "kl_value", "soft_q_td_loss",
    "shiq_l2_residual", "shiq_l2_loss", "shiq_l3_residual", "shiq_l3_loss",
    "shiq_residuals", "shiq_residuals_q_form", "shiq_loss",
    "pcl_residuals", "pcl_loss", "sequence_log_ratio", "dpo_loss", "dro_loss",
]


# ---------------------------------------------------------------------- building blocks
def masked_lse(logits: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{LSE}_a\,g(s', a)` with the convention LSE g := 0 at terminals.

    logits ``(..., V)`` at s' (any finite values where ``done``), done ``(...)`` bool → ``(...)``.
    """
    return torch.where(done, torch.zeros((), dtype=logits.dtype), torch.logsumexp(logits, dim=-1))


def shiq_q(g_sa: torch.Tensor, ref_sa: torch.Tensor, beta: float) -> torch.Tensor:
    r"""ShiQ's Q reparameterisation :math:`q_g(s,a) = \beta\,(g(s,a) - \ell_{ref}(s,a))` (MATH.md §5)."""
    return beta * (g_sa - ref_sa)


def shiq_v(g: torch.Tensor, ref: torch.Tensor, beta: float) -> torch.Tensor:
    r""":math:`v_g(s) = \beta\,(\mathrm{LSE}\,g(s) - \mathrm{LSE}\,\ell_{ref}(s))`; g, ref ``(..., V)`` → ``(...)``."""
    return beta * (torch.logsumexp(g, dim=-1) - torch.logsumexp(ref, dim=-1))


def log_ratio(g: torch.Tensor, ref: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \pi_g(a|s) - \log \pi_{ref}(a|s)` at the taken tokens.

    g, ref ``(..., V)`` logits; actions ``(...)`` int64 (``-1`` padding allowed: gives 0 there).
    """
    a = actions.clamp(min=0)[..., None]
    lr = (torch.log_softmax(g, dim=-1).gather(-1, a) - torch.log_softmax(ref, dim=-1).gather(-1, a))[..., 0]
    return torch.where(actions >= 0, lr, torch.zeros((), dtype=lr.dtype))


def discounted_suffix_sums(x: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    r""":math:`S_t = \sum_{k \ge t} \gamma^{k-t} x_k` over the real steps of each row.

    x ``(n, T)``, mask ``(n, T)`` bool → ``(n, T)`` (0 at padding). One (T, T) matrix product.
    """
    T = x.shape[-1]
    k = torch.arange(T)
    expo = (k[None, :] - k[:, None]).to(x.dtype)  # [t, k] = k - t
    G = torch.where(expo >= 0, torch.as_tensor(gamma, dtype=x.dtype) ** expo.clamp(min=0),
                    torch.zeros((), dtype=x.dtype))
    xm = torch.where(mask, x, torch.zeros((), dtype=x.dtype))
    return torch.where(mask, xm @ G.T, torch.zeros((), dtype=x.dtype))


def _mean_sq(r: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    if weights is None:
        return (r**2).mean()
    return (weights * r**2).sum() / weights.sum()


# ---------------------------------------------------------------------- L0: naive logits-as-Q
def naive_q_residual(g_sa: torch.Tensor, reward: torch.Tensor, g_next: torch.Tensor, done: torch.Tensor,
                     gamma: float, backup: str = "max") -> torch.Tensor:
    r"""L0, the naive negative control (MATH.md §5): treat the logits as Q-values,

    .. math:: \delta = g(s,a) - r(s,a) - \gamma\,\mathrm{(soft)max}_{a'} g(s', a')

    with ``backup="max"`` (hard Q-learning; fixed point the *unregularised* Q*) or ``"lse"``
    (soft Q at temperature 1; fixed point the entropy-regularised Q* at τ = 1). Neither involves
    π_ref or β, so softmax(g) is not the KL-regularised optimum π*.

    g_sa, reward ``(B,)``; g_next ``(B, V)`` logits at s'; done ``(B,)`` bool → ``(B,)``.
    """
    if backup == "max":
        nxt = g_next.max(dim=-1).values
    elif backup == "lse":
        nxt = torch.logsumexp(g_next, dim=-1)
    else:
        raise ValueError(f"backup must be 'max' or 'lse', got {backup!r}")
    nxt = torch.where(done, torch.zeros((), dtype=g_sa.dtype), nxt)
    return g_sa - reward - gamma * nxt


def naive_q_loss(g_sa, reward, g_next, done, gamma, backup="max", weights=None) -> torch.Tensor:
    """Mean squared :func:`naive_q_residual` (scalar)."""
    return _mean_sq(naive_q_residual(g_sa, reward, g_next, done, gamma, backup), weights)


# ---------------------------------------------------------------------- L1 / soft Q-learning
def kl_value(q: torch.Tensor, log_ref: torch.Tensor, beta: float) -> torch.Tensor:
    r"""KL-regularised soft value :math:`V(s) = \beta\,\mathrm{LSE}_a(\log\pi_{ref}(a|s) + q(s,a)/\beta)`
    (MATH.md §3); with ``log_ref = 0`` this is the entropy-regularised value at temperature β.

    q, log_ref ``(..., V)`` → ``(...)``."""
    return beta * torch.logsumexp(log_ref + q / beta, dim=-1)


def kl_q_residual(q_sa: torch.Tensor, reward: torch.Tensor, q_next: torch.Tensor, log_ref_next: torch.Tensor,
                  done: torch.Tensor, gamma: float, beta: float) -> torch.Tensor:
    r"""L1, the KL-regularised Q-space Bellman residual (MATH.md §5; the soft Bellman equation of §3):

    .. math:: \delta = q(s,a) - r(s,a) - \gamma\,\beta\,\mathrm{LSE}_{a'}\big(\log\pi_{ref}(a'|s') + q(s',a')/\beta\big)

    (0 past a terminal). Unique fixed point q = Q*. Gradients flow through both sides (residual
    gradient); :func:`soft_q_td_loss` is the semi-gradient (TD) version.

    q_sa, reward ``(B,)``; q_next, log_ref_next ``(B, V)``; done ``(B,)`` bool → ``(B,)``.
    """
    v_next = torch.where(done, torch.zeros((), dtype=q_sa.dtype), kl_value(q_next, log_ref_next, beta))
    return q_sa - reward - gamma * v_next


def kl_q_loss(q_sa, reward, q_next, log_ref_next, done, gamma, beta, weights=None) -> torch.Tensor:
    """Mean squared :func:`kl_q_residual` (scalar)."""
    return _mean_sq(kl_q_residual(q_sa, reward, q_next, log_ref_next, done, gamma, beta), weights)


def soft_q_td_loss(q_sa: torch.Tensor, reward: torch.Tensor, q_next_target: torch.Tensor,
                   log_ref_next: torch.Tensor, done: torch.Tensor, gamma: float, beta: float,
                   weights=None) -> torch.Tensor:
    r"""Soft (KL) Q-learning, one-step TD (Haarnoja et al. 2017; KL form as in MATH.md §3, §9):

    .. math:: L = \big(q(s,a) - \mathrm{sg}[\,r + \gamma\,\beta\,\mathrm{LSE}_{a'}(\log\pi_{ref}(a'|s')
              + q^-(s',a')/\beta)\,]\big)^2

    with sg = stop-gradient and q⁻ the online network or a lagged target network (pass its output
    as ``q_next_target``). Entropy-regularised soft-Q at temperature τ: ``log_ref_next = 0``,
    ``beta = τ``. Fixed point q = Q*. Shapes as :func:`kl_q_residual`; returns a scalar.
    """
    v_next = torch.where(done, torch.zeros((), dtype=q_sa.dtype), kl_value(q_next_target, log_ref_next, beta))
    target = (reward + gamma * v_next).detach()
    return _mean_sq(q_sa - target, weights)


# ---------------------------------------------------------------------- ShiQ L2, L3, multi-step
def shiq_l2_residual(g_sa: torch.Tensor, log_ref_sa: torch.Tensor, reward: torch.Tensor, g_next: torch.Tensor,
                     done: torch.Tensor, gamma: float, beta: float) -> torch.Tensor:
    r"""ShiQ step L2, "easing sampling" (Clavier et al. 2025; reconstructed form, MATH.md §5):
    reparameterise β g = q + β log π_ref so that softmax(g) is the policy,

    .. math:: \delta = \beta g(s,a) - \beta\log\pi_{ref}(a|s) - r(s,a) - \gamma\,\beta\,\mathrm{LSE}\,g(s')

    (LSE g := 0 at terminals). Fixed point g* = log π_ref + Q*/β, softmax(g*) = π*, β LSE g* = V*.
    Starting from LLM logits g = ℓ_ref the residual carries the per-node offset LSE ℓ_ref(s).

    g_sa, log_ref_sa, reward ``(B,)``; g_next ``(B, V)``; done ``(B,)`` → ``(B,)``.
    """
    return beta * g_sa - beta * log_ref_sa - reward - gamma * beta * masked_lse(g_next, done)


def shiq_l2_loss(g_sa, log_ref_sa, reward, g_next, done, gamma, beta, weights=None) -> torch.Tensor:
    """Mean squared :func:`shiq_l2_residual` (scalar)."""
    return _mean_sq(shiq_l2_residual(g_sa, log_ref_sa, reward, g_next, done, gamma, beta), weights)


def shiq_l3_residual(g_sa: torch.Tensor, ref_sa: torch.Tensor, reward: torch.Tensor, g_next: torch.Tensor,
                     ref_next: torch.Tensor, done: torch.Tensor, gamma: float, beta: float) -> torch.Tensor:
    r"""ShiQ step L3, "shifted initialisation" (Clavier et al. 2025; reconstructed form, MATH.md §5):
    β g = q + β ℓ_ref (shift by the reference *logits*),

    .. math:: \delta = \beta\,(g(s,a) - \ell_{ref}(s,a)) - r(s,a)
              - \gamma\,\beta\,(\mathrm{LSE}\,g(s') - \mathrm{LSE}\,\ell_{ref}(s'))

    (0 past a terminal). Unique fixed point g* = ℓ_ref + Q*/β; at g = ℓ_ref, δ = −r exactly.

    g_sa, ref_sa, reward ``(B,)``; g_next, ref_next ``(B, V)``; done ``(B,)`` → ``(B,)``.
    """
    v_next = beta * (masked_lse(g_next, done) - masked_lse(ref_next, done))
    return shiq_q(g_sa, ref_sa, beta) - reward - gamma * v_next


def shiq_l3_loss(g_sa, ref_sa, reward, g_next, ref_next, done, gamma, beta, weights=None) -> torch.Tensor:
    """Mean squared :func:`shiq_l3_residual` (scalar)."""
    return _mean_sq(shiq_l3_residual(g_sa, ref_sa, reward, g_next, ref_next, done, gamma, beta), weights)


def shiq_residuals(log_ratio_taken: torch.Tensor, v_g: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor,
                   gamma: float, beta: float, v_end: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Multi-step ShiQ residuals, V-form (Clavier et al. 2025; reconstructed form, MATH.md §5):

    .. math:: \Delta_t = \sum_{k=t}^{T}\gamma^{k-t}\Big[r_k - \beta\log\frac{\pi_g(a_k|s_k)}{\pi_{ref}(a_k|s_k)}\Big]
              + \gamma^{T+1-t}\,v_g(s_{T+1}) - v_g(s_t)

    with :math:`v_g(s) = \beta(\mathrm{LSE}\,g(s) - \mathrm{LSE}\,\ell_{ref}(s))`. The bootstrap term
    ``v_end`` = v_g(s_{T+1}) is 0 for complete episodes (default) and lets truncated rows be used.
    Identity: :math:`\Delta_t = -\sum_{k \ge t}\gamma^{k-t}\delta_k` with δ the one-step L3 residual
    (MATH.md writes it up to this sign; the squared loss is the same).

    log_ratio_taken ``(n, T)`` (:func:`log_ratio` at the taken tokens), v_g ``(n, T)`` at s_t,
    rewards ``(n, T)``, mask ``(n, T)`` bool (a prefix of each row), v_end ``(n,)`` → ``(n, T)`` (0 at padding).
    """
    x = rewards - beta * log_ratio_taken
    delta = discounted_suffix_sums(x, mask, gamma) - v_g
    if v_end is not None:
        T = mask.shape[1]
        length = mask.sum(dim=1, keepdim=True)
        steps = (length - torch.arange(T)[None, :]).to(x.dtype)  # T_row + 1 - t
        delta = delta + torch.as_tensor(gamma, dtype=x.dtype) ** steps * v_end[:, None]
    return torch.where(mask, delta, torch.zeros((), dtype=x.dtype))


def shiq_residuals_q_form(q_g_taken: torch.Tensor, v_g_next: torch.Tensor, rewards: torch.Tensor,
                          mask: torch.Tensor, gamma: float) -> torch.Tensor:
    r"""Multi-step ShiQ residuals, Q-form: :math:`\Delta_t = -\sum_{k\ge t}\gamma^{k-t}\delta_k`,
    :math:`\delta_k = q_g(s_k,a_k) - r_k - \gamma v_g(s_{k+1})` (the one-step L3 residual).

    Equal to :func:`shiq_residuals` for every g, because β log π_g/π_ref(a|s) = q_g(s,a) − v_g(s).
    q_g_taken ``(n, T)`` = β(g − ℓ_ref) at the taken tokens; v_g_next ``(n, T)`` = v_g(s_{k+1})
    (0 at terminals, the bootstrap value after the last step otherwise) → ``(n, T)``.
    """
    one_step = q_g_taken - rewards - gamma * v_g_next
    return -discounted_suffix_sums(one_step, mask, gamma)


def shiq_loss(log_ratio_taken, v_g, rewards, mask, gamma, beta, v_end=None, reduction: str = "mean") -> torch.Tensor:
    r""":math:`L_{ShiQ} = E_\tau\sum_t \Delta_t^2` (MATH.md §5). ``reduction="sum"`` gives
    Σ_τ Σ_t Δ_t² exactly; ``"mean"`` divides by the number of sequences (same minimiser)."""
    d = shiq_residuals(log_ratio_taken, v_g, rewards, mask, gamma, beta, v_end)
    s = (d**2).sum()
    return s if reduction == "sum" else s / d.shape[0]


# ---------------------------------------------------------------------- PCL
def pcl_residuals(log_ratio_taken: torch.Tensor, values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor,
                  gamma: float, beta: float, v_end: Optional[torch.Tensor] = None,
                  max_len: Optional[int] = None) -> torch.Tensor:
    r"""Path consistency (PCL; Nachum et al. 2017, "Bridging the gap between value and policy based RL"),
    KL-regularised form with deterministic transitions (MATH.md §9): for every sub-path i → i+d,

    .. math:: C_{i,d} = -V(s_i) + \gamma^d V(s_{i+d}) + \sum_{j<d}\gamma^j\Big[r_{i+j}
              - \beta\log\frac{\pi(a_{i+j}|s_{i+j})}{\pi_{ref}(a_{i+j}|s_{i+j})}\Big]

    which is 0 for every sub-path iff π = π* and V = V* (with full coverage). V after the last step
    is ``v_end`` (0 for complete episodes). ``max_len`` caps d (PCL's rollout length; default: all
    sub-paths).

    log_ratio_taken, values, rewards ``(n, T)``; mask ``(n, T)`` → ``(n, T, D)`` residual for start i
    and length d = 1..D (0 where the sub-path leaves the row).
    """
    n, T = mask.shape
    D = T if max_len is None else min(int(max_len), T)
    dt = values.dtype
    zero = torch.zeros((), dtype=dt)
    x = torch.where(mask, rewards - beta * log_ratio_taken, zero)
    length = mask.sum(dim=1)
    vend = torch.zeros(n, dtype=dt) if v_end is None else v_end
    # V(s_t) for t = 0..T, with V(s_len) = v_end and 0 beyond
    v_ext = torch.cat([torch.where(mask, values, zero), torch.zeros(n, 1, dtype=dt)], dim=1)
    v_ext = v_ext.scatter(1, length[:, None], vend[:, None])
    out = []
    partial = torch.zeros(n, T, dtype=dt)
    x_pad = torch.cat([x, torch.zeros(n, T, dtype=dt)], dim=1)
    v_pad = torch.cat([v_ext, torch.zeros(n, T, dtype=dt)], dim=1)
    idx = torch.arange(T)
    for d in range(1, D + 1):
        partial = partial + gamma ** (d - 1) * x_pad[:, idx + d - 1]
        c = -v_ext[:, :T] + gamma**d * v_pad[:, idx + d] + partial
        valid = (idx[None, :] + d) <= length[:, None]
        out.append(torch.where(valid, c, zero))
    return torch.stack(out, dim=-1)


def pcl_loss(log_ratio_taken, values, rewards, mask, gamma, beta, v_end=None, max_len=None) -> torch.Tensor:
    """Mean over valid sub-paths of the squared :func:`pcl_residuals` (scalar)."""
    c = pcl_residuals(log_ratio_taken, values, rewards, mask, gamma, beta, v_end, max_len)
    n, T, D = c.shape
    length = mask.sum(dim=1)
    valid = (torch.arange(T)[None, :, None] + torch.arange(1, D + 1)[None, None, :]) <= length[:, None, None]
    return (c**2).sum() / valid.sum().clamp(min=1)


# ---------------------------------------------------------------------- sequence level: DPO, DRO
def sequence_log_ratio(log_ratio_taken: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\pi(x)/\pi_{ref}(x) = \sum_t \log\pi(a_t|s_t)/\pi_{ref}(a_t|s_t)`; ``(n, T)`` → ``(n,)``."""
    return torch.where(mask, log_ratio_taken, torch.zeros((), dtype=log_ratio_taken.dtype)).sum(dim=1)


def dpo_loss(log_ratio_chosen: torch.Tensor, log_ratio_rejected: torch.Tensor, beta: float,
             p_chosen: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""DPO (Rafailov et al. 2023, "Direct preference optimization"), with soft labels:

    .. math:: L = -p\log\sigma(\beta\Delta) - (1-p)\log\sigma(-\beta\Delta) - H(p),\quad
              \Delta = \log\frac{\pi(x_w)}{\pi_{ref}(x_w)} - \log\frac{\pi(x_l)}{\pi_{ref}(x_l)}

    i.e. KL(Bernoulli(p) ‖ Bernoulli(σ(βΔ))), averaged over pairs. For hard labels (p = 1, the
    default) H(p) = 0 and this is the DPO loss; subtracting the label entropy makes the loss 0 at its
    fixed point. With Bradley–Terry labels p = σ(R(x_w) − R(x_l)) on all pairs, the minimiser is
    π(x) ∝ π_ref(x) exp(R(x)/β) (MATH.md §9).

    log_ratio_chosen, log_ratio_rejected ``(B,)`` (:func:`sequence_log_ratio`); p_chosen ``(B,)`` → scalar.
    """
    z = beta * (log_ratio_chosen - log_ratio_rejected)
    if p_chosen is None:
        return -F.logsigmoid(z).mean()
    p = p_chosen.to(z.dtype)
    ent = -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))
    return (-p * F.logsigmoid(z) - (1 - p) * F.logsigmoid(-z) - ent).mean()


def dro_loss(sequence_return: torch.Tensor, value_prompt: torch.Tensor, log_ratio_sequence: torch.Tensor,
             beta: float, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""DRO, direct reward optimisation (Richemond et al. 2024, "Offline regularised reinforcement
    learning for large language models alignment"): single-trajectory squared loss

    .. math:: L = \tfrac12\big(R(x) - V(\text{prompt}) - \beta\log\frac{\pi(x)}{\pi_{ref}(x)}\big)^2

    with a learned value V. For any behaviour with full support the minimiser is π = π* (sequence
    level) and V = V*(root) = β log E_{π_ref} exp(R/β); 0 there for every x.

    sequence_return, value_prompt, log_ratio_sequence ``(n,)`` → scalar (mean, or weighted mean).
    """
    r = sequence_return - value_prompt - beta * log_ratio_sequence
    return 0.5 * _mean_sq(r, weights)
