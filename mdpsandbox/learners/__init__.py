"""Learners checked against exact solutions: torch models on token trees, datasets, pure losses
(ShiQ family, KL/soft Q-learning, PCL, DPO, DRO), one trainer with an algorithm registry, and
:func:`compare` of learned logits with the exact KL-regularised solution (docs/math.md §3–5, §9).

The learners need PyTorch (the ``torch`` extra: ``pip install "mdpsandbox[torch]"``); the exact core
(``mdpsandbox``, its envs and solvers, ``mdpsandbox.testing``) does not.
"""
try:
    import torch as _torch  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess by tests/test_learners.py
    raise ModuleNotFoundError(
        'mdpsandbox.learners needs PyTorch, which is not installed: pip install "mdpsandbox[torch]" '
        "(the exact solvers, envs and mdpsandbox.testing work without it)", name="torch") from _exc

from . import losses
from . import gflownet  # GFlowNet losses; train_gflownet on DAGs; registers tb/db/subtb/fm/zvar in the trainer
from .compare import CONVENTIONS, compare, policy_from_logits
from .data import (
    Paths,
    Preferences,
    Transitions,
    TreeSignature,
    all_sequences,
    as_paths,
    behaviour_mixture,
    full_coverage,
    preference_pairs,
    rollouts,
)
from .models import (
    MODELS,
    PrefixMLP,
    PrefixTransformer,
    TabularLogits,
    TreeModel,
    make_model,
    reference_lm,
    tree_from_lm,
)
from .trainer import (
    ALGORITHMS,
    DOORS,
    AlgorithmSpec,
    Door,
    NegativeControlWarning,
    read_off,
    register_door,
    NonFiniteLossError,
    TrainContext,
    TrainResult,
    algorithm_names,
    get_algorithm,
    register_algorithm,
    train,
)

__all__ = [
    "losses", "compare", "CONVENTIONS", "policy_from_logits",
    "Transitions", "Paths", "Preferences", "TreeSignature", "full_coverage", "all_sequences", "as_paths",
    "rollouts", "behaviour_mixture", "preference_pairs",
    "TreeModel", "TabularLogits", "PrefixMLP", "PrefixTransformer", "MODELS", "make_model", "reference_lm",
    "tree_from_lm",
    "ALGORITHMS", "AlgorithmSpec", "register_algorithm", "algorithm_names", "get_algorithm", "TrainContext",
    "TrainResult", "NonFiniteLossError", "train", "DOORS", "Door", "register_door", "NegativeControlWarning",
    "read_off",
]

# Q♯ with the CD/VAS baseline, and distributional TD (C51 / QR / HL-Gauss) — docs/math.md §6, §7, §9
from . import distributional_td, qsharp
from .distributional_td import (
    DEFAULT_CONFIGS,
    TDConfig,
    TDResult,
    categorical_cross_entropy,
    categorical_mirror_step,
    categorical_target_matrices,
    categorical_td,
    categorical_td_target,
    hl_gauss_fixed_point,
    hl_gauss_loss,
    hl_gauss_mean,
    hl_gauss_target,
    hl_gauss_td,
    mrp_value,
    quantile_huber_grad,
    quantile_huber_loss,
    quantile_slope_scale,
    quantile_td,
)
from .qsharp import (
    CDHead,
    PolicyReport,
    QSharpHead,
    QSharpResult,
    RewardToGo,
    bernoulli_logit_q_over_beta,
    bernoulli_nll,
    bernoulli_q_over_beta,
    cd_squared_loss,
    fit_head,
    guided_logits,
    guided_policy,
    histogram_nll,
    histogram_q_over_beta,
    histogram_targets,
    policy_report,
    qsharp_rollouts,
    train_qsharp,
)

__all__ += [
    "distributional_td", "qsharp",
    "DEFAULT_CONFIGS", "TDConfig", "TDResult", "categorical_cross_entropy", "categorical_mirror_step", "categorical_target_matrices", "categorical_td",
    "categorical_td_target", "hl_gauss_fixed_point", "hl_gauss_loss", "hl_gauss_mean", "hl_gauss_target",
    "hl_gauss_td", "mrp_value", "quantile_huber_grad", "quantile_huber_loss", "quantile_slope_scale", "quantile_td",
    "CDHead", "PolicyReport", "QSharpHead", "QSharpResult", "RewardToGo", "bernoulli_logit_q_over_beta",
    "bernoulli_nll", "bernoulli_q_over_beta", "cd_squared_loss", "fit_head", "guided_logits", "guided_policy",
    "histogram_nll", "histogram_q_over_beta", "histogram_targets", "policy_report", "qsharp_rollouts",
    "train_qsharp",
]
