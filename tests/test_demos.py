"""Demonstrations (docs/math.md §10): the batched sampler against its law (binomial error), terminal
handling and padding, seeding, empirical feature expectations, validation of user data."""
import numpy as np
import pytest
import scipy.sparse as sp

import mdpsandbox as ms
from mdpsandbox.irl import (Demonstrations, empirical_feature_expectations, empirical_occupancy,
                            feature_expectations, finite_horizon_occupancy, mce_irl, sample_trajectories)


def _binomial_ok(count, n, p, z=5.0):
    """|count/n − p| ≤ z·sqrt(p(1−p)/n) + 1/n (a 5σ band; the 1/n covers p ≈ 0)."""
    return np.abs(count / n - p) <= z * np.sqrt(p * (1 - p) / n) + 1.0 / n


@pytest.mark.parametrize("sparse", [False, True])
def test_sampler_state_action_frequencies_match_finite_horizon_occupancy(sparse):
    """Freq(s_t = s, a_t = a) vs ρ_t(s)π_t(a|s) for every (t, s, a), time-indexed policy, terminals."""
    mdp = ms.gridworld(3, 3, slip=0.3, gamma=0.9)
    if sparse:
        mdp = ms.TabularMDP(sp.csr_matrix(mdp.P2), mdp.R, 0.9, terminal=mdp.terminal, initial=mdp.initial)
    H, n = 6, 20000
    pols = np.random.default_rng(0).dirichlet(np.ones(4), size=(H, 9))
    demos = sample_trajectories(mdp, pols, n, H, seed=3)
    rho = finite_horizon_occupancy(mdp, pols, H)
    expected = rho[:, :, None] * pols
    counts = np.zeros((H, 9, 4))
    t_idx = np.broadcast_to(np.arange(H), demos.states.shape)
    m = demos.mask
    np.add.at(counts, (t_idx[m], demos.states[m], demos.actions[m]), 1)
    assert np.all(_binomial_ok(counts, n, expected))
    # terminal arrivals: Pr(length = t+1 and ended) = mass leaving to the goal at step t
    ended = mdp.terminal[demos.final_states]
    assert np.all(demos.lengths[~ended] == H)
    assert np.all(demos.states[ended, :][np.arange(H)[None, :] >= demos.lengths[ended, None]] == -1)


def test_sampler_initial_law_and_seeding():
    mdp = ms.garnet(5, 2, 3, gamma=0.9, seed=1)
    mu = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    pol = np.full((5, 2), 0.5)
    d1 = sample_trajectories(mdp, pol, 30000, 3, seed=5, initial=mu)
    d2 = sample_trajectories(mdp, pol, 30000, 3, seed=5, initial=mu)
    d3 = sample_trajectories(mdp, pol, 30000, 3, seed=6, initial=mu)
    np.testing.assert_array_equal(d1.states, d2.states)
    np.testing.assert_array_equal(d1.actions, d2.actions)
    assert not np.array_equal(d1.states, d3.states)
    counts = np.bincount(d1.states[:, 0], minlength=5)
    assert np.all(_binomial_ok(counts, 30000, mu)) and counts[4] == 0


def test_sampler_next_state_law_per_row():
    """Transition draws: from a fixed (s, a), the next-state frequencies follow P(·|s, a)."""
    mdp = ms.garnet(6, 2, 4, gamma=0.9, seed=2, sparse=True)
    init = np.eye(6)[3]
    pol = np.tile([1.0, 0.0], (6, 1))
    n = 40000
    d = sample_trajectories(mdp, pol, n, 2, seed=1, initial=init)
    counts = np.bincount(d.states[:, 1], minlength=6)
    assert np.all(_binomial_ok(counts, n, mdp.dense_P()[3, 0]))


