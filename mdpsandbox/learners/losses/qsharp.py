r"""Q♯ and CD/VAS losses (docs/math.md §6; Zhou et al. 2025): maximum likelihood of the Bernoulli and
histogram reward-to-go heads, the CD squared loss, and the two-hot histogram targets (torch, pure)."""
from __future__ import annotations

import numpy as np

from ..._validate import check_finite

__all__ = ["bernoulli_nll", "histogram_nll", "cd_squared_loss", "histogram_targets"]


def bernoulli_nll(logits, successes, weights=None):
    r"""Maximum-likelihood loss of the Bernoulli head (binary cross-entropy; Zhou et al. 2025):

    .. math:: L(u) = \sum_i w_i\big[-y_i\log\sigma(u_i) - (1-y_i)\log(1-\sigma(u_i))\big]
              = \sum_i w_i\big[\mathrm{softplus}(u_i) - y_i u_i\big].

    logits u ``(n,)``, successes y ``(n,)`` in {0, 1}, weights ``(n,)`` (default 1/n). Scalar tensor.
    """
    import torch

    y = torch.as_tensor(successes, dtype=logits.dtype)
    w = torch.full_like(y, 1.0 / max(len(y), 1)) if weights is None else torch.as_tensor(weights, dtype=logits.dtype)
    return torch.sum(w * (torch.nn.functional.softplus(logits) - y * logits))


def histogram_nll(logits, target_probs, weights=None):
    r"""Maximum-likelihood loss of the histogram head (categorical NLL; Zhou et al. 2025):
    :math:`L = -\sum_i w_i\sum_k t_{ik}\log\mathrm{softmax}(\theta_i)_k` with t the (two-hot) target
    of :func:`histogram_targets` (one-hot when the return is an atom).
    logits ``(n, K)``, target_probs ``(n, K)``, weights ``(n,)`` (default 1/n). Scalar tensor."""
    import torch

    t = torch.as_tensor(target_probs, dtype=logits.dtype)
    w = torch.full((len(t),), 1.0 / max(len(t), 1), dtype=logits.dtype) if weights is None \
        else torch.as_tensor(weights, dtype=logits.dtype)
    return -torch.sum(w * torch.sum(t * torch.log_softmax(logits, dim=-1), dim=-1))


def cd_squared_loss(q_pred, reward_to_go, weights=None):
    r"""CD/VAS regression loss: :math:`L = \sum_i w_i(\hat Q(s_i,a_i) - z_i)^2`, whose minimiser is the
    *expected* reward-to-go Q^{π_ref}(s, a) (the wrong target for KL control). ``(n,)`` each."""
    import torch

    z = torch.as_tensor(reward_to_go, dtype=q_pred.dtype)
    w = torch.full_like(z, 1.0 / max(len(z), 1)) if weights is None else torch.as_tensor(weights, dtype=q_pred.dtype)
    return torch.sum(w * (q_pred - z) ** 2)


def histogram_targets(returns, atoms) -> np.ndarray:
    r"""Two-hot targets: the hat projection Π_C δ_z of each return onto the atoms
    (:func:`mdpsandbox.solvers.distributional.categorical_projection`). A return outside
    [z_1, z_K] is refused: the histogram support must contain the returns.
    returns ``(n,)``, atoms ``(K,)`` → ``(n, K)``."""
    from ...solvers.distributional import categorical_projection, check_atoms

    z, _ = check_atoms(atoms, "atoms", even=False)
    g = check_finite(returns, "returns")
    if g.size and (g.min() < z[0] - 1e-12 or g.max() > z[-1] + 1e-12):
        raise ValueError(f"atoms span [{z[0]:g}, {z[-1]:g}] but the reward-to-go ranges over [{g.min():g}, "
                         f"{g.max():g}]: the histogram support does not contain the returns; widen atoms")
    return categorical_projection(z, g[:, None])
