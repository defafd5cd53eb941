r"""Policy-space losses on token MDPs (docs/math.md §9): path consistency (PCL), and the sequence-level
DPO and DRO (torch, pure)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .common import _mean_sq

__all__ = ["pcl_residuals", "pcl_loss", "sequence_log_ratio", "dpo_loss", "dro_loss"]


# ---------------------------------------------------------------------- PCL
def pcl_residuals(log_ratio_taken: torch.Tensor, values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor,
                  gamma: float, beta: float, v_end: Optional[torch.Tensor] = None,
                  max_len: Optional[int] = None) -> torch.Tensor:
    r"""Path consistency (PCL; Nachum et al. 2017, "Bridging the gap between value and policy based RL"),
    KL-regularised form with deterministic transitions (docs/math.md §9): for every sub-path i → i+d,

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
    π(x) ∝ π_ref(x) exp(R(x)/β) (docs/math.md §9).

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
