r"""Exact dynamic programming: value iteration (certified stop), policy iteration (exact, sparse-aware
evaluation), backward induction (finite horizon; token trees level by level in O(#edges)), and
policy evaluation — each for hard, entropy-regularised and KL-regularised control (docs/math.md §1–4).

Front door: :func:`solve`. Policy evaluation: :func:`evaluate`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._math import logsumexp
from .._memory import check_memory
from .._validate import check_distribution, check_int, check_positive, check_shape, normalise_rows
from ..envs.tabular import TabularMDP
from ..envs.token import TokenMDP, _check_tree_size
from .krylov import solve_policy_system
from .backups import Regulariser, bellman_backup, q_backup, tree_backward
from ._tree_fast import OutputPool

__all__ = ["Solution", "Evaluation", "solve", "evaluate", "ConvergenceWarning", "METHODS", "make_regulariser"]

METHODS = ("auto", "vi", "pi", "backward", "mpi", "gauss-seidel", "lp", "ssp")
_EPS = np.finfo(np.float64).eps


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at ``max_iter`` before its certified tolerance."""


@dataclass
class Solution:
    r"""An exact (certified) solution of a hard / entropy / KL-regularised control problem.

    Shapes: TabularMDP — q, policy ``(S, A)``, v ``(S,)``; with a finite ``horizon`` H, q and policy
    ``(H, S, A)`` and v ``(H, S)`` (stage t, value 0 after stage H−1). TokenMDP — q, policy
    ``(n_nodes, V)``, v ``(n_nodes,)`` in the canonical node order (leading prompt axis with
    several prompts).

    residual : sup-norm Bellman residual reported by the method (VI: ‖V_{k+1} − V_k‖∞; PI: ‖TV − V‖∞;
        backward induction: 0, exact by construction up to round-off).
    bound : certified ‖v − v*‖∞ bound (VI: γ·residual/(1−γ) ≤ tol/2; PI: residual/(1−γ); ``inf``
        when γ = 1 and the method is iterative, since no contraction certificate exists).
    iterations : sweeps (VI), improvement steps (PI) or levels (backward induction).
    value_initial : μ0·v (tabular) or the mean root value over prompts (token).
    """

    q: np.ndarray
    v: np.ndarray
    policy: np.ndarray
    residual: float
    iterations: int
    converged: bool
    method: str
    beta: Optional[float] = None
    temperature: Optional[float] = None
    bound: float = 0.0
    value_initial: float = 0.0
    tol: Optional[float] = None

    def summary(self) -> dict:
        """JSON-friendly scalars."""
        return {
            "method": self.method, "beta": self.beta, "temperature": self.temperature,
            "value_initial": float(self.value_initial), "residual": float(self.residual),
            "bound": float(self.bound), "iterations": int(self.iterations), "converged": bool(self.converged),
        }


@dataclass
class Evaluation:
    r"""Regularised value of a fixed policy π: :math:`V^\pi = E_\pi\sum_t\gamma^t(r_t - \beta KL_t + \tau H_t)`.

    v ``(S,)``/``(n_nodes,)``; q ``(S, A)``/``(n_nodes, V)`` (Q^π(s,a) = r + γ E V^π(s'));
    kl, entropy: per-state KL(π‖π_ref) and H(π) (0 where no reference is given).
    """

    v: np.ndarray
    q: np.ndarray
    kl: np.ndarray
    entropy: np.ndarray
    value_initial: float = 0.0
    beta: Optional[float] = None
    temperature: Optional[float] = None


