r"""Value-based (Bellman-residual) losses on token MDPs (docs/math.md §3, §5, §9): L0 (naive, a negative
control), L1 / KL-Q, soft (KL) Q-learning, ShiQ L2 / L3 and multi-step ShiQ (torch, pure)."""
from __future__ import annotations

from typing import Optional

import torch

from .common import _mean_sq, discounted_suffix_sums, masked_lse, shiq_q

__all__ = [
    "naive_q_residual", "naive_q_loss", "kl_q_residual", "kl_q_loss", "kl_value", "soft_q_td_loss",
    "shiq_l2_residual", "shiq_l2_loss", "shiq_l3_residual", "shiq_l3_loss", "shiq_residuals",
    "shiq_residuals_q_form", "shiq_loss",
]


# ---------------------------------------------------------------------- L0: naive logits-as-Q
def naive_q_residual(g_sa: torch.Tensor, reward: torch.Tensor, g_next: torch.Tensor, done: torch.Tensor,
                     gamma: float, backup: str = "max") -> torch.Tensor:
    r"""L0, the naive negative control (docs/math.md §5): treat the logits as Q-values,

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
    (docs/math.md §3); with ``log_ref = 0`` this is the entropy-regularised value at temperature β.

    q, log_ref ``(..., V)`` → ``(...)``."""
    return beta * torch.logsumexp(log_ref + q / beta, dim=-1)


def kl_q_residual(q_sa: torch.Tensor, reward: torch.Tensor, q_next: torch.Tensor, log_ref_next: torch.Tensor,
                  done: torch.Tensor, gamma: float, beta: float) -> torch.Tensor:
    r"""L1, the KL-regularised Q-space Bellman residual (docs/math.md §5; the soft Bellman equation of §3):

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
    r"""Soft (KL) Q-learning, one-step TD (Haarnoja et al. 2017; KL form as in docs/math.md §3, §9):

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
    r"""ShiQ step L2, "easing sampling" (Clavier et al. 2025; reconstructed form, docs/math.md §5):
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
    r"""ShiQ step L3, "shifted initialisation" (Clavier et al. 2025; reconstructed form, docs/math.md §5):
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
    r"""Multi-step ShiQ residuals, V-form (Clavier et al. 2025; reconstructed form, docs/math.md §5):

    .. math:: \Delta_t = \sum_{k=t}^{T}\gamma^{k-t}\Big[r_k - \beta\log\frac{\pi_g(a_k|s_k)}{\pi_{ref}(a_k|s_k)}\Big]
              + \gamma^{T+1-t}\,v_g(s_{T+1}) - v_g(s_t)

    with :math:`v_g(s) = \beta(\mathrm{LSE}\,g(s) - \mathrm{LSE}\,\ell_{ref}(s))`. The bootstrap term
    ``v_end`` = v_g(s_{T+1}) is 0 for complete episodes (default) and lets truncated rows be used.
    Identity: :math:`\Delta_t = -\sum_{k \ge t}\gamma^{k-t}\delta_k` with δ the one-step L3 residual
    (docs/math.md writes it up to this sign; the squared loss is the same).

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
    r""":math:`L_{ShiQ} = E_\tau\sum_t \Delta_t^2` (docs/math.md §5). ``reduction="sum"`` gives
    Σ_τ Σ_t Δ_t² exactly; ``"mean"`` divides by the number of sequences (same minimiser)."""
    d = shiq_residuals(log_ratio_taken, v_g, rewards, mask, gamma, beta, v_end)
    s = (d**2).sum()
    return s if reduction == "sum" else s / d.shape[0]
