r"""Reward transfer from inverse RL: behaviour cloning, sequential and coupled estimators
(docs/math.md §10).

**Reconstruction.** Hao, van der Laan, Bibaut & Kallus (2026), "Reward Transfer from Inverse
Reinforcement Learning: A Coupled Minimax Approach" — only the abstract is public. The estimators
below are a *reconstruction* consistent with it, not the paper's algorithm: expert demonstrations in
a source (P_S, γ_S, τ_S); the policy is deployed in a target (P_T, γ_T, τ_T) with the same states,
actions and reward; one normalisation shared by every estimator.

* Behaviour cloning: deploy π̂_S in the target.
* Sequential: estimate the reward in the source (the normalised inverse soft Bellman equation),
  then solve the target for it.
* Coupled: unknowns (V_S, Q_T); r eliminated through the source equation
  :math:`r = \tau_S\log\hat\pi_S + V_S - \gamma_S P_S V_S`, solved jointly with the target soft
  Bellman equation :math:`Q_T = r + \gamma_T P_T V_T(Q_T)`,
  :math:`V_T = \tau_T\,\mathrm{LSE}(Q_T/\tau_T)`.

Two regimes. (a) *Tabular plug-in* (:func:`sequential_tabular`, :func:`coupled_tabular`): both
equations are solved exactly, so sequential = coupled = the target DP solution of the normalised
reward (a test checks 1e-10). (b) *Restricted linear classes* (:func:`sequential_linear`,
:func:`coupled_linear`): reward r_θ = φθ, source values V_S = Ψ_S α, target values Q_T = Ψ_T β;
the source residual

.. math:: e_S(\theta,\alpha) = \phi\theta - \tau_S\log\hat\pi_S - (E - \gamma_S P_S)\Psi_S\alpha

(E maps V(s) to the rows (s, ·)) cannot in general be made 0, and the two estimators differ:
sequential minimises ‖e_S‖² first and then ‖e_T‖² for the fitted reward; coupled minimises
‖e_S‖² + λ‖e_T‖² jointly over (θ, α, β), where
:math:`e_T(\theta,\beta) = \Psi_T\beta - \phi\theta - \gamma_T P_T V_T(\Psi_T\beta)`. The abstract's
claim (coupled: no first-order term of the source residual in the target error) is a hypothesis the
validation suite measures, not a fact assumed here.

Metrics (:func:`transfer_metrics`): target soft regret and unregularised regret from μ0, TV to
π*_T, ‖q̂_T − q*_T‖∞, the source Bellman residual. Terminal states absorb with value 0 in both
environments (their rows are excluded from every residual).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import least_squares

from .._math import logsumexp
from .._validate import check_finite, check_int, check_positive, check_shape
from ..envs.tabular import TabularMDP
from ..solvers.dp import evaluate, solve
from .identifiability import _anchor_weights, normalize_reward, normalized_reward

__all__ = [
    "TransferProblem", "TransferEstimate", "transfer_problem", "shifted_problem", "random_kernel",
    "bc_policy", "behaviour_cloning", "sequential_tabular", "coupled_tabular", "sequential_linear",
    "coupled_linear", "source_residual", "transfer_metrics", "transfer_task",
]


# ---------------------------------------------------------------------- problems
@dataclass
class TransferProblem:
    """Source and target MDPs sharing states, actions, terminal set and the reward ``reward`` (S, A).

    ``source`` / ``target``: :class:`TabularMDP` (P, γ, μ0; their R is ``reward``);
    ``tau_source`` / ``tau_target``: entropy temperatures; ``anchor``: the shared normalisation
    (see :func:`~mdpsandbox.irl.identifiability.normalized_reward`); ``tol``: the exact solves'
    tolerance (‖v − v*‖∞ ≤ tol, soft policy iteration).
    """

    source: TabularMDP
    target: TabularMDP
    tau_source: float
    tau_target: float
    anchor: object = 0
    tol: float = 1e-11
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def reward(self) -> np.ndarray:
        return self.source.R

    @property
    def n_states(self) -> int:
        return self.source.n_states

    @property
    def n_actions(self) -> int:
        return self.source.n_actions

    def source_solution(self):
        """Soft-optimal solution of the source (the expert)."""
        if "src" not in self._cache:
            self._cache["src"] = solve(self.source, temperature=self.tau_source, method="pi", tol=self.tol)
        return self._cache["src"]

    def target_solution(self):
        """Soft-optimal solution of the target for the true reward (π*_T, q*_T)."""
        if "tgt" not in self._cache:
            self._cache["tgt"] = solve(self.target, temperature=self.tau_target, method="pi", tol=self.tol)
        return self._cache["tgt"]

    def target_hard_solution(self):
        """Unregularised optimum of the target (for the unregularised regret)."""
        if "tgt_hard" not in self._cache:
            self._cache["tgt_hard"] = solve(self.target, method="pi")
        return self._cache["tgt_hard"]


def _check_pair(source, target):
    if not isinstance(source, TabularMDP):
        raise ValueError(f"source must be a TabularMDP, got {type(source).__name__}")
    if not isinstance(target, TabularMDP):
        raise ValueError(f"target must be a TabularMDP, got {type(target).__name__}")
    if (source.n_states, source.n_actions) != (target.n_states, target.n_actions):
        raise ValueError(f"source and target must share the state and action spaces: source has "
                         f"(S={source.n_states}, A={source.n_actions}), target (S={target.n_states}, "
                         f"A={target.n_actions})")
    if not np.array_equal(source.terminal, target.terminal):
        raise ValueError("source and target must share the terminal set (target.terminal differs)")


def transfer_problem(source: TabularMDP, target: TabularMDP, *, tau_source: float,
                     tau_target: Optional[float] = None, anchor=0, normalize: bool = True) -> TransferProblem:
    """A source/target pair from two MDPs with equal state/action spaces and terminal sets. The reward
    is the *source's* R (the target's R is ignored); with ``normalize=True`` it is first replaced by
    its normalised shaping-class member (:func:`normalize_reward` in the source), so the shared
    normalisation is correct and the plug-in estimators are consistent (without it, sequential
    transfer is biased by the unidentified shaping even with infinite data — the point of
    docs/math.md §10's identifiability facts)."""
    _check_pair(source, target)
    ts = check_positive(tau_source, "tau_source")
    tt = ts if tau_target is None else check_positive(tau_target, "tau_target")
    _anchor_weights(anchor, source.n_states, source.n_actions)
    r = source.R.copy()
    r[source.terminal] = 0.0
    if normalize:
        r = normalize_reward(r, source, source.gamma, anchor=anchor)
    src = TabularMDP(source.P, r, source.gamma, terminal=source.terminal, initial=source.initial)
    tgt = TabularMDP(target.P, r, target.gamma, terminal=target.terminal, initial=target.initial)
    return TransferProblem(src, tgt, ts, tt, anchor)


def random_kernel(n_states: int, n_actions: int, branching: int, seed: int = 0) -> np.ndarray:
    """A garnet-style dense kernel ``(S, A, S)``: each (s, a) moves to ``branching`` distinct states
    with uniform-partition probabilities (the 'other' kernel that a transition shift mixes toward)."""
    S = check_int(n_states, "n_states")
    A = check_int(n_actions, "n_actions")
    b = check_int(branching, "branching")
    if b > S:
        raise ValueError(f"branching must be <= n_states ({S}), got {b}")
    rng = np.random.default_rng(seed)
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            nxt = rng.choice(S, size=b, replace=False)
            cuts = np.sort(rng.random(b - 1))
            P[s, a, nxt] = np.diff(np.concatenate([[0.0], cuts, [1.0]]))
    return P


def shifted_problem(base: TabularMDP, *, temperature: float = 1.0, epsilon: float = 0.0, other=None,
                    delta_gamma: float = 0.0, delta_tau: float = 0.0, seed: int = 0, anchor=0,
                    normalize: bool = True) -> TransferProblem:
    r"""Source = ``base`` at temperature τ; target with the shift knobs

    * transition mixing :math:`P_T = (1-\varepsilon)P_S + \varepsilon P_{other}` (``other``: a kernel
      of the same shape — dense ``(S, A, S)`` or sparse ``(S*A, S)`` — default :func:`random_kernel`
      with branching min(3, S) and ``seed``; terminal rows stay absorbing),
    * discount :math:`\gamma_T = \gamma_S + \Delta\gamma` (must stay in [0, 1]),
    * temperature :math:`\tau_T = \tau + \Delta\tau` (must stay > 0).
    """
    if not isinstance(base, TabularMDP):
        raise ValueError(f"base must be a TabularMDP, got {type(base).__name__}")
    tau = check_positive(temperature, "temperature")
    eps = float(epsilon)
    if not np.isfinite(eps) or not 0.0 <= eps <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon!r}")
    g_t = base.gamma + float(delta_gamma)
    if not np.isfinite(g_t) or not 0.0 <= g_t <= 1.0:
        raise ValueError(f"delta_gamma must keep the target discount in [0, 1]: gamma + delta_gamma = {g_t!r}")
    t_t = tau + float(delta_tau)
    if not np.isfinite(t_t) or t_t <= 0.0:
        raise ValueError(f"delta_tau must keep the target temperature > 0: temperature + delta_tau = {t_t!r}")
    S, A = base.n_states, base.n_actions
    if other is None:
        other2 = random_kernel(S, A, min(3, S), seed).reshape(S * A, S)
    elif sp.issparse(other):
        if other.shape != (S * A, S):
            raise ValueError(f"other must have shape (S*A, S) = ({S * A}, {S}), got {other.shape}")
        other2 = other
    else:
        o = np.asarray(other, dtype=np.float64)
        if o.shape != (S, A, S):
            raise ValueError(f"other must have shape (S, A, S) = ({S}, {A}, {S}), got {o.shape}")
        other2 = o.reshape(S * A, S)
    if base.is_sparse or sp.issparse(other2):
        P_T = ((1 - eps) * sp.csr_matrix(base.P2) + eps * sp.csr_matrix(other2)).tocsr()
    else:
        P_T = ((1 - eps) * base.P2 + eps * other2).reshape(S, A, S)
    tgt = TabularMDP(P_T, base.R, g_t, terminal=base.terminal, initial=base.initial)
    return transfer_problem(base, tgt, tau_source=tau, tau_target=t_t, anchor=anchor, normalize=normalize)


