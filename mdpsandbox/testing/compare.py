r"""Learned logits against the exact KL-regularised solution of the same token MDP (docs/math.md §3–5).

:func:`compare` reads a logit table ``(n_nodes, V)`` in one of four *conventions* — what the
logits are supposed to converge to — and returns errors against ``solve(env, beta=β)``:

==============  ==========================  ====================================  ==========================
convention      exact target of the logits  policy read off the logits            value read off the logits
==============  ==========================  ====================================  ==========================
``"shiq"``      ℓ_ref + Q*/β  (L3, ShiQ)     softmax(g)                            β(LSE g − LSE ℓ_ref)
``"l2"``        log π_ref + Q*/β (ShiQ L2)   softmax(g)                            β LSE g
``"q"``         Q*  (KL-Q, soft-Q)           softmax(log π_ref + g/β)              β LSE(log π_ref + g/β)
``"policy"``    log π*  (PCL, DPO, DRO)      softmax(g) (compared as log-probs)    J(π) (exact evaluation)
==============  ==========================  ====================================  ==========================

Policies are compared node by node over reachable nodes (TV and KL(π‖π*), mean and worst), and
the policy is evaluated exactly (a backward pass, no sampling): its expected return, its KL to
π_ref along the trajectory and its regularised objective J(π) = reward − β·KL ≤ V*(root).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._math import log_softmax, logsumexp
from .._validate import check_finite, check_positive, check_shape
from ..envs.token import TokenMDP
from ..solvers import Solution, evaluate, solve
from ._tree import node_levels, prefix_string

__all__ = ["compare", "CONVENTIONS", "policy_from_logits"]

CONVENTIONS = ("shiq", "l2", "q", "policy")


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")


def policy_from_logits(logits: np.ndarray, env: TokenMDP, *, beta: float, convention: str = "shiq") -> np.ndarray:
    """The policy a logit table stands for (see the module table); same shape as ``logits``."""
    _check_convention(convention)
    g = np.asarray(logits, dtype=np.float64)
    check_shape(g, env.shape, "logits")
    return _policy_multi(g, env.log_ref_policy, check_positive(beta, "beta"), convention)


def compare(logits, env: TokenMDP, *, beta: float, convention: str = "shiq", solution: Optional[Solution] = None,
            mask=None) -> dict:
    r"""Errors of a logit table against the exact solution ``solve(env, beta=beta)``.

    Parameters
    ----------
    logits : ``(n_nodes, V)`` (``(n_prompts, n_nodes, V)`` with several prompts), canonical order.
    env : the TokenMDP.  beta : KL coefficient β > 0.
    convention : ``"shiq"``, ``"l2"``, ``"q"`` or ``"policy"`` (module docstring).
    solution : a precomputed ``solve(env, beta=beta)`` (recomputed when omitted).
    mask : optional bool array restricting which entries count: ``(n_nodes,)`` nodes or
        ``(n_nodes, V)`` pairs (with a leading prompt axis when there are several prompts). The
        logit error uses the pairs, the policy metrics the nodes with any pair. Default: every
        reachable node.

    Returns a dict of floats: ``logit_error`` (max |target − logits| over the counted pairs; for
    ``"policy"`` over log-probabilities), ``logit_error_mean``, ``tv_mean``, ``tv_max``, ``kl_mean``,
    ``kl_max`` (KL(π‖π*) per node), ``value_error`` (|value read off the logits − V*| at the root,
    worst prompt), ``value_star`` (V*(root), mean over prompts), ``objective`` (J(π)), ``suboptimality``
    (V* − J ≥ 0), ``reward`` (E_π Σγ^t r_t), ``kl`` (E_π Σγ^t KL_t), and ``worst``: a dict naming
    the worst pair (``prompt``, ``node``, ``prefix``, ``token``, ``expected``, ``actual``, ``where``).
    """
    if not isinstance(env, TokenMDP):
        raise ValueError(f"env must be a TokenMDP, got {type(env).__name__}")
    beta = check_positive(beta, "beta")
    _check_convention(convention)
    Pn, N, V = env.n_prompts, env.n_nodes, env.vocab_size
    g = np.asarray(logits, dtype=np.float64)
    check_shape(g, env.shape, "logits")
    g = check_finite(g, "logits").reshape(Pn, N, V)
    sol = solve(env, beta=beta) if solution is None else solution
    q = np.asarray(sol.q).reshape(Pn, N, V)
    vstar = np.asarray(sol.v).reshape(Pn, N)
    pistar = np.asarray(sol.policy).reshape(Pn, N, V)
    ref = env._ref
    lse_ref = logsumexp(ref, axis=-1)
    log_ref = ref - lse_ref[..., None]

    # which entries count
    pair_mask = np.broadcast_to(env.reachable[None, :, None], (Pn, N, V)).copy()
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        node_shape = (N,) if Pn == 1 else (Pn, N)
        if m.shape == node_shape:
            pm = m.reshape(Pn, N)[:, :, None]
        else:
            check_shape(m, env.shape, "mask")
            pm = m.reshape(Pn, N, V)
        pair_mask &= np.broadcast_to(pm, (Pn, N, V))
    node_mask = pair_mask.any(axis=-1)
    if not node_mask.any():
        raise ValueError("mask selects no reachable node")

    # targets and what the logits stand for
    if convention == "shiq":
        target, actual = ref + q / beta, g
        v_model = beta * (logsumexp(g, axis=-1) - lse_ref)
    elif convention == "l2":
        target, actual = log_ref + q / beta, g
        v_model = beta * logsumexp(g, axis=-1)
    elif convention == "q":
        target, actual = q, g
        v_model = beta * logsumexp(log_ref + g / beta, axis=-1)
    else:
        with np.errstate(divide="ignore"):
            target = np.log(pistar)
        actual = log_softmax(g, axis=-1)
        v_model = None
    pol = _policy_multi(g, log_ref, beta, convention)
    err = np.where(pair_mask, np.abs(target - actual), -np.inf)
    flat = int(np.argmax(err))
    p_w, n_w, a_w = np.unravel_index(flat, err.shape)
    worst = dict(prompt=int(p_w), node=int(n_w), prefix=env.prefix(int(n_w)), token=int(a_w),
                 expected=float(target[p_w, n_w, a_w]), actual=float(actual[p_w, n_w, a_w]),
                 where=prefix_string(env, int(n_w), int(p_w)))

    tv = 0.5 * np.abs(pol - pistar).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_node = np.where(pol > 0, pol * (np.log(np.maximum(pol, 1e-300)) - np.log(np.maximum(pistar, 1e-300))),
                           0.0).sum(axis=-1)
    kl_node = np.maximum(kl_node, 0.0)

    # exact evaluation of the learned policy
    user_pol = pol[0] if Pn == 1 else pol
    ev_ret = evaluate(env, user_pol)  # β = None: plain expected return; kl per node vs π_ref
    logocc = np.asarray(env.node_log_probs(user_pol)).reshape(Pn, N)
    lev = node_levels(env, np.arange(N))
    disc = env.gamma ** lev
    kl_ref = np.asarray(ev_ret.kl).reshape(Pn, N)
    kl_traj = (np.exp(logocc) * disc[None, :] * kl_ref).sum(axis=1)  # (Pn,)
    reward = np.asarray(ev_ret.v).reshape(Pn, N)[:, 0]
    objective = reward - beta * kl_traj
    if v_model is None:
        value_error = float(np.max(np.abs(objective - vstar[:, 0])))
    else:
        value_error = float(np.max(np.abs(v_model[:, 0] - vstar[:, 0])))

    counted = err[pair_mask]
    return dict(
        convention=convention,
        logit_error=float(counted.max()),
        logit_error_mean=float(counted.mean()),
        tv_mean=float(tv[node_mask].mean()),
        tv_max=float(tv[node_mask].max()),
        kl_mean=float(kl_node[node_mask].mean()),
        kl_max=float(kl_node[node_mask].max()),
        value_error=value_error,
        value_star=float(vstar[:, 0].mean()),
        objective=float(objective.mean()),
        suboptimality=float((vstar[:, 0] - objective).mean()),
        reward=float(reward.mean()),
        kl=float(kl_traj.mean()),
        worst=worst,
    )


def _policy_multi(g, log_ref, beta, convention):
    if convention == "q":
        g = log_ref + g / beta
    return np.exp(log_softmax(g, axis=-1))
