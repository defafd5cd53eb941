r"""Maximum-causal-entropy inverse RL, exact (docs/math.md §10; Ziebart, Bagnell & Dey 2010,
"Modeling interaction via the principle of maximum causal entropy"; Ziebart 2010, PhD thesis,
ch. 9–10 — here in the discounted form, any γ ∈ [0, 1]).

Rewards are linear in features, :math:`r_\theta(s,a) = \theta^\top\phi(s,a)`; π_θ is the soft-optimal
policy of r_θ at temperature τ and discount γ of the MDP (docs/math.md §2). With the expert's
discounted feature expectations :math:`\mu_E = E_E\sum_t\gamma^t\phi(s_t,a_t)`, the causal
log-likelihood :math:`E_E\sum_t\gamma^t\log\pi_\theta(a_t|s_t)` telescopes to

.. math::
    \ell(\theta) = \frac{\theta^\top\mu_E - \mu_0^\top V_\theta}{\tau},\qquad
    \nabla\ell(\theta) = \frac{\mu_E - \mu(\pi_\theta)}{\tau},\qquad
    \nabla^2\ell(\theta) = -\frac1{\tau^2}\sum_{s,a}\rho^{\pi_\theta}(s,a)\,
        (\Psi(s,a) - \psi(s))(\Psi(s,a) - \psi(s))^\top \preceq 0

(:math:`\nabla_\theta\,\mu_0^\top V_\theta = \mu(\pi_\theta)` by the envelope theorem; ψ, Ψ the
successor features of π_θ, :math:`\partial V_\theta/\partial\theta = \psi` and
:math:`\partial\pi_\theta(a|s)/\partial\theta = \pi_\theta(a|s)(\Psi(s,a)-\psi(s))/\tau`). The model
occupancy is that of the *discounted* soft policy at the *same* γ; computing π_θ with γ = 1 (as
the ``imitation`` package's MCE IRL does on its discounted path) matches moments at a wrong θ —
:func:`mce_gradient_undiscounted_shortcut` reproduces that form so a test can measure the error.

Scale invariance used throughout: :math:`V^{\tau}_\theta = \tau V^{1}_{\theta/\tau}`, so
:math:`\ell(\theta) = \eta^\top\mu_E - \mu_0^\top V^1_\eta` with :math:`\eta = \theta/\tau`. Every
solve is done at temperature 1 in η (the optimum η* does not depend on τ) and θ = τη is returned:
τ from 1e-8 to 1e8 stays exact.

Finite horizon H: π_θ = (π_0, …, π_{H−1}) by backward induction, the same formulas with
time-indexed occupancies (γ = 1 allowed). Infinite horizon with γ = 1 needs termination.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._math import logsumexp
from .._validate import check_distribution, check_finite, check_int, check_positive, check_shape
from ..envs.tabular import TabularMDP
from ..solvers.dp import ConvergenceWarning
from ..solvers.occupancy import (_check_features, _occupancy_solve, check_policy_proper, feature_expectations,
                                 finite_horizon_occupancy)

__all__ = [
    "state_features", "state_action_features", "IRLResult", "mce_log_likelihood", "mce_gradient",
    "mce_hessian", "mce_irl", "mce_gradient_undiscounted_shortcut", "unidentified_directions", "METHODS",
]

METHODS = ("lbfgs", "newton", "gradient")
_EPS = np.finfo(np.float64).eps


# ---------------------------------------------------------------------- features
def state_features(n_states: int, n_actions: int) -> np.ndarray:
    r"""One-hot state features :math:`\phi(s,a) = e_s`, ``(S, A, S)`` (a state-only reward r(s))."""
    S = check_int(n_states, "n_states")
    A = check_int(n_actions, "n_actions")
    return np.repeat(np.eye(S)[:, None, :], A, axis=1)


def state_action_features(n_states: int, n_actions: int) -> np.ndarray:
    r"""One-hot state–action features :math:`\phi(s,a) = e_{sA+a}`, ``(S, A, S·A)`` (a tabular reward)."""
    S = check_int(n_states, "n_states")
    A = check_int(n_actions, "n_actions")
    return np.eye(S * A).reshape(S, A, S * A)


# ---------------------------------------------------------------------- the model: soft solves in η
class _Model:
    """The MDP, features and horizon of one IRL problem, with warm-started soft solves at
    temperature 1 (counted in ``n_solves``)."""

    def __init__(self, mdp: TabularMDP, features, horizon: Optional[int]):
        if not isinstance(mdp, TabularMDP):
            raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
        self.mdp = mdp
        S, A = mdp.n_states, mdp.n_actions
        self.phi = _check_features(features, S, A)
        self.d = self.phi.shape[2]
        self.F = self.phi.reshape(S * A, self.d)
        self.H = None if horizon is None else check_int(horizon, "horizon")
        if self.H is None:
            # γ = 1 without a horizon: every policy must terminate (not only the soft ones — a loop that
            # is possible at all can make the soft values, with their entropy bonus, unbounded)
            mdp.check_solvable()
        self.keep = ~mdp.terminal
        self.n_solves = 0
        self.n_linear_solves = 0
        self._warm = None

    # -- soft solve of reward F η at temperature 1
    def solve(self, eta: np.ndarray):
        """(q, v, policy) of r = Fη at temperature 1: stationary ``(S, A)``, ``(S,)``, ``(S, A)``
        or time-indexed ``(H, S, A)``, ``(H, S)``, ``(H, S, A)``."""
        self.n_solves += 1
        mdp = self.mdp
        S, A = mdp.n_states, mdp.n_actions
        r = (self.F @ eta).reshape(S, A)
        if self.H is not None:
            return _soft_backward(mdp, r, self.H)
        q, v, pol, it = _soft_pi(mdp, r, self._warm)
        self.n_linear_solves += it
        self._warm = pol
        return q, v, pol

    def occupancy_sa(self, pol: np.ndarray, initial=None) -> np.ndarray:
        """ρ(s, a) of a stationary (S, A) or time-indexed (H, S, A) policy (discounted)."""
        mdp = self.mdp
        mu = mdp.initial if initial is None else initial
        if self.H is None:
            P_pi = mdp.policy_matrix(pol)
            rho = _occupancy_solve(mdp, P_pi, mu)
            rho[mdp.terminal] = 0.0
            return rho[:, None] * pol
        rho_t = finite_horizon_occupancy(mdp, pol, self.H, mu)
        disc = mdp.gamma ** np.arange(self.H)
        return np.einsum("t,ts,tsa->sa", disc, rho_t, pol)

    def fe(self, pol) -> np.ndarray:
        return self.occupancy_sa(pol).reshape(-1) @ self.F

    def value_initial(self, v) -> float:
        return float(self.mdp.initial @ (v if self.H is None else v[0]))

    def hessian_eta(self, pol) -> np.ndarray:
        r""":math:`\nabla^2_\eta\ell = -\sum\rho(s,a)(\Psi-\psi)(\Psi-\psi)^\top` at temperature 1, ``(d, d)``."""
        B = self.centred_sf(pol)
        return -(B.T @ B)

    def centred_sf(self, pol) -> np.ndarray:
        r"""Rows :math:`\sqrt{\gamma^t\rho_t(s)\pi_t(a|s)}\,(\Psi_t(s,a) - \psi_t(s))`, ``(n_rows, d)``:
        BᵀB = −Hessian (η-space), and its null space is the set of locally unidentified directions."""
        mdp = self.mdp
        S, A, d, g = mdp.n_states, mdp.n_actions, self.d, mdp.gamma
        keep = self.keep.astype(np.float64)
        if self.H is None:
            P_pi = mdp.policy_matrix(pol)
            rhs = np.einsum("sa,sad->sd", pol, self.phi) * keep[:, None]
            psi = _value_solve(mdp, P_pi, rhs).reshape(S, d)
            Psi = self.phi + g * np.asarray(mdp.P2 @ psi).reshape(S, A, d)
            w = self.occupancy_sa(pol)
            C = (Psi - psi[:, None, :]) * np.sqrt(w)[..., None]
            C[mdp.terminal] = 0.0
            return C.reshape(S * A, d)
        H = self.H
        rho_t = finite_horizon_occupancy(mdp, pol, H, mdp.initial)
        rows = []
        psi_next = np.zeros((S, d))
        for t in range(H - 1, -1, -1):
            Psi = self.phi + g * np.asarray(mdp.P2 @ psi_next).reshape(S, A, d)
            Psi[mdp.terminal] = 0.0
            psi = np.einsum("sa,sad->sd", pol[t], Psi)
            w = (g ** t) * rho_t[t][:, None] * pol[t]
            rows.append(((Psi - psi[:, None, :]) * np.sqrt(w)[..., None]).reshape(S * A, d))
            psi_next = psi
        return np.concatenate(rows[::-1])


def _value_solve(mdp: TabularMDP, P_pi, rhs: np.ndarray) -> np.ndarray:
    r"""Solve :math:`(I - \gamma D P_\pi)x = b` (D = non-terminal mask), sparse-aware."""
    S, g = mdp.n_states, mdp.gamma
    keep = (~mdp.terminal).astype(np.float64)
    if sp.issparse(P_pi):
        M = (sp.identity(S, format="csc") - g * sp.diags(keep) @ P_pi).tocsc()
        x = spla.splu(M).solve(np.asarray(rhs, dtype=np.float64))
    else:
        M = P_pi * (-g * keep)[:, None]
        M.flat[:: S + 1] += 1.0
        x = np.linalg.solve(M, rhs)
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("soft policy evaluation failed: I − γP_π is singular (γ = 1 with an improper policy?)")
    return x


def _softmax(q: np.ndarray) -> np.ndarray:
    z = q - np.max(q, axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def _soft_pi(mdp: TabularMDP, r: np.ndarray, warm: Optional[np.ndarray], max_iter: int = 500):
    r"""Soft policy iteration at temperature 1 (docs/math.md §2), warm-started from ``warm``:
    evaluate :math:`(I-\gamma DP_\pi)v = \sum_a\pi(r - \log\pi)` exactly, improve π ← softmax(q),
    until the Bellman residual :math:`\|\mathrm{LSE}(q) - v\|_\infty` reaches the float64 floor
    (soft PI converges quadratically near the fixed point). Returns (q, v = LSE q, π, iterations)."""
    S, A, g = mdp.n_states, mdp.n_actions, mdp.gamma
    term = mdp.terminal
    horizon = 1.0 / (1.0 - g) if g < 1 else float(S)
    floor = 64 * _EPS * ((float(np.max(np.abs(r))) if r.size else 0.0) + math.log(A) + 1.0) * horizon
    pol = _softmax(r) if warm is None else warm
    prev = np.inf
    for it in range(1, max_iter + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.where(pol > 0, np.log(np.where(pol > 0, pol, 1.0)), 0.0)
        r_pi = np.sum(pol * (r - logp), axis=1)
        r_pi[term] = 0.0
        v = _value_solve(mdp, mdp.policy_matrix(pol), r_pi)
        q = r + g * np.asarray(mdp.P2 @ v).reshape(S, A)
        q[term] = 0.0
        tv = logsumexp(q, axis=1)
        tv[term] = 0.0
        res = float(np.max(np.abs(tv - v))) if S else 0.0
        pol = _softmax(q)
        if res <= floor or (res >= prev and res < 1e6 * floor):
            break
        prev = res
    else:
        warnings.warn(f"soft policy iteration stopped at {max_iter} iterations with residual {res:.3g}",
                      ConvergenceWarning, stacklevel=3)
    q = r + g * np.asarray(mdp.P2 @ tv).reshape(S, A)
    q[term] = 0.0
    v = logsumexp(q, axis=1)
    v[term] = 0.0
    return q, v, _softmax(q), it


def _soft_backward(mdp: TabularMDP, r: np.ndarray, H: int):
    r"""Finite-horizon soft backward induction at temperature 1: :math:`q_t = r + \gamma P v_{t+1}`,
    :math:`v_t = \mathrm{LSE}\,q_t`, :math:`\pi_t = e^{q_t - v_t}`, v_H = 0 (terminal states 0)."""
    S, A, g = mdp.n_states, mdp.n_actions, mdp.gamma
    qs, vs, ps = np.zeros((H, S, A)), np.zeros((H, S)), np.zeros((H, S, A))
    v = np.zeros(S)
    for t in range(H - 1, -1, -1):
        q = r + g * np.asarray(mdp.P2 @ v).reshape(S, A)
        q[mdp.terminal] = 0.0
        v = logsumexp(q, axis=1)
        v[mdp.terminal] = 0.0
        qs[t], vs[t], ps[t] = q, v, _softmax(q)
    return qs, vs, ps


# ---------------------------------------------------------------------- pure functions of θ
def _check_theta(theta, d: int) -> np.ndarray:
    th = check_finite(theta, "theta")
    check_shape(th, (d,), "theta")
    return th


def _check_fe(expert_fe, d: int) -> np.ndarray:
    fe = check_finite(expert_fe, "expert_fe")
    check_shape(fe, (d,), "expert_fe")
    return fe


def mce_log_likelihood(theta, mdp: TabularMDP, features, expert_fe, temperature: float, *,
                       horizon: Optional[int] = None) -> float:
    r"""Causal log-likelihood :math:`\ell(\theta) = (\theta^\top\mu_E - \mu_0^\top V_\theta)/\tau`
    (docs/math.md §10; Ziebart et al. 2010), V_θ the soft-optimal value of r_θ = θᵀφ at
    temperature τ and the MDP's γ (finite ``horizon``: V_θ at stage 0). Equals
    :math:`E_E\sum_t\gamma^t\log\pi_\theta(a_t|s_t)` when μ_E comes from an expert with the same μ0."""
    tau = check_positive(temperature, "temperature")
    m = _Model(mdp, features, horizon)
    th = _check_theta(theta, m.d)
    fe = _check_fe(expert_fe, m.d)
    eta = th / tau
    _, v, _ = m.solve(eta)
    return float(eta @ fe - m.value_initial(v))


def mce_gradient(theta, mdp: TabularMDP, features, expert_fe, temperature: float, *,
                 horizon: Optional[int] = None) -> np.ndarray:
    r"""Exact gradient :math:`\nabla\ell(\theta) = (\mu_E - \mu(\pi_\theta))/\tau`, ``(d,)``, with the
    model occupancy of the discounted soft policy at the same γ (docs/math.md §10)."""
    tau = check_positive(temperature, "temperature")
    m = _Model(mdp, features, horizon)
    th = _check_theta(theta, m.d)
    fe = _check_fe(expert_fe, m.d)
    _, _, pol = m.solve(th / tau)
    return (fe - m.fe(pol)) / tau


def mce_hessian(theta, mdp: TabularMDP, features, temperature: float, *,
                horizon: Optional[int] = None) -> np.ndarray:
    r"""Exact Hessian :math:`\nabla^2\ell(\theta) = -\frac1\tau\,\partial\mu(\pi_\theta)/\partial\theta
    = -\frac1{\tau^2}\sum_{s,a}\rho(s,a)(\Psi(s,a)-\psi(s))(\Psi(s,a)-\psi(s))^\top`, ``(d, d)``,
    negative semi-definite (ℓ is concave); Ψ, ψ the successor features of π_θ (time-indexed with a
    finite horizon). Its null space holds the directions the data cannot identify."""
    tau = check_positive(temperature, "temperature")
    m = _Model(mdp, features, horizon)
    th = _check_theta(theta, m.d)
    _, _, pol = m.solve(th / tau)
    return m.hessian_eta(pol) / tau**2


def mce_gradient_undiscounted_shortcut(theta, mdp: TabularMDP, features, expert_fe, temperature: float, *,
                                       horizon: int) -> np.ndarray:
    r"""The MCE gradient as computed by the ``imitation`` package's discounted path (a known-wrong
    form, kept only to measure its error): the soft policy is computed by *undiscounted* (γ = 1)
    backward induction over ``horizon`` steps, and only its occupancy is discounted,

    .. math:: g_{\text{shortcut}} = \Big(\mu_E - \sum_{t<H}\gamma^t\sum_{s,a}\rho^{(1)}_t(s)\pi^{(1)}_t(a|s)
              \phi(s,a)\Big)/\tau,\qquad \pi^{(1)} = \text{soft-optimal for } \gamma = 1 .

    It coincides with :func:`mce_gradient` (finite horizon) at γ = 1 and is nonzero at the true θ
    for γ < 1 (tests/test_mce_irl.py measures by how much)."""
    tau = check_positive(temperature, "temperature")
    m = _Model(mdp, features, check_int(horizon, "horizon"))
    th = _check_theta(theta, m.d)
    fe = _check_fe(expert_fe, m.d)
    undiscounted = _shallow_with_gamma(mdp, 1.0)
    m.n_solves += 1
    _, _, pol1 = _soft_backward(undiscounted, (m.F @ (th / tau)).reshape(mdp.n_states, mdp.n_actions), m.H)
    return (fe - m.fe(pol1)) / tau


def _shallow_with_gamma(mdp: TabularMDP, gamma: float) -> TabularMDP:
    import copy

    out = copy.copy(mdp)
    out.gamma = float(gamma)
    return out


# ---------------------------------------------------------------------- identifiability
def unidentified_directions(mdp: TabularMDP, features, *, horizon: Optional[int] = None,
                            rtol: float = 1e-9) -> np.ndarray:
    r"""Orthonormal basis ``(d, k)`` of the parameter directions δ that no data can identify: those
    whose reward δᵀφ is a potential shaping on the non-terminal states (docs/math.md §10, Ng, Harada
    & Russell 1999),

    .. math:: \delta^\top\phi(s,a) = \Phi(s) - \gamma\sum_{s'}P(s'|s,a)\Phi(s')\quad\forall s\notin T,\
              \Phi|_T = 0

    (with a finite horizon: a time-dependent Φ_t, Φ_H = 0). Such δ leave the soft-optimal policy
    unchanged for every τ, so θ is identified only modulo their span; rewards at terminal states
    are never identified. θ-independent: computed from (P, γ, φ) alone, before any solve."""
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    S, A = mdp.n_states, mdp.n_actions
    phi = _check_features(features, S, A)
    d = phi.shape[2]
    nt = np.nonzero(~mdp.terminal)[0]
    rows = (nt[:, None] * A + np.arange(A)).ravel()
    F = phi.reshape(S * A, d)[rows]
    P = mdp.P2[rows] if not sp.issparse(mdp.P2) else mdp.P2[rows].toarray()
    P = np.asarray(P)[:, nt]
    E = np.repeat(np.eye(nt.size), A, axis=0)
    K = E - mdp.gamma * P  # (SA_nt, S_nt)
    if horizon is None:
        M = np.hstack([F, -K])
    else:
        H = check_int(horizon, "horizon")
        n, m_ = F.shape[0], nt.size
        M = np.zeros((H * n, d + H * m_))
        for t in range(H):
            M[t * n:(t + 1) * n, :d] = F
            M[t * n:(t + 1) * n, d + t * m_:d + (t + 1) * m_] = -E
            if t + 1 < H:
                M[t * n:(t + 1) * n, d + (t + 1) * m_:d + (t + 2) * m_] = mdp.gamma * P
    if M.shape[0] == 0:
        return np.eye(d)
    s, Vt = _right_svd(M)
    cut = rtol * max(1.0, s[0] if s.size else 1.0)
    rank = int(np.sum(s > cut))
    null = Vt[rank:].T[:d]  # δ-parts of the null space of [F, −K]
    if null.shape[1] == 0:
        return np.zeros((d, 0))
    U, sv, _ = np.linalg.svd(null, full_matrices=False)
    return U[:, sv > 1e-8]


def _right_svd(M: np.ndarray):
    """Singular values and all right singular vectors of M without the (n, n) left factor
    (zero rows are appended when M has fewer rows than columns)."""
    if M.shape[0] < M.shape[1]:
        M = np.vstack([M, np.zeros((M.shape[1] - M.shape[0], M.shape[1]))])
    elif M.shape[0] > 2 * M.shape[1]:
        M = np.linalg.qr(M, mode="r")  # tall: M = QR, same singular values and right vectors as R
    _, s, Vt = np.linalg.svd(M, full_matrices=False)
    return s, Vt


def _nullspace_of(B: np.ndarray, rtol: float = 1e-7) -> np.ndarray:
    if B.size == 0:
        return np.eye(B.shape[1])
    s, Vt = _right_svd(B)
    smax = s[0] if s.size else 0.0
    rank = int(np.sum(s > rtol * max(smax, 1e-300))) if smax > 0 else 0
    return Vt[rank:].T


# ---------------------------------------------------------------------- the solver
@dataclass
class IRLResult:
    r"""Result of :func:`mce_irl`.

    theta ``(d,)`` (minimum-norm in the unidentified directions); reward ``(S, A)`` = θᵀφ; policy,
    q ``(S, A)`` (``(H, S, A)`` with a horizon) and v ``(S,)`` (``(H, S)``) — the soft-optimal
    solution of the recovered reward at temperature τ; grad_norm = ‖∇ℓ(θ)‖∞ = ‖μ_E − μ(π_θ)‖∞/τ;
    fe_error = ‖μ_E − μ(π_θ)‖∞ (the stopping quantity); n_solves = soft solves used;
    iterations = optimiser iterations; tv_to_expert = max over expert-visited states (and stages) of
    TV(π_θ(·|s), π_E(·|s)) when an expert policy was given, else None; nullspace ``(d, k)``:
    orthonormal basis of the directions the data leave unidentified (null space of the Hessian at θ:
    shaping directions plus directions only unvisited states would pin; None if not computed);
    log_likelihood = ℓ(θ).
    """

    theta: np.ndarray
    reward: np.ndarray
    policy: np.ndarray
    q: np.ndarray
    v: np.ndarray
    grad_norm: float
    fe_error: float
    n_solves: int
    iterations: int
    tv_to_expert: Optional[float]
    nullspace: Optional[np.ndarray]
    converged: bool
    log_likelihood: float
    method: str
    temperature: float
    horizon: Optional[int] = None
    history: list = field(default_factory=list)

    def summary(self) -> dict:
        return {"method": self.method, "grad_norm": float(self.grad_norm), "fe_error": float(self.fe_error),
                "n_solves": int(self.n_solves), "iterations": int(self.iterations),
                "tv_to_expert": None if self.tv_to_expert is None else float(self.tv_to_expert),
                "n_unidentified": None if self.nullspace is None else int(self.nullspace.shape[1]),
                "converged": bool(self.converged),
                "log_likelihood": float(self.log_likelihood)}


def mce_irl(mdp: TabularMDP, features, *, expert_policy=None, expert_fe=None, demonstrations=None,
            temperature: float = 1.0, method: str = "lbfgs", tol: float = 1e-10, horizon: Optional[int] = None,
            max_iter: int = 1000, theta0=None, require_identified: bool = False, step_size: Optional[float] = None,
            history: bool = False, nullspace: bool = True) -> IRLResult:
    r"""Maximum-causal-entropy IRL (docs/math.md §10; Ziebart et al. 2010): maximise the concave
    causal log-likelihood :math:`\ell(\theta) = (\theta^\top\mu_E - \mu_0^\top V_\theta)/\tau` with its
    exact gradient :math:`(\mu_E - \mu(\pi_\theta))/\tau`.

    Exactly one expert source: ``expert_policy`` (``(S, A)``, or ``(H, S, A)`` with a horizon —
    population statistics, μ_E exact), ``expert_fe`` (``(d,)``) or ``demonstrations`` (a
    :class:`~mdpsandbox.irl.demos.Demonstrations`; μ_E = discounted empirical feature expectations —
    with γ < 1 and no ``horizon`` they are truncated at the demonstrations' length).

    features : ``(S, A, d)`` (see :func:`state_features`, :func:`state_action_features`).
    temperature : τ > 0. The MDP's γ ∈ [0, 1] is used (γ = 1 needs termination or ``horizon``).
    method : ``"lbfgs"`` (limited-memory BFGS, exact gradients), ``"newton"`` (exact Hessian,
        pseudo-inverse on its range, backtracking) or ``"gradient"`` (plain gradient ascent with a
        fixed step ``step_size`` in η = θ/τ, default the safe 1/L bound 1/(2 max‖φ‖ Σρ)²; the
        baseline of the benchmark).
    tol : stop when ‖μ_E − μ(π_θ)‖∞ ≤ tol (τ times the gradient norm — the same meaning at every τ).
    max_iter : optimiser iterations; reaching it returns ``converged=False`` and warns (never silent).
    require_identified : raise ValueError (before any solve) if the features leave directions
        unidentified (:func:`unidentified_directions`), naming them; otherwise θ is the minimum-norm
        solution and ``nullspace`` reports the unidentified directions.
    nullspace : compute the data-unidentified directions at the answer (an SVD of a (rows, d) matrix,
        O(rows·d²) — pass False for very many features; ``IRLResult.nullspace`` is then None).
    history : record ‖μ_E − μ(π_θ)‖∞ after every iteration in ``IRLResult.history``.
    theta0 : starting point (default 0, i.e. the uniform policy). step_size : see ``method``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    tau = check_positive(temperature, "temperature")
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter")
    m = _Model(mdp, features, horizon)
    S, A, d = mdp.n_states, mdp.n_actions, m.d
    given = [x is not None for x in (expert_policy, expert_fe, demonstrations)]
    if sum(given) != 1:
        raise ValueError("give exactly one of expert_policy, expert_fe or demonstrations")
    exp_pol = None
    if expert_policy is not None:
        exp_pol = check_distribution(expert_policy, "expert_policy")
        want = (S, A) if m.H is None or exp_pol.ndim == 2 else (m.H, S, A)
        check_shape(exp_pol, want, "expert_policy")
        if m.H is not None and exp_pol.ndim == 2:
            exp_pol = np.broadcast_to(exp_pol, (m.H, S, A))
        if m.H is None and mdp.gamma == 1.0:
            check_policy_proper(mdp, exp_pol)
    elif expert_fe is not None:
        fe = _check_fe(expert_fe, d)
    else:
        from .demos import Demonstrations, empirical_feature_expectations

        if not isinstance(demonstrations, Demonstrations):
            raise ValueError(f"demonstrations must be a Demonstrations, got {type(demonstrations).__name__}")
        demonstrations.validate(S, A)
        if m.H is not None and demonstrations.states.shape[1] > m.H:
            raise ValueError(f"demonstrations are {demonstrations.states.shape[1]} steps long, longer than "
                             f"horizon={m.H}")
    if theta0 is not None:
        eta0 = _check_theta(theta0, d) / tau
    else:
        eta0 = np.zeros(d)
    if step_size is not None:
        step_size = check_positive(step_size, "step_size")
    if require_identified:
        null = unidentified_directions(mdp, m.phi, horizon=m.H)
        if null.shape[1]:
            dirs = "; ".join("[" + ", ".join(f"{x:.3g}" for x in null[:, j]) + "]" for j in range(min(3, null.shape[1])))
            raise ValueError(
                f"features cannot identify the reward: {null.shape[1]} direction(s) of theta change the reward by "
                f"a potential shaping (or only at terminal states) and leave the soft-optimal policy unchanged, "
                f"e.g. {dirs}{' ...' if null.shape[1] > 3 else ''}; pass require_identified=False for the "
                f"minimum-norm theta and the nullspace")
    # -- expert feature expectations (work starts here)
    if exp_pol is not None:
        fe = m.occupancy_sa(exp_pol).reshape(-1) @ m.F
    elif demonstrations is not None:
        fe = empirical_feature_expectations(demonstrations, m.phi, mdp.gamma)

    scale_fe = max(1.0, float(np.max(np.abs(fe))) if fe.size else 1.0)
    cache = {}

    def evaluate(eta):
        key = eta.tobytes()
        if key in cache:
            return cache[key]
        q, v, pol = m.solve(eta)
        g = fe - m.fe(pol)
        a, b = float(eta @ fe), m.value_initial(v)
        f = a - b
        out = (f, g, q, v, pol, abs(a) + abs(b))
        cache.clear()
        cache[key] = out
        return out

    hist = []
    eta, it, converged = eta0.copy(), 0, False
    f, g, q, v, pol, _ = evaluate(eta)
    if history:
        hist.append(float(np.max(np.abs(g))))
    if float(np.max(np.abs(g))) <= tol:
        converged = True
    elif method == "newton":
        eta, it, converged = _newton(m, evaluate, eta, tol, max_iter, hist if history else None)
    elif method == "lbfgs":
        eta, it, converged = _lbfgs(evaluate, eta, tol, max_iter, hist if history else None)
    else:
        if step_size is None:
            # ‖∇²ℓ‖ ≤ Σρ · max ‖Ψ − ψ‖² ≤ (Σρ)² · (2 max‖φ‖)² : a safe 1/L step in η
            mass = float(m.occupancy_sa(pol).sum())
            fmax = float(np.max(np.linalg.norm(m.F, axis=1))) if m.F.size else 1.0
            step_size = 1.0 / max((2 * fmax * mass) ** 2, 1e-300)
        eta, it, converged = _gradient_ascent(evaluate, eta, tol, max_iter, step_size, hist if history else None)
    if not converged:
        warnings.warn(f"mce_irl ({method}) stopped at max_iter={max_iter} before ‖μ_E − μ‖∞ ≤ {tol:g}",
                      ConvergenceWarning, stacklevel=2)
    f, g, q, v, pol, _ = evaluate(eta)
    fe_err = float(np.max(np.abs(g))) if g.size else 0.0
    null = _nullspace_of(m.centred_sf(pol)) if nullspace else None
    tv = None
    if exp_pol is not None:
        if m.H is None:
            vis = m.occupancy_sa(exp_pol).sum(axis=1) > 0
            diff = 0.5 * np.abs(pol - exp_pol).sum(axis=-1)
            tv = float(np.max(diff[vis])) if vis.any() else 0.0
        else:
            rho_t = finite_horizon_occupancy(mdp, exp_pol, m.H, mdp.initial)
            diff = 0.5 * np.abs(pol - exp_pol).sum(axis=-1)
            vis = rho_t > 0
            tv = float(np.max(diff[vis])) if vis.any() else 0.0
    theta = tau * eta
    return IRLResult(theta=theta, reward=(m.F @ theta).reshape(S, A), policy=pol, q=tau * q, v=tau * v,
                     grad_norm=fe_err / tau, fe_error=fe_err, n_solves=m.n_solves, iterations=it,
                     tv_to_expert=tv, nullspace=null, converged=converged, log_likelihood=f, method=method,
                     temperature=tau, horizon=m.H, history=hist)


def _armijo_ok(f_new, f, slope, alpha, fscale, c1=1e-4):
    # maximisation; allow the float64 round-off of f = ηᵀμ_E − μ0ᵀV (near the optimum f changes by
    # ~|g|²/L, below the round-off of its two terms, which cancel)
    return f_new >= f + c1 * alpha * slope - 64 * _EPS * (1.0 + fscale)


def _newton(m: _Model, evaluate, eta, tol, max_iter, hist):
    f, g, _, _, pol, _ = evaluate(eta)
    for it in range(1, max_iter + 1):
        B = m.centred_sf(pol)  # −Hessian = BᵀB (η-space)
        # Newton step on the range of the Hessian, δ = (BᵀB)⁺ g (ascent direction), from the d×d Gram
        # matrix (one GEMM + a small eigh; directions below 1e-12 λ_max are left alone — the
        # gradient has no component there up to round-off)
        lam, V = np.linalg.eigh(B.T @ B)
        keep = lam > 1e-12 * max(float(lam[-1]) if lam.size else 0.0, 1e-300)
        Vk = V[:, keep]
        step = Vk @ ((Vk.T @ g) / lam[keep])
        slope = float(g @ step)
        alpha = 1.0
        for _ in range(60):
            cand = eta + alpha * step
            f_new, g_new, _, _, pol_new, fs = evaluate(cand)
            if _armijo_ok(f_new, f, slope, alpha, fs) or np.max(np.abs(g_new)) < 0.5 * np.max(np.abs(g)):
                break
            alpha *= 0.5
        eta, f, g, pol = cand, f_new, g_new, pol_new
        if hist is not None:
            hist.append(float(np.max(np.abs(g))))
        if float(np.max(np.abs(g))) <= tol:
            return eta, it, True
    return eta, max_iter, False


def _lbfgs(evaluate, eta, tol, max_iter, hist, memory: int = 50):
    r"""Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989) for the concave ℓ (ascent form):
    two-loop recursion for the direction, backtracking Armijo line search with a round-off slack."""
    f, g = evaluate(eta)[:2]
    S_, Y_ = [], []
    gnorm = float(np.max(np.abs(g)))
    for it in range(1, max_iter + 1):
        # two-loop recursion on the minimisation problem (−ℓ): gradient −g; direction = −H(−g) = H g
        qv = g.copy()
        alphas = []
        for s_, y_ in zip(reversed(S_), reversed(Y_)):
            rho_ = 1.0 / float(y_ @ s_)
            a_ = rho_ * float(s_ @ qv)
            alphas.append(a_)
            qv = qv - a_ * y_
        if S_:
            gamma_k = float(S_[-1] @ Y_[-1]) / float(Y_[-1] @ Y_[-1])
        else:
            gamma_k = 1.0 / max(float(np.linalg.norm(g)), 1e-300)
        r_ = gamma_k * qv
        for (s_, y_), a_ in zip(zip(S_, Y_), reversed(alphas)):
            rho_ = 1.0 / float(y_ @ s_)
            b_ = rho_ * float(y_ @ r_)
            r_ = r_ + s_ * (a_ - b_)
        step = r_
        slope = float(g @ step)
        if slope <= 0:  # not an ascent direction (lost curvature information): restart with the gradient
            S_, Y_ = [], []
            step = g / max(float(np.linalg.norm(g)), 1e-300)
            slope = float(g @ step)
        alpha = 1.0
        for _ in range(60):
            cand = eta + alpha * step
            f_new, g_new, _, _, _, fs = evaluate(cand)
            if _armijo_ok(f_new, f, slope, alpha, fs):
                break
            alpha *= 0.5
        s_vec = cand - eta
        y_vec = g - g_new  # = ∇(−ℓ)(new) − ∇(−ℓ)(old)
        if float(s_vec @ y_vec) > 1e-12 * float(np.linalg.norm(s_vec)) * float(np.linalg.norm(y_vec)):
            S_.append(s_vec)
            Y_.append(y_vec)
            if len(S_) > memory:
                S_.pop(0)
                Y_.pop(0)
        eta, f, g = cand, f_new, g_new
        gnorm = float(np.max(np.abs(g)))
        if hist is not None:
            hist.append(gnorm)
        if gnorm <= tol:
            return eta, it, True
    return eta, max_iter, False


def _gradient_ascent(evaluate, eta, tol, max_iter, step, hist):
    """Plain gradient ascent η ← η + step·∇ℓ (the baseline the benchmark compares against)."""
    g = evaluate(eta)[1]
    for it in range(1, max_iter + 1):
        eta = eta + step * g
        g = evaluate(eta)[1]
        gn = float(np.max(np.abs(g)))
        if hist is not None:
            hist.append(gn)
        if gn <= tol:
            return eta, it, True
    return eta, max_iter, False