# ---------------------------------------------------------------------- estimates
@dataclass
class TransferEstimate:
    """An estimator's output. ``policy`` ``(S, A)``: the policy deployed in the target; ``q`` ``(S, A)``:
    its target Q estimate (None for behaviour cloning); ``reward`` ``(S, A)``: the reward estimate
    (None for BC); ``source_residual``: RMS source Bellman residual over non-terminal (s, a) (None for
    BC; 0 for the tabular plug-in); ``target_residual``: RMS target soft Bellman residual;
    ``theta``: reward parameters (linear class); ``iterations``, ``converged``, ``method``."""

    policy: np.ndarray
    q: Optional[np.ndarray]
    reward: Optional[np.ndarray]
    source_residual: Optional[float]
    target_residual: Optional[float]
    method: str
    iterations: int = 0
    converged: bool = True
    theta: Optional[np.ndarray] = None


def bc_policy(counts, *, prior: float = 1.0) -> np.ndarray:
    r"""Behaviour-cloning policy from state–action counts ``(S, A)`` with a symmetric Dirichlet
    (Laplace) prior: :math:`\hat\pi(a|s) = (N(s,a) + \alpha)/(N(s) + A\alpha)` — positive everywhere
    (needed by the log in the inverse Bellman equation), uniform on unvisited states."""
    N = check_finite(counts, "counts")
    if N.ndim != 2 or np.any(N < 0):
        raise ValueError("counts must be a non-negative (S, A) array")
    a = check_positive(prior, "prior")
    return (N + a) / (N.sum(axis=1, keepdims=True) + a * N.shape[1])


