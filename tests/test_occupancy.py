"""Exact occupancy measures (docs/math.md §10): duality with policy evaluation, mass, Monte Carlo,
finite horizon, token trees, successor features, bad input."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import mdpsandbox as ms
from mdpsandbox.irl import sample_trajectories
from mdpsandbox.solvers.occupancy import (feature_expectations, finite_horizon_occupancy, state_action_occupancy,
                                          state_occupancy, successor_features, tree_occupancy)
from mdpsandbox.testing import policies, tabular_mdps

GAMMAS = [0.0, 0.5, 0.9, 0.99]


def _random_policy(S, A, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(A), size=S)


@settings(deadline=None, max_examples=25)
@given(st.data(), st.sampled_from(GAMMAS), st.booleans(), st.booleans())
def test_occupancy_dot_reward_equals_mu0_value(data, gamma, terminal, sparse):
    """Σ_{s,a} ρ^π(s,a) r(s,a) = μ0ᵀV^π (evaluate, an independent linear solve) at every γ, with terminals."""
    mdp = data.draw(tabular_mdps(max_states=7, max_actions=3, gamma=gamma, terminal=terminal, sparse=sparse))
    pol = data.draw(policies(mdp))
    rho = state_action_occupancy(mdp, pol)
    ev = ms.evaluate(mdp, pol)
    scale = 1 + np.abs(mdp.R).max() / (1 - gamma)
    assert abs(np.sum(rho * mdp.R) - ev.value_initial) <= 1e-10 * scale
    assert np.all(rho >= 0) and np.all(rho[mdp.terminal] == 0)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_occupancy_mass_is_sum_of_discounts(gamma):
    """Without terminals Σρ = Σ_t γ^t = 1/(1−γ); normalised d = (1−γ)ρ sums to 1."""
    mdp = ms.garnet(30, 4, 5, gamma=gamma, seed=3)
    pol = _random_policy(30, 4, 0)
    rho = state_occupancy(mdp, pol)
    assert rho.sum() == pytest.approx(1 / (1 - gamma), rel=1e-12)
    d = state_occupancy(mdp, pol, normalized=True)
    assert d.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(d, (1 - gamma) * rho, rtol=1e-10, atol=1e-15)


def test_occupancy_at_gamma_zero_is_initial_law():
    mdp = ms.garnet(10, 3, 4, gamma=0.0, seed=1, sparse=True)
    np.testing.assert_allclose(state_occupancy(mdp, _random_policy(10, 3, 1)), mdp.initial, atol=1e-15)


def test_gamma_one_terminal_arrival_mass_is_one():
    """γ = 1 with a proper policy: every episode is absorbed, so the arrival mass at terminals sums to 1
    and Σ_s ρ(s) = E[episode length]."""
    mdp = ms.gridworld(4, 4, slip=0.2, gamma=1.0)
    pol = np.full((16, 4), 0.25)
    rho_T = state_occupancy(mdp, pol, include_terminal=True)
    assert rho_T[mdp.terminal].sum() == pytest.approx(1.0, abs=1e-12)
    rho = state_occupancy(mdp, pol)
    ones = ms.TabularMDP(mdp.P, np.ones((16, 4)), 1.0, terminal=mdp.terminal, initial=mdp.initial)
    assert rho.sum() == pytest.approx(ms.evaluate(ones, pol).value_initial, rel=1e-12)


def test_gamma_one_improper_policy_raises_but_proper_policy_works():
    """γ = 1: the check is per policy — a policy that terminates works even if another policy would not."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 0] = 1.0  # action 0 stays forever
    P[0, 1, 1] = 1.0
    P[1, :, 2] = 1.0
    P[2, :, 2] = 1.0
    mdp = ms.TabularMDP(P, np.zeros((3, 2)), 1.0, terminal=[2], initial=[1, 0, 0])
    go = np.array([[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(state_occupancy(mdp, go), [1.0, 1.0, 0.0], atol=1e-14)
    stay = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="proper policy.*states \\[0\\]"):
        state_occupancy(mdp, stay)


@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_occupancy_matches_monte_carlo(gamma):
    """ρ^π(s) vs (1/n) Σ_i Σ_t γ^t 1[s_t = s] from sampled trajectories, within 5 standard errors
    (plus the γ^T truncation)."""
    mdp = ms.garnet(6, 3, 3, gamma=gamma, seed=7)
    pol = _random_policy(6, 3, 2)
    T, n = 120, 4000
    demos = sample_trajectories(mdp, pol, n, T, seed=11)
    w = gamma ** np.arange(T)
    per = np.zeros((n, 6))
    np.add.at(per, (np.repeat(np.arange(n), T), demos.states.ravel()), np.tile(w, n))
    est, se = per.mean(axis=0), per.std(axis=0, ddof=1) / np.sqrt(n)
    rho = state_occupancy(mdp, pol)
    assert np.all(np.abs(est - rho) <= 5 * se + gamma**T / (1 - gamma) + 1e-12)


def test_finite_horizon_sum_converges_to_discounted_occupancy():
    """Σ_{t<H} γ^t ρ_t → ρ (error ≤ γ^H/(1−γ)); with terminals too."""
    mdp = ms.gridworld(3, 4, slip=0.3, gamma=0.5)
    pol = _random_policy(12, 4, 5)
    H = 80
    rho_t = finite_horizon_occupancy(mdp, pol, H)
    np.testing.assert_allclose((0.5 ** np.arange(H)) @ rho_t, state_occupancy(mdp, pol), atol=1e-13)
    assert np.all(rho_t.sum(axis=1) <= 1 + 1e-12) and np.all(np.diff(rho_t.sum(axis=1)) <= 1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_finite_horizon_feature_expectations_equal_evaluate(gamma):
    """Time-dependent policy, horizon H: μ(π) with φ = r equals evaluate(horizon=H) at stage 0."""
    mdp = ms.gridworld(3, 3, slip=0.2, gamma=gamma)
    H = 7
    pols = np.random.default_rng(0).dirichlet(np.ones(4), size=(H, 9))
    fe = feature_expectations(mdp, pols, mdp.R[..., None], horizon=H)
    assert fe[0] == pytest.approx(ms.evaluate(mdp, pols, horizon=H).value_initial, abs=1e-13)


def test_sparse_and_dense_occupancy_agree():
    dense = ms.garnet(40, 3, 4, gamma=0.95, seed=2, sparse=False)
    sparse = ms.TabularMDP(sp.csr_matrix(dense.P2), dense.R, 0.95)
    pol = _random_policy(40, 3, 9)
    np.testing.assert_allclose(state_occupancy(sparse, pol), state_occupancy(dense, pol), rtol=1e-12)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_successor_features_give_feature_expectations(gamma):
    """μ0ᵀψ^π = μ(π) and Ψ(s,a) = φ(s,a) + γPψ, ψ = Σ_a πΨ."""
    mdp = ms.garnet(12, 3, 4, gamma=gamma, seed=4)
    phi = np.random.default_rng(1).normal(size=(12, 3, 5))
    pol = _random_policy(12, 3, 3)
    psi, Psi = successor_features(mdp, pol, phi)
    np.testing.assert_allclose(mdp.initial @ psi, feature_expectations(mdp, pol, phi), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(np.einsum("sa,sad->sd", pol, Psi), psi, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("eos", [None, 1])
def test_tree_occupancy_is_reach_probability(eos):
    """ρ(node) = exp(node_log_probs); every level's reachable mass is 1 minus what EOS ended; discounted
    duality Σ γ^h ρ(s)π(a|s)r(s,a) = V^π(root) (evaluate)."""
    env = ms.TokenMDP.random(3, 4, reward="dense", eos=eos, gamma=0.8, seed=2)
    pol = np.random.default_rng(0).dirichlet(np.ones(3), size=env.n_nodes)
    rho = tree_occupancy(env, pol)
    np.testing.assert_allclose(rho, np.exp(env.node_log_probs(pol)), rtol=1e-12, atol=1e-300)
    if eos is None:
        for h in range(env.horizon):
            assert rho[env.level_start[h]:env.level_start[h + 1]].sum() == pytest.approx(1.0, abs=1e-12)
    disc = tree_occupancy(env, pol, discounted=True)
    assert np.sum(disc[:, None] * pol * env.rewards) == pytest.approx(ms.evaluate(env, pol).v[0], abs=1e-12)
    fe = feature_expectations(env, pol, env.rewards[..., None])
    assert fe[0] == pytest.approx(ms.evaluate(env, pol).v[0], abs=1e-12)


def test_tree_occupancy_equals_tabular_occupancy_of_to_tabular():
    env = ms.TokenMDP.random(2, 4, seed=5, gamma=1.0)
    pol = np.random.default_rng(3).dirichlet(np.ones(2), size=env.n_nodes)
    tab = env.to_tabular()
    pol_tab = np.vstack([pol, [[0.5, 0.5]]])
    np.testing.assert_allclose(state_occupancy(tab, pol_tab)[:-1], tree_occupancy(env, pol), atol=1e-13)


def test_bad_input_raises_value_error_naming_argument():
    mdp = ms.garnet(5, 2, 2, gamma=0.9, seed=0)
    pol = np.full((5, 2), 0.5)
    with pytest.raises(ValueError, match="policy must have shape"):
        state_occupancy(mdp, np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="policy must sum to 1"):
        state_occupancy(mdp, np.full((5, 2), 0.6))
    with pytest.raises(ValueError, match="initial must have shape"):
        state_occupancy(mdp, pol, initial=np.ones(4) / 4)
    with pytest.raises(ValueError, match="features must have shape \\(S, A, d\\)"):
        feature_expectations(mdp, pol, np.ones((5, 2)))
    with pytest.raises(ValueError, match="features must have shape"):
        feature_expectations(mdp, pol, np.ones((5, 3, 2)))
    with pytest.raises(ValueError, match="policies must have shape"):
        finite_horizon_occupancy(mdp, np.full((3, 5, 2), 0.5), 4)
    with pytest.raises(ValueError, match="horizon must be"):
        finite_horizon_occupancy(mdp, pol, 0)
    with pytest.raises(ValueError, match="mdp must be a TabularMDP"):
        state_occupancy("garnet", pol)
    loop = ms.TabularMDP(np.ones((2, 1, 2)) / 2, np.zeros((2, 1)), 1.0)
    with pytest.raises(ValueError, match="gamma = 1"):
        state_occupancy(loop, np.ones((2, 1)))
