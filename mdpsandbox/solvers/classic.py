r"""The classic dynamic-programming methods of the DP toolboxes, each exact or certified
(docs/math.md §1–3, §14):

* :func:`modified_policy_iteration` — m-step partial evaluation (Puterman & Shin 1978);
* :func:`gauss_seidel_vi` — in-place value iteration, one state at a time (Puterman 1994, §6.3.3);
* :func:`solve_lp` — the primal linear program of hard control solved by scipy's HiGHS; its dual
  is the state–action occupancy measure (d'Epenoux 1963; Puterman 1994, §6.9);
* :func:`average_reward` / :func:`relative_value_iteration` — gain and bias of the average-reward
  criterion, exact by a linear solve for unichain policies (Howard 1960; Puterman 1994, ch. 8–9);
* :func:`solve_ssp` — stochastic shortest paths at γ = 1 where a proper policy exists and every
  improper one has value −∞ (Bertsekas & Tsitsiklis 1991): policy iteration started from a proper
  policy.

Every solver reports its residual and iteration count and returns a :class:`~mdpsandbox.solvers.dp.Solution`
(or a subclass with extra fields) with the conventions of :func:`~mdpsandbox.solve`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from .._validate import check_distribution, check_int, check_positive, check_shape
from ..envs.tabular import TabularMDP
from .backups import Regulariser, bellman_backup, q_backup
from .krylov import solve_policy_system
from .dp import ConvergenceWarning, Solution, _b, _evaluate_tabular, _finish, _t, make_regulariser

__all__ = [
    "modified_policy_iteration", "gauss_seidel_vi", "solve_lp", "LPSolution", "LP_METHODS", "average_reward",
    "AverageRewardSolution", "relative_value_iteration", "solve_ssp", "proper_policy", "recurrent_classes",
]

_EPS = np.finfo(np.float64).eps


def _check_mdp(mdp) -> TabularMDP:
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    return mdp


def _check_v0(v0, S: int) -> np.ndarray:
    if v0 is None:
        return np.zeros(S)
    v = np.array(v0, dtype=np.float64, copy=True)
    check_shape(v, (S,), "v0")
    if not np.all(np.isfinite(v)):
        raise ValueError("v0 must be finite")
    return v


def _vi_threshold(mdp: TabularMDP, reg: Regulariser, tol: float, name: str) -> float:
    """The certified stop of docs/math.md §1: ‖V_{k+1} − V_k‖∞ < tol(1−γ)/(2γ) ⇒ ‖V_{k+1} − V*‖∞ < tol/2."""
    g = mdp.gamma
    if g >= 1.0:
        raise ValueError(f"{name} needs gamma < 1 (a contraction) for its certificate; got gamma={g:g}. "
                         "Use solve_ssp for stochastic shortest paths at gamma = 1")
    thr = tol * (1.0 - g) / (2.0 * g) if g > 0 else np.inf
    scale = _scale(mdp, reg)
    floor = 16 * _EPS * scale
    if thr < floor:
        raise ValueError(f"tol={tol:g} asks for ‖V_k+1 − V_k‖ < {thr:.3g}, below the float64 round-off "
                         f"({floor:.3g}) of values up to {scale:.3g} at gamma={g:g}; use a larger tol")
    return thr


def _scale(mdp: TabularMDP, reg: Regulariser) -> float:
    """A priori bound on |V*|: (max|r| + τ log A)/(1−γ) + 1. The KL term needs no allowance:
    0 ≤ KL, and π_ref itself has KL 0, so V^{π_ref} ≤ V* ≤ max|r|/(1−γ) without entropy."""
    rmax = float(np.max(np.abs(mdp.R))) if mdp.R.size else 0.0
    return (rmax + reg.temperature * math.log(mdp.n_actions)) / (1.0 - mdp.gamma) + 1.0


def _default_cap(thr: float, diff0: float, g: float) -> int:
    # ‖V_{k+1} − V_k‖ ≤ γ^k ‖V_1 − V_0‖ for any γ-contraction: this many sweeps always suffice
    if not (0 < g < 1) or diff0 <= thr:
        return 100
    return int(math.ceil(math.log(thr / diff0) / math.log(g))) + 100


# ---------------------------------------------------------------------- modified policy iteration
def modified_policy_iteration(mdp: TabularMDP, *, m: int = 20, beta: Optional[float] = None,
                              temperature: Optional[float] = None, ref_policy=None, tol: float = 1e-9,
                              max_iter: Optional[int] = None, v0=None) -> Solution:
    r"""Modified policy iteration (Puterman & Shin 1978; Puterman 1994, §6.5):

    .. math:: \pi_k = \mathcal G(V_k),\qquad V_{k+1} = (T_{\pi_k})^{m} V_k ,

    where :math:`\mathcal G` is the (regularised) greedy policy and
    :math:`T_\pi V = r_\pi - \mathrm{cost}_\pi + \gamma P_\pi V` (cost = βKL − τH, docs/math.md §2–3);
    the first of the m applications is the optimality operator T itself. m = 1 is value iteration,
    m → ∞ is policy iteration. Stops with the value-iteration certificate on the optimality
    operator: ‖TV_k − V_k‖∞ < tol(1−γ)/(2γ) ⇒ ‖TV_k − V*‖∞ < tol/2 (returned v = TV_k).

    Returns a :class:`Solution` with ``method="mpi"``; ``iterations`` counts outer steps and
    ``bound`` = γ·residual/(1−γ).
    """
    mdp = _check_mdp(mdp)
    m = check_int(m, "m")
    tol = check_positive(tol, "tol")
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter")
    reg, _ = make_regulariser(mdp, beta, temperature, ref_policy)
    thr = _vi_threshold(mdp, reg, tol, "modified_policy_iteration")
    v = _check_v0(v0, mdp.n_states)
    v[mdp.terminal] = 0.0
    g, it, cap, converged = mdp.gamma, 0, max_iter, False
    while True:
        q, tv = bellman_backup(mdp.P2, mdp.R, g, v, reg, mdp.terminal)
        diff = float(np.max(np.abs(tv - v))) if v.size else 0.0
        it += 1
        if diff < thr:
            converged, v = True, tv
            break
        if cap is None:
            cap = _default_cap(thr, diff, g)
        if it >= cap:
            v = tv
            warnings.warn(f"modified policy iteration stopped at max_iter={cap} with residual {diff:.3g} > {thr:.3g}",
                          ConvergenceWarning, stacklevel=2)
            break
        pol = reg.policy(q)
        cost, _, _ = reg.penalty(pol)
        r_pi = np.sum(pol * mdp.R, axis=1) - np.where(np.isfinite(cost), cost, 0.0)
        r_pi[mdp.terminal] = 0.0
        P_pi = mdp.policy_matrix(pol)
        v = tv
        for _ in range(m - 1):
            v = r_pi + g * np.asarray(P_pi @ v).ravel()
            v[mdp.terminal] = 0.0
    q, pol = _finish(mdp, reg, v)
    bound = g * diff / (1.0 - g)
    return Solution(q, v, pol, diff, it, converged, "mpi", _b(reg), _t(reg), bound, float(mdp.initial @ v), tol)


# ---------------------------------------------------------------------- Gauss–Seidel value iteration
@numba.njit(cache=True)
def _stable_value(q, lam, logw, logW):
    r"""λ·LSE(q/λ + w) without cancellation at any λ > 0 (w = c·log π_ref, W = Σ e^w, p̃ = e^w/W):

    V = λ log W + m + λ·log1p(Σ_a p̃_a expm1((q_a − m)/λ)),   m = max_{a: p̃_a>0} q_a.

    For λ → ∞ this tends to λ log W + E_p̃ q (no β·ε round-off); for λ → 0 to m + λ log p̃(argmax)."""
    A = q.shape[0]
    m = -np.inf
    for a in range(A):
        if logw[a] > -np.inf and q[a] > m:
            m = q[a]
    acc = 0.0
    for a in range(A):
        if logw[a] > -np.inf:
            acc += math.exp(logw[a] - logW) * math.expm1((q[a] - m) / lam)
    return lam * logW + m + lam * math.log1p(acc)


@numba.njit(cache=True, inline="always")
def _gs_update(q, s, lam, logw, logW, v, diff):
    """Gauss–Seidel update of state s from its Q row ``q`` (A,): V(s) ← max Q (λ = 0) or the stable
    regularised value; returns max(diff, |change|)."""
    if lam == 0.0:
        new = q[0]
        for a in range(1, q.shape[0]):
            if q[a] > new:
                new = q[a]
    else:
        new = _stable_value(q, lam, logw[s], logW[s])
    d = abs(new - v[s])
    v[s] = new
    return d if d > diff else diff


@numba.njit(cache=True)
def _gs_sweep(indptr, indices, data, R, gamma, v, lam, logw, logW, terminal):
    S, A = R.shape
    q = np.empty(A)
    diff = 0.0
    for s in range(S):
        if terminal[s]:
            v[s] = 0.0
            continue
        for a in range(A):
            row = s * A + a
            acc = 0.0
            for k in range(indptr[row], indptr[row + 1]):
                acc += data[k] * v[indices[k]]
            q[a] = R[s, a] + gamma * acc
        diff = _gs_update(q, s, lam, logw, logW, v, diff)
    return diff


@numba.njit(cache=True)
def _gs_sweep_dense(P2, R, gamma, v, lam, logw, logW, terminal):
    """:func:`_gs_sweep` on a dense ``(S·A, S)`` transition array (no CSR copy of a dense P)."""
    S, A = R.shape
    q = np.empty(A)
    diff = 0.0
    for s in range(S):
        if terminal[s]:
            v[s] = 0.0
            continue
        for a in range(A):
            row = s * A + a
            acc = 0.0
            for j in range(S):
                acc += P2[row, j] * v[j]
            q[a] = R[s, a] + gamma * acc
        diff = _gs_update(q, s, lam, logw, logW, v, diff)
    return diff


def _log_weights(reg: Regulariser, S: int, A: int):
    """(w, log W) with w = c·log π_ref (0 without KL) and W = Σ_a e^{w_a}, per state."""
    if reg.beta > 0 and reg.temperature == 0:
        # pure KL: p̃ = π_ref and log W = 0 exactly (a round-off log W ≈ 1e-16 times β = 1e300 would be fatal)
        return np.ascontiguousarray(reg.log_ref, dtype=np.float64), np.zeros(S)
    w = reg.c * reg.log_ref if reg.beta > 0 else np.zeros((S, A))
    w = np.ascontiguousarray(w, dtype=np.float64)
    mx = np.max(w, axis=1, keepdims=True)
    logW = (mx[:, 0] + np.log(np.sum(np.exp(w - mx), axis=1)))
    if reg.beta > 0:
        # entropy + KL: W = Σ π_ref^c = Σ π_ref e^{−(1−c) log π_ref}, so log W = log1p(Σ π_ref expm1(−(τ/λ) log π_ref))
        # — every term ≥ 0 (no cancellation), and τ/λ is exact where 1 − c is not (λ log W ≈ τ H(π_ref) when τ ≪ β)
        with np.errstate(invalid="ignore"):
            e = -reg.omc * np.where(np.isfinite(reg.log_ref), reg.log_ref, 0.0)
            ok = np.max(e, axis=1) <= 700.0
            x = np.sum(np.where(np.isfinite(reg.log_ref), reg.ref * np.expm1(np.minimum(e, 700.0)), 0.0), axis=1)
        logW = np.where(ok, np.log1p(x), logW)
    return w, np.ascontiguousarray(logW)


def gauss_seidel_vi(mdp: TabularMDP, *, beta: Optional[float] = None, temperature: Optional[float] = None,
                    ref_policy=None, tol: float = 1e-9, max_iter: Optional[int] = None, v0=None) -> Solution:
    r"""Gauss–Seidel value iteration (Puterman 1994, §6.3.3): sweep the states in order and update
    in place, each backup using the values already updated in this sweep,

    .. math:: V(s) \leftarrow \mathrm{V\text{-}op}_a\big[r(s,a) + \gamma\textstyle\sum_{s'}P(s'|s,a)V(s')\big]

    (max, or λ·LSE with the KL/entropy regulariser, computed without cancellation at any λ).
    The Gauss–Seidel operator is a γ-contraction in sup-norm with the fixed point V*, so the stop
    ‖V_{k+1} − V_k‖∞ < tol(1−γ)/(2γ) certifies ‖V_{k+1} − V*‖∞ < tol/2 (reported as ``bound``).
    One numba kernel per sweep over the CSR rows of a sparse P, or the rows of a dense P in place.
    """
    mdp = _check_mdp(mdp)
    tol = check_positive(tol, "tol")
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter")
    reg, _ = make_regulariser(mdp, beta, temperature, ref_policy)
    thr = _vi_threshold(mdp, reg, tol, "gauss_seidel_vi")
    S, A = mdp.n_states, mdp.n_actions
    v = _check_v0(v0, S)
    if sp.issparse(mdp.P2):
        P = sp.csr_matrix(mdp.P2, dtype=np.float64)
        P.sort_indices()

        def sweep(v):
            return _gs_sweep(P.indptr, P.indices, P.data, R, mdp.gamma, v, reg.lam, w, logW, term)
    else:
        P = np.ascontiguousarray(mdp.P2, dtype=np.float64)

        def sweep(v):
            return _gs_sweep_dense(P, R, mdp.gamma, v, reg.lam, w, logW, term)
    w, logW = _log_weights(reg, S, A)
    R = np.ascontiguousarray(mdp.R, dtype=np.float64)
    term = np.ascontiguousarray(mdp.terminal)
    it, cap, converged = 0, max_iter, False
    while True:
        diff = sweep(v)
        it += 1
        if diff < thr:
            converged = True
            break
        if cap is None:
            cap = _default_cap(thr, diff, mdp.gamma)
        if it >= cap:
            warnings.warn(f"Gauss-Seidel value iteration stopped at max_iter={cap} with residual {diff:.3g}",
                          ConvergenceWarning, stacklevel=2)
            break
    q, pol = _finish(mdp, reg, v)
    g = mdp.gamma
    return Solution(q, v, pol, diff, it, converged, "gauss-seidel", _b(reg), _t(reg), g * diff / (1 - g),
                    float(mdp.initial @ v), tol)


# ---------------------------------------------------------------------- linear programming
@dataclass
class LPSolution(Solution):
    r"""A :class:`Solution` from the linear program, with its dual.

    occupancy : ``(S, A)`` an optimal dual solution x(s,a) = the discounted state–action occupancy
        :math:`\rho(s,a) = \sum_t\gamma^t P(s_t=s, a_t=a)` of the returned optimal policy started from
        ``weights``, computed exactly by one linear solve :math:`(I - \gamma P_\pi^\top D)\rho = w`
        (dual-feasible by construction; complementary slack with ``v`` because it lives on greedy
        actions, so it is dual-optimal up to round-off).
    lp_occupancy : ``(S, A)`` HiGHS's own dual multipliers of the constraints (to its tolerances; equal
        to ``occupancy`` when the optimal dual is unique).
    weights : ``(S,)`` the objective weights (the initial distribution of the dual).
    lp_value : μᵀV of HiGHS's primal solution; lp_status : HiGHS's message; lp_method : the HiGHS
        algorithm that produced it; lp_seconds / polish_seconds : time in HiGHS / in the exact polish.
    primal_v : ``(S,)`` HiGHS's primal V before the exact polish (``v`` is the exact value of the
        greedy policy by one linear solve, certified by one policy-improvement check).
    polish_steps : policy-improvement steps of the polish (1 when HiGHS's greedy policy is optimal).
    """

    occupancy: Optional[np.ndarray] = None
    weights: Optional[np.ndarray] = None
    lp_value: float = float("nan")
    lp_status: str = ""
    primal_v: Optional[np.ndarray] = None
    lp_occupancy: Optional[np.ndarray] = None
    lp_method: str = ""
    lp_seconds: float = 0.0
    polish_seconds: float = 0.0
    polish_steps: int = 0


LP_METHODS = ("highs-ipm", "highs-ds", "highs")


def _run_highs(c, A_ub, b_ub, bounds, tol: float, method: str):
    """scipy's HiGHS on the primal LP; a non-optimal IPM answer other than a proven infeasible /
    unbounded status (e.g. a numerical or iteration-limit stop) is retried with the dual simplex."""
    from scipy.optimize import linprog

    opts = {"primal_feasibility_tolerance": tol, "dual_feasibility_tolerance": tol}
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method=method, options=opts)
    if res.status not in (0, 2, 3) and method == "highs-ipm":
        res, method = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs-ds", options=opts), "highs-ds"
    return res, method


def solve_lp(mdp: TabularMDP, *, weights=None, tol: float = 1e-10, lp_method: str = "highs-ipm") -> LPSolution:
    r"""Hard control by linear programming (d'Epenoux 1963; Puterman 1994, §6.9), solved by HiGHS:

    .. math:: \min_V\ w^\top V\quad\text{s.t.}\quad V(s) \ge r(s,a) + \gamma\textstyle\sum_{s'}P(s'|s,a)V(s')
              \ \ \forall s\notin\mathcal T, a;\qquad V(s) = 0,\ s\in\mathcal T.

    Dual: :math:`\max_x \sum_{s,a} x(s,a) r(s,a)` s.t. :math:`\sum_a x(s',a) - \gamma\sum_{s,a}P(s'|s,a)x(s,a) = w(s')`,
    x ≥ 0 — x is the occupancy measure of an optimal policy started from w. With w > 0 everywhere the
    primal optimum is V* at every state. ``weights`` defaults to ``mdp.initial`` if it is positive on
    every non-terminal state, else the uniform distribution over non-terminal states.

    lp_method : HiGHS algorithm — ``"highs-ipm"`` (default: interior point; 14, 17 and 35
        iterations at S = 300, 1000, 3000 on sparse garnets), ``"highs-ds"`` (dual simplex; its pivots grow with S·A and each costs
        more, so its time grows faster than S³: ≈ 3 s at S = 1000 but 268 s at S = 3000 on a sparse
        garnet, where the IPM needs ≈ 3 s; benchmarks/bench_lp.py) or ``"highs"`` (HiGHS's choice,
        which picks the simplex on these LPs). The LP's V is only a starting point: ``v`` is the exact
        value of its greedy policy, polished by policy-improvement steps until no action improves
        (usually none), so the result is exact whatever the LP's tolerance.

    The entropy/KL problems are not linear programs (use :func:`mdpsandbox.solve`). γ = 1 is
    accepted when the LP is bounded (every policy proper, or an SSP — see :func:`solve_ssp`);
    an infeasible or unbounded LP raises ValueError with HiGHS's status.
    """
    import time

    mdp = _check_mdp(mdp)
    tol = check_positive(tol, "tol")
    if lp_method not in LP_METHODS:
        raise ValueError(f"lp_method must be one of {LP_METHODS}, got {lp_method!r}")
    S, A, g = mdp.n_states, mdp.n_actions, mdp.gamma
    live = ~mdp.terminal
    if weights is None:
        w = mdp.initial if np.all(mdp.initial[live] > 0) else live / max(live.sum(), 1)
    else:
        w = check_distribution(weights, "weights")
        check_shape(w, (S,), "weights")
    w = np.asarray(w, dtype=np.float64)
    rows = np.flatnonzero(np.repeat(live, A))            # (s, a) pairs of non-terminal states
    P2 = sp.csr_matrix(mdp.P2) if not sp.issparse(mdp.P2) else mdp.P2
    E = sp.csr_matrix((np.ones(rows.size), (np.arange(rows.size), rows // A)), shape=(rows.size, S))
    A_ub = (g * P2[rows] - E).tocsr()
    b_ub = -mdp.R.ravel()[rows]
    bounds = [(0.0, 0.0) if t else (None, None) for t in mdp.terminal]
    t0 = time.perf_counter()
    res, used = _run_highs(w, A_ub, b_ub, bounds, tol, lp_method)
    t_lp = time.perf_counter() - t0
    if res.status != 0:
        kind = {2: "infeasible", 3: "unbounded"}.get(res.status, f"not solved (status {res.status})")
        raise ValueError(f"the linear program of mdp is {kind}: {res.message} (γ = {g:g}; at γ = 1 a "
                         "proper policy must exist and improper ones must have value −inf)")
    t0 = time.perf_counter()
    v_lp = np.asarray(res.x, dtype=np.float64)
    lp_occ = np.zeros(S * A)
    lp_occ[rows] = -np.asarray(res.ineqlin.marginals, dtype=np.float64)
    lp_occ = np.maximum(lp_occ, 0.0).reshape(S, A)
    # exact polish: evaluate the greedy policy of the LP's V by one linear solve, then improvement checks
    reg = Regulariser()
    q = q_backup(mdp.P2, mdp.R, g, v_lp)
    q[mdp.terminal] = 0.0
    act = np.argmax(q, axis=1)
    steps = 0
    for _ in range(S * A + 1):
        pol = np.eye(A)[act]
        v, _, _ = _evaluate_tabular(mdp, pol, reg)
        steps += 1
        q = q_backup(mdp.P2, mdp.R, g, v)
        q[mdp.terminal] = 0.0
        best = np.max(q, axis=1)
        cur = q[np.arange(S), act]
        new = np.where(cur >= best - 1e-12 * (1 + np.abs(best)), act, np.argmax(q, axis=1))
        if np.array_equal(new, act):
            stable = True
            break
        act = new
    else:   # policy iteration from the LP's greedy policy did not stabilise: never capped silently
        stable = False
        warnings.warn(f"solve_lp: the exact polish (policy iteration from the LP's greedy policy) did not "
                      f"stabilise in {steps} steps; the returned policy may not be optimal", ConvergenceWarning,
                      stacklevel=2)
    q, pol_out = _finish(mdp, reg, v)
    resid = float(np.max(np.abs(np.max(q, axis=1)[live] - v[live]))) if live.any() else 0.0
    bound = resid / (1 - g) if g < 1 else 0.0
    # the exact dual: occupancy of the optimal deterministic policy from w (0 at terminal states)
    # (I − γ P_πᵀ D) ρ = w: the transpose of the evaluation system, by the same certified Krylov solve
    # (a sparse LU fills in on random graphs: 1.5 s at S = 3000)
    pol = np.eye(A)[act]
    P_pi = mdp.policy_matrix(pol)
    keep = live.astype(np.float64)
    if sp.issparse(P_pi):
        Mt = (sp.identity(S, format="csr") - g * (sp.diags(keep) @ P_pi).T).tocsr()
    else:
        Mt = np.ascontiguousarray((P_pi * (-g * keep)[:, None]).T)
        Mt.flat[:: S + 1] += 1.0
    rho, _ = solve_policy_system(Mt, w, g)
    rho = np.asarray(rho, dtype=np.float64)
    if not np.all(np.isfinite(rho)):
        raise ValueError("the occupancy solve failed: I − γP_πᵀ is singular (γ = 1 with an improper policy?)")
    rho[mdp.terminal] = 0.0
    occ = np.maximum(rho, 0.0)[:, None] * pol
    t_pol = time.perf_counter() - t0
    return LPSolution(q, v, pol_out, resid, int(getattr(res, "nit", 0)), stable, "lp", None, None, bound,
                      float(mdp.initial @ v), tol, occupancy=occ, weights=w, lp_value=float(res.fun),
                      lp_status=str(res.message), primal_v=v_lp, lp_occupancy=lp_occ, lp_method=used,
                      lp_seconds=t_lp, polish_seconds=t_pol, polish_steps=steps)


# ---------------------------------------------------------------------- chain structure
def recurrent_classes(P_pi) -> list:
    """Closed communicating classes of the Markov chain ``P_pi`` ``(S, S)`` (dense or sparse):
    the strongly connected components with no edge leaving them. Returns a list of index arrays."""
    G = sp.csr_matrix(P_pi)
    G.eliminate_zeros()
    n, labels = csgraph.connected_components(G, directed=True, connection="strong")
    coo = G.tocoo()
    leaves = np.zeros(n, dtype=bool)
    cross = labels[coo.row] != labels[coo.col]
    leaves[labels[coo.row[cross]]] = True
    return [np.flatnonzero(labels == c) for c in range(n) if not leaves[c]]


def _chain(mdp: TabularMDP, pol: np.ndarray):
    """P_π with terminal states merged into one absorbing class (they all have gain 0)."""
    P = sp.csr_matrix(mdp.policy_matrix(pol), dtype=np.float64)
    if mdp.terminal.any():
        S = mdp.n_states
        t = np.flatnonzero(mdp.terminal)
        keep = sp.diags((~mdp.terminal).astype(np.float64))
        # every terminal state moves to the first terminal state: one absorbing class
        T = sp.csr_matrix((np.ones(t.size), (t, np.full(t.size, t[0]))), shape=(S, S))
        P = (keep @ P + T).tocsr()
    return P


# ---------------------------------------------------------------------- average reward
@dataclass
class AverageRewardSolution:
    r"""Exact average-reward solution (docs/math.md §14).

    gain : ``(S,)`` :math:`g(s) = \lim_N \frac1N E\sum_{t<N} r_t` (constant for a unichain policy).
    bias : ``(S,)`` h with :math:`g + h = r_\pi + P_\pi h`, normalised to zero stationary mean on each
        recurrent class.
    policy : ``(S, A)``; q : ``(S, A)`` = r + P h (the average-reward Q up to the gain).
    residual : :math:`\max_s|\max_a(r + Ph)(s,a) - g(s) - h(s)|` (optimality; 0 for evaluation of a
        given policy up to round-off), iterations : policy-improvement steps, recurrent_classes : number
        of closed classes of the final policy (terminal states merged).
    """

    gain: np.ndarray
    bias: np.ndarray
    policy: np.ndarray
    q: np.ndarray
    residual: float
    iterations: int
    method: str
    recurrent_classes: int

    @property
    def g(self) -> float:
        """The gain as one number (unichain): μ0-independent."""
        return float(self.gain[0])


def _evaluate_average(mdp: TabularMDP, pol: np.ndarray):
    """(gain (S,), bias (S,), n_classes) of a fixed policy, exactly by linear solves."""
    S = mdp.n_states
    r = np.sum(pol * mdp.R, axis=1)
    r[mdp.terminal] = 0.0
    P = _chain(mdp, pol)
    classes = recurrent_classes(P)
    gain = np.zeros(S)
    bias = np.zeros(S)
    rec = np.zeros(S, dtype=bool)
    for C in classes:
        rec[C] = True
        PC = P[C][:, C].toarray()
        k = C.size
        # stationary law of the class: π(I − P_C) = 0, Σπ = 1 (replace one equation)
        M = (np.eye(k) - PC).T
        M[-1] = 1.0
        rhs = np.zeros(k)
        rhs[-1] = 1.0
        stat = np.linalg.solve(M, rhs)
        gC = float(stat @ r[C])
        gain[C] = gC
        # bias on the class: (I − P_C)h = r_C − g, stat·h = 0 (bordered system)
        Bm = np.zeros((k + 1, k + 1))
        Bm[:k, :k] = np.eye(k) - PC
        Bm[:k, k] = 1.0
        Bm[k, :k] = stat
        sol = np.linalg.solve(Bm, np.concatenate([r[C] - gC, [0.0]]))
        bias[C] = sol[:k]
    T = np.flatnonzero(~rec)
    if T.size:
        R_idx = np.flatnonzero(rec)
        PTT = P[T][:, T]
        PTR = P[T][:, R_idx]
        M = (sp.identity(T.size, format="csc") - PTT).tocsc()
        lu = spla.splu(M)
        gain[T] = lu.solve(np.asarray(PTR @ gain[R_idx]).ravel())     # absorption-weighted gains
        bias[T] = lu.solve(r[T] - gain[T] + np.asarray(PTR @ bias[R_idx]).ravel())
    return gain, bias, len(classes)


def average_reward(mdp: TabularMDP, policy=None, *, max_iter: int = 10_000) -> AverageRewardSolution:
    r"""Exact average-reward (gain/bias) solution (Howard 1960; Puterman 1994, §8.6 and §9.2).

    With ``policy``: exact evaluation of its gain and bias by linear solves (any chain structure:
    per-class stationary laws, absorption into the classes for transient states).
    Without: Howard's policy iteration for **unichain** MDPs,
    :math:`\pi'(s) \in \arg\max_a r(s,a) + \sum_{s'}P(s'|s,a)h(s')` (keep the current action on ties),
    stopping when the policy is stable; exact, not an ε-estimate like a relative-value-iteration stop.
    If an iterate has several recurrent classes (a multichain MDP) it raises ValueError saying so —
    multichain optimal control is not implemented (use :func:`mdpsandbox.solve` with γ → 1, whose
    (1−γ)V*_γ tends to the optimal gain). Terminal states count as one absorbing class of gain 0.
    ``mdp.gamma`` is ignored.
    """
    mdp = _check_mdp(mdp)
    S, A = mdp.n_states, mdp.n_actions
    if policy is not None:
        pol = check_distribution(policy, "policy")
        check_shape(pol, (S, A), "policy")
        gain, bias, k = _evaluate_average(mdp, pol)
        q = mdp.R + np.asarray(mdp.P2 @ bias).reshape(S, A)
        q[mdp.terminal] = 0.0
        res = float(np.max(np.abs(np.sum(pol * q, axis=1) - gain - bias)[~mdp.terminal], initial=0.0))
        return AverageRewardSolution(gain, bias, pol, q, res, 0, "evaluation", k)
    max_iter = check_int(max_iter, "max_iter")
    act = np.argmax(mdp.R, axis=1)
    for it in range(1, max_iter + 1):
        pol = np.eye(A)[act]
        gain, bias, k = _evaluate_average(mdp, pol)
        if k > 1 or np.ptp(gain) > 1e-9 * (1 + np.abs(gain).max()):
            raise ValueError(f"the policy at iteration {it} has {k} recurrent classes (gains "
                             f"{np.unique(np.round(gain, 12)).tolist()}): mdp is multichain, and exact "
                             "average-reward control is implemented for unichain MDPs only; use "
                             "solve(mdp with gamma close to 1) — (1-gamma)V* tends to the optimal gain")
        q = mdp.R + np.asarray(mdp.P2 @ bias).reshape(S, A)
        q[mdp.terminal] = 0.0
        best = np.max(q, axis=1)
        cur = q[np.arange(S), act]
        new = np.where(cur >= best - 1e-12 * (1 + np.abs(best)), act, np.argmax(q, axis=1))
        if np.array_equal(new, act):
            res = float(np.max(np.abs(best - gain - bias)[~mdp.terminal], initial=0.0))
            return AverageRewardSolution(gain, bias, pol, q, res, it, "howard-pi", k)
        act = new
    raise ValueError(f"average-reward policy iteration did not stabilise in max_iter={max_iter} steps")


def relative_value_iteration(mdp: TabularMDP, *, tol: float = 1e-9, ref_state: int = 0,
                             aperiodicity: float = 1.0, max_iter: Optional[int] = None):
    r"""Relative value iteration (White 1963; Puterman 1994, §8.5.5) for unichain MDPs:
    :math:`h_{k+1} = Th_k - (Th_k)(s_{ref})\mathbf 1`, :math:`Th = \max_a r + Ph`.

    Certificate (Odoni bounds): :math:`\min_s(Th-h)(s) \le g^* \le \max_s(Th-h)(s)`; stops when
    the span is < tol and returns ``(gain_estimate, (lower, upper), h, iterations)`` — an interval
    that provably contains the optimal gain. ``aperiodicity`` α ∈ (0, 1] applies the transformation
    P ← (1−α)I + αP, r ← αr (same optimal policies; gain scaled by α, undone in the result) so that
    periodic chains converge; the transformed problem has the same bias h (g + h = r + Ph is
    unchanged), so only the gain is rescaled. Terminal states are absorbing with reward 0
    ((Th)(t) = h(t), gain 0 there), as in :func:`average_reward`. ``h`` is returned normalised to
    h(s_ref) = 0. Compare :func:`average_reward`, which is exact.
    """
    mdp = _check_mdp(mdp)
    tol = check_positive(tol, "tol")
    S, A = mdp.n_states, mdp.n_actions
    ref_state = check_int(ref_state, "ref_state", minimum=0)
    if ref_state >= S:
        raise ValueError(f"ref_state must lie in [0, {S}), got {ref_state}")
    alpha = float(aperiodicity)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"aperiodicity must lie in (0, 1], got {aperiodicity}")
    cap = 1_000_000 if max_iter is None else check_int(max_iter, "max_iter")
    R = alpha * mdp.R
    h = np.zeros(S)
    for it in range(1, cap + 1):
        q = R + alpha * np.asarray(mdp.P2 @ h).reshape(S, A) + (1 - alpha) * h[:, None]
        q[mdp.terminal] = h[mdp.terminal, None]        # absorbing, reward 0: (Th)(t) = h(t)
        th = np.max(q, axis=1)
        d = th - h
        lo, hi = float(d.min()), float(d.max())
        h = th - th[ref_state]
        if hi - lo < tol * alpha:
            # the transformed problem has gain α·g and the same bias: rescale the gain only
            return 0.5 * (lo + hi) / alpha, (lo / alpha, hi / alpha), h, it
    warnings.warn(f"relative value iteration stopped at max_iter={cap} with span {hi - lo:.3g}",
                  ConvergenceWarning, stacklevel=2)
    return 0.5 * (lo + hi) / alpha, (lo / alpha, hi / alpha), h, cap


# ---------------------------------------------------------------------- stochastic shortest paths
def _support(mdp: TabularMDP) -> sp.csr_matrix:
    P2 = mdp.P2 if sp.issparse(mdp.P2) else sp.csr_matrix(mdp.P2)
    return sp.csr_matrix(P2 > 0, dtype=np.float64)


def proper_policy(mdp: TabularMDP) -> Optional[np.ndarray]:
    r"""A deterministic proper policy ``(S,)`` (reaches the terminal set with probability 1 from every
    state), or None if none exists.

    Almost-sure reachability (de Alfaro 1997): W ← all states; repeat { keep in W the states that can
    reach the terminal set using only actions whose support stays inside W } to a fixed point. A
    proper policy exists iff W is every state; it picks, layer by layer from the terminal set, an action
    that stays in W and reaches the previous layers with positive probability."""
    S, A = mdp.n_states, mdp.n_actions
    sup = _support(mdp)
    term = mdp.terminal
    W = np.ones(S, dtype=bool)
    while True:
        stays = np.asarray(sup @ (~W).astype(np.float64)).reshape(S, A) == 0    # support ⊆ W
        reach = term.copy()
        act = np.full(S, -1)
        act[term] = 0
        while True:
            hits = (np.asarray(sup @ reach.astype(np.float64)).reshape(S, A) > 0) & stays
            new = hits.any(axis=1) & ~reach & W
            if not new.any():
                break
            act[new] = np.argmax(hits[new], axis=1)
            reach |= new
        if np.array_equal(reach & W, W):
            break
        W = reach & W
    return act if W.all() else None


def solve_ssp(mdp: TabularMDP, *, max_iter: int = 10_000) -> Solution:
    r"""Stochastic shortest path at γ = 1 (Bertsekas & Tsitsiklis 1991; docs/math.md §14): hard control
    of :math:`E\sum_t r_t` until the terminal set, under their conditions — (i) a proper policy exists,
    (ii) every improper policy has value −∞ from some state. (ii) is checked by a sufficient
    condition that is exact for the recurrent classes of improper policies: every (s, a) whose
    support can stay among non-terminal states forever has r(s, a) < 0.

    Policy iteration started from a proper policy (:func:`proper_policy`): each evaluation is one
    nonsingular linear solve, each improvement stays proper (B–T, Prop. 2), and it stops when the
    policy is stable. Raises ValueError naming the condition that fails (no proper policy: which state
    cannot terminate; (ii): which (s, a) could cycle with reward ≥ 0).
    """
    mdp = _check_mdp(mdp)
    max_iter = check_int(max_iter, "max_iter")
    S, A = mdp.n_states, mdp.n_actions
    act = proper_policy(mdp)
    if act is None:
        raise ValueError("mdp has no proper policy: some state cannot reach a terminal state with probability 1 "
                         "under any policy, so the gamma = 1 total reward is undefined there")
    # improper policies must have value −inf: rewards of actions that can stay in the 'avoid' set < 0
    sup = _support(mdp)
    Wv = ~mdp.terminal.copy()
    while True:
        can_stay = (np.asarray(sup @ (~Wv).astype(np.float64)).reshape(S, A) == 0) & Wv[:, None]
        nW = can_stay.any(axis=1)
        if np.array_equal(nW, Wv):
            break
        Wv = nW
    bad = can_stay & (mdp.R >= 0)
    if bad.any():
        s, a = np.argwhere(bad)[0]
        raise ValueError(f"an improper policy can cycle forever with reward >= 0 (state {s}, action {a}, "
                         f"r = {mdp.R[s, a]:g}): the stochastic-shortest-path conditions fail; use gamma < 1")
    reg = Regulariser()
    floor = 64 * _EPS * (1.0 + float(np.abs(mdp.R).max(initial=0.0))) * S
    for it in range(1, max_iter + 1):
        pol = np.eye(A)[act]
        v, _, _ = _evaluate_tabular(mdp, pol, reg)   # proper policy: I − P_π nonsingular
        q = q_backup(mdp.P2, mdp.R, 1.0, v)
        q[mdp.terminal] = 0.0
        best = np.max(q, axis=1)
        cur = q[np.arange(S), act]
        new = np.where(cur >= best - 1e-12 * (1 + np.abs(best)), act, np.argmax(q, axis=1))
        if np.array_equal(new, act):
            res = float(np.max(np.abs(best - v)))
            q, pol_out = _finish(mdp, reg, v)
            bound = 0.0 if res <= floor * (1 + np.abs(v).max()) else np.inf
            return Solution(q, v, pol_out, res, it, True, "ssp-pi", None, None, bound, float(mdp.initial @ v), None)
        act = new
    raise ValueError(f"stochastic-shortest-path policy iteration did not stabilise in max_iter={max_iter} steps")