def _check_policy(problem: TransferProblem, pi) -> np.ndarray:
    if not isinstance(problem, TransferProblem):
        raise ValueError(f"problem must be a TransferProblem, got {type(problem).__name__}")
    p = check_finite(pi, "source_policy")
    check_shape(p, (problem.n_states, problem.n_actions), "source_policy")
    live = ~problem.source.terminal
    if np.any(p[live] <= 0) or np.any(np.abs(p[live].sum(axis=1) - 1) > 1e-9):
        raise ValueError("source_policy must be a positive probability vector in every non-terminal state "
                         "(smooth an empirical policy, e.g. bc_policy(counts, prior=1))")
    return p


def _source_log_policy(problem: TransferProblem, source_policy, log_source_policy) -> np.ndarray:
    """log π̂_S ``(S, A)`` (0 on terminal rows) from exactly one of ``source_policy`` (positive
    probabilities) or ``log_source_policy`` (log-probabilities; use it when π̂_S underflows, e.g. the
    exact expert at τ = 1e-8: ``(q - v[:, None]) / τ``)."""
    if (source_policy is None) == (log_source_policy is None):
        raise ValueError("give exactly one of source_policy or log_source_policy")
    live = ~problem.source.terminal
    logp = np.zeros((problem.n_states, problem.n_actions))
    if source_policy is not None:
        p = _check_policy(problem, source_policy)
        logp[live] = np.log(p[live])
        return logp
    if not isinstance(problem, TransferProblem):
        raise ValueError(f"problem must be a TransferProblem, got {type(problem).__name__}")
    lp = check_finite(log_source_policy, "log_source_policy")
    check_shape(lp, (problem.n_states, problem.n_actions), "log_source_policy")
    dev = np.abs(logsumexp(lp[live], axis=1)) if live.any() else np.zeros(0)
    if dev.size and dev.max() > 1e-6:
        raise ValueError(f"log_source_policy rows must be normalised (LSE = 0); max |LSE| = {dev.max():.3g}")
    logp[live] = lp[live] - logsumexp(lp[live], axis=1)[:, None]
    return logp


