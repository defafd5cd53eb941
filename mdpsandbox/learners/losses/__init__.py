r"""Pure loss functions of every learner family, one module per family (docs/math.md §3–9):

* :mod:`.value` — L0 (naive), L1 / KL-Q, soft-Q, ShiQ L2 / L3 and multi-step ShiQ (building blocks in :mod:`.common`);
* :mod:`.policy` — PCL, DPO, DRO;
* :mod:`.gflownet` — FM, DB, TB, SubTB(λ), ZVar;
* :mod:`.distributional` — C51 / CTD targets and cross-entropy, quantile Huber, HL-Gauss (numpy);
* :mod:`.qsharp` — Q♯ Bernoulli / histogram maximum likelihood, CD/VAS squared loss.

Every name is re-exported here (``from mdpsandbox.learners.losses import shiq_loss, tb_loss, ...``).
Tests: tests/test_losses.py (value, policy), tests/test_gflownet.py, tests/test_distributional_td.py,
tests/test_qsharp.py.


Every function is a pure function of its tensors (torch; numpy for the distributional family):
no model, no data loader, no state. Training
loops gather the tensors (see :mod:`mdpsandbox.learners.trainer`) and call these. Each function
states its equation, its shapes and its source; residual functions return per-sample residuals
(so identities can be checked), ``*_loss`` functions return a scalar (mean of squares unless
stated). Notation (docs/math.md §5): g trained logits, ℓ_ref reference logits, π_g = softmax(g),
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

from .common import _mean_sq, discounted_suffix_sums, log_ratio, masked_lse, shiq_q, shiq_v
from .value import (kl_q_loss, kl_q_residual, kl_value, naive_q_loss, naive_q_residual, shiq_l2_loss, shiq_l2_residual,
                    shiq_l3_loss, shiq_l3_residual, shiq_loss, shiq_residuals, shiq_residuals_q_form, soft_q_td_loss)
from .policy import dpo_loss, dro_loss, pcl_loss, pcl_residuals, sequence_log_ratio
from .gflownet import (check_lambda, db_loss, db_residual, fm_loss, fm_residual, subtb_loss, subtb_residuals, tb_loss,
                       tb_residual, zvar_loss)
from .distributional import (categorical_cross_entropy, categorical_target_matrices, categorical_td_target,
                             hl_gauss_loss, hl_gauss_mean, hl_gauss_target, quantile_huber_grad, quantile_huber_loss)
from .qsharp import bernoulli_nll, cd_squared_loss, histogram_nll, histogram_targets
from . import common, distributional, gflownet, policy, qsharp, value  # noqa: E402  (the family modules)

__all__ = [
    "masked_lse", "shiq_q", "shiq_v", "log_ratio", "discounted_suffix_sums",
    "naive_q_residual", "naive_q_loss",
    "kl_q_residual", "kl_q_loss", "kl_value", "soft_q_td_loss",
    "shiq_l2_residual", "shiq_l2_loss", "shiq_l3_residual", "shiq_l3_loss",
    "shiq_residuals", "shiq_residuals_q_form", "shiq_loss",
    "pcl_residuals", "pcl_loss", "sequence_log_ratio", "dpo_loss", "dro_loss",
    # GFlowNet (docs/math.md §8)
    "fm_residual", "fm_loss", "db_residual", "db_loss", "tb_residual", "tb_loss", "subtb_residuals",
    "subtb_loss", "zvar_loss", "check_lambda",
    # distributional TD (§7, §9)
    "categorical_td_target", "categorical_target_matrices", "categorical_cross_entropy", "quantile_huber_loss",
    "quantile_huber_grad", "hl_gauss_target", "hl_gauss_mean", "hl_gauss_loss",
    # Q♯ / CD (§6)
    "bernoulli_nll", "histogram_nll", "cd_squared_loss", "histogram_targets",
]


