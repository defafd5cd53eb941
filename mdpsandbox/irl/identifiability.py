r"""Reward identifiability under entropy-regularised control: potential shaping, the shaping
residual, the closed-form normalised reward of a soft-optimal policy, and an EPIC-style
pseudometric (docs/math.md §10).

In a fixed (P, γ, τ) the rewards whose soft-optimal policy is π are exactly the shaping class
(Ng, Harada & Russell 1999; Cao, Cohen & Szpruch 2021, "Identifiability in inverse reinforcement
learning"; Skalse et al. 2023)

.. math:: r(s,a) = \tau\log\pi(a|s) + \Phi(s) - \gamma\,(P\Phi)(s,a),\qquad \Phi\in\mathbb{R}^S,

and shaping :math:`r' = r + \gamma P\Phi - \Phi` gives :math:`Q'_\tau = Q_\tau - \Phi`,
:math:`V'_\tau = V_\tau - \Phi` and the same policy for *every* τ — but not under another kernel
:math:`P_T` or discount :math:`\gamma_T`, where :math:`\gamma P\Phi - \Phi` is no longer a shaping.

Transition arguments ``P`` are a :class:`~mdpsandbox.envs.TabularMDP` (its ``terminal`` mask is
used), a dense ``(S, A, S)`` array, or a scipy.sparse ``(S*A, S)`` matrix (row s*A + a). Terminal
states absorb with value 0, so a potential must vanish there (Φ(s) = 0 for terminal s): the functions
below fix Φ = 0 on terminal states and ignore the terminal rows of rewards.
"""
from __future__ import annotations

from typing import NamedTuple, Union

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._math import logsumexp
from .._validate import check_finite, check_gamma, check_positive, check_shape, check_stochastic_rows
from ..envs.tabular import TabularMDP

__all__ = ["potential_shaping", "shaped_mdp", "shaping_residual", "ShapingResidual", "normalized_reward",
           "normalize_reward", "epic_distance", "canonical_reward"]

#: largest dense design matrix (entries) solved by dense QR before switching to sparse LSMR
_DENSE_LIMIT = 1_000_000


# ---------------------------------------------------------------------- argument handling
def _kernel(P, terminal=None, *, name: str = "P"):
    """(P2 (S*A, S) ndarray or CSR, S, A, terminal bool (S,)) from a TabularMDP / dense / sparse kernel."""
    if isinstance(P, TabularMDP):
        P2, S, A = P.P2, P.n_states, P.n_actions
        term = P.terminal.copy()
    elif sp.issparse(P):
        if P.ndim != 2 or P.shape[1] < 1 or P.shape[0] % P.shape[1] != 0:
            raise ValueError(f"{name} (sparse) must have shape (S*A, S), got {P.shape}")
        S = P.shape[1]
        A = P.shape[0] // S
        P2 = check_stochastic_rows(P, name)
        term = np.zeros(S, dtype=bool)
    else:
        P3 = np.asarray(P, dtype=np.float64)
        if P3.ndim != 3 or P3.shape[0] != P3.shape[2]:
            raise ValueError(f"{name} must be a TabularMDP, a dense (S, A, S) array or a sparse (S*A, S) matrix, "
                             f"got shape {P3.shape}")
        S, A = P3.shape[0], P3.shape[1]
        P2 = check_stochastic_rows(P3.reshape(S * A, S), name)
        term = np.zeros(S, dtype=bool)
    if terminal is not None:
        t = np.asarray(terminal)
        if t.dtype != bool or t.shape != (S,):
            raise ValueError(f"terminal must be a boolean mask of shape ({S},), got {t.dtype} {t.shape}")
        term = term | t
    return P2, S, A, term


def _reward(r, S: int, A: int, name: str) -> np.ndarray:
    r = check_finite(r, name)
    check_shape(r, (S, A), name)
    return r


def _apply(P2, x: np.ndarray, S: int, A: int) -> np.ndarray:
    """(PΦ)(s, a) = Σ_{s'} P(s'|s,a) Φ(s'), shape (S, A): one mat-vec."""
    return np.asarray(P2 @ x).reshape(S, A)


