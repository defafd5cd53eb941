"""Exact solvers: Bellman backups, dynamic programming (VI / PI / backward induction, evaluation),
and batched solves of many small MDPs."""
from .backups import Regulariser, bellman_backup, q_backup, tree_backward
from .batch import BatchSolution, solve_batch
from .dp import ConvergenceWarning, Evaluation, Solution, evaluate, make_regulariser, solve
from .distributional import (
    Categorical, CategoricalFixedPoint, CDFSamples, DiscreteLaw, PolicyReturnDistributions, Quantile,
    QuantileFixedPoint, categorical_bellman_cdf, categorical_cdf_operator, categorical_fixed_point,
    categorical_policy_evaluation, categorical_projection, check_atoms, cramer, default_atoms, empirical_model,
    ks, monte_carlo_returns, policy_mrp, quantile_dp, quantile_levels, stochastic_cdf_samples, sup_cramer,
    sup_ks, sup_wasserstein1, wasserstein1,
)
from .return_laws import (
    JensenGapExample, ReturnLaws, cd_policy, jensen_gap_example, qsharp_q, return_distribution,
    tabular_return_distribution,
)

__all__ = [
    "Regulariser", "bellman_backup", "q_backup", "tree_backward", "BatchSolution", "solve_batch",
    "ConvergenceWarning", "Evaluation", "Solution", "evaluate", "solve", "make_regulariser",
    # distributional DP (docs/math.md §7) and exact return laws / Q♯ (§4, §6)
    "Categorical", "CategoricalFixedPoint", "CDFSamples", "DiscreteLaw", "PolicyReturnDistributions", "Quantile",
    "QuantileFixedPoint", "categorical_bellman_cdf", "categorical_cdf_operator", "categorical_fixed_point",
    "categorical_policy_evaluation", "categorical_projection", "check_atoms", "cramer", "default_atoms",
    "empirical_model", "ks", "monte_carlo_returns", "policy_mrp", "quantile_dp", "quantile_levels",
    "stochastic_cdf_samples", "sup_cramer", "sup_ks", "sup_wasserstein1", "wasserstein1",
    "JensenGapExample", "ReturnLaws", "cd_policy", "jensen_gap_example", "qsharp_q", "return_distribution",
    "tabular_return_distribution",
    "Flows", "SoftSolution", "backward_log_policy", "terminating_distribution",
    "terminating_log_probs", "tv_distance", "soft_values", "soft_rl_solve", "kl_control_log_reward",
]
# (the function `flows` stays in mdpsandbox.solvers.flows so the submodule name is not shadowed)
from .flows import (Flows, SoftSolution, backward_log_policy, kl_control_log_reward, soft_rl_solve,  # noqa: E402
                    soft_values, terminating_distribution, terminating_log_probs, tv_distance)
