"""Checks of docs/math.md §7: categorical projection, CDP / DCFP, QDP, generative model, stochastic CDFs."""
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mdpsandbox import garnet
from mdpsandbox.solvers.distributional import (
    Categorical, categorical_cdf_operator, categorical_fixed_point, categorical_policy_evaluation,
    categorical_projection, default_atoms, empirical_model, monte_carlo_returns, quantile_dp,
    stochastic_cdf_samples, sup_wasserstein1, wasserstein1, cramer, ks,
)

P2 = np.array([[0.5, 0.5], [0.25, 0.75]])
R2 = np.array([1.0, 0.0])
Z5 = np.linspace(0.0, 2.0, 5)


def _exact_solve(A, b):
    """Gauss–Jordan elimination in exact fractions (independent of the package)."""
    n = len(A)
    M = [list(A[i]) + [b[i]] for i in range(n)]
    for c in range(n):
        p = next(i for i in range(c, n) if M[i][c] != 0)
        M[c], M[p] = M[p], M[c]
        piv = M[c][c]
        M[c] = [x / piv for x in M[c]]
        for i in range(n):
            if i != c and M[i][c] != 0:
                f = M[i][c]
                M[i] = [x - f * y for x, y in zip(M[i], M[c])]
    return [M[i][n] for i in range(n)]


def test_worked_example_exact_fractions():
    g = Fraction(1, 2)
    P = [[Fraction(1, 2), Fraction(1, 2)], [Fraction(1, 4), Fraction(3, 4)]]
    r = [Fraction(1), Fraction(0)]
    z = [Fraction(i, 2) for i in range(5)]
    vs = Fraction(1, 2)

    def gfun(i, y):  # g_i(y) = clip((z_{i+1} - y)/ς, 0, 1), i = 0..m-2
        return min(max((z[i + 1] - y) / vs, Fraction(0)), Fraction(1))

    m1 = 4
    A = [[Fraction(0)] * 8 for _ in range(8)]
    b = [Fraction(0)] * 8
    for x in range(2):
        for i in range(m1):
            b[x * m1 + i] = gfun(i, r[x] + g * z[4])
            A[x * m1 + i][x * m1 + i] += 1
            for j in range(m1):
                c = gfun(i, r[x] + g * z[j]) - gfun(i, r[x] + g * z[j + 1])
                for x2 in range(2):
                    A[x * m1 + i][x2 * m1 + j] -= c * P[x][x2]
    F = _exact_solve(A, b)
    assert F[:4] == [0, 0, Fraction(5, 14), Fraction(11, 14)]
    assert F[4:] == [Fraction(15, 28), Fraction(25, 28), 1, 1]
    for method in ("dcfp", "cdp"):
        fp = categorical_fixed_point(P2, R2, 0.5, Z5, method=method, tol=1e-13)
        np.testing.assert_allclose(fp.cdf[:, :4], np.array(F, dtype=float).reshape(2, 4), atol=1e-12)
        np.testing.assert_allclose(fp.mean, [10 / 7, 2 / 7], atol=1e-12)


def test_cdf_operator_columns_sum_to_gamma_and_nonnegative():
    C, b = categorical_cdf_operator(np.array([0.0, 0.3, 1.0]), 0.9, default_atoms([0.0, 1.0], 0.9, 31))
    assert np.all(C >= -1e-15)
    np.testing.assert_allclose(C.sum(axis=1), 0.9, atol=1e-12)
    assert np.all((b >= 0) & (b <= 1))


@pytest.mark.parametrize("sparse", [False, True])
def test_dcfp_equals_cdp_limit(sparse):
    mdp = garnet(30, 1, 4, gamma=0.95, seed=3)
    P, r = mdp.P2[:, :], mdp.R[:, 0]
    P = sp.csr_matrix(P) if sparse else np.asarray(P)
    z = default_atoms(r, 0.95, 41)
    a = categorical_fixed_point(P, r, 0.95, z, method="dcfp", tol=1e-12)
    b = categorical_fixed_point(P, r, 0.95, z, method="cdp", tol=1e-12)
    assert a.converged and b.converged
    assert np.max(np.abs(a.cdf - b.cdf)) < 1e-10
    assert sup_wasserstein1(a, b) < 1e-10
    c = categorical_fixed_point(P, r, 0.95, z, method="dcfp", solver="splu")
    assert np.max(np.abs(a.cdf - c.cdf)) < 1e-10