# ---------------------------------------------------------------------- shaping
def potential_shaping(r, P, gamma, phi, *, terminal=None) -> np.ndarray:
    r"""Potential-based shaping :math:`r'(s,a) = r(s,a) + \gamma\sum_{s'}P(s'|s,a)\Phi(s') - \Phi(s)`
    (Ng, Harada & Russell 1999), shape ``(S, A)``.

    ``phi`` ``(S,)`` must be 0 on terminal states (they have value 0; a non-zero potential there
    would not be a shaping) — ValueError otherwise. Terminal rows of ``r`` are returned unchanged.
    Soft control: :math:`Q'_\tau = Q_\tau - \Phi`, same π*_τ for every τ (docs/math.md §10).
    """
    gamma = check_gamma(gamma)
    P2, S, A, term = _kernel(P, terminal)
    r = _reward(r, S, A, "r")
    phi = check_finite(phi, "phi")
    check_shape(phi, (S,), "phi")
    if np.any(phi[term] != 0):
        s = int(np.flatnonzero(term & (phi != 0))[0])
        raise ValueError(f"phi must be 0 on terminal states (value 0 there); phi[{s}] = {phi[s]!r}")
    out = r + gamma * _apply(P2, phi, S, A) - phi[:, None]
    out[term] = r[term]
    return out


def shaped_mdp(mdp: TabularMDP, phi) -> TabularMDP:
    """A copy of ``mdp`` with reward :func:`potential_shaping` (same P, γ, terminal, initial)."""
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    R = potential_shaping(mdp.R, mdp, mdp.gamma, phi)
    return TabularMDP(mdp.P, R, mdp.gamma, terminal=mdp.terminal, initial=mdp.initial, ref_policy=mdp.ref_policy)


class ShapingResidual(NamedTuple):
    """``residual``: ‖w^{1/2}(r1 − r2 − (γPΦ − Φ) − c)‖₂ at the least-squares (Φ, c) over non-terminal
    (s, a); ``phi`` ``(S,)`` (0 on terminal states); ``c`` the constant (0 if not allowed)."""

    residual: float
    phi: np.ndarray
    c: float


def _shaping_design(P2, S: int, A: int, gamma: float, term: np.ndarray, allow_constant: bool):
    """Design matrix of the shaping subspace on non-terminal rows: columns γP[:, s] − E[:, s] for
    non-terminal s (E maps Φ(s) to the rows (s, ·)), plus a column of ones; sparse CSR."""
    live = np.flatnonzero(~term)
    rows = (live[:, None] * A + np.arange(A)).ravel()
    E = sp.csr_matrix((np.ones(S * A), (np.arange(S * A), np.repeat(np.arange(S), A))), shape=(S * A, S))
    Pm = sp.csr_matrix(P2) if not sp.issparse(P2) else P2
    M = (gamma * Pm - E).tocsr()[rows][:, live]
    if allow_constant:
        M = sp.hstack([M, sp.csr_matrix(np.ones((rows.size, 1)))], format="csr")
    return M, rows, live


def _lstsq(M, b: np.ndarray) -> np.ndarray:
    """Minimum-norm least squares: dense QR/SVD (exact) when it fits, else LSMR to round-off."""
    if M.shape[0] * M.shape[1] <= _DENSE_LIMIT:
        return np.linalg.lstsq(M.toarray(), b, rcond=None)[0]
    res = spla.lsmr(M, b, atol=1e-15, btol=1e-15, conlim=1e12, maxiter=20 * M.shape[1])
    return res[0]


def _project_out_shaping(d: np.ndarray, P2, S, A, gamma, term, weights, allow_constant):
    """Weighted least-squares projection of d (S, A) onto the shaping(+constant) subspace.

    Returns (residual vector on non-terminal rows (n,), phi (S,), c, rows)."""
    M, rows, live = _shaping_design(P2, S, A, gamma, term, allow_constant)
    b = d.ravel()[rows]
    sw = np.ones(rows.size) if weights is None else np.sqrt(weights.ravel()[rows])
    x = _lstsq(sp.diags(sw) @ M, sw * b)
    resid = b - np.asarray(M @ x).ravel()
    phi = np.zeros(S)
    phi[live] = x[: live.size]
    c = float(x[-1]) if allow_constant else 0.0
    return resid, phi, c, rows, sw


def _check_weights(weights, S, A):
    if weights is None:
        return None
    w = check_finite(weights, "weights")
    check_shape(w, (S, A), "weights")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    return w


