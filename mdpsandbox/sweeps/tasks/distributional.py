r"""Built-in task ``distributional``: return-law fixed points of a policy (docs/math.md §7).

The (env, policy) pair is reduced to its state MRP :math:`P_\pi(s, s') = \sum_a \pi(a|s) P(s'|s, a)`,
:math:`r_\pi(s) = \sum_a \pi(a|s) r(s, a)` (terminal states absorbing with reward 0), then

* ``method="dcfp"`` / ``"cdp"`` — :func:`~mdpsandbox.solvers.distributional.categorical_fixed_point`
  (Rowland et al. 2024 / 2018) on ``n_atoms`` default atoms; reference: DCFP by sparse LU at tol 1e-12;
* ``method="qdp"`` — :func:`~mdpsandbox.solvers.distributional.quantile_dp` (Dabney et al. 2018;
  Rowland et al. 2024) with ``n_quantiles``; reference: QDP at tol 1e-12.

Metrics: ``w1_ref`` = sup_x W1(η̂(x), η_ref(x)), ``bound`` (the solver's certified sup-W1 bound),
``residual``, ``iterations``, ``converged``, ``mean_error`` = max_x |E η̂(x) − V^π(x)| (0 up to round-off
for the categorical fixed point, whose projection keeps the mean).
"""
from __future__ import annotations

import numpy as np

from .exact import ENV_SCHEMA, TABULAR, _check_env_params, make_env
from .registry import Param, task

__all__ = ["distributional_task", "state_mrp"]


def state_mrp(mdp, policy):
    """``(P_π (S, S) dense, r_π (S,))`` with terminal states absorbing and rewardless."""
    P = np.einsum("sa,sat->st", policy, mdp.dense_P())
    r = np.einsum("sa,sa->s", policy, mdp.R)
    term = np.asarray(mdp.terminal)
    if term.any():
        P[term] = 0.0
        P[term, np.flatnonzero(term)] = 1.0
        r[term] = 0.0
    return P, r


def distributional_task(*, env: str = "garnet", gamma=None, seed: int = 0, policy: str = "uniform",
                        method: str = "dcfp", n_atoms: int = 51, n_quantiles: int = 32, tol: float = 1e-10,
                        reference: bool = True, cell_seed=None, **env_kw) -> dict:
    """Categorical (DCFP/CDP) or quantile (QDP) fixed point of a tabular env under ``policy``
    (``"uniform"``, ``"optimal"`` = hard π*, or ``"random"`` Dirichlet(1) rows from ``cell_seed``)."""
    import mdpsandbox as ms
    from ...solvers.distributional import categorical_fixed_point, quantile_dp, sup_wasserstein1

    mdp = make_env(env, gamma, seed, **env_kw)
    S, A = mdp.n_states, mdp.n_actions
    if policy == "optimal":
        pi = ms.solve(mdp).policy
    elif policy == "random":
        pi = np.random.default_rng(cell_seed).dirichlet(np.ones(A), size=S)
    else:
        pi = np.full((S, A), 1.0 / A)
    P, r = state_mrp(mdp, pi)
    g = mdp.gamma
    v = np.linalg.solve(np.eye(S) - g * P, r)
    if method == "qdp":
        est = quantile_dp(P, r, g, n_quantiles, tol=tol)
        out = {"residual": float(est.residual), "bound": float(est.bound), "iterations": int(est.iterations),
               "converged": bool(est.converged), "mean_error": float(np.max(np.abs(est.mean - v)))}
        if reference:
            ref = quantile_dp(P, r, g, n_quantiles, tol=1e-12)
            out["w1_ref"] = sup_wasserstein1(est, ref)
        return out
    est = categorical_fixed_point(P, r, g, n_atoms, method=method, tol=tol)
    out = {"residual": float(est.residual), "bound": float(est.bound), "iterations": int(est.iterations),
           "converged": bool(est.converged), "mean_error": float(np.max(np.abs(est.mean - v)))}
    if reference:
        ref = categorical_fixed_point(P, r, g, est.atoms, method="dcfp", solver="splu", tol=1e-12)
        out["w1_ref"] = sup_wasserstein1(est, ref)
    return out


def _check(names, values):
    _check_env_params(names, values)
    bad = [e for e in values.get("env", ["garnet"]) if e not in TABULAR]
    if bad:
        raise ValueError(f"task 'distributional': env must be tabular (one of {list(TABULAR)}), got {bad}")
    for v in values.get("gamma", []):
        if v is not None and not 0 <= v < 1:
            raise ValueError(f"task 'distributional': parameter 'gamma' must lie in [0, 1), got {v!r}")


SCHEMA = {**ENV_SCHEMA,
          "policy": Param((str,), "policy whose return law is computed", choices=("uniform", "optimal", "random")),
          "method": Param((str,), "fixed-point method", choices=("dcfp", "cdp", "qdp")),
          "n_atoms": Param((int,), "categorical: number of atoms m"),
          "n_quantiles": Param((int,), "qdp: number of quantiles m"),
          "tol": Param((float,), "certified sup-W1 tolerance"),
          "reference": Param((bool,), "compute w1_ref against a tight reference solve")}
task("distributional", params=SCHEMA, check=_check,
     metrics=("w1_ref", "bound", "residual", "iterations", "converged", "mean_error"))(distributional_task)