def _softmax_q(q: np.ndarray, tau: float) -> np.ndarray:
    z = q / tau
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def behaviour_cloning(problem: TransferProblem, source_policy) -> TransferEstimate:
    """Deploy the source policy estimate π̂_S unchanged in the target."""
    p = _check_policy(problem, source_policy)
    return TransferEstimate(p.copy(), None, None, None, None, "bc")


def _target_residual(problem: TransferProblem, r: np.ndarray, q: np.ndarray) -> float:
    """RMS over non-terminal (s, a) of Q_T − r − γ_T P_T V_T(Q_T) (V_T = 0 on terminal states)."""
    tgt, tau = problem.target, problem.tau_target
    v = tau * logsumexp(q / tau, axis=1)
    v[tgt.terminal] = 0.0
    e = q - r - tgt.gamma * np.asarray(tgt.P2 @ v).reshape(q.shape)
    return float(np.sqrt(np.mean(e[~tgt.terminal] ** 2)))


def sequential_tabular(problem: TransferProblem, source_policy=None, *, log_source_policy=None) -> TransferEstimate:
    r"""Tabular sequential transfer: :math:`\hat r` = the normalised reward of π̂_S in the source
    (closed form, :func:`normalized_reward`), then the exact soft DP of :math:`\hat r` in the target.
    π̂_S as probabilities ``source_policy`` or log-probabilities ``log_source_policy`` ``(S, A)``."""
    logp = _source_log_policy(problem, source_policy, log_source_policy)
    src, tgt = problem.source, problem.target
    r = normalized_reward(None, src, src.gamma, problem.tau_source, anchor=problem.anchor, log_policy=logp)
    sol = solve(TabularMDP(tgt.P, r, tgt.gamma, terminal=tgt.terminal, initial=tgt.initial),
                temperature=problem.tau_target, method="pi", tol=problem.tol)
    return TransferEstimate(sol.policy, sol.q, r, 0.0, _target_residual(problem, r, sol.q), "sequential_tabular",
                            sol.iterations, sol.converged)


def coupled_tabular(problem: TransferProblem, source_policy=None, *, log_source_policy=None, tol: float = 1e-13,
                    max_iter: int = 100) -> TransferEstimate:
    r"""Tabular coupled transfer: one Newton solve of the joint system in the unknowns (V_S, Q_T)
    (reconstructed form, docs/math.md §10), r eliminated through the source equation:

    .. math:: \textstyle\sum_a w(a|s)\,r_{V_S}(s,a) = 0,\qquad
              Q_T - r_{V_S} - \gamma_T P_T V_T(Q_T) = 0,\qquad
              r_{V_S} = \tau_S\log\hat\pi_S + V_S - \gamma_S P_S V_S

    (w: the shared normalisation; V_S = 0, Q_T = 0 on terminal states). The Jacobian is sparse,
    :math:`\begin{pmatrix} W(E - \gamma_S P_S) & 0\\ -(E - \gamma_S P_S) & I - \gamma_T P_T D_{\pi}\end{pmatrix}`
    with :math:`D_\pi` the softmax derivative of V_T; each step is one sparse LU solve. Stops when
    the sup-norm residual is < ``tol``·(1 + scale); not converging within ``max_iter`` warns and
    reports ``converged=False``. Equals :func:`sequential_tabular` (the test: 1e-10).
    """
    logp = _source_log_policy(problem, source_policy, log_source_policy)
    src, tgt = problem.source, problem.target
    S, A = problem.n_states, problem.n_actions
    ts, tt, gs, gt = problem.tau_source, problem.tau_target, src.gamma, tgt.gamma
    term = src.terminal
    live = np.flatnonzero(~term)
    rows = (live[:, None] * A + np.arange(A)).ravel()
    w = _anchor_weights(problem.anchor, S, A)
    keep = sp.diags((~term).astype(np.float64))
    Ps = sp.csr_matrix(src.P2) @ keep  # V = 0 on terminal states: drop their columns
    Pt = sp.csr_matrix(tgt.P2) @ keep
    E = sp.csr_matrix((np.ones(S * A), (np.arange(S * A), np.repeat(np.arange(S), A))), shape=(S * A, S))
    G = (E - gs * Ps).tocsr()  # r = τ log π + G V_S
    W = sp.csr_matrix((w.ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A))
    WG = (W @ G).tocsr()[live][:, live]
    Gl = G[rows][:, live]
    nl, nr = live.size, rows.size
    vs = np.zeros(S)
    q = np.zeros((S, A))
    scale = 1.0 + ts * float(np.abs(logp).max())

    def residual(vs, q):
        r = ts * logp + np.asarray(G @ vs).reshape(S, A)
        vt = tt * logsumexp(q / tt, axis=1)
        vt[term] = 0.0
        f1 = np.sum(w * r, axis=1)[live]
        f2 = (q - r - gt * np.asarray(Pt @ vt).reshape(S, A)).ravel()[rows]
        return f1, f2

    it, converged = 0, False
    for it in range(1, max_iter + 1):
        f1, f2 = residual(vs, q)
        res = max(float(np.abs(f1).max(initial=0.0)), float(np.abs(f2).max(initial=0.0)))
        if res < tol * scale:
            converged = True
            it -= 1
            break
        pi_t = _softmax_q(q, tt)
        Dpi = sp.csr_matrix((pi_t.ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A))
        J22 = (sp.identity(S * A, format="csr") - gt * (Pt @ Dpi)).tocsr()[rows][:, rows]
        J = sp.bmat([[WG, None], [-Gl, J22]], format="csc")
        step = spla.spsolve(J, -np.concatenate([f1, f2]))
        vs[live] += step[:nl]
        qf = q.ravel()
        qf[rows] += step[nl:nl + nr]
        q = qf.reshape(S, A)
    else:
        f1, f2 = residual(vs, q)
        res = max(float(np.abs(f1).max(initial=0.0)), float(np.abs(f2).max(initial=0.0)))
        converged = res < tol * scale
        if not converged:
            warnings.warn(f"coupled_tabular: Newton stopped at max_iter={max_iter} with residual {res:.3g}",
                          RuntimeWarning, stacklevel=2)
    r = ts * logp + np.asarray(G @ vs).reshape(S, A)
    r[term] = 0.0
    q[term] = 0.0
    pol = _softmax_q(q, tt)
    return TransferEstimate(pol, q, r, 0.0, _target_residual(problem, r, q), "coupled_tabular", it, converged)


