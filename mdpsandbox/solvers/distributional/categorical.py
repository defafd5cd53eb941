r"""Categorical fixed points (docs/math.md §7): CDP (iterate Π_C T^π with a certified stop) and DCFP
(one linear solve of (I − M)F = b in CDF form; Rowland et al. 2024), for an MRP
(:func:`categorical_fixed_point`) and an (MDP, policy) pair (:func:`categorical_policy_evaluation`)."""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..._validate import check_finite, check_int, check_shape
from ...envs.tabular import TabularMDP
from ..dp import ConvergenceWarning
from ._dcfp_fast import FastOperator
from .cdf_operator import _build_operator
from .mrp import _check_mrp, _check_support, policy_mrp
from .projection import categorical_projection, check_atoms, default_atoms
from .representations import Categorical

__all__ = ["CategoricalFixedPoint", "PolicyReturnDistributions", "categorical_fixed_point",
           "categorical_policy_evaluation"]


@dataclass
class CategoricalFixedPoint(Categorical):
    r"""The categorical fixed point η_C = Π_C T^π η_C of an MRP: atoms ``(m,)``, probs ``(n, m)``
    (``np.asarray(result)`` gives probs).

    residual : :math:`\max_x\sum_i|((I-M)F - b)_{x,i}|` (ℓ∞,1 norm of the linear-system residual;
        for CDP, of the last step F_{k+1} − F_k).
    bound : certified :math:`\sup_x W_1(\hat\eta(x), \eta_C(x))` — Π_C T^π is a γ-contraction in
        :math:`\varsigma\|\cdot\|_{\infty,1}` on CDF vectors (every column of C sums to γ), so DCFP:
        ς·residual/(1−γ); CDP: γ ς·residual/(1−γ).
    """

    residual: float = 0.0
    bound: float = 0.0
    iterations: int = 0
    method: str = ""
    converged: bool = True
    solver: str = ""


# BiCGSTAB is right-preconditioned by the one-aggregate coarse correction (_dcfp_fast.bicgstab) at
# γ ≥ this: near γ = 1 the slow modes of M are the nearly state-constant ones it solves exactly
# (garnets at γ = 0.99: 63 → 18 iterations; 0.999: ~270 → 19); at smaller γ BiCGSTAB needs few
# iterations anyway and the correction's extra C^{(r)} products per pass do not pay.
_COARSE_MIN_GAMMA = 0.95
_COARSE_MIN_SUPPORT = 0.1


def _cdf_to_probs(F: np.ndarray, tol: float) -> np.ndarray:
    """(n, m−1) CDF values → (n, m) probabilities; round-off negatives (≤ tol) are clipped."""
    n = F.shape[0]
    full = np.concatenate([np.zeros((n, 1)), F, np.ones((n, 1))], axis=1)
    p = np.diff(full, axis=1)
    worst = float(p.min())
    if worst < -tol:
        raise ValueError(f"categorical solve produced a non-monotone CDF (min increment {worst:.3e}); "
                         "the linear solve did not converge")
    p = np.maximum(p, 0.0)
    return p / p.sum(axis=1, keepdims=True)