def test_fixed_point_is_valid_cdf_and_mean_is_value():
    mdp = garnet(25, 1, 5, gamma=0.9, seed=1)
    P, r = np.asarray(mdp.P2), mdp.R[:, 0]
    fp = categorical_fixed_point(P, r, 0.9, 51)
    F = fp.cdf
    assert np.all(F >= -1e-12) and np.all(F <= 1 + 1e-12) and np.all(np.diff(F, axis=1) >= -1e-12)
    v = np.linalg.solve(np.eye(25) - 0.9 * P, r)
    np.testing.assert_allclose(fp.mean, v, atol=1e-9)


def test_empirical_model_mean_is_value_of_phat():
    mdp = garnet(20, 1, 4, gamma=0.9, seed=2)
    P, r = np.asarray(mdp.P2), mdp.R[:, 0]
    Ph = empirical_model(P, 7, seed=5)
    assert np.allclose(Ph.sum(axis=1), 1) and np.allclose(Ph * 7, np.round(Ph * 7))
    fp = categorical_fixed_point(Ph, r, 0.9, default_atoms(r, 0.9, 41))
    np.testing.assert_allclose(fp.mean, np.linalg.solve(np.eye(20) - 0.9 * Ph, r), atol=1e-9)
    Ps = empirical_model(sp.csr_matrix(P), 7, seed=5)
    assert sp.issparse(Ps) and np.allclose(np.asarray(Ps.sum(axis=1)).ravel(), 1)
    P3 = empirical_model(mdp.dense_P(), 3, seed=0)
    assert P3.shape == mdp.dense_P().shape
    assert np.array_equal(empirical_model(P, 7, seed=5), Ph)  # same seed, same numbers


def test_categorical_error_bound_against_monte_carlo():
    gamma = 0.8
    mdp = garnet(6, 1, 3, gamma=gamma, seed=4)
    P, r = np.asarray(mdp.P2), mdp.R[:, 0]
    z = default_atoms(r, gamma, 11)
    gap = z[1] - z[0]
    fp = categorical_fixed_point(P, r, gamma, z)
    n = 40000
    mc = monte_carlo_returns(P, r, gamma, n, seed=0)
    # MC error allowance: W1(empirical, truth) ~ range / sqrt(n) (DKW-style), generous factor
    allowance = 3 * (z[-1] - z[0]) / np.sqrt(n)
    assert sup_wasserstein1(fp, mc) <= gap / (2 * (1 - gamma)) + allowance
    np.testing.assert_allclose(mc.mean(axis=1), fp.mean, atol=4 * mc.std(axis=1).max() / np.sqrt(n) + 1e-9)


def test_monte_carlo_is_seeded():
    a = monte_carlo_returns(P2, R2, 0.5, 100, seed=3)
    b = monte_carlo_returns(P2, R2, 0.5, 100, seed=3)
    assert np.array_equal(a, b)


def test_stochastic_cdf_samples_mean_is_fixed_point_and_each_mean_is_its_return():
    gamma = 0.7
    mdp = garnet(5, 1, 3, gamma=gamma, seed=7)
    P, r = np.asarray(mdp.P2), mdp.R[:, 0]
    z = default_atoms(r, gamma, 21)
    fp = categorical_fixed_point(P, r, gamma, z)
    s = stochastic_cdf_samples(P, r, gamma, z, 2, 4000, seed=1)
    F = s.cdf
    assert np.all(F >= -1e-12) and np.all(F <= 1 + 1e-12) and np.all(np.diff(F, axis=1) >= -1e-12)
    np.testing.assert_allclose(s.mean, s.returns, atol=1e-10)
    se = F.std(axis=0) / np.sqrt(F.shape[0])
    assert np.all(np.abs(F.mean(axis=0) - fp.cdf[2]) <= 5 * se + 1e-12)