# ---------------------------------------------------------------------- restricted linear classes
@dataclass
class _Linear:
    """Dense design pieces of the linear-class problem on non-terminal rows."""

    phi: np.ndarray      # (n, d) reward features
    Gpsi: np.ndarray     # (n, k) (E − γ_S P_S) Ψ_S
    psi_t: np.ndarray    # (S*A, m) Q_T features
    b: np.ndarray        # (n,) τ_S log π̂_S
    sw: np.ndarray       # (n,) sqrt weights
    rows: np.ndarray
    phi_full: np.ndarray  # (S*A, d)


def _linear_setup(problem, source_policy, reward_features, value_features, q_features, weights,
                  log_source_policy=None) -> _Linear:
    logp = _source_log_policy(problem, source_policy, log_source_policy)
    src = problem.source
    S, A = problem.n_states, problem.n_actions
    phi = check_finite(reward_features, "reward_features")
    if phi.ndim != 3 or phi.shape[:2] != (S, A):
        raise ValueError(f"reward_features must have shape (S, A, d) = ({S}, {A}, d), got {phi.shape}")
    psi = np.eye(S) if value_features is None else check_finite(value_features, "value_features")
    if psi.ndim != 2 or psi.shape[0] != S:
        raise ValueError(f"value_features must have shape (S, k) = ({S}, k), got {psi.shape}")
    if q_features is None:
        psi_t = np.eye(S * A)
    else:
        qf = check_finite(q_features, "q_features")
        if qf.ndim != 3 or qf.shape[:2] != (S, A):
            raise ValueError(f"q_features must have shape (S, A, m) = ({S}, {A}, m), got {qf.shape}")
        psi_t = qf.reshape(S * A, -1)
    term = src.terminal
    live = np.flatnonzero(~term)
    rows = (live[:, None] * A + np.arange(A)).ravel()
    psi0 = psi * (~term)[:, None]  # V_S = 0 on terminal states
    Ppsi = np.asarray(src.P2 @ psi0).reshape(S * A, -1)
    Gpsi = np.repeat(psi0, A, axis=0) - src.gamma * Ppsi
    if weights is None:
        sw = np.ones(rows.size)
    else:
        w = check_finite(weights, "weights")
        check_shape(w, (S, A), "weights")
        if np.any(w < 0):
            raise ValueError("weights must be non-negative")
        sw = np.sqrt(w.ravel()[rows])
    phi2 = phi.reshape(S * A, -1)
    L = _Linear(phi2[rows], Gpsi[rows], psi_t, problem.tau_source * logp.ravel()[rows], sw, rows, phi2)
    # identification: no non-zero class reward may be a class shaping (the θ-part of the null space of
    # [φ, −(E − γPΨ)] must vanish)
    B = np.hstack([L.phi, -L.Gpsi]) * sw[:, None]
    _, sv, Vt = np.linalg.svd(B, full_matrices=True)
    tol = max(B.shape) * np.finfo(float).eps * (sv[0] if sv.size else 1.0) * 1e3
    rank = int(np.sum(sv > tol))
    null = Vt[rank:]
    d = L.phi.shape[1]
    if null.size:
        th = null[:, :d]
        if np.linalg.norm(th) > 1e-8:
            U, s_th, Vt_th = np.linalg.svd(th)
            dirs = Vt_th[: int(np.sum(s_th > 1e-8))]
            raise ValueError(f"reward_features cannot identify the reward with these value_features: {dirs.shape[0]} "
                             f"direction(s) of theta are shapings (e.g. theta ∝ {np.round(dirs[0], 6).tolist()}); "
                             "drop those feature directions or fix a normalisation in the features")
    return L


