r"""Exact occupancy measures and feature expectations (docs/math.md §10).

Discounted state occupancy of a policy π from the initial law μ0 (Puterman 1994, §6.9; Syed,
Bowling & Schapire 2008):

.. math::
    \rho^\pi(s) = \sum_{t\ge 0}\gamma^t \Pr_\pi(s_t = s,\ t < T)
               = \big[(I - \gamma P_\pi^\top D)^{-1}\mu_0\big](s),\qquad
    \rho^\pi(s,a) = \rho^\pi(s)\,\pi(a|s),

where :math:`D = \mathrm{diag}(1[s\ \text{non-terminal}])` and T is the arrival time at a terminal
state: terminal states absorb, and an episode contributes nothing from its arrival on (their
occupancy is 0 unless ``include_terminal=True`` asks for the discounted arrival mass). One
sparse-aware linear solve, never an inverse. Without terminals
:math:`\sum_s\rho^\pi(s) = 1/(1-\gamma)` (normalised: :math:`d = (1-\gamma)\rho`). The duality
that every test checks: :math:`\sum_{s,a}\rho^\pi(s,a)\,r(s,a) = \mu_0^\top V^\pi`.

Finite horizon H (time-indexed, undiscounted marginals): :math:`\rho_0 = \mu_0`,
:math:`\rho_{t+1}(s') = \sum_{s,a}\rho_t(s)\pi_t(a|s)P(s'|s,a)` over non-terminal s.

Feature expectations :math:`\mu(\pi) = \sum_{s,a}\rho^\pi(s,a)\phi(s,a) = E_\pi\sum_t\gamma^t\phi(s_t,a_t)`.

Token trees: the probability of reaching every node, pushed level by level
(:func:`tree_occupancy`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from .._validate import check_distribution, check_finite, check_int, check_shape
from ..envs.tabular import TabularMDP
from ..envs.token import TokenMDP

__all__ = [
    "state_occupancy", "state_action_occupancy", "finite_horizon_occupancy", "tree_occupancy",
    "feature_expectations", "check_policy_proper", "successor_features",
]


# ---------------------------------------------------------------------- argument checks
def _check_mdp(mdp) -> TabularMDP:
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    return mdp


def _check_initial(mdp: TabularMDP, initial) -> np.ndarray:
    if initial is None:
        return mdp.initial
    mu = check_distribution(initial, "initial")
    check_shape(mu, (mdp.n_states,), "initial")
    return mu


def _check_policy(mdp: TabularMDP, policy, name: str = "policy") -> np.ndarray:
    pol = check_distribution(policy, name)
    check_shape(pol, (mdp.n_states, mdp.n_actions), name)
    return pol


def check_policy_proper(mdp: TabularMDP, policy: np.ndarray, P_pi=None) -> None:
    """Raise ValueError unless, under ``policy``, every non-terminal state reaches a terminal state
    with probability 1 (needed for γ = 1: otherwise I − P_πᵀD is singular).

    A finite Markov chain is absorbed w.p. 1 iff every state has a path (in the support graph of
    P_π) to the absorbing set; checked by one breadth-first search on the reversed graph.
    """
    S = mdp.n_states
    if P_pi is None:
        P_pi = mdp.policy_matrix(policy)
    G = sp.csr_matrix(P_pi) if not sp.issparse(P_pi) else P_pi.tocsr()
    G = sp.diags((~mdp.terminal).astype(np.float64)) @ G  # no edges out of terminal states
    G.eliminate_zeros()
    # reversed graph plus a super-source S linked to every terminal state
    Gr = G.T.tocoo()
    term = np.nonzero(mdp.terminal)[0]
    rows = np.concatenate([Gr.row, np.full(term.size, S)])
    cols = np.concatenate([Gr.col, term])
    aug = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(S + 1, S + 1))
    reached = np.zeros(S + 1, dtype=bool)
    reached[csgraph.breadth_first_order(aug, S, directed=True, return_predecessors=False)] = True
    bad = np.nonzero(~reached[:S] & ~mdp.terminal)[0]
    if bad.size:
        raise ValueError(
            f"gamma = 1 needs a proper policy (terminal states reached with probability 1), but under policy "
            f"states {bad[:10].tolist()}{' ...' if bad.size > 10 else ''} never reach a terminal state "
            f"(I − P_πᵀ is singular); use gamma < 1, a finite horizon, or a policy that terminates")


def _occupancy_solve(mdp: TabularMDP, P_pi, rhs: np.ndarray) -> np.ndarray:
    r"""Solve :math:`(I - \gamma P_\pi^\top D)\,x = b` for one or several right-hand sides
    (sparse LU for sparse P, dense LU otherwise)."""
    S, g = mdp.n_states, mdp.gamma
    keep = (~mdp.terminal).astype(np.float64)
    if sp.issparse(P_pi):
        Mt = (sp.identity(S, format="csc") - g * (sp.diags(keep) @ P_pi).T).tocsc()
        x = spla.splu(Mt).solve(np.asarray(rhs, dtype=np.float64))
    else:
        Mt = (P_pi * (-g * keep)[:, None]).T.copy()  # −γ (D P_π)ᵀ, then + I
        Mt.flat[:: S + 1] += 1.0
        x = np.linalg.solve(Mt, rhs)
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("occupancy solve failed: I − γP_πᵀ is singular (γ = 1 with an improper policy?)")
    return x


# ---------------------------------------------------------------------- discounted occupancies
def state_occupancy(mdp: TabularMDP, policy, *, initial=None, normalized: bool = False,
                    include_terminal: bool = False) -> np.ndarray:
    r"""Discounted state occupancy :math:`\rho^\pi = (I - \gamma P_\pi^\top D)^{-1}\mu_0`, ``(S,)``
    (docs/math.md §10), by one sparse-aware linear solve.

    mdp : TabularMDP (γ = 1 only if ``policy`` reaches a terminal state w.p. 1 — else ValueError).
    policy : ``(S, A)`` stochastic rows (rows of terminal states are ignored).
    initial : μ0 ``(S,)`` (default ``mdp.initial``); mass on terminal states contributes nothing.
    normalized : divide by the total mass (without terminals that is (1−γ)ρ, a probability law).
    include_terminal : also return, at terminal states, the discounted arrival mass
        :math:`\sum_t\gamma^t\Pr(s_t = s)` (default 0 there: the episode has ended).
    """
    mdp = _check_mdp(mdp)
    pol = _check_policy(mdp, policy)
    mu = _check_initial(mdp, initial)
    P_pi = mdp.policy_matrix(pol)
    if mdp.gamma == 1.0:
        check_policy_proper(mdp, pol, P_pi)
    rho = _occupancy_solve(mdp, P_pi, mu)
    if not include_terminal:
        rho[mdp.terminal] = 0.0
    rho = np.maximum(rho, 0.0)  # exact ρ ≥ 0; clip the −1e-17 round-off of a LU solve
    if normalized:
        total = rho.sum()
        if total <= 0:
            raise ValueError("normalized=True but the occupancy has zero mass (every episode starts terminal)")
        rho = rho / total
    return rho


def state_action_occupancy(mdp: TabularMDP, policy, *, initial=None, normalized: bool = False) -> np.ndarray:
    r""":math:`\rho^\pi(s,a) = \rho^\pi(s)\pi(a|s)`, ``(S, A)`` (0 at terminal states); see
    :func:`state_occupancy`. :math:`\sum_{s,a}\rho^\pi(s,a) r(s,a) = \mu_0^\top V^\pi`."""
    rho = state_occupancy(mdp, policy, initial=initial, normalized=normalized)
    pol = np.asarray(policy, dtype=np.float64)
    return rho[:, None] * pol


def finite_horizon_occupancy(mdp: TabularMDP, policies, horizon: int, initial=None) -> np.ndarray:
    r"""Time-indexed state marginals of a (possibly time-dependent) policy over ``horizon`` steps,
    ``(H, S)`` (docs/math.md §10):

    .. math:: \rho_0 = \mu_0 \odot (1-\text{terminal}),\qquad
              \rho_{t+1}(s') = \sum_{s\ \text{non-terminal}}\sum_a \rho_t(s)\pi_t(a|s)P(s'|s,a)

    with mass arriving at a terminal state dropped (the episode ends), so
    :math:`\sum_s\rho_t(s) = \Pr(\text{alive at } t)`. Undiscounted: apply :math:`\gamma^t` for
    discounted sums (as :func:`feature_expectations` does). One (sparse) mat-vec per step.

    policies : ``(H, S, A)`` (π_t) or ``(S, A)`` (stationary).
    """
    mdp = _check_mdp(mdp)
    H = check_int(horizon, "horizon")
    pols = check_distribution(policies, "policies")
    S, A = mdp.n_states, mdp.n_actions
    if pols.ndim == 2:
        check_shape(pols, (S, A), "policies")
        pols = np.broadcast_to(pols, (H, S, A))
    else:
        check_shape(pols, (H, S, A), "policies")
    mu = _check_initial(mdp, initial)
    keep = ~mdp.terminal
    PT = mdp.P2.T.tocsr() if sp.issparse(mdp.P2) else mdp.P2.T  # (S, S*A)
    out = np.zeros((H, S))
    rho = np.where(keep, mu, 0.0)
    for t in range(H):
        out[t] = rho
        if t + 1 < H:
            sa = (rho[:, None] * pols[t]).ravel()
            rho = np.asarray(PT @ sa).ravel()
            rho[~keep] = 0.0
    return out


def tree_occupancy(token_mdp: TokenMDP, policy=None, *, discounted: bool = False) -> np.ndarray:
    r"""Probability of reaching every node of a token tree under ``policy`` (default π_ref),
    ``(n_nodes,)`` (``(n_prompts, n_nodes)`` with several prompts; each root has mass 1), pushed
    level by level: :math:`\rho(s\cdot a) = \rho(s)\pi(a|s)` (EOS ends the episode, so nodes
    whose prefix contains EOS get 0). ``discounted=True`` multiplies level h by :math:`\gamma^h`
    (then :math:`\sum_{s,a}\rho(s)\pi(a|s) r(s,a) = V^\pi(\text{root})`)."""
    if not isinstance(token_mdp, TokenMDP):
        raise ValueError(f"token_mdp must be a TokenMDP, got {type(token_mdp).__name__}")
    env = token_mdp
    p = env._ref_or(policy)  # (P, N, V), validated
    Pn, N, V = p.shape
    out = np.zeros((Pn, N))
    out[:, 0] = 1.0
    g = env.gamma if discounted else 1.0
    ls = env.level_start
    for h in range(env.horizon - 1):
        a, b, c = ls[h], ls[h + 1], ls[h + 2]
        child = g * out[:, a:b, None] * p[:, a:b, :]
        if env.eos is not None:
            child[:, :, env.eos] = 0.0
        out[:, b:c] = child.reshape(Pn, -1)
    return env._user(out)


# ---------------------------------------------------------------------- feature expectations
def _check_features(features, S: int, A: int, name: str = "features") -> np.ndarray:
    phi = check_finite(features, name)
    if phi.ndim == 2 and phi.shape == (S, A):
        raise ValueError(f"{name} must have shape (S, A, d) = ({S}, {A}, d); got {phi.shape} "
                         f"(add a trailing axis for a single feature: features[..., None])")
    check_shape(phi, (S, A, None), name)
    if phi.shape[2] < 1:
        raise ValueError(f"{name} must have at least one feature (d >= 1), got shape {phi.shape}")
    return phi


def feature_expectations(mdp, policy, features, *, initial=None, horizon: Optional[int] = None) -> np.ndarray:
    r"""Discounted feature expectations :math:`\mu(\pi) = E_\pi\sum_t\gamma^t\phi(s_t,a_t)
    = \sum_{s,a}\rho^\pi(s,a)\phi(s,a)`, ``(d,)`` (docs/math.md §10; Abbeel & Ng 2004).

    TabularMDP: features ``(S, A, d)``; policy ``(S, A)``, or with a finite ``horizon`` H
    ``(H, S, A)``/``(S, A)`` and :math:`\sum_{t<H}\gamma^t\sum_{s,a}\rho_t(s)\pi_t(a|s)\phi(s,a)`.
    TokenMDP: features ``(n_nodes, V, d)`` (prompt axis first with several prompts; prompts
    averaged), policy in the token shape (default π_ref).
    """
    if isinstance(mdp, TokenMDP):
        env = mdp
        if horizon is not None:
            raise ValueError("horizon is fixed by the TokenMDP; do not pass horizon")
        if initial is not None:
            raise ValueError("a TokenMDP starts at its roots (uniform over prompts); do not pass initial")
        phi = check_finite(features, "features")
        want = env.shape + (None,)
        check_shape(phi, want, "features")
        p = env._ref_or(policy)
        rho = tree_occupancy(env, p if env.n_prompts > 1 else p[0], discounted=True).reshape(env.n_prompts, env.n_nodes)
        w = (rho[:, :, None] * p).reshape(-1)
        return w @ phi.reshape(w.size, -1) / env.n_prompts
    mdp = _check_mdp(mdp)
    S, A = mdp.n_states, mdp.n_actions
    phi = _check_features(features, S, A)
    if horizon is None:
        rho_sa = state_action_occupancy(mdp, policy, initial=initial)
    else:
        H = check_int(horizon, "horizon")
        pols = check_distribution(policy, "policy")
        if pols.ndim == 2:
            check_shape(pols, (S, A), "policy")
            pols = np.broadcast_to(pols, (H, S, A))
        else:
            check_shape(pols, (H, S, A), "policy")
        rho_t = finite_horizon_occupancy(mdp, pols, H, initial)
        disc = mdp.gamma ** np.arange(H)
        rho_sa = np.einsum("t,ts,tsa->sa", disc, rho_t, pols)
    return rho_sa.reshape(-1) @ phi.reshape(S * A, -1)


def successor_features(mdp: TabularMDP, policy, features) -> tuple[np.ndarray, np.ndarray]:
    r"""Successor features of a stationary policy (Barreto et al. 2017):
    :math:`\psi^\pi = (I - \gamma D P_\pi)^{-1}\phi_\pi` ``(S, d)`` with
    :math:`\phi_\pi(s) = \sum_a\pi(a|s)\phi(s,a)` (0 at terminal states), and
    :math:`\Psi^\pi(s,a) = \phi(s,a) + \gamma\sum_{s'}P(s'|s,a)\psi^\pi(s')` ``(S, A, d)``
    (0 at terminal states). One LU factorisation, d right-hand sides. They are the derivative of the
    soft values in θ: :math:`\partial V_\theta/\partial\theta = \psi^{\pi_\theta}` (envelope theorem),
    and :math:`\mu_0^\top\psi^\pi = \mu(\pi)`."""
    mdp = _check_mdp(mdp)
    pol = _check_policy(mdp, policy)
    S, A = mdp.n_states, mdp.n_actions
    phi = _check_features(features, S, A)
    d = phi.shape[2]
    P_pi = mdp.policy_matrix(pol)
    if mdp.gamma == 1.0:
        check_policy_proper(mdp, pol, P_pi)
    keep = (~mdp.terminal).astype(np.float64)
    rhs = np.einsum("sa,sad->sd", pol, phi) * keep[:, None]
    g = mdp.gamma
    if sp.issparse(P_pi):
        M = (sp.identity(S, format="csc") - g * sp.diags(keep) @ P_pi).tocsc()
        psi = spla.splu(M).solve(rhs)
    else:
        M = P_pi * (-g * keep)[:, None]
        M.flat[:: S + 1] += 1.0
        psi = np.linalg.solve(M, rhs)
    psi = np.asarray(psi, dtype=np.float64).reshape(S, d)
    Psi = phi + g * np.asarray(mdp.P2 @ psi).reshape(S, A, d)
    Psi[mdp.terminal] = 0.0
    return psi, Psi
