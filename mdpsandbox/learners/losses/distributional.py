r"""Distributional TD targets and losses (docs/math.md §7, §9): the categorical (C51 / CTD) target and
cross-entropy, the quantile (Huber) regression loss and its gradient, and HL-Gauss targets and loss
(numpy, float64, pure; the learners in :mod:`mdpsandbox.learners.distributional_td` call them)."""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from ..._math import log_softmax
from ..._validate import check_finite, check_positive
from ...solvers.distributional import categorical_projection

__all__ = ["categorical_td_target", "categorical_target_matrices", "categorical_cross_entropy", "quantile_huber_loss",
           "quantile_huber_grad", "hl_gauss_target", "hl_gauss_mean", "hl_gauss_loss"]


def categorical_td_target(atoms, reward, gamma, next_probs) -> np.ndarray:
    r"""Categorical TD target (Bellemare et al. 2017; Rowland et al. 2018):

    .. math:: \hat\eta(x) = \Pi_C\Big(\sum_j p_j(x')\,\delta_{r(x) + \gamma z_j}\Big),

    with Π_C the hat (triangular-kernel) projection onto the atoms
    (:func:`mdpsandbox.solvers.distributional.categorical_projection`; mass preserving).

    atoms : ``(m,)``; reward : ``(B,)``; next_probs : ``(B, m)`` law of Z(x') on the atoms;
    gamma : a scalar or a per-sample discount ``(B,)`` (rlax's ``discount_t``, e.g. 0 at episode ends).
    Returns ``(B, m)`` probabilities.
    """
    z = np.asarray(atoms, dtype=np.float64)
    r = np.asarray(reward, dtype=np.float64)
    g = np.asarray(gamma, dtype=np.float64)
    if g.ndim == 1 and r.ndim == 1 and g.shape == r.shape:
        g = g[:, None]  # one discount per sample, not per atom (broadcasting (B,) along atoms is wrong when B = m)
    elif g.ndim != 0:
        raise ValueError(f"gamma must be a scalar or have shape (B,) = {r.shape}, got {g.shape}")
    values = r[:, None] + g * z[None, :]
    return categorical_projection(z, values, np.asarray(next_probs, dtype=np.float64))


def categorical_target_matrices(atoms, reward, gamma) -> np.ndarray:
    r"""Π_C is linear in mixtures, so the categorical target is a fixed linear map of the next law:

    .. math:: \Pi_C\Big(\sum_j p_j\delta_{r + \gamma z_j}\Big) = \sum_j p_j\,\Pi_C\delta_{r+\gamma z_j}
              = p^\top H^{(r)},\qquad H^{(r)}_{ji} = h_i(r + \gamma z_j)

    (rows of H^{(r)} are the hat weights of one shifted atom, from
    :func:`~mdpsandbox.solvers.distributional.categorical_projection`). Precomputing H once per state
    makes each TD step a small matrix product (identical to :func:`categorical_td_target`).

    atoms ``(m,)``, reward ``(B,)`` → ``(B, m, m)``.
    """
    z = np.asarray(atoms, dtype=np.float64)
    r = np.asarray(reward, dtype=np.float64)
    values = (r[:, None] + gamma * z[None, :])[..., None]  # (B, m, 1): one Dirac per (state, j)
    return categorical_projection(z, values)


def categorical_cross_entropy(logits, target_probs) -> np.ndarray:
    r"""C51 loss (Bellemare et al. 2017): :math:`L = -\sum_i \hat\eta_i \log\mathrm{softmax}(\theta)_i`.

    Its gradient in the logits is ``softmax(θ) − η̂`` (used by :func:`categorical_td` and
    :func:`hl_gauss_td`). logits, target_probs : ``(B, m)``. Returns ``(B,)``.
    """
    lp = log_softmax(logits, axis=-1)
    t = np.asarray(target_probs, dtype=np.float64)
    return -np.sum(np.where(t > 0, t * lp, 0.0), axis=-1)