# ---------------------------------------------------------------------- argument handling
def make_regulariser(env, beta, temperature, ref_policy, *, need_log_ref: bool = True
                     ) -> tuple[Regulariser, Optional[np.ndarray]]:
    """Validate (β, τ, π_ref) for ``env`` and build the :class:`Regulariser`.

    For a TokenMDP returns ``(reg, ell)`` where ``ell`` is the reference in logit form
    ``(P, N, V)`` (the env's ``ref_logits`` unless ``ref_policy`` overrides it); with
    ``need_log_ref=False`` the ``(P, N, V)`` array log π_ref is not built (``reg.log_ref`` is None:
    backward induction on the tree works from ``ell`` and the cached LSE instead)."""
    b = check_positive(beta, "beta") if beta is not None else 0.0
    t = check_positive(temperature, "temperature") if temperature is not None else 0.0
    if ref_policy is not None and beta is None:
        raise ValueError("ref_policy is only used with beta (KL regularisation); pass beta or drop ref_policy")
    if isinstance(env, TokenMDP):
        if ref_policy is not None:
            p = env.check_policy(ref_policy, "ref_policy")
            with np.errstate(divide="ignore"):
                ell = np.log(p)
        else:
            ell = env._ref
        log_ref = None
        if b > 0 and need_log_ref:
            log_ref = ell - logsumexp(ell, axis=-1)[..., None]
        return Regulariser(t, b, log_ref), ell
    if not isinstance(env, TabularMDP):
        raise ValueError(f"env must be a TabularMDP or TokenMDP, got {type(env).__name__}")
    log_ref = None
    if b > 0:
        ref = ref_policy if ref_policy is not None else env.ref_policy
        if ref is None:
            raise ValueError("beta (KL regularisation) on a TabularMDP needs ref_policy (S, A): pass "
                             "ref_policy=... (e.g. a uniform policy) or build the MDP with ref_policy")
        ref = check_distribution(ref, "ref_policy")
        check_shape(ref, (env.n_states, env.n_actions), "ref_policy")
        ref = normalise_rows(ref)  # rows accepted within 1e-9 are renormalised (the backup uses Σ π_ref = 1)
        with np.errstate(divide="ignore"):
            log_ref = np.log(ref)
        return Regulariser(t, b, log_ref, ref), None
    return Regulariser(t, b, log_ref), None


def _value_scale(env: TabularMDP, reg: Regulariser) -> float:
    """A priori bound on the round-off scale of V: (max|r| + τ log A)/(1−γ). Regularised values stay
    within it for every β (0 ≤ KL, π_ref has KL 0, entropy ≤ log A) and the backup is exact for every
    β and τ, entropy + KL with τ ≪ β included
    (:func:`~mdpsandbox.solvers.backups.soft_value_and_policy`), so β itself does not enter."""
    rmax = float(np.max(np.abs(env.R))) if env.R.size else 0.0
    extra = reg.temperature * math.log(env.n_actions)
    horizon = 1.0 / (1.0 - env.gamma) if env.gamma < 1 else float(env.n_states)
    return (rmax + extra) * horizon + 1.0