def categorical_fixed_point(P, r, gamma: float, atoms, *, method: str = "dcfp", tol: float = 1e-10,
                            max_iter: Optional[int] = None, solver: str = "auto", x0=None,
                            progress: bool = False) -> CategoricalFixedPoint:
    r"""The categorical fixed point :math:`\eta_C = \Pi_C T^\pi\eta_C` of an MRP (docs/math.md §7).

    In CDF form :math:`F_i(x) = P(G(x)\le z_i)`, i = 1..m−1, the projected operator is affine,
    :math:`TF = MF + b` with :math:`M = \mathrm{blockdiag}_x(C^{(r(x))})(P\otimes I_{m-1})`
    (:func:`categorical_cdf_operator`), and ρ(M) = γ.

    * ``method="cdp"`` — categorical dynamic programming (Rowland et al. 2018): F ← MF + b until
      the certified sup-W1 error γ ς‖ΔF‖∞,1/(1−γ) ≤ tol (the whole loop one numba call, with the
      same operator application as DCFP).
    * ``method="dcfp"`` — direct categorical fixed point (Rowland et al. 2024, "Near-minimax-optimal
      distributional reinforcement learning with a generative model"): solve (I − M)F = b.
      ``solver="bicgstab"`` (the "auto" default) runs BiCGSTAB with M applied matrix-free (CSR rows of
      P times F, then each state's banded C^{(r(x))}; numba, ``_dcfp_fast``) and stops on the
      certified ℓ∞,1 residual itself (the stop of ``_krylov.bicgstab_l1inf``); at γ ≥ 0.95 (and no
      absorbing state) it is right-preconditioned by a one-aggregate coarse correction — the exact
      Galerkin system (I − Σ_x μ_x C^{(r(x))}) q = Σ_x μ_x res(x) for a state-constant correction,
      μ a stationary law of P — which removes the slow, nearly state-constant modes (garnets at
      γ = 0.99: 63 → 18 iterations). ``"gmres"`` is scipy's GMRES with a 2-norm target (same
      operator, no coarse correction); each restarts until the certified bound
      ς‖b − (I−M)F‖∞,1/(1−γ) ≤ tol; ``solver="splu"`` factorises the sparse n(m−1) system
      (exact but suffers fill-in at large m; see benchmarks/bench_dcfp.py).

    P : ``(n, n)`` dense or scipy.sparse, stochastic. r : ``(n,)``. gamma in [0, 1).
    atoms : ``(m,)`` evenly spaced atoms holding the returns (z_1 ≤ min r/(1−γ), z_m ≥ max r/(1−γ)),
        or an int m for :func:`default_atoms`.
    x0 : optional initial CDF ``(n, m-1)`` for the iterative methods (DCFP's Krylov default: the
        projected Dirac at V^π, whose mean is already exact).
    Returns :class:`CategoricalFixedPoint` (probs ``(n, m)``, residual, certified bound, iterations).
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    if isinstance(atoms, numbers.Integral) and not isinstance(atoms, bool):
        atoms = default_atoms(r, gamma, atoms)
    z, gap = check_atoms(atoms)
    _check_support(z, r, gamma)
    if method not in ("dcfp", "cdp"):
        raise ValueError(f"method must be 'dcfp' or 'cdp', got {method!r}")
    if solver not in ("auto", "gmres", "bicgstab", "splu"):
        raise ValueError(f"solver must be 'auto', 'gmres', 'bicgstab' or 'splu', got {solver!r}")
    if not (isinstance(tol, numbers.Real) and tol > 0):
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter")
    n, m = r.size, z.size
    m1 = m - 1
    if x0 is not None:
        x0 = check_finite(x0, "x0")
        check_shape(x0, (n, m1), "x0")
    op = _build_operator(r, gamma, z, gap, with_block=(method == "dcfp" and solver == "splu"))
    Ps = P if sp.issparse(P) else (sp.csr_matrix(P) if np.count_nonzero(P) < 0.25 * P.size else P)
    # M applied matrix-free by numba kernels (_dcfp_fast): P's CSR rows (or one BLAS P @ F for a dense P)
    # times F, then each state's banded C^{(r(x))}; CDP and DCFP share the same application
    fast = FastOperator(Ps, op)

    if method == "cdp":
        F0 = np.zeros((n, m1)) if x0 is None else x0
        limit = max_iter if max_iter is not None else 10**7
        # certified: ‖F_{k+1} − F*‖ ≤ γ/(1−γ)‖F_{k+1} − F_k‖ in ς‖·‖∞,1 (= sup-W1)
        stop = tol * (1 - gamma) / (gamma * gap) if gamma > 0 else np.inf
        F, k, d, converged = fast.cdp(F0, stop, limit)  # the whole loop in one numba call
        if not converged:
            warnings.warn(f"CDP stopped at max_iter={limit} with step {d:.3e} (needs {stop:.3e})", ConvergenceWarning)
        bound = gamma * gap * d / (1 - gamma)
        probs = _cdf_to_probs(F, tol=max(1e-9, 10 * d))
        return CategoricalFixedPoint(z, probs, d, bound, k, "cdp", bool(converged), "iteration")

    N = n * m1
    stop = tol * (1 - gamma) / gap
    if solver == "splu":
        A = (sp.identity(N, format="csc") - (op.blockC @ sp.kron(sp.csr_matrix(Ps), sp.identity(m1), format="csr"))).tocsc()
        F = np.ascontiguousarray(spla.splu(A).solve(op.bvec).reshape(n, m1))
        _, res = fast.residual(F)
        iters = 1
    else:
        kind = "bicgstab" if solver == "auto" else solver
        if x0 is None:
            # warm start at the projected Dirac at V^π = (I − γP)^{-1} r: the fixed point has this mean,
            # and it halves the Krylov iterations on garnets at γ = 0.99 (benchmarks/bench_dcfp.py)
            if sp.issparse(Ps) and n > 300:
                # an initial guess only: a Krylov solve to 1e-12 (sparse LU of I − γP fills in on random
                # graphs: ~1 s at n = 3000), sparse LU if that does not converge
                A_v = (sp.identity(n, format="csr") - gamma * sp.csr_matrix(Ps)).tocsr()
                v, info = spla.bicgstab(A_v, r, rtol=1e-12, atol=0.0, maxiter=2000)
                if info != 0 or not np.all(np.isfinite(v)):
                    v = spla.spsolve(A_v.tocsc(), r)
            else:  # small n: LAPACK on the dense matrix beats SuperLU's set-up (0.3 vs 1.2 ms at n = 200)
                Pd = Ps.toarray() if sp.issparse(Ps) else Ps
                v = np.linalg.solve(np.eye(n) - gamma * Pd, r)
            F = np.ascontiguousarray(np.cumsum(categorical_projection(z, np.asarray(v)[:, None]), axis=1)[:, :m1])
        else:
            F = np.array(x0, dtype=np.float64, order="C", copy=True)
        iters = 0
        rounds = max_iter if max_iter is not None else 50
        rhs, res = fast.residual(F)   # b − (I − M)F and its ℓ∞,1 norm
        # the coarse correction (see _COARSE_MIN_GAMMA) is skipped when P has absorbing states: the stationary
        # laws then sit on them and the state aggregate saves no iterations (gridworld policies)
        coarse = (kind == "bicgstab" and gamma >= _COARSE_MIN_GAMMA
                  and not np.any((Ps.diagonal() if sp.issparse(Ps) else np.diag(Ps)) == 1.0))
        A = spla.LinearOperator((N, N), matvec=lambda v: v - fast.apply(v.reshape(n, m1)).ravel(),
                                dtype=np.float64)
        counter = {"k": 0}

        def cb(_):
            counter["k"] += 1

        for _ in range(rounds):
            if res <= stop:
                break
            if kind == "bicgstab":
                # numba BiCGSTAB, stopped on the recurrence residual's ℓ∞,1 norm (same stop as
                # _krylov.bicgstab_l1inf, every vector update fused with the norms and dots it feeds);
                # at γ ≥ _COARSE_MIN_GAMMA right-preconditioned by the one-aggregate coarse correction
                if coarse and not hasattr(fast, "mu"):
                    fast.setup_coarse(maxiter=1000)   # ≤ 1000 sparse P^T products (garnets: ~40)
                    # the aggregate is informative only where the stationary law lives: skip it when
                    # that law sits on a few states (absorbing terminals: gridworld policies, where it
                    # saves no iterations), i.e. effective support 1/Σμ² < _COARSE_MIN_SUPPORT·n
                    coarse = 1.0 / float(np.sum(fast.mu ** 2)) >= _COARSE_MIN_SUPPORT * n
                dx, its, _status = fast.bicgstab(rhs, 0.5 * stop, 20 * N, coarse=coarse)
                counter["k"] += its
            else:
                # relative 2-norm target chosen so the ∞,1 residual lands below `stop`:
                # max_x ‖e_x‖_1 ≤ √(m−1) max_x ‖e_x‖_2 ≤ √(m−1) ‖e‖_2 (the final check below certifies it)
                rhs_flat = rhs.ravel()
                rtol = max(min(0.5, stop / (np.sqrt(m1) * max(np.linalg.norm(rhs_flat), 1e-300))), 1e-15)
                dx, _info = spla.gmres(A, rhs_flat, rtol=rtol, atol=0.0, restart=min(N, 200), maxiter=50,
                                       callback=cb, callback_type="pr_norm")
                dx = dx.reshape(n, m1)
            F = F + dx
            rhs, res = fast.residual(F)   # the TRUE residual certifies the bound, not the recurrence
        iters = counter["k"]
        kind_used = kind
    converged = res <= stop
    if not converged:
        warnings.warn(f"DCFP solve residual {res:.3e} above the target {stop:.3e}", ConvergenceWarning)
    bound = gap * res / (1 - gamma)
    probs = _cdf_to_probs(F, tol=max(1e-9, 10 * res))
    return CategoricalFixedPoint(z, probs, res, bound, iters, "dcfp", bool(converged),
                                 "splu" if solver == "splu" else kind_used)


@dataclass
class PolicyReturnDistributions:
    r"""Categorical return laws of a policy: ``state`` probs ``(S, m)`` (η(s) = Σ_a π(a|s) η(s,a))
    and ``state_action`` probs ``(S, A, m)`` on shared ``atoms``; ``fixed_point`` holds the
    solve's residual / bound of the state–action MRP."""

    atoms: np.ndarray
    state: Categorical
    state_action: Categorical
    fixed_point: CategoricalFixedPoint