# ====================================================================== pure functions: quantile
def quantile_huber_loss(theta, targets, taus, kappa: float = 0.0) -> np.ndarray:
    r"""Quantile (Huber) regression loss (Dabney et al. 2018, "Distributional RL with quantile
    regression", eq. 9–10):

    .. math:: L(\theta) = \sum_i \frac1n\sum_j \rho^\kappa_{\tau_i}(y_j - \theta_i),\qquad
              \rho^\kappa_\tau(u) = |\tau - 1\{u<0\}|\,\frac{\mathcal L_\kappa(u)}{\kappa},

    Huber :math:`\mathcal L_\kappa(u) = u^2/2` for |u| ≤ κ, else κ(|u| − κ/2). κ = 0 is the pinball
    loss :math:`\rho_\tau(u) = u(\tau - 1\{u<0\})`.

    theta : ``(B, m)`` quantile locations; targets : ``(B, n)`` target samples y_j (equally
    weighted); taus : ``(m,)``. Returns ``(B,)``.
    """
    u = np.asarray(targets, dtype=np.float64)[:, None, :] - np.asarray(theta, dtype=np.float64)[:, :, None]
    tau = np.asarray(taus, dtype=np.float64)[None, :, None]
    w = np.abs(tau - (u < 0))
    if kappa == 0:
        rho = w * np.abs(u)
    else:
        kappa = check_positive(kappa, "kappa")
        au = np.abs(u)
        rho = w * np.where(au <= kappa, 0.5 * u * u, kappa * (au - 0.5 * kappa)) / kappa
    return rho.mean(axis=2).sum(axis=1)


def quantile_huber_grad(theta, targets, taus, kappa: float = 0.0) -> np.ndarray:
    r"""∂L/∂θ_i of :func:`quantile_huber_loss`:
    :math:`-\frac1n\sum_j |\tau_i - 1\{u_{ij}<0\}|\,\mathrm{clip}(u_{ij}/\kappa, -1, 1)`, u = y − θ
    (κ = 0: :math:`-\frac1n\sum_j(\tau_i - 1\{y_j < \theta_i\})`). Shapes as the loss; returns ``(B, m)``."""
    u = np.asarray(targets, dtype=np.float64)[:, None, :] - np.asarray(theta, dtype=np.float64)[:, :, None]
    tau = np.asarray(taus, dtype=np.float64)[None, :, None]
    if kappa == 0:
        return -(tau - (u < 0)).mean(axis=2)
    kappa = check_positive(kappa, "kappa")
    return -(np.abs(tau - (u < 0)) * np.clip(u / kappa, -1.0, 1.0)).mean(axis=2)


# ====================================================================== pure functions: HL-Gauss
def _check_edges(edges, name="edges"):
    e = check_finite(edges, name)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"{name} must be a strictly increasing 1-D array of at least 2 bin edges")
    return e


def hl_gauss_target(y, edges, sigma: float) -> np.ndarray:
    r"""HL-Gauss target histogram (Farebrother et al. 2024, §3.1): the mass of N(y, σ²) on each bin
    [e_i, e_{i+1}), renormalised to the support:

    .. math:: p_i(y) = \frac{\Phi\big(\frac{e_{i+1}-y}{\sigma}\big) - \Phi\big(\frac{e_i-y}{\sigma}\big)}
                           {\Phi\big(\frac{e_m-y}{\sigma}\big) - \Phi\big(\frac{e_0-y}{\sigma}\big)}.

    y : ``(B,)`` scalar targets; edges : ``(m+1,)``; σ > 0. Returns ``(B, m)``. Targets outside
    [e_0, e_m] are refused (the support must contain them).
    """
    e = _check_edges(edges)
    sigma = check_positive(sigma, "sigma")
    y = check_finite(y, "y")
    if y.size and (y.min() < e[0] or y.max() > e[-1]):
        raise ValueError(f"y must lie inside the support [{e[0]:g}, {e[-1]:g}] of the edges; got values in "
                         f"[{y.min():g}, {y.max():g}]")
    cdf = ndtr((e[None, :] - y[:, None]) / sigma)
    return np.diff(cdf, axis=1) / (cdf[:, -1:] - cdf[:, :1])


def hl_gauss_mean(probs, edges) -> np.ndarray:
    r"""Value of a histogram: :math:`\hat V = \sum_i p_i c_i` with bin centres c_i = (e_i + e_{i+1})/2.
    probs ``(B, m)`` → ``(B,)``."""
    e = _check_edges(edges)
    return np.asarray(probs, dtype=np.float64) @ (0.5 * (e[1:] + e[:-1]))


def hl_gauss_loss(logits, y, edges, sigma: float) -> np.ndarray:
    r"""HL-Gauss classification loss (Farebrother et al. 2024):
    :math:`L = -\sum_i p_i(y)\log\mathrm{softmax}(\theta)_i` with p(y) from :func:`hl_gauss_target`.
    logits ``(B, m)``, y ``(B,)``; returns ``(B,)``."""
    return categorical_cross_entropy(logits, hl_gauss_target(y, edges, sigma))
