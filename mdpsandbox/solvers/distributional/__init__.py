r"""Distributional dynamic programming for a Markov reward process (docs/math.md §7).

Policy evaluation of the *law* of the return :math:`G(x) = \sum_t \gamma^t r(X_t)` of a Markov
reward process (MRP) with transition matrix P ``(n, n)`` (dense or scipy.sparse) and rewards
r ``(n,)``; an (MDP, policy) pair is reduced to the MRP on state–action pairs
(:func:`policy_mrp`).

The package is split by concept, one module each (every public name is re-exported here, so
``from mdpsandbox.solvers.distributional import X`` works for all of them):

Representations (:mod:`.representations`)
    :class:`Categorical` (atoms ``(m,)`` + probabilities ``(..., m)``, with a CDF view),
    :class:`Quantile` (``m`` equally weighted locations ``(..., m)``) and :class:`DiscreteLaw`
    (an exact finite law: values + probabilities).
Distances (:mod:`.metrics`)
    :func:`wasserstein1` :math:`=\int|F-G|`, :func:`cramer` :math:`=(\int(F-G)^2)^{1/2}`,
    :func:`ks` :math:`=\sup|F-G|`, and ``sup_*`` forms (max over states).
Projection (:mod:`.projection`; MRP input and :func:`policy_mrp` in :mod:`.mrp`)
    :func:`categorical_projection`: the hat-function projection Π_C (Rowland et al. 2018).
Fixed points (:mod:`.cdf_operator`, :mod:`.categorical`, :mod:`.quantile`)
    :func:`categorical_fixed_point` — CDP (iterate Π_C T^π, certified stop) or DCFP (one linear
    solve of (I − M)F = b in CDF form; Rowland et al. 2024, "Near-minimax-optimal distributional
    reinforcement learning with a generative model"); :func:`quantile_dp` (QDP, W1 projection).
Generative model (:mod:`.generative`)
    :func:`empirical_model` (P̂ from N draws per row).
Stochastic categorical CDF Bellman equation (:mod:`.stochastic_cdf`)
    :func:`stochastic_cdf_samples` (reconstructed form, see its docstring).
Ground truth (:mod:`.monte_carlo`)
    :func:`monte_carlo_returns` (numba, seeded, truncated with an explicit tail bound).
"""

from __future__ import annotations

from .representations import Categorical, DiscreteLaw, Quantile, as_values_probs
from .metrics import _signed_cdf_diff, cramer, ks, sup_cramer, sup_ks, sup_wasserstein1, wasserstein1
from .projection import categorical_projection, check_atoms, default_atoms
from .mrp import _check_mrp, _check_support, policy_mrp
from .cdf_operator import _build_operator, _CDFOperator, categorical_bellman_cdf, categorical_cdf_operator
from .categorical import (CategoricalFixedPoint, PolicyReturnDistributions, _cdf_to_probs, categorical_fixed_point,
                          categorical_policy_evaluation)
from .quantile import QuantileFixedPoint, _qdp_sweep, quantile_dp, quantile_levels
from .generative import _check_rows, empirical_model
from .monte_carlo import _mc_steps, _row_cdfs, _simulate, _truncation, monte_carlo_returns
from .stochastic_cdf import CDFSamples, _unroll_cdf, stochastic_cdf_samples

__all__ = [
    "Categorical",
    "Quantile",
    "DiscreteLaw",
    "CategoricalFixedPoint",
    "QuantileFixedPoint",
    "PolicyReturnDistributions",
    "CDFSamples",
    "as_values_probs",
    "wasserstein1",
    "cramer",
    "ks",
    "sup_wasserstein1",
    "sup_cramer",
    "sup_ks",
    "check_atoms",
    "default_atoms",
    "categorical_projection",
    "categorical_cdf_operator",
    "categorical_bellman_cdf",
    "categorical_fixed_point",
    "categorical_policy_evaluation",
    "policy_mrp",
    "quantile_dp",
    "quantile_levels",
    "empirical_model",
    "monte_carlo_returns",
    "stochastic_cdf_samples",
]
