r"""Inverse reinforcement learning, exact (docs/math.md §10): maximum-causal-entropy IRL with linear
rewards (:mod:`.mce`), demonstrations (:mod:`.demos`) and token-tree IRL (:mod:`.tree`).

Identifiability (shaping, normalisation, EPIC) and reward transfer live in
``mdpsandbox.irl.identifiability`` and ``mdpsandbox.irl.transfer``.
"""
from ..solvers.occupancy import (feature_expectations, finite_horizon_occupancy, state_action_occupancy,
                                 state_occupancy, successor_features, tree_occupancy)
from .demos import Demonstrations, empirical_feature_expectations, empirical_occupancy, sample_trajectories
from .identifiability import (canonical_reward, epic_distance, normalize_reward, normalized_reward,
                              potential_shaping, shaped_mdp, shaping_residual)
from .transfer import (TransferEstimate, TransferProblem, behaviour_cloning, coupled_linear, coupled_tabular,
                       sequential_linear, sequential_tabular, shifted_problem, transfer_metrics, transfer_problem)
from .mce import (IRLResult, mce_gradient, mce_gradient_undiscounted_shortcut, mce_hessian, mce_irl,
                  mce_log_likelihood, state_action_features, state_features, unidentified_directions)
from .tree import TreeIRLResult, tree_demonstrations, tree_irl, tree_irl_from_samples

__all__ = [
    "state_occupancy", "state_action_occupancy", "finite_horizon_occupancy", "tree_occupancy",
    "feature_expectations", "successor_features",
    "Demonstrations", "sample_trajectories", "empirical_feature_expectations", "empirical_occupancy",
    "IRLResult", "mce_irl", "mce_log_likelihood", "mce_gradient", "mce_hessian",
    "mce_gradient_undiscounted_shortcut", "state_features", "state_action_features", "unidentified_directions",
    "potential_shaping", "shaped_mdp", "shaping_residual", "normalized_reward", "normalize_reward", "epic_distance",
    "canonical_reward", "TransferProblem", "TransferEstimate", "transfer_problem", "shifted_problem",
    "behaviour_cloning", "sequential_tabular", "coupled_tabular", "sequential_linear", "coupled_linear",
    "transfer_metrics",
    "TreeIRLResult", "tree_irl", "tree_irl_from_samples", "tree_demonstrations",
]