def shaping_residual(r1, r2, P, gamma, *, terminal=None, weights=None, allow_constant: bool = True
                     ) -> ShapingResidual:
    r"""How far r1 is from being a potential shaping of r2 (docs/math.md §10):

    .. math:: \min_{\Phi,\,c}\ \big\|\,r_1 - r_2 - (\gamma P\Phi - \Phi) - c\,\big\|_{2,w}

    over non-terminal (s, a) with Φ = 0 on terminal states (weights ``w`` ``(S, A)``, default 1).
    0 (to round-off) iff :math:`r_1 - r_2` lies in the shaping class (+ constants when
    ``allow_constant``; for γ < 1 without terminal states a constant c is itself the shaping with
    Φ = −c/(1−γ), so c is then not identified and the minimum-norm split is returned). With
    terminal states a constant is *not* a shaping (it changes the incentive to end the episode):
    use ``allow_constant=False`` for "same soft-optimal policy". Sparse-aware: the design matrix is
    sparse; solved by dense least squares when small, LSMR otherwise.

    Returns ``ShapingResidual(residual, phi, c)``: r1 ≈ r2 + γPΦ − Φ + c.
    """
    gamma = check_gamma(gamma)
    P2, S, A, term = _kernel(P, terminal)
    r1 = _reward(r1, S, A, "r1")
    r2 = _reward(r2, S, A, "r2")
    w = _check_weights(weights, S, A)
    resid, phi, c, rows, sw = _project_out_shaping(r1 - r2, P2, S, A, gamma, term, w, allow_constant)
    return ShapingResidual(float(np.linalg.norm(sw * resid)), phi, c)


# ---------------------------------------------------------------------- normalisation
def _anchor_weights(anchor, S: int, A: int) -> np.ndarray:
    """Per-state action weights w(a|s) ``(S, A)`` defining the normalisation Σ_a w(a|s) r(s,a) = 0."""
    if isinstance(anchor, str):
        if anchor != "state":
            raise ValueError(f"anchor must be an action index in [0, {A}), 'state', or an (S, A) weight array; "
                             f"got {anchor!r}")
        return np.full((S, A), 1.0 / A)
    if np.ndim(anchor) == 0:
        if isinstance(anchor, bool) or not isinstance(anchor, (int, np.integer)) or not 0 <= int(anchor) < A:
            raise ValueError(f"anchor must be an action index in [0, {A}), 'state', or an (S, A) weight array; "
                             f"got {anchor!r}")
        w = np.zeros((S, A))
        w[:, int(anchor)] = 1.0
        return w
    w = check_finite(anchor, "anchor")
    check_shape(w, (S, A), "anchor")
    if np.any(w < 0) or np.any(np.abs(w.sum(axis=1) - 1) > 1e-9):
        raise ValueError("anchor weights must be non-negative and sum to 1 in every state")
    return w


def _solve_potential(P2, S, A, gamma, term, w, rhs) -> np.ndarray:
    r"""Solve :math:`(I - \gamma P_w)\Phi = \text{rhs}` on non-terminal states (Φ = 0 on terminal
    states), :math:`P_w(s'|s) = \sum_a w(a|s)P(s'|s,a)`; one sparse-aware solve."""
    live = np.flatnonzero(~term)
    D = sp.csr_matrix((w.ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A))
    Pw = D @ (P2 if sp.issparse(P2) else sp.csr_matrix(P2))
    M = (sp.identity(S, format="csr") - gamma * Pw).tocsr()[live][:, live]
    phi = np.zeros(S)
    if not live.size:
        return phi
    if gamma == 1.0 and not _absorbed_surely(Pw, term):
        raise ValueError("the normalisation does not identify the potential: I − γP_anchor is singular "
                         "(γ = 1 and the anchor actions do not reach a terminal state w.p. 1)")
    # γ < 1 (or absorption w.p. 1): I − γP_w restricted to live states is a non-singular M-matrix
    if live.size <= 2000:
        phi[live] = np.linalg.solve(M.toarray(), rhs[live])
    else:
        phi[live] = spla.spsolve(M.tocsc(), rhs[live])
    return phi


