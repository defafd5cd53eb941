r"""Every reported bound is asserted: true error ≤ reported bound ≤ requested tolerance, on loosely
converged solves, against an exact reference (docs/math.md §1–3, §7).

* VI (Puterman 1994, Thm 6.3.1): stop at ‖V_{k+1} − V_k‖∞ < tol(1−γ)/(2γ) ⇒ ‖V − V*‖∞ ≤ γ·res/(1−γ) < tol/2,
  and the greedy (soft-greedy) policy is tol-optimal.
* PI (regularised): ‖V − V*‖∞ ≤ ‖TV − V‖∞/(1−γ) = bound ≤ tol (hard PI: exact).
* solve_batch VI: the same certificate from its reported residual.
* DCFP / CDP: sup_x W1(η̂(x), η_C(x)) ≤ bound ≤ tol against the exact categorical fixed point.

The exact reference is the regularised linear-solve fixed point (PI at tol 1e-13), itself checked
against the hard linear solve. Matrix: γ × regulariser × terminal/none × dense/sparse.
"""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

import mdpsandbox as ms
from mdpsandbox.solvers.distributional import categorical_fixed_point, sup_wasserstein1

GAMMAS = [0.5, 0.9, 0.99]
REGS = {"hard": {}, "entropy": {"temperature": 0.3}, "kl": {"beta": 0.5}, "kl_large": {"beta": 1e6},
        "entropy_small": {"temperature": 1e-3}}


def _mdp(gamma, terminal, sparse, seed):
    m = ms.garnet(12, 3, 4, gamma=gamma, seed=seed, sparse=sparse)
    if terminal:
        m = m.replace(terminal=[11])
    ref = np.random.default_rng(seed).dirichlet(np.ones(3), size=12)
    return m, ref


def _kw(reg, ref):
    kw = dict(REGS[reg])
    if "beta" in kw:
        kw["ref_policy"] = ref
    return kw


def _exact(m, kw):
    return ms.solve(m, method="pi", tol=1e-13, **kw)


@settings(deadline=None, max_examples=25)
@given(gamma=st.sampled_from(GAMMAS), reg=st.sampled_from(sorted(REGS)), terminal=st.booleans(),
       sparse=st.booleans(), tol=st.sampled_from([1e-1, 1e-2, 1e-4]), seed=st.integers(0, 50))
def test_vi_certificate_true_error_le_bound_le_half_tol(gamma, reg, terminal, sparse, tol, seed):
    m, ref = _mdp(gamma, terminal, sparse, seed)
    kw = _kw(reg, ref)
    exact = _exact(m, kw)
    sol = ms.solve(m, method="vi", tol=tol, **kw)
    err = np.max(np.abs(sol.v - exact.v))
    assert sol.converged
    assert err <= sol.bound * (1 + 1e-9) + 1e-12, (err, sol.bound)
    assert sol.bound < tol / 2 * (1 + 1e-12)
    # ε-optimality of the returned (soft-)greedy policy: its regularised value is within tol of V*
    ev = ms.evaluate(m, sol.policy, **kw)
    assert np.min(ev.v - exact.v) >= -tol


@settings(deadline=None, max_examples=25)
@given(gamma=st.sampled_from(GAMMAS), reg=st.sampled_from(sorted(REGS)), terminal=st.booleans(),
       sparse=st.booleans(), tol=st.sampled_from([1e-1, 1e-3, 1e-6]), seed=st.integers(0, 50))
def test_pi_certificate_true_error_le_bound_le_tol(gamma, reg, terminal, sparse, tol, seed):
    m, ref = _mdp(gamma, terminal, sparse, seed)
    kw = _kw(reg, ref)
    exact = _exact(m, kw)
    sol = ms.solve(m, method="pi", tol=tol, **kw)
    err = np.max(np.abs(sol.v - exact.v))
    assert sol.converged
    assert err <= sol.bound * (1 + 1e-9) + 1e-12, (err, sol.bound)
    assert sol.bound <= tol * (1 + 1e-12)
    if reg == "hard":  # hard PI stops on a stable policy: exact, and its residual is round-off
        assert err <= 1e-9 and sol.bound <= 1e-9


