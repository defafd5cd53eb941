r"""Building blocks shared by the loss families (docs/math.md §5): LSE with the terminal convention,
ShiQ's q/v reparameterisation, log-ratios at taken tokens and discounted suffix sums (torch, pure)."""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["masked_lse", "shiq_q", "shiq_v", "log_ratio", "discounted_suffix_sums"]


def masked_lse(logits: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{LSE}_a\,g(s', a)` with the convention LSE g := 0 at terminals.

    logits ``(..., V)`` at s' (any finite values where ``done``), done ``(...)`` bool → ``(...)``.
    """
    return torch.where(done, torch.zeros((), dtype=logits.dtype), torch.logsumexp(logits, dim=-1))


def shiq_q(g_sa: torch.Tensor, ref_sa: torch.Tensor, beta: float) -> torch.Tensor:
    r"""ShiQ's Q reparameterisation :math:`q_g(s,a) = \beta\,(g(s,a) - \ell_{ref}(s,a))` (docs/math.md §5)."""
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
