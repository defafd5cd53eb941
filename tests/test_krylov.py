"""Krylov policy evaluation (solvers/krylov.py): the reported bound ρ/(1−γ) is a true error bound."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import mdpsandbox as ms
from mdpsandbox.solvers.krylov import policy_system, solve_policy_system


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("terminal", [False, True])
def test_krylov_error_is_below_its_certified_bound(gamma, terminal):
    S = 800
    mdp = ms.garnet(S, 3, 4, gamma=gamma, seed=int(gamma * 1000) + terminal, sparse=True)
    term = np.zeros(S, dtype=bool)
    if terminal:
        term[::7] = True
    pol = np.random.default_rng(0).dirichlet(np.ones(3), size=S)
    M = policy_system(mdp.policy_matrix(pol), gamma, term)
    r = np.sum(pol * mdp.R, axis=1)
    r[term] = 0.0
    exact = spla.spsolve(M.tocsc(), r)
    v, info = solve_policy_system(M, r, gamma, method="krylov")
    err = np.abs(v - exact).max()
    assert info["method"] == "bicgstab"
    assert info["residual"] == pytest.approx(np.abs(r - M @ v).max(), rel=1e-6, abs=1e-300)
    # true error <= certified bound (+ the direct solve's own round-off) <= requested accuracy
    assert err <= info["bound"] + 1e-13 * (1 + np.abs(exact).max())
    assert info["bound"] <= 1e-11 * (1 + np.abs(r).max() / (1 - gamma))


def test_warm_start_needs_fewer_iterations_and_direct_agrees():
    mdp = ms.garnet(1500, 4, 5, gamma=0.99, seed=1, sparse=True)
    pol = np.eye(4)[np.argmax(mdp.R, axis=1)]
    M = policy_system(mdp.policy_matrix(pol), 0.99, mdp.terminal)
    r = np.sum(pol * mdp.R, axis=1)
    v, cold = solve_policy_system(M, r, 0.99, method="krylov")
    _, warm = solve_policy_system(M, r, 0.99, method="krylov", x0=v + 1e-6)
    assert warm["iterations"] < cold["iterations"]
    vd, info = solve_policy_system(M, r, 0.99, method="direct")
    assert info["method"] == "direct"
    np.testing.assert_allclose(v, vd, atol=1e-9)


def test_solve_uses_the_certified_krylov_evaluation_on_large_sparse_mdps():
    mdp = ms.garnet(3000, 4, 5, gamma=0.99, seed=0)
    sol = ms.solve(mdp, method="pi")
    # optimality of the returned V against an independent direct evaluation of its policy
    act = np.argmax(sol.policy, axis=1)
    pol = np.eye(4)[act]
    M = policy_system(mdp.policy_matrix(pol), 0.99, mdp.terminal)
    exact = spla.spsolve(M.tocsc(), np.sum(pol * mdp.R, axis=1))
    np.testing.assert_allclose(sol.v, exact, atol=1e-9)
    q = mdp.R + 0.99 * np.asarray(mdp.P2 @ exact).reshape(3000, 4)
    assert np.all(q.max(axis=1) <= exact + 1e-9)          # no improving action: V* = V^π


def test_bad_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        solve_policy_system(sp.identity(3, format="csr"), np.ones(3), 0.5, method="cg")


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_dense_krylov_error_is_below_its_certified_bound(gamma):
    S = 500
    mdp = ms.garnet(S, 3, 40, gamma=gamma, seed=7, sparse=False)
    pol = np.random.default_rng(1).dirichlet(np.ones(3), size=S)
    P = mdp.policy_matrix(pol)
    M = np.eye(S) - gamma * P
    r = np.sum(pol * mdp.R, axis=1)
    exact = np.linalg.solve(M, r)
    v, info = solve_policy_system(M, r, gamma)
    assert info["method"] == "bicgstab"
    assert np.abs(v - exact).max() <= info["bound"] + 1e-13 * (1 + np.abs(exact).max())
    assert info["bound"] <= 1e-11 * (1 + np.abs(r).max() / (1 - gamma))