def categorical_policy_evaluation(mdp: TabularMDP, policy, atoms, *, method: str = "dcfp",
                                  tol: float = 1e-10, **kwargs) -> PolicyReturnDistributions:
    r"""Categorical fixed point of (MDP, π): solves the state–action MRP of :func:`policy_mrp` with
    :func:`categorical_fixed_point` and mixes :math:`\eta_C(s) = \sum_a\pi(a|s)\eta_C(s,a)` (Π_C is
    linear in mixtures, so this is also the fixed point of the state-level operator).
    ``atoms``: evenly spaced ``(m,)`` or an int m (default support from r)."""
    Pp, r = policy_mrp(mdp, policy)
    if mdp.gamma >= 1.0:
        raise ValueError(f"gamma must lie in [0, 1) for categorical evaluation, got {mdp.gamma!r}")
    fp = categorical_fixed_point(Pp, r, mdp.gamma, atoms, method=method, tol=tol, **kwargs)
    S, A = mdp.n_states, mdp.n_actions
    sa = fp.probs.reshape(S, A, -1)
    pi = np.asarray(policy, dtype=np.float64)
    st = np.einsum("sa,sam->sm", pi, sa)
    return PolicyReturnDistributions(fp.atoms, Categorical(fp.atoms, st), Categorical(fp.atoms, sa), fp)
