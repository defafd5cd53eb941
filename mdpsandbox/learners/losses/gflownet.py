r"""GFlowNet losses in log space (docs/math.md §8): flow matching, detailed balance, trajectory balance,
SubTB(λ) and the log-partition variance (torch, pure; assembled from a model by
:func:`mdpsandbox.learners.gflownet.gflownet_loss`)."""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["fm_residual", "fm_loss", "db_residual", "db_loss", "tb_residual", "tb_loss", "subtb_residuals",
           "subtb_loss", "zvar_loss", "check_lambda"]


def check_lambda(lam) -> float:
    """SubTB's λ must be a finite real > 0 (λ → 0 is DB-like, λ = 1 weighs all sub-paths equally)."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating, np.integer)):
        raise ValueError(f"lam (SubTB λ) must be a real number > 0, got {lam!r}")
    if not math.isfinite(float(lam)) or float(lam) <= 0:
        raise ValueError(f"lam (SubTB λ) must be finite and > 0, got {lam!r}")
    return float(lam)


# ---------------------------------------------------------------------- pure losses
def fm_residual(log_inflows: torch.Tensor, log_outflows: torch.Tensor, log_reward: torch.Tensor) -> torch.Tensor:
    r"""Flow-matching residual at states s' (Bengio et al. 2021, Eq. 12, in log space)::

        δ(s') = LSE_{s ∈ Pa(s')} log F(s→s') − LSE[ log R(s'), LSE_{s''} log F(s'→s'') ]

    log_inflows ``(B, K_in)`` edge log-flows into s' (``-inf`` padding); log_outflows ``(B, K_out)``
    edge log-flows out of s' over move actions (``-inf`` padding); log_reward ``(B,)`` log R(s')
    (``-inf`` where s' is not an object). Returns ``(B,)``. Not defined at s0 (no inflow).
    """
    inflow = torch.logsumexp(log_inflows, dim=-1)
    outflow = torch.logsumexp(torch.cat([log_reward[..., None], log_outflows], dim=-1), dim=-1)
    return inflow - outflow


def fm_loss(log_inflows, log_outflows, log_reward) -> torch.Tensor:
    """Squared :func:`fm_residual`, ``(B,)``."""
    return fm_residual(log_inflows, log_outflows, log_reward).pow(2)


def db_residual(log_flow: torch.Tensor, log_pf: torch.Tensor, log_flow_next: torch.Tensor,
                log_pb: torch.Tensor) -> torch.Tensor:
    r"""Detailed-balance residual per transition s→s' (Bengio et al. 2023, "GFlowNet foundations",
    Def. of detailed balance; docs/math.md §8)::

        δ(s→s') = log F(s) + log P_F(s'|s) − log F(s') − log P_B(s|s')

    At the exit transition x→stop pass ``log_flow_next`` = log R(x) and ``log_pb`` = 0. All ``(B,)``.
    """
    return log_flow + log_pf - log_flow_next - log_pb


def db_loss(log_flow, log_pf, log_flow_next, log_pb) -> torch.Tensor:
    """Squared :func:`db_residual`, ``(B,)``."""
    return db_residual(log_flow, log_pf, log_flow_next, log_pb).pow(2)


def tb_residual(log_z: torch.Tensor, sum_log_pf: torch.Tensor, log_reward: torch.Tensor,
                sum_log_pb: torch.Tensor) -> torch.Tensor:
    r"""Trajectory-balance residual (Malkin et al. 2022, Eq. 14)::

        δ(τ) = log Z + Σ_t log P_F(s_{t+1}|s_t) − log R(x) − Σ_t log P_B(s_t|s_{t+1})

    log_z scalar; the others ``(B,)`` (sums over each trajectory, stop included in Σ log P_F).
    """
    return log_z + sum_log_pf - log_reward - sum_log_pb


def tb_loss(log_z, sum_log_pf, log_reward, sum_log_pb) -> torch.Tensor:
    """Squared :func:`tb_residual`, ``(B,)``."""
    return tb_residual(log_z, sum_log_pf, log_reward, sum_log_pb).pow(2)


def subtb_residuals(log_flows: torch.Tensor, log_pf: torch.Tensor, log_pb: torch.Tensor) -> torch.Tensor:
    r"""All sub-trajectory residuals (Madan et al. 2023, Eq. 7)::

        δ_{ij} = log F(s_i) + Σ_{t=i}^{j−1} log P_F(t) − log F(s_j) − Σ_{t=i}^{j−1} log P_B(t)

    log_flows ``(B, T + 1)`` (position = length holds log R(x), the flow after stop); log_pf, log_pb
    ``(B, T)`` per action (0 on padding). Returns ``(B, T + 1, T + 1)`` with entry [b, i, j]
    (meaningful for i < j ≤ length_b).
    """
    zero = torch.zeros_like(log_pf[:, :1])
    c = torch.cat([zero, torch.cumsum(log_pf - log_pb, dim=1)], dim=1)  # (B, T+1)
    return (log_flows[:, :, None] + c[:, None, :]) - (log_flows[:, None, :] + c[:, :, None])


def subtb_loss(log_flows: torch.Tensor, log_pf: torch.Tensor, log_pb: torch.Tensor,
               lengths: torch.Tensor, lam: float) -> torch.Tensor:
    r"""SubTB(λ) loss per trajectory (Madan et al. 2023, Eq. 8; docs/math.md §8)::

        L(τ) = Σ_{0≤i<j≤n} λ^{j−i} δ_{ij}² / Σ_{0≤i<j≤n} λ^{j−i},   n = number of actions (stop included)

    Shapes as in :func:`subtb_residuals`; lengths ``(B,)`` int. λ > 0 (``ValueError`` otherwise).
    λ → 0 weighs one-step (DB) terms most, λ → ∞ the full trajectory (TB with Z = F(s0)).
    """
    lam = check_lambda(lam)
    T1 = log_flows.shape[1]
    d = subtb_residuals(log_flows, log_pf, log_pb)
    idx = torch.arange(T1, device=log_flows.device)
    gap = (idx[None, :] - idx[:, None]).to(log_flows.dtype)  # j − i
    ok = (gap > 0)[None] & (idx[None, None, :] <= lengths[:, None, None])
    w = torch.where(ok, torch.exp(gap * math.log(lam))[None].expand_as(d), torch.zeros_like(d))
    num = (w * torch.where(ok, d, torch.zeros_like(d)).pow(2)).sum(dim=(1, 2))
    return num / w.sum(dim=(1, 2))


def zvar_loss(sum_log_pf: torch.Tensor, log_reward: torch.Tensor, sum_log_pb: torch.Tensor) -> torch.Tensor:
    r"""Log-partition variance loss (Zhang et al. 2023, "Robust scheduling with GFlowNets", Eq. 8),
    a scalar::

        ζ(τ) = log R(x) + Σ log P_B − Σ log P_F,   L = mean_b (ζ_b − mean ζ)²

    All inputs ``(B,)`` with B ≥ 2. At the optimum ζ ≡ log Z on every trajectory; mean ζ estimates
    log Z.
    """
    zeta = log_reward + sum_log_pb - sum_log_pf
    return (zeta - zeta.mean()).pow(2).mean()