def source_residual(theta, alpha, L: _Linear) -> float:
    """RMS (weighted) source Bellman residual ‖e_S(θ, α)‖ over non-terminal (s, a)."""
    e = (L.phi @ theta - L.b - L.Gpsi @ alpha) * L.sw
    return float(np.sqrt(np.mean(e ** 2)))


def _target_eqs(problem, L: _Linear, theta, beta):
    """e_T (n,) and its Jacobians in θ (n, d) and β (n, m) on non-terminal rows."""
    tgt, tau = problem.target, problem.tau_target
    S, A = problem.n_states, problem.n_actions
    q = (L.psi_t @ beta).reshape(S, A)
    v = tau * logsumexp(q / tau, axis=1)
    v[tgt.terminal] = 0.0
    pi = _softmax_q(q, tau) * (~tgt.terminal)[:, None]
    e = q.ravel() - L.phi_full @ theta - tgt.gamma * np.asarray(tgt.P2 @ v)
    dv = np.einsum("sa,sam->sm", pi, L.psi_t.reshape(S, A, -1))  # ∂V_T/∂β, (S, m)
    J_beta = L.psi_t - tgt.gamma * np.asarray(tgt.P2 @ dv).reshape(S * A, -1)
    return e[L.rows], -L.phi, J_beta[L.rows]


def _fit_target(problem, L: _Linear, theta, beta0, tol):
    """min_β ‖e_T(θ, β)‖² (θ fixed) by Levenberg–Marquardt with the exact Jacobian."""
    def f(beta):
        return _target_eqs(problem, L, theta, beta)[0]

    def jac(beta):
        return _target_eqs(problem, L, theta, beta)[2]

    return least_squares(f, beta0, jac=jac, method="lm", xtol=tol, ftol=tol, gtol=tol, max_nfev=2000)


def _estimate_from(problem, L, theta, alpha, beta, method, it, ok) -> TransferEstimate:
    S, A = problem.n_states, problem.n_actions
    q = (L.psi_t @ beta).reshape(S, A)
    q[problem.target.terminal] = 0.0
    r = (L.phi_full @ theta).reshape(S, A)
    r[problem.source.terminal] = 0.0
    return TransferEstimate(_softmax_q(q, problem.tau_target), q, r, source_residual(theta, alpha, L),
                            _target_residual(problem, r, q), method, it, ok, theta)


def sequential_linear(problem: TransferProblem, source_policy, reward_features, *, value_features=None,
                      q_features=None, weights=None, tol: float = 1e-12, log_source_policy=None) -> TransferEstimate:
    r"""Sequential transfer with linear classes (reconstructed form): stage 1
    :math:`(\hat\theta,\hat\alpha) = \arg\min\|e_S(\theta,\alpha)\|^2` (one linear least squares),
    stage 2 :math:`\hat\beta = \arg\min_\beta\|e_T(\hat\theta,\beta)\|^2` (Levenberg–Marquardt, exact
    Jacobian). Shapes: ``reward_features`` ``(S, A, d)``, ``value_features`` ``(S, k)`` (default
    identity: tabular V_S), ``q_features`` ``(S, A, m)`` (default identity: exact target DP).
    ValueError if the classes cannot identify θ (naming the shaping directions). ``source_policy=None``
    with ``log_source_policy`` passes log π̂_S instead."""
    L = _linear_setup(problem, source_policy, reward_features, value_features, q_features, weights,
                      log_source_policy)
    d = L.phi.shape[1]
    B = np.hstack([L.phi, -L.Gpsi]) * L.sw[:, None]
    x = np.linalg.lstsq(B, L.b * L.sw, rcond=None)[0]
    theta, alpha = x[:d], x[d:]
    beta0 = np.linalg.lstsq(L.psi_t, np.zeros(L.psi_t.shape[0]), rcond=None)[0]
    if q_features is None:  # exact target DP for the fitted reward (stage 2 solved exactly)
        r = (L.phi_full @ theta).reshape(problem.n_states, problem.n_actions)
        tgt = problem.target
        sol = solve(TabularMDP(tgt.P, r, tgt.gamma, terminal=tgt.terminal, initial=tgt.initial),
                    temperature=problem.tau_target, method="pi", tol=problem.tol)
        return _estimate_from(problem, L, theta, alpha, sol.q.ravel(), "sequential_linear", sol.iterations,
                              sol.converged)
    fit = _fit_target(problem, L, theta, beta0, tol)
    return _estimate_from(problem, L, theta, alpha, fit.x, "sequential_linear", int(fit.nfev), bool(fit.success))