def test_quantile_dp_fixed_point_and_mean():
    P, r = P2, R2
    q = quantile_dp(P, r, 0.5, 64, tol=1e-12)
    assert q.converged and np.all(np.diff(q.locations, axis=1) >= 0)
    # fixed point: one more QDP sweep moves nothing
    q2 = quantile_dp(P, r, 0.5, 64, tol=1e-12, x0=q.locations, max_iter=1)
    assert np.max(np.abs(q2.locations - q.locations)) < 1e-11
    mc = monte_carlo_returns(P, r, 0.5, 20000, seed=2)
    assert sup_wasserstein1(q, mc) < 0.05


def test_policy_evaluation_state_action_mean_is_q():
    from mdpsandbox import evaluate
    mdp = garnet(10, 3, 3, gamma=0.9, seed=0)
    pi = np.random.default_rng(0).dirichlet(np.ones(3), size=10)
    out = categorical_policy_evaluation(mdp, pi, 41)
    ev = evaluate(mdp, pi)
    np.testing.assert_allclose(out.state_action.mean, ev.q, atol=1e-8)
    np.testing.assert_allclose(out.state.mean, ev.v, atol=1e-8)


# ---------------------------------------------------------------- projection properties
atoms_st = st.tuples(st.floats(-5, 5), st.floats(0.1, 3), st.integers(2, 12)).map(
    lambda t: t[0] + t[1] * np.arange(t[2]))


@settings(max_examples=60, deadline=None)
@given(atoms_st, st.lists(st.floats(-10, 10), min_size=1, max_size=8), st.data())
def test_projection_conserves_mass_and_mean_inside(z, ys, data):
    ys = np.array(ys)
    w = np.array(data.draw(st.lists(st.floats(0.01, 1), min_size=len(ys), max_size=len(ys))))
    w = w / w.sum()
    p = categorical_projection(z, ys, w)
    assert abs(p.sum() - 1) < 1e-12 and np.all(p >= 0)
    yc = np.clip(ys, z[0], z[-1])  # outside the range all mass goes to the end atom
    np.testing.assert_allclose(p @ z, w @ yc, atol=1e-9)
    # W1(Πν, ν) ≤ ς/2 for ν inside the range
    gap = z[1] - z[0]
    assert wasserstein1((z, p), (yc, w)) <= gap / 2 + 1e-9


@settings(max_examples=40, deadline=None)
@given(atoms_st, st.data())
def test_projection_on_an_atom_keeps_all_mass_there(z, data):
    i = data.draw(st.integers(0, len(z) - 1))
    p = categorical_projection(z, [z[i]])
    assert p[i] == 1.0 and p.sum() == 1.0


@settings(max_examples=40, deadline=None)
@given(atoms_st, st.lists(st.floats(-10, 10), min_size=1, max_size=6),
       st.lists(st.floats(-10, 10), min_size=1, max_size=6))
def test_projection_is_nonexpansive_in_w1(z, a, b):
    pa, pb = categorical_projection(z, a), categorical_projection(z, b)
    assert wasserstein1((z, pa), (z, pb)) <= wasserstein1(np.array(a), np.array(b)) + 1e-9


def test_projection_is_batched():
    ys = np.array([[0.0, 0.5], [0.6, 2.0]])
    p = categorical_projection(Z5, ys, np.array([0.3, 0.7]))
    np.testing.assert_allclose(p, [[0.3, 0.7, 0, 0, 0], [0, 0.24, 0.06, 0, 0.7]], atol=1e-15)


def test_distances_on_shared_grid():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), size=3), rng.dirichlet(np.ones(5), size=3)
    F, G = np.cumsum(p, 1), np.cumsum(q, 1)
    gap = 0.5
    np.testing.assert_allclose(wasserstein1(Categorical(Z5, p), Categorical(Z5, q)),
                               gap * np.abs(F - G)[:, :-1].sum(1), atol=1e-14)
    np.testing.assert_allclose(cramer(Categorical(Z5, p), Categorical(Z5, q)),
                               np.sqrt(gap * ((F - G) ** 2)[:, :-1].sum(1)), atol=1e-14)
    np.testing.assert_allclose(ks(Categorical(Z5, p), Categorical(Z5, q)), np.abs(F - G).max(1), atol=1e-14)