def _absorbed_surely(Pw, term: np.ndarray) -> bool:
    """True iff the Markov chain P_w reaches the terminal set w.p. 1 from every state (finite chain:
    iff every state has a path to a terminal state on the support graph)."""
    if not term.any():
        return False
    from scipy.sparse.csgraph import breadth_first_order

    G = sp.csr_matrix(Pw > 0, dtype=np.int8).T.tocsr()  # reversed edges
    n = G.shape[0]
    sink = n  # super-source joined to every terminal state
    extra = sp.csr_matrix((np.ones(int(term.sum()), np.int8), (np.zeros(int(term.sum()), int), np.flatnonzero(term))),
                          shape=(1, n))
    G2 = sp.vstack([sp.hstack([G, sp.csr_matrix((n, 1), dtype=np.int8)]),
                    sp.hstack([extra, sp.csr_matrix((1, 1), dtype=np.int8)])]).tocsr()
    seen = breadth_first_order(G2, sink, directed=True, return_predecessors=False)
    return seen.size == n + 1


def normalized_reward(policy, P, gamma, temperature, *, anchor: Union[int, str, np.ndarray] = 0,
                      terminal=None, log_policy=None) -> np.ndarray:
    r"""The reward of the shaping class of a soft-optimal policy π picked by a normalisation, in
    closed form (docs/math.md §10; Cao, Cohen & Szpruch 2021):

    .. math:: (I - \gamma P_w)\,\Phi = -\tau\sum_a w(a|\cdot)\log\pi(a|\cdot),\qquad
              r(s,a) = \tau\log\pi(a|s) + \Phi(s) - \gamma(P\Phi)(s,a),

    which is the unique member with :math:`\sum_a w(a|s)\,r(s,a) = 0` in every non-terminal state.
    ``anchor``: an action a0 (w = one-hot: r(s, a0) = 0, the anchor-action normalisation;
    :math:`(I - \gamma P_{a_0})\Phi = -\tau\log\pi(a_0|\cdot)`), ``"state"`` (w uniform: every
    state's rewards average to 0 — the state-wise normalisation), or an ``(S, A)`` array of weights.
    Unique for γ < 1; γ = 1 needs the anchor actions to terminate w.p. 1 (ValueError otherwise).
    π must be positive where used (it is, for a soft-optimal policy); rows of terminal states are 0.
    Φ equals V*_τ of the returned reward (so Q*_τ = τ log π + V).
    ``log_policy`` ``(S, A)``: pass log π instead of π (``policy=None``) when π underflows — e.g. at
    τ = 1e-8 use ``(sol.q - sol.v[:, None]) / τ``, finite where π rounds to 0.
    """
    gamma = check_gamma(gamma)
    tau = check_positive(temperature, "temperature")
    P2, S, A, term = _kernel(P, terminal)
    live = ~term
    logp = np.zeros((S, A))
    if (policy is None) == (log_policy is None):
        raise ValueError("give exactly one of policy or log_policy")
    if log_policy is not None:
        lp = check_finite(log_policy, "log_policy")
        check_shape(lp, (S, A), "log_policy")
        dev = np.abs(logsumexp(lp[live], axis=1)) if live.any() else np.zeros(0)
        if dev.size and dev.max() > 1e-6:
            raise ValueError(f"log_policy rows must be normalised (LSE = 0); max |LSE| = {dev.max():.3g}")
        logp[live] = lp[live] - logsumexp(lp[live], axis=1)[:, None]  # remove round-off of (q − v)/τ
    else:
        pol = check_finite(policy, "policy")
        check_shape(pol, (S, A), "policy")
        if np.any(pol[live] <= 0):
            s, a = np.argwhere((pol <= 0) & live[:, None])[0]
            raise ValueError(f"policy must be positive on non-terminal states (a soft-optimal policy is; at tiny τ "
                             f"pass log_policy instead); policy[{s}, {a}] = {pol[s, a]!r}")
        if np.any(np.abs(pol[live].sum(axis=1) - 1) > 1e-9):
            raise ValueError("policy rows must sum to 1")
        logp[live] = np.log(pol[live])
    w = _anchor_weights(anchor, S, A)
    phi = _solve_potential(P2, S, A, gamma, term, w, -tau * np.sum(w * logp, axis=1))
    r = tau * logp + phi[:, None] - gamma * _apply(P2, phi, S, A)
    r[term] = 0.0
    return r