def coupled_linear(problem: TransferProblem, source_policy, reward_features, *, value_features=None,
                   q_features=None, weights=None, target_weight: float = 1.0, tol: float = 1e-12,
                   max_nfev: int = 5000, log_source_policy=None) -> TransferEstimate:
    r"""Coupled transfer with linear classes (reconstructed form): jointly

    .. math:: \min_{\theta,\alpha,\beta}\ \|e_S(\theta,\alpha)\|^2 + \lambda\,\|e_T(\theta,\beta)\|^2

    (λ = ``target_weight``), by Levenberg–Marquardt with the exact Jacobian
    :math:`\partial e_S = [\phi,\ -(E-\gamma_S P_S)\Psi_S,\ 0]`,
    :math:`\partial e_T = [-\phi,\ 0,\ \Psi_T - \gamma_T P_T D_\pi\Psi_T]`, started from the
    sequential solution. With tabular Q_T (``q_features=None``) e_T can be made 0 for every θ and the
    optimum is the sequential one; the estimators differ when Q_T is restricted. Shapes as in
    :func:`sequential_linear`."""
    lam = check_positive(target_weight, "target_weight")
    seq = sequential_linear(problem, source_policy, reward_features, value_features=value_features,
                            q_features=q_features, weights=weights, tol=tol, log_source_policy=log_source_policy)
    L = _linear_setup(problem, source_policy, reward_features, value_features, q_features, weights,
                      log_source_policy)
    d, k = L.phi.shape[1], L.Gpsi.shape[1]
    B = np.hstack([L.phi, -L.Gpsi]) * L.sw[:, None]
    alpha0 = np.linalg.lstsq(B, L.b * L.sw, rcond=None)[0][d:]
    beta0 = np.linalg.lstsq(L.psi_t, seq.q.ravel(), rcond=None)[0]
    x0 = np.concatenate([seq.theta, alpha0, beta0])
    sl = math.sqrt(lam)

    def split(x):
        return x[:d], x[d:d + k], x[d + k:]

    def f(x):
        th, al, be = split(x)
        eS = (L.phi @ th - L.b - L.Gpsi @ al) * L.sw
        eT = _target_eqs(problem, L, th, be)[0] * L.sw * sl
        return np.concatenate([eS, eT])

    def jac(x):
        th, al, be = split(x)
        _, Jt, Jb = _target_eqs(problem, L, th, be)
        n, m = L.phi.shape[0], Jb.shape[1]
        top = np.hstack([L.phi, -L.Gpsi, np.zeros((n, m))]) * L.sw[:, None]
        bot = np.hstack([Jt, np.zeros((n, k)), Jb]) * (L.sw * sl)[:, None]
        return np.vstack([top, bot])

    fit = least_squares(f, x0, jac=jac, method="lm", xtol=tol, ftol=tol, gtol=tol, max_nfev=max_nfev)
    th, al, be = split(fit.x)
    return _estimate_from(problem, L, th, al, be, "coupled_linear", int(fit.nfev), bool(fit.success))