# ---------------------------------------------------------------------- front door
def solve(env: Union[TabularMDP, TokenMDP], *, beta: Optional[float] = None,
          temperature: Optional[float] = None, ref_policy=None, method: str = "auto",
          tol: float = 1e-9, max_iter: Optional[int] = None, horizon: Optional[int] = None,
          v0=None, policy0=None, terminal_value=None) -> Solution:
    r"""Solve ``env`` exactly.

    No regulariser: hard control :math:`V^* = \max_a Q^*`. ``temperature=τ``: entropy-regularised
    :math:`V^*_\tau = \tau\,\mathrm{LSE}(Q^*_\tau/\tau)`. ``beta=β``: KL-regularised to ``ref_policy``
    :math:`V^* = \beta\log\sum_a\pi_{ref}(a|s)e^{Q^*(s,a)/\beta}` (a TokenMDP uses its own
    reference unless ``ref_policy`` is given; a TabularMDP uses its ``ref_policy``). Both: entropy
    + KL (docs/math.md §3). In every case :math:`Q^*(s,a) = r(s,a) + \gamma\sum_{s'}P(s'|s,a)V^*(s')`.

    method : ``"auto"``, ``"vi"``, ``"pi"`` or ``"backward"`` (and the classic methods below).
        On a TokenMDP ``"vi"``/``"pi"`` run on :meth:`TokenMDP.to_tabular` (a cross-check).
        ``"auto"`` picks, in this order (from the regime study benchmarks/bench_auto.py: dense and
        sparse garnets, S ≤ 10⁴, γ ∈ {0.5, 0.9, 0.95, 0.99, 0.999}, hard / entropy / KL, tol = 1e-9):

        1. token tree or finite ``horizon`` → backward induction; γ = 1 with improper policies and
           hard control → ``"ssp"``;
        2. ``"pi"`` if γ > 0.9, or value iteration cannot certify ``tol`` above float64 round-off
           (e.g. γ = 0.999 at tol = 1e-9, or β, τ ~ 1e8), or ``policy0`` is given;
        3. P dense with S ≥ 100: ``"mpi"`` if γ ≤ 0.5 and S < 400 (PI's evaluation is a dense LU
           there), else ``"pi"`` (full rows: an evaluation, on P_π with 1/A of P's entries, costs
           less than the sweeps a fixed-point method needs);
        4. ``"gauss-seidel"`` if the control is hard, or γ ≤ 0.5, or S ≤ 300 (one numba sweep in
           place, no per-sweep Python overhead: the fastest certified method there);
        5. ``"pi"`` otherwise (regularised, 0.5 < γ ≤ 0.9, S > 300, sparse P).
    tol : VI stops when ‖V_{k+1} − V_k‖∞ < tol(1−γ)/(2γ), which certifies ‖V − V*‖∞ < tol/2 and an
        tol-optimal greedy policy (Puterman 1994, Thm 6.3.1); PI stops when the policy is stable
        (hard) or the Bellman residual is ≤ tol(1−γ) (regularised).
    max_iter : cap for iterative methods (default: the a-priori count the contraction guarantees);
        reaching it returns ``converged=False`` and warns — never a silent cap.
    horizon : finite-horizon problem for a TabularMDP (backward induction; allows γ = 1).
    v0 : warm start ``(S,)`` — VI / MPI / Gauss–Seidel start from it; PI starts from its greedy policy.
    policy0 : warm start ``(S, A)`` for PI (hard control: its argmax actions).
    terminal_value : ``(S,)`` value V_H after the last stage of a finite-horizon problem (default 0).
    Other methods (docs/math.md §14, :mod:`mdpsandbox.solvers.classic`): ``"mpi"`` (modified PI),
    ``"gauss-seidel"``, ``"lp"`` (hard control, HiGHS), ``"ssp"`` (hard control at γ = 1 when improper
    policies exist but have value −∞). ``"auto"`` at γ = 1 with improper policies and hard control
    solves the stochastic shortest path (it raises if the SSP conditions fail).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    tol = check_positive(tol, "tol")
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter")
    tree_path = isinstance(env, TokenMDP) and method in ("auto", "backward")
    reg, ell = make_regulariser(env, beta, temperature, ref_policy, need_log_ref=not tree_path)
    if isinstance(env, TokenMDP):
        if horizon is not None:
            raise ValueError("horizon is fixed by the TokenMDP; do not pass horizon")
        if method in ("auto", "backward"):
            return _solve_tree(env, reg, ell)
        tab = env.to_tabular()
        ref_tab = None
        if beta is not None:
            ref_tab = np.concatenate([np.exp(reg.log_ref).reshape(-1, env.vocab_size),
                                      np.full((1, env.vocab_size), 1.0 / env.vocab_size)])
        sol = solve(tab, beta=beta, temperature=temperature, ref_policy=ref_tab, method=method, tol=tol,
                    max_iter=max_iter)
        shp = env.shape
        sol.q = sol.q[:-1].reshape(shp)
        sol.policy = sol.policy[:-1].reshape(shp)
        sol.v = sol.v[:-1].reshape(shp[:-1])
        return sol
    if horizon is not None:
        horizon = check_int(horizon, "horizon")
        if method not in ("auto", "backward"):
            raise ValueError(f"a finite horizon is solved by backward induction; method={method!r} is not available")
        vT = None
        if terminal_value is not None:
            vT = np.array(terminal_value, dtype=np.float64, copy=True)
            check_shape(vT, (env.n_states,), "terminal_value")
            if not np.all(np.isfinite(vT)):
                raise ValueError("terminal_value must be finite")
            vT[env.terminal] = 0.0
        return _backward_tabular(env, reg, horizon, vT)
    if terminal_value is not None:
        raise ValueError("terminal_value is the value after stage H of a finite-horizon problem: pass horizon=H")
    if method == "backward":
        raise ValueError("method='backward' on a TabularMDP needs horizon=H")
    if v0 is not None:
        v0 = np.array(v0, dtype=np.float64, copy=True)
        check_shape(v0, (env.n_states,), "v0")
        if not np.all(np.isfinite(v0)):
            raise ValueError("v0 must be finite")
    if policy0 is not None:
        policy0 = check_distribution(policy0, "policy0")
        check_shape(policy0, (env.n_states, env.n_actions), "policy0")
    if method in ("mpi", "gauss-seidel", "lp", "ssp"):
        from . import classic

        if method in ("lp", "ssp") and not reg.is_hard:
            raise ValueError(f"method={method!r} solves hard control only (no beta/temperature)")
        if method == "mpi":
            return classic.modified_policy_iteration(env, beta=beta, temperature=temperature, ref_policy=ref_policy,
                                                     tol=tol, max_iter=max_iter, v0=v0)
        if method == "gauss-seidel":
            return classic.gauss_seidel_vi(env, beta=beta, temperature=temperature, ref_policy=ref_policy, tol=tol,
                                           max_iter=max_iter, v0=v0)
        if method == "lp":
            return classic.solve_lp(env)
        return classic.solve_ssp(env)
    if method == "auto" and env.gamma == 1.0 and not env.has_proper_policies and reg.is_hard:
        from . import classic

        return classic.solve_ssp(env)   # episodic task at γ = 1: stochastic shortest path (raises if ill-posed)
    env.check_solvable()
    if method == "auto":
        # the rule of the docstring, from the regime study benchmarks/bench_auto.py (tol = 1e-9)
        g = env.gamma
        vi_too_fine = 0 < g < 1 and tol * (1 - g) / (2 * g) < 16 * _EPS * _value_scale(env, reg)
        S = env.n_states
        if g > 0.9 or vi_too_fine or policy0 is not None:
            method = "pi"
        elif not env.is_sparse and S >= 100:
            method = "mpi" if g <= 0.5 and S < 400 else "pi"
        elif reg.is_hard or g <= 0.5 or S <= 300:
            method = "gauss-seidel"
        else:
            method = "pi"
        if method in ("mpi", "gauss-seidel"):
            from . import classic

            fn = classic.modified_policy_iteration if method == "mpi" else classic.gauss_seidel_vi
            return fn(env, beta=beta, temperature=temperature, ref_policy=ref_policy, tol=tol, max_iter=max_iter,
                      v0=v0)
    if method == "vi":
        return _value_iteration(env, reg, tol, max_iter, v0)
    check_memory(_pi_bytes(env), f"policy iteration on {env!r}")
    if policy0 is None and v0 is not None:
        q0 = q_backup(env.P2, env.R, env.gamma, v0)
        q0[env.terminal] = 0.0
        policy0 = reg.policy(q0)
    return _policy_iteration(env, reg, tol, max_iter, policy0)


def _pi_bytes(env: TabularMDP) -> int:
    """Working memory of policy iteration beyond the MDP itself: q, policy and their temporaries
    (≈ 5 arrays of S·A float64), P_π and I − γP_π (sparse: ≈ 2 × 12 bytes per nonzero of the policy's
    rows; dense: 2 S² float64), and a few S-vectors."""
    S, A = env.n_states, env.n_actions
    if env.is_sparse:
        nnz_pi = int(np.ceil(env.P2.nnz / A)) * (1 if A == 1 else 2) + S
        sys_bytes = 2 * 12 * nnz_pi
    else:
        sys_bytes = 2 * 8 * S * S
    return 5 * 8 * S * A + sys_bytes + 10 * 8 * S


def _finish(env: TabularMDP, reg: Regulariser, v: np.ndarray):
    """(q, v, policy) consistent with v: q = R + γPv (0 at terminals), policy = reg.policy(q)."""
    q = q_backup(env.P2, env.R, env.gamma, v)
    q[env.terminal] = 0.0
    return q, reg.policy(q)


def _value_iteration(env: TabularMDP, reg: Regulariser, tol: float, max_iter: Optional[int], v0=None) -> Solution:
    g = env.gamma
    scale = _value_scale(env, reg)
    if g < 1.0:
        thr = tol * (1.0 - g) / (2.0 * g) if g > 0 else np.inf
        floor = 16 * _EPS * scale
        if thr < floor:
            raise ValueError(
                f"tol={tol:g} asks value iteration for ‖V_k+1 − V_k‖ < {thr:.3g}, below the float64 round-off "
                f"({floor:.3g}) of values up to {scale:.3g} at gamma={g}; use a larger tol or method='pi'")
    else:
        thr = tol
    v = np.zeros(env.n_states) if v0 is None else v0.copy()
    it, diff, cap = 0, np.inf, max_iter
    while True:
        _, v_new = bellman_backup(env.P2, env.R, g, v, reg, env.terminal)
        it += 1
        diff = float(np.max(np.abs(v_new - v))) if v.size else 0.0
        v = v_new
        if diff < thr:
            converged = True
            break
        if cap is None:
            # contraction: ‖V_{k+1} − V_k‖ ≤ γ^k ‖V_1 − V_0‖, so this many sweeps always suffice
            cap = (int(math.ceil(math.log(thr / diff) / math.log(g))) + 100) if 0 < g < 1 else 1_000_000
        if it >= cap:
            converged = False
            warnings.warn(f"value iteration stopped at max_iter={cap} with residual {diff:.3g} > {thr:.3g}",
                          ConvergenceWarning, stacklevel=3)
            break
    q, pol = _finish(env, reg, v)
    bound = g * diff / (1.0 - g) if g < 1 else np.inf
    return Solution(q, v, pol, diff, it, converged, "vi", _b(reg), _t(reg), bound, float(env.initial @ v), tol)


def _b(reg):
    return reg.beta if reg.beta > 0 else None


def _t(reg):
    return reg.temperature if reg.temperature > 0 else None


def _evaluate_tabular(env: TabularMDP, policy: np.ndarray, reg: Regulariser, v0=None, accuracy=None):
    """Exact regularised V^π by one linear solve (I − γP_π)V = r_π − cost_π (sparse-aware: BiCGSTAB
    with a certified residual for large sparse systems, warm-started at ``v0``; see solvers/krylov.py).
    ``accuracy``: the error in V the caller needs (default: 1e-12 relative to the values); the Krylov
    solve is certified to it (or to float64 round-off), a direct solve is exact to round-off."""
    cost, kl, ent = reg.penalty(policy)
    if not np.all(np.isfinite(cost)):
        s = int(np.argmax(~np.isfinite(cost)))
        raise ValueError(f"policy puts mass where ref_policy is 0 (state {s}): KL is infinite")
    r_pi = np.sum(policy * env.R, axis=1) - cost
    r_pi[env.terminal] = 0.0
    S, g = env.n_states, env.gamma
    rel_tol = 1e-12
    if accuracy is not None and g < 1:
        # solve_policy_system certifies |error| ≤ rel_tol·(1 + max|r_π|/(1−γ)); never ask below ~ε
        rel_tol = min(1e-12, max(accuracy / (1.0 + float(np.max(np.abs(r_pi), initial=0.0)) / (1.0 - g)), 4 * _EPS))
    P_pi = env.policy_matrix(policy)
    keep = (~env.terminal).astype(np.float64)
    if sp.issparse(P_pi):
        M = sp.identity(S, format="csr") - g * sp.diags(keep) @ P_pi
        v, _ = solve_policy_system(M.tocsr(), r_pi, g, x0=v0, rel_tol=rel_tol)
    else:
        M = np.multiply(P_pi, -g)  # I − γ diag(keep) P_π, built in place (no S×S temporaries)
        M[env.terminal] = 0.0
        M.flat[:: S + 1] += 1.0
        v, _ = solve_policy_system(M, r_pi, g, x0=v0, rel_tol=rel_tol)
    v = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError("policy evaluation failed: I − γP_π is singular (γ = 1 with an improper policy?)")
    return v, kl, ent


def _policy_iteration(env: TabularMDP, reg: Regulariser, tol: float, max_iter: Optional[int],
                      policy0=None) -> Solution:
    g = env.gamma
    cap = max_iter or 10_000
    S, A = env.n_states, env.n_actions
    if reg.is_hard:
        if policy0 is None:
            # start greedy for one step of lookahead on V_0 = max_a r (one GEMV; saves an evaluation
            # on most problems compared with argmax r)
            q0 = q_backup(env.P2, env.R, g, np.where(env.terminal, 0.0, env.R.max(axis=1)))
            q0[env.terminal] = 0.0
            act = np.argmax(q0, axis=1)
        else:
            act = np.argmax(policy0, axis=1)
        pol = np.eye(A)[act]
    else:
        pol = reg.policy(env.R.copy()) if policy0 is None else policy0
    it, converged = 0, False
    scale = _value_scale(env, reg)
    thr = tol * (1.0 - g) if g < 1 else tol
    floor = 64 * _EPS * scale
    # the evaluation must be accurate enough for the Bellman residual to reach the stop (|TV − V| ≤ (1+γ)·error)
    accuracy = 0.25 * max(thr, floor)
    best, since_best = np.inf, 0
    stalled = False
    while it < cap:
        v, _, _ = _evaluate_tabular(env, pol, reg, v0=v if it else None, accuracy=accuracy)
        it += 1
        q = q_backup(env.P2, env.R, g, v)
        q[env.terminal] = 0.0
        tv = reg.value(q)
        tv[env.terminal] = 0.0
        res = float(np.max(np.abs(tv - v)))
        if reg.is_hard:
            # keep the current action on ties so PI cannot cycle between equal-valued policies
            best = np.max(q, axis=1)
            cur = q[np.arange(S), act]
            new = np.where(cur >= best - 1e-12 * (1 + np.abs(best)), act, np.argmax(q, axis=1))
            if np.array_equal(new, act):
                converged = True
                break
            act = new
            pol = np.eye(A)[act]
        else:
            if res <= max(thr, floor):
                converged = True
                break
            # soft PI converges quadratically; a residual that has not improved in 10 steps is round-off
            best, since_best = (res, 0) if res < best else (best, since_best + 1)
            if since_best >= 10:
                stalled = True
                break
            pol = reg.policy(q)
    if stalled:
        warnings.warn(f"policy iteration stalled at Bellman residual {res:.3g} after {it} steps (no improvement in "
                      f"10 steps: the float64 round-off of these values), above the requested {max(thr, floor):.3g}; "
                      "use a larger tol", ConvergenceWarning, stacklevel=3)
    elif not converged:
        warnings.warn(f"policy iteration stopped at max_iter={cap} with Bellman residual {res:.3g}",
                      ConvergenceWarning, stacklevel=3)
    q, pol_out = _finish(env, reg, v)
    if reg.is_hard:
        pol_out = reg.policy(q)
    bound = res / (1.0 - g) if g < 1 else (0.0 if res <= floor else np.inf)
    return Solution(q, v, pol_out, res, it, converged, "pi", _b(reg), _t(reg), bound, float(env.initial @ v), tol)


def _backward_tabular(env: TabularMDP, reg: Regulariser, H: int, terminal_value=None) -> Solution:
    S, A = env.n_states, env.n_actions
    qs, vs, ps = np.zeros((H, S, A)), np.zeros((H, S)), np.zeros((H, S, A))
    v = np.zeros(S) if terminal_value is None else terminal_value
    for t in range(H - 1, -1, -1):
        q, v = bellman_backup(env.P2, env.R, env.gamma, v, reg, env.terminal)
        qs[t], vs[t], ps[t] = q, v, reg.policy(q)
    return Solution(qs, vs, ps, 0.0, H, True, "backward", _b(reg), _t(reg), 0.0, float(env.initial @ vs[0]))


def _solve_tree(env: TokenMDP, reg: Regulariser, ell: np.ndarray) -> Solution:
    r"""Backward induction on the token tree, one level at a time (docs/math.md §4):
    :math:`Q(s,a) = r(s,a) + \gamma V(s\cdot a)` (V = 0 past EOS or length H), then V and π from the
    level's Q — all inside one numba kernel (:func:`tree_backward`; one exp per edge, one log per
    node; the node's LSE ℓ_ref is cached on the env)."""
    _check_tree_size(env.vocab_size, env.horizon, env.n_prompts, None, n_arrays=4)
    Pn, N = env.n_prompts, env.n_nodes
    if reg.beta > 0 and ell is env._ref:
        env.lse_ref  # computed once, cached on the env
        lse = env._lse_ref
    else:
        lse = np.zeros((Pn, N) if reg.beta > 0 else (1, 1))  # ell = log π_ref is normalised; unused if β = 0
    rew = np.ascontiguousarray(env._rew)
    ell = np.ascontiguousarray(ell)
    # outputs in recycled memory: a dropped Solution's arrays are reused, no page faults (_tree_fast.OutputPool)
    pool = getattr(env, "_tree_pool", None)
    if pool is None:
        pool = env._tree_pool = OutputPool()
    V = env.vocab_size
    out = (pool.empty((Pn, N, V)), pool.empty((Pn, N)), pool.empty((Pn, N, V)))
    # a TokenMDP's own logits are checked finite at construction; a ref_policy may exclude actions
    q, v, pol = tree_backward(rew, ell, lse, env.level_start, env.gamma, env.eos, reg, finite_ref=ell is env._ref,
                              out=out)
    sol = Solution(env._user(q), env._user(v), env._user(pol), 0.0, env.horizon, True, "backward", _b(reg),
                   _t(reg), 0.0, float(np.mean(v[:, 0])))
    return sol