def normalize_reward(r, P, gamma, *, anchor: Union[int, str, np.ndarray] = 0, terminal=None) -> np.ndarray:
    r"""The normalised member of r's shaping class, computed from r itself (no policy):
    :math:`(I - \gamma P_w)\Phi = \sum_a w(a|\cdot)r(\cdot,a)`, :math:`r' = r + \gamma P\Phi - \Phi`
    (so :math:`\sum_a w(a|s)r'(s,a) = 0`). Equals :func:`normalized_reward` of r's soft-optimal
    policy at any τ — the identity the tests check."""
    gamma = check_gamma(gamma)
    P2, S, A, term = _kernel(P, terminal)
    r = _reward(r, S, A, "r")
    w = _anchor_weights(anchor, S, A)
    rr = np.where(term[:, None], 0.0, r)
    phi = _solve_potential(P2, S, A, gamma, term, w, np.sum(w * rr, axis=1))
    out = rr + gamma * _apply(P2, phi, S, A) - phi[:, None]
    out[term] = 0.0
    return out


# ---------------------------------------------------------------------- EPIC-style pseudometric
def canonical_reward(r, P, gamma, *, coverage=None, terminal=None) -> np.ndarray:
    r"""Shaping-invariant canonical form: the residual of the coverage-weighted least-squares
    projection of r onto {γPΦ − Φ + c}:

    .. math:: C(r) = r - (\gamma P\Phi^\star - \Phi^\star) - c^\star,\quad
              (\Phi^\star, c^\star) = \arg\min_{\Phi, c}\sum_{s,a} D(s,a)\,(r - \gamma P\Phi + \Phi - c)^2.

    C is linear, C(r + γPΦ − Φ + c) = C(r) exactly (the shaping lies in the projected subspace), and
    C(r) = 0 iff r is a shaping plus a constant. ``coverage`` D ``(S, A)`` ≥ 0 (default uniform over
    non-terminal pairs). Returned ``(S, A)``, 0 on terminal rows.
    """
    gamma = check_gamma(gamma)
    P2, S, A, term = _kernel(P, terminal)
    r = _reward(r, S, A, "r")
    D = _check_weights(coverage, S, A)
    resid, _, _, rows, _ = _project_out_shaping(r, P2, S, A, gamma, term, D, True)
    out = np.zeros(S * A)
    out[rows] = resid
    return out.reshape(S, A)


def epic_distance(r1, r2, P, gamma, *, coverage=None, terminal=None) -> float:
    r"""EPIC-style pseudometric between rewards (after Gleave et al. 2021, "Quantifying differences in
    reward functions"; *reconstructed form* for expected rewards r(s, a) and a known kernel P):

    .. math:: D(r_1, r_2) = \sqrt{\tfrac{1 - \rho_D(C(r_1), C(r_2))}{2}}
              = \tfrac12\,\big\| z(r_1) - z(r_2) \big\|_{D},\qquad z(r) = C(r)/\|C(r)\|_D,

    with C the shaping-projection canonicalisation of :func:`canonical_reward` (EPIC canonicalises
    with a transition-free expectation over coverage distributions; here the shaping class is that
    of the MDP's own P, so C is exactly shaping-invariant) and ρ_D the Pearson correlation under the
    coverage D (C(r) has D-mean 0 because constants are projected out). A canonical reward that is 0
    (r is a pure shaping + constant) has z = 0. Properties (tested): 0 for shaping-equivalent pairs,
    invariant to positive scaling of either reward, symmetric, triangle inequality (it is half a
    Euclidean distance of the images z), values in [0, 1].
    """
    P2, S, A, term = _kernel(P, terminal)
    D = _check_weights(coverage, S, A)
    Dw = np.where(term[:, None], 0.0, 1.0) if D is None else np.where(term[:, None], 0.0, D)
    Dw = Dw / Dw.sum()
    z = []
    for name, r in (("r1", r1), ("r2", r2)):
        _reward(r, S, A, name)
        c = canonical_reward(r, P, gamma, coverage=coverage, terminal=terminal)
        nrm = float(np.sqrt(np.sum(Dw * c * c)))
        scale = float(np.sqrt(np.sum(Dw * np.asarray(r, dtype=np.float64) ** 2))) + 1.0
        z.append(c / nrm if nrm > 1e-12 * scale else np.zeros_like(c))
    d = 0.5 * float(np.sqrt(np.sum(Dw * (z[0] - z[1]) ** 2)))
    return min(d, 1.0)
