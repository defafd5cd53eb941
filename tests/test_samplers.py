r"""Samplers compared with their law (binomial / CLT error), and γ-dependent sample identities.

* ``empirical_model``: every entry of P̂ (N draws per row) is Binomial(N, P)/N: each count's exact
  two-sided binomial tail is ≥ 1e-8 (deterministic seeds), the normalised
  squared error averages ≈ 1 (a sampler with the wrong variance fails), supp P̂ ⊆ supp P, rows sum
  to 1 — dense MRP, dense MDP, sparse (S·A, S) and TabularMDP inputs.
* ``TokenMDP.sample``: leaf frequencies vs the exact leaf law of the policy; every sampled return
  equals the exact return of its leaf at γ ∈ {0, 0.5, 0.9, 0.99, 1} (dense rewards, EOS or not).
* ``monte_carlo_returns``: the sample mean is V^π within 6 CLT standard errors (γ ∈ {0, 0.5, 0.9}).
"""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import binom

import mdpsandbox as ms
from mdpsandbox.solvers.distributional import empirical_model, monte_carlo_returns

Z = 6.0


def _check_binomial(Phat, P, N):
    Phat, P = np.asarray(Phat, dtype=float), np.asarray(P, dtype=float)
    assert Phat.shape == P.shape
    assert np.all(Phat[P == 0] == 0), "supp P̂ ⊄ supp P"
    np.testing.assert_allclose(Phat.reshape(-1, P.shape[-1]).sum(1), 1.0, atol=1e-12)
    assert np.all(np.isclose(Phat * N, np.round(Phat * N), atol=1e-9)), "P̂ must be counts / N"
    # exact binomial tails of each count (valid for every N, also N = 1): two-sided p-value ≥ 1e-8
    k = np.round(Phat * N)
    tail = np.minimum(binom.cdf(k, N, P), binom.sf(k - 1, N, P))
    assert np.all(tail >= 1e-8), float(np.min(tail))
    sd = np.sqrt(P * (1 - P) / N)
    inner = (P > 0) & (P < 1)
    chi = np.mean((Phat[inner] - P[inner]) ** 2 / sd[inner] ** 2)  # E = 1 − 1/N·(…) ≈ 1
    k = inner.sum()
    assert abs(chi - 1.0) <= Z * np.sqrt(2.0 / k) + 0.05, chi


@pytest.mark.parametrize("N", [1, 20, 500])
def test_empirical_model_dense_mrp_is_binomial_around_P(N):
    P = np.random.default_rng(0).dirichlet(np.ones(30) * 0.5, size=30)
    P[P < 0.01] = 0.0
    P /= P.sum(1, keepdims=True)
    _check_binomial(empirical_model(P, N, seed=1), P, N)


@pytest.mark.parametrize("N", [5, 200])
def test_empirical_model_dense_mdp_is_binomial_around_P(N):
    mdp = ms.garnet(20, 3, 5, gamma=0.9, seed=2)
    _check_binomial(empirical_model(mdp.dense_P(), N, seed=3), mdp.dense_P(), N)


@pytest.mark.parametrize("N", [5, 200])
def test_empirical_model_sparse_and_tabular_are_binomial_around_P(N):
    mdp = ms.garnet(40, 2, 4, gamma=0.9, seed=4, sparse=True)
    Ph = empirical_model(mdp.P2, N, seed=5)
    assert sp.issparse(Ph)
    _check_binomial(Ph.toarray(), mdp.P2.toarray(), N)
    m2 = empirical_model(mdp, N, seed=6)
    assert isinstance(m2, ms.TabularMDP) and m2.gamma == mdp.gamma and np.array_equal(m2.R, mdp.R)
    _check_binomial(m2.dense_P(), mdp.dense_P(), N)


def test_empirical_model_is_seeded():
    P = ms.garnet(6, 2, 3, seed=0).dense_P()
    assert np.array_equal(empirical_model(P, 7, seed=9), empirical_model(P, 7, seed=9))
    assert not np.array_equal(empirical_model(P, 7, seed=9), empirical_model(P, 7, seed=10))


def _leaf_index(tree, traj):
    lv = tree.leaves()
    key = {(int(n), int(a)): i for i, (n, a) in enumerate(zip(lv.node, lv.action))}
    last = traj.lengths - 1
    rows = np.arange(len(traj))
    return np.array([key[(int(n), int(a))] for n, a in zip(traj.nodes[rows, last], traj.tokens[rows, last])])


@pytest.mark.parametrize("eos", [None, 2])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_tree_sample_follows_leaf_law_and_returns_are_exact_leaf_returns(gamma, eos):
    tree = ms.TokenMDP.random(3, 3, seed=7, reward="dense", gamma=gamma, eos=eos)
    pol = ms.solve(tree, beta=0.7).policy  # a policy other than π_ref
    n = 20000
    traj = tree.sample(pol, n=n, seed=8)
    idx = _leaf_index(tree, traj)
    p = np.exp(tree.leaf_log_probs(pol))
    freq = np.bincount(idx, minlength=p.size) / n
    sd = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= Z * sd + 1e-12)
    # γ-dependent identity, per sample: the sampled discounted return is its leaf's exact return
    np.testing.assert_allclose(traj.returns, tree.leaf_returns()[idx], rtol=0, atol=1e-13)
    # and the exact leaf law integrates to V^π(root) (evaluate, which discounts by level)
    v_root = ms.evaluate(tree, pol).v[0]
    np.testing.assert_allclose(p @ tree.leaf_returns(), v_root, atol=1e-12)
    assert abs(traj.returns.mean() - v_root) <= Z * traj.returns.std() / np.sqrt(n) + 1e-12


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_monte_carlo_mean_is_value_within_clt_error(gamma):
    mdp = ms.garnet(6, 1, 3, gamma=max(gamma, 0.01), seed=9)
    P, r = mdp.dense_P()[:, 0], mdp.R[:, 0]
    n = 4000
    G = monte_carlo_returns(P, r, gamma, n, seed=10)
    v = np.linalg.solve(np.eye(6) - gamma * P, r)
    se = G.std(axis=1) / np.sqrt(n)
    assert np.all(np.abs(G.mean(axis=1) - v) <= Z * se + 1e-10)
    if gamma == 0.0:
        np.testing.assert_array_equal(G, np.repeat(r[:, None], n, axis=1))