def test_exact_reference_equals_linear_solve_of_its_policy():
    """The reference itself: hard PI's V = (I − γP_π)^{-1} r_π by a dense solve written here."""
    m, _ = _mdp(0.99, True, False, 0)
    sol = _exact(m, {})
    act = np.argmax(sol.policy, 1)
    S = m.n_states
    P = m.dense_P()[np.arange(S), act] * (~m.terminal)[:, None]
    r = m.R[np.arange(S), act] * (~m.terminal)
    np.testing.assert_allclose(sol.v, np.linalg.solve(np.eye(S) - 0.99 * P, r), atol=1e-10)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("reg", ["hard", "entropy", "kl"])
@pytest.mark.parametrize("tol", [1e-1, 1e-3])
def test_solve_batch_vi_residual_certifies_its_values(gamma, reg, tol):
    mdps = [ms.garnet(8, 3, 3, gamma=gamma, seed=s) for s in range(4)]
    P, R = np.stack([m.dense_P() for m in mdps]), np.stack([m.R for m in mdps])
    ref = np.random.default_rng(1).dirichlet(np.ones(3), size=(4, 8))
    kw = dict(REGS[reg])
    if "beta" in kw:
        kw["ref_policy"] = ref
    b = ms.solve_batch(P, R, gamma, method="vi", tol=tol, **kw)
    assert b.converged.all()
    for i, m in enumerate(mdps):
        ki = dict(kw)
        if "ref_policy" in ki:
            ki["ref_policy"] = ref[i]
        exact = _exact(m, ki)
        err = np.max(np.abs(b.v[i] - exact.v))
        bound = gamma * b.residual[i] / (1 - gamma)
        assert err <= bound * (1 + 1e-9) + 1e-12 and bound < tol / 2


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("method, tol", [("cdp", 1e-2), ("cdp", 1e-4), ("dcfp", 1e-3), ("dcfp", 1e-6)])
def test_categorical_fixed_point_bound_holds_against_exact_fixed_point(gamma, method, tol):
    m = ms.garnet(10, 1, 3, gamma=max(gamma, 0.01), seed=4)
    P, r = m.dense_P()[:, 0], m.R[:, 0]
    exact = categorical_fixed_point(P, r, gamma, 31, method="dcfp", solver="splu", tol=1e-11)
    sol = categorical_fixed_point(P, r, gamma, 31, method=method, tol=tol)
    err = sup_wasserstein1(sol.probs, exact.probs)
    assert sol.converged
    assert err <= sol.bound * (1 + 1e-9) + 1e-13, (err, sol.bound)
    assert sol.bound <= tol * (1 + 1e-12)
    # the exact fixed point's mean is V^π (docs/math.md §7): mean-preserving projection, γ-dependent
    v = np.linalg.solve(np.eye(10) - gamma * P, r)
    np.testing.assert_allclose(exact.probs @ exact.atoms, v, atol=1e-9)


@pytest.mark.parametrize("reg", [{}, {"temperature": 0.5}])
def test_vi_at_gamma_one_on_a_proper_mdp_reports_no_certificate_and_matches_backward_induction(reg):
    """γ = 1 (every policy terminates within 2 steps): VI runs with the plain stop ‖ΔV‖ < tol and
    reports bound = inf (no contraction certificate); its values equal backward induction with H = S."""
    S = 3
    P = np.zeros((S, 2, S))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1:, :, 2] = 1.0
    m = ms.TabularMDP(P, np.array([[1.0, 0.5], [2.0, 0.0], [0.0, 0.0]]), 1.0, terminal=[2])
    sol = ms.solve(m, method="vi", tol=1e-10, **reg)
    assert sol.converged and sol.bound == np.inf
    exact = ms.solve(m, horizon=S, **reg).v[0]
    np.testing.assert_allclose(sol.v, exact, atol=1e-10)
    np.testing.assert_allclose(ms.solve(m, method="pi", **reg).v, exact, atol=1e-10)