def test_episode_starting_terminal_has_length_zero():
    mdp = ms.bandit(3, means=[0.0, 1.0, 0.5])
    d = sample_trajectories(mdp, np.full((2, 3), 1 / 3), 10, 4, seed=0, initial=[0.0, 1.0])
    assert np.all(d.lengths == 0) and np.all(d.states == -1)
    d = sample_trajectories(mdp, np.full((2, 3), 1 / 3), 10, 4, seed=0)
    assert np.all(d.lengths == 1) and np.all(d.final_states == 1)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_empirical_feature_expectations_unbiased_for_finite_horizon_expectation(gamma):
    """E μ̂_E = Σ_{t<T} γ^t E φ(s_t, a_t): within 5 standard errors of feature_expectations(horizon=T)."""
    mdp = ms.gridworld(3, 3, slip=0.2, gamma=gamma)
    phi = np.random.default_rng(2).normal(size=(9, 4, 3))
    pol = np.random.default_rng(3).dirichlet(np.ones(4), size=9)
    T, n = 12, 20000
    d = sample_trajectories(mdp, pol, n, T, seed=4)
    w = np.where(d.mask, gamma ** np.arange(T), 0.0)
    per = np.einsum("nt,ntd->nd", w, phi[np.maximum(d.states, 0), np.maximum(d.actions, 0)])
    est = empirical_feature_expectations(d, phi, gamma)
    np.testing.assert_allclose(est, per.mean(axis=0), atol=1e-12)
    se = per.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(est - feature_expectations(mdp, pol, phi, horizon=T)) <= 5 * se)


def test_empirical_feature_expectations_exact_on_handmade_demonstrations():
    demos = Demonstrations.from_lists([[0, 1, 1], [1]], [[1, 0, 1], [0]])
    np.testing.assert_array_equal(demos.states, [[0, 1, 1], [1, -1, -1]])
    np.testing.assert_array_equal(demos.lengths, [3, 1])
    rho = empirical_occupancy(demos, 2, 2, 0.5)
    # trajectory 1: (0,1)·1 + (1,0)·1/2 + (1,1)·1/4; trajectory 2: (1,0)·1; averaged over 2
    np.testing.assert_allclose(rho, [[0.0, 0.5], [0.75, 0.125]], atol=0)
    phi = np.arange(8, dtype=float).reshape(2, 2, 2)
    np.testing.assert_allclose(empirical_feature_expectations(demos, phi, 0.5), rho.reshape(-1) @ phi.reshape(4, 2))


def test_bad_demonstrations_raise_value_errors():
    with pytest.raises(ValueError, match="states is ragged"):
        Demonstrations([[0, 1], [1]], [[0, 0], [0]], [2, 1])
    with pytest.raises(ValueError, match="states must be >= 0 on real steps; trajectory 0, step 1"):
        Demonstrations([[0, -2]], [[0, 0]], [2])
    with pytest.raises(ValueError, match="actions must be padded with -1"):
        Demonstrations([[0, -1]], [[0, 1]], [1])
    with pytest.raises(ValueError, match="lengths must lie in"):
        Demonstrations([[0, 1]], [[0, 1]], [3])
    with pytest.raises(ValueError, match="actions must have shape"):
        Demonstrations([[0, 1]], [[0, 1, 1]], [2])
    with pytest.raises(ValueError, match="must hold integers"):
        Demonstrations([[0.5, 1]], [[0, 1]], [2])
    with pytest.raises(ValueError, match="trajectory 1 has 2 states but 1 actions"):
        Demonstrations.from_lists([[0], [0, 1]], [[0], [1]])
    demos = Demonstrations([[0, 3]], [[0, 1]], [2])
    with pytest.raises(ValueError, match=r"demonstrations.states must lie in \[0, 3\); trajectory 0, step 1 is 3"):
        empirical_feature_expectations(demos, np.ones((3, 2, 1)), 0.9)
    with pytest.raises(ValueError, match=r"demonstrations.actions must lie in \[0, 1\)"):
        empirical_feature_expectations(Demonstrations([[0, 1]], [[0, 1]], [2]), np.ones((3, 1, 1)), 0.9)
    mdp = ms.garnet(3, 2, 2, gamma=0.9, seed=0)
    with pytest.raises(ValueError, match=r"demonstrations.states must lie in \[0, 3\)"):
        mce_irl(mdp, np.ones((3, 2, 1)), demonstrations=demos)
    with pytest.raises(ValueError, match="policy must have shape"):
        sample_trajectories(mdp, np.full((3, 3), 1 / 3), 5, 4, seed=0)
    with pytest.raises(ValueError, match="n must be"):
        sample_trajectories(mdp, np.full((3, 2), 0.5), 0, 4, seed=0)
    with pytest.raises(ValueError, match="gamma must lie in"):
        empirical_feature_expectations(Demonstrations([[0]], [[0]], [1]), np.ones((3, 2, 1)), 1.5)