# ---------------------------------------------------------------------- policy evaluation
def evaluate(env: Union[TabularMDP, TokenMDP], policy, *, beta: Optional[float] = None,
             temperature: Optional[float] = None, ref_policy=None, horizon: Optional[int] = None) -> Evaluation:
    r"""Exact regularised value of a fixed policy π (``(S, A)`` or the token shape):

    .. math:: V^\pi(s) = \sum_a \pi(a|s)\big[Q^\pi(s,a) - \beta\log\tfrac{\pi(a|s)}{\pi_{ref}(a|s)}
              - \tau\log\pi(a|s)\big],\quad Q^\pi(s,a) = r(s,a) + \gamma E_{s'}V^\pi(s').

    Tabular: one linear solve (never an inverse; sparse-aware). Token tree: one backward pass.
    Returns per-state KL(π‖π_ref) (against the env's reference for a TokenMDP when beta is None
    too) and entropy H(π).
    """
    reg, ell = make_regulariser(env, beta, temperature, ref_policy)
    if isinstance(env, TokenMDP):
        pol = env.check_policy(policy)
        if reg.log_ref is not None and ref_policy is not None:
            cost_reg = Regulariser(reg.temperature, reg.beta, reg.log_ref, env.check_policy(ref_policy, "ref_policy"))
        else:  # the env's own reference, computed as TokenMDP.ref_policy does (π = π_ref gives KL = 0 exactly)
            log_ref = env._ref - logsumexp(env._ref, axis=-1)[..., None]
            cost_reg = Regulariser(reg.temperature, reg.beta, log_ref, np.exp(log_ref))
        cost, kl, ent = cost_reg.penalty(pol)
        if reg.beta > 0 and not np.all(np.isfinite(cost)):
            raise ValueError("policy puts mass where ref_policy is 0: KL is infinite")
        Pn, N, V, H, ls = env.n_prompts, env.n_nodes, env.vocab_size, env.horizon, env.level_start
        q = np.empty((Pn, N, V))
        v = np.empty((Pn, N))
        for h in range(H - 1, -1, -1):
            a, b = ls[h], ls[h + 1]
            if h == H - 1:
                q[:, a:b] = env._rew[:, a:b]
            else:
                q[:, a:b] = env._rew[:, a:b] + env.gamma * v[:, b:ls[h + 2]].reshape(Pn, b - a, V)
                if env.eos is not None:
                    q[:, a:b, env.eos] = env._rew[:, a:b, env.eos]
            v[:, a:b] = np.sum(pol[:, a:b] * q[:, a:b], axis=-1) - cost[:, a:b]
        return Evaluation(env._user(v), env._user(q), env._user(kl), env._user(ent),
                          float(np.mean(v[:, 0])), _b(reg), _t(reg))
    pol = check_distribution(policy, "policy")
    if horizon is not None:
        horizon = check_int(horizon, "horizon")
        shape = (horizon, env.n_states, env.n_actions) if pol.ndim == 3 else (env.n_states, env.n_actions)
        check_shape(pol, shape, "policy")
        pols = pol if pol.ndim == 3 else np.broadcast_to(pol, (horizon, env.n_states, env.n_actions))
        vn = np.zeros(env.n_states)
        vs, qs, kls, ents = (np.zeros((horizon, env.n_states)), np.zeros((horizon, env.n_states, env.n_actions)),
                             np.zeros((horizon, env.n_states)), np.zeros((horizon, env.n_states)))
        for t in range(horizon - 1, -1, -1):
            qt = q_backup(env.P2, env.R, env.gamma, vn)
            qt[env.terminal] = 0.0
            cost, kls[t], ents[t] = reg.penalty(pols[t])
            vn = np.sum(pols[t] * qt, axis=1) - cost
            vn[env.terminal] = 0.0
            vs[t], qs[t] = vn, qt
        return Evaluation(vs, qs, kls, ents, float(env.initial @ vs[0]), _b(reg), _t(reg))
    check_shape(pol, (env.n_states, env.n_actions), "policy")
    env.check_solvable()
    v, kl, ent = _evaluate_tabular(env, pol, reg)
    q = q_backup(env.P2, env.R, env.gamma, v)
    q[env.terminal] = 0.0
    return Evaluation(v, q, kl, ent, float(env.initial @ v), _b(reg), _t(reg))