# ---------------------------------------------------------------- bad input
def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="atoms"):
        categorical_fixed_point(P2, R2, 0.5, np.array([0.0, 1.0, 0.5, 2.0]))
    with pytest.raises(ValueError, match="evenly spaced"):
        categorical_fixed_point(P2, R2, 0.5, np.array([0.0, 0.5, 1.5, 2.0]))
    with pytest.raises(ValueError, match="cannot hold the returns"):
        categorical_fixed_point(P2, R2, 0.5, np.linspace(0, 1.5, 5))
    with pytest.raises(ValueError, match="P must be stochastic"):
        categorical_fixed_point(np.array([[0.5, 0.4], [0.25, 0.75]]), R2, 0.5, Z5)
    with pytest.raises(ValueError, match="gamma"):
        categorical_fixed_point(P2, R2, 1.0, Z5)
    with pytest.raises(ValueError, match="gamma"):
        categorical_fixed_point(P2, R2, -0.1, Z5)
    with pytest.raises(ValueError, match="n_samples"):
        empirical_model(P2, 0, seed=0)
    with pytest.raises(ValueError, match="P must be non-negative"):
        categorical_fixed_point(np.array([[1.5, -0.5], [0.25, 0.75]]), R2, 0.5, Z5)


# names importable from the single-module `mdpsandbox.solvers.distributional` before it became a package
_PUBLIC_BEFORE_SPLIT = (
    "Categorical", "Quantile", "DiscreteLaw", "CategoricalFixedPoint", "QuantileFixedPoint",
    "PolicyReturnDistributions", "CDFSamples", "as_values_probs", "wasserstein1", "cramer", "ks",
    "sup_wasserstein1", "sup_cramer", "sup_ks", "check_atoms", "default_atoms", "categorical_projection",
    "categorical_cdf_operator", "categorical_bellman_cdf", "categorical_fixed_point",
    "categorical_policy_evaluation", "policy_mrp", "quantile_dp", "quantile_levels", "empirical_model",
    "monte_carlo_returns", "stochastic_cdf_samples",
)


def test_distributional_package_reexports_every_public_name():
    import importlib

    import mdpsandbox.solvers as solvers
    from mdpsandbox.solvers import distributional as d

    assert sorted(d.__all__) == sorted(_PUBLIC_BEFORE_SPLIT)
    for name in _PUBLIC_BEFORE_SPLIT:
        obj = getattr(d, name)
        # defined in one concept module of the package, and the same object from every import path
        assert obj.__module__.startswith("mdpsandbox.solvers.distributional."), (name, obj.__module__)
        assert getattr(importlib.import_module(obj.__module__), name) is obj
        if name in solvers.__all__:
            assert getattr(solvers, name) is obj
    # private helpers the learners validate with keep their old import path
    for name in ("_check_mrp", "_check_support", "_build_operator", "_simulate"):
        assert callable(getattr(d, name))


def test_dcfp_l1inf_bicgstab_meets_its_certified_bound_against_cdp_limit():
    # the ℓ∞,1-stopped BiCGSTAB: true error to the CDP limit ≤ reported bound ≤ tol, for γ < 1 and
    # both solvers, on a garnet MRP
    import scipy.sparse as sp

    from mdpsandbox import garnet
    from mdpsandbox.solvers.distributional import categorical_fixed_point, default_atoms, sup_wasserstein1

    for gamma in (0.5, 0.9, 0.99):
        mdp = garnet(30, 1, 4, gamma=gamma, seed=3)
        P, r = sp.csr_matrix(mdp.P2), mdp.R[:, 0]
        z = default_atoms(r, gamma, 41)
        ref = categorical_fixed_point(P, r, gamma, z, method="dcfp", solver="splu")
        for solver in ("bicgstab", "gmres"):
            fp = categorical_fixed_point(P, r, gamma, z, method="dcfp", solver=solver, tol=1e-8)
            assert fp.converged and fp.bound <= 1e-8
            assert sup_wasserstein1(fp, ref) <= fp.bound + 1e-12