# ---------------------------------------------------------------------- metrics
def transfer_metrics(problem: TransferProblem, estimate: TransferEstimate) -> dict:
    r"""Exact target metrics of a deployed policy π̂_T (scalars, sweep-friendly):

    * ``regret_soft`` = μ0ᵀ(V*_{T,τ} − V^{π̂}_{T,τ}) (entropy-regularised values, τ = τ_T; ≥ 0),
    * ``regret_unreg`` = μ0ᵀ(V*_T − V^{π̂}_T), unregularised, against the hard optimum (≥ 0),
    * ``tv`` = max_s TV(π̂_T(·|s), π*_{T,τ}(·|s)) over non-terminal states,
    * ``q_error`` = ‖q̂_T − q*_{T,τ}‖∞ (non-terminal rows; omitted for behaviour cloning),
    * ``source_residual``, ``target_residual`` (omitted for behaviour cloning).
    """
    tgt, tau = problem.target, problem.tau_target
    pol = estimate.policy
    star = problem.target_solution()
    hard = problem.target_hard_solution()
    ev_soft = evaluate(tgt, pol, temperature=tau)
    ev_hard = evaluate(tgt, pol)
    live = ~tgt.terminal
    out = {
        "regret_soft": float(star.value_initial - ev_soft.value_initial),
        "regret_unreg": float(hard.value_initial - ev_hard.value_initial),
        "tv": float(0.5 * np.abs(pol - star.policy)[live].sum(axis=1).max(initial=0.0)),
    }
    if estimate.q is not None:
        out["q_error"] = float(np.abs(estimate.q - star.q)[live].max(initial=0.0))
    if estimate.source_residual is not None:
        out["source_residual"] = float(estimate.source_residual)
    if estimate.target_residual is not None:
        out["target_residual"] = float(estimate.target_residual)
    return out


# ---------------------------------------------------------------------- sweep task
def _problem_for(env: str, n_states: int, n_actions: int, gamma: float, temperature: float, epsilon: float,
                 delta_gamma: float, delta_tau: float, env_seed: int, diabetes_source: float,
                 diabetes_target: float, normalize: bool = True) -> TransferProblem:
    if env == "garnet":
        from ..envs.generators import garnet

        base = garnet(n_states, n_actions, min(3, n_states), gamma=gamma, seed=env_seed)
        return shifted_problem(base, temperature=temperature, epsilon=epsilon, delta_gamma=delta_gamma,
                               delta_tau=delta_tau, seed=env_seed + 1, normalize=normalize)
    if env == "sepsis":
        from ..envs.sepsis import sepsis_mdp

        src = sepsis_mdp(diabetes_source, gamma=gamma)
        tgt = sepsis_mdp(diabetes_target, gamma=min(1.0, gamma + delta_gamma))
        return transfer_problem(src, tgt, tau_source=temperature, tau_target=temperature + delta_tau,
                                normalize=normalize)
    raise ValueError(f"env must be 'garnet' or 'sepsis', got {env!r}")


def transfer_task(*, estimator: str = "sequential", n_demos: int = 0, horizon: int = 50, env: str = "garnet",
                  n_states: int = 10, n_actions: int = 3, gamma: float = 0.9, temperature: float = 1.0,
                  epsilon: float = 0.0, delta_gamma: float = 0.0, delta_tau: float = 0.0, env_seed: int = 0,
                  diabetes_source: float = 0.2, diabetes_target: float = 0.8, prior: float = 1.0,
                  normalize: bool = True, seed: int = 0, cell_seed: Optional[int] = None) -> dict:
    """Sweep task (module-level, scalar metrics): build a source/target problem, estimate π̂_S from
    ``n_demos`` expert demonstrations of ``horizon`` steps (0 = the exact expert policy) with
    :func:`bc_policy`, run ``estimator`` ∈ {"bc", "sequential", "coupled"} (tabular plug-in) and
    return :func:`transfer_metrics`. ``normalize``: see :func:`transfer_problem`
    (False keeps the environment's own reward as the truth, so sequential transfer carries the
    shaping bias of the normalisation). Use as ``Sweep(task="irl_transfer", ...)``
    (registered by ``validation/irl.py``) or ``task="mdpsandbox.irl.transfer:transfer_task"``."""
    if estimator not in ("bc", "sequential", "coupled"):
        raise ValueError(f"estimator must be 'bc', 'sequential' or 'coupled', got {estimator!r}")
    n_demos = int(n_demos)
    if n_demos < 0:
        raise ValueError(f"n_demos must be >= 0, got {n_demos}")
    prob = _problem_for(env, n_states, n_actions, gamma, temperature, epsilon, delta_gamma, delta_tau, env_seed,
                        diabetes_source, diabetes_target, normalize)
    expert = prob.source_solution().policy
    if n_demos == 0:
        pi_hat = expert
    else:
        from .demos import sample_trajectories

        s = seed if cell_seed is None else cell_seed
        demos = sample_trajectories(prob.source, expert, n_demos, check_int(horizon, "horizon"), seed=s)
        S, A = prob.n_states, prob.n_actions
        m = demos.mask
        counts = np.bincount((demos.states[m] * A + demos.actions[m]), minlength=S * A).reshape(S, A)
        pi_hat = bc_policy(counts, prior=prior)
        pi_hat[prob.source.terminal] = 1.0 / A
    est = {"bc": behaviour_cloning, "sequential": sequential_tabular, "coupled": coupled_tabular}[estimator](
        prob, pi_hat)
    return transfer_metrics(prob, est)
