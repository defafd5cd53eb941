"""Exact MCE IRL (docs/math.md §10): the likelihood identity, gradient = 0 at the true θ for every γ
and for finite horizons, gradient/Hessian = finite differences, concavity, recovery of θ* to 1e-8,
unidentified directions, extreme temperatures, the γ = 1-policy shortcut, bad input."""
import numpy as np
import pytest
import scipy.sparse as sparse
from hypothesis import given, settings
from hypothesis import strategies as st

import mdpsandbox as ms
from mdpsandbox.irl import (feature_expectations, mce_gradient, mce_gradient_undiscounted_shortcut, mce_hessian,
                            mce_irl, mce_log_likelihood, sample_trajectories, state_action_features,
                            state_action_occupancy, state_features, unidentified_directions)
from mdpsandbox.irl.demos import empirical_feature_expectations
from mdpsandbox.testing import tabular_mdps

GAMMAS = [0.0, 0.5, 0.9, 0.99]


def _problem(gamma, S=8, A=3, d=4, seed=0, terminal=False):
    """A garnet MDP (optionally with two terminal states reached from everywhere), random features,
    a true θ and its soft-optimal expert (computed by ms.solve, independent of the IRL code)."""
    rng = np.random.default_rng(seed)
    base = ms.garnet(S, A, 3, gamma=gamma, seed=seed)
    P = base.dense_P()
    term = None
    if terminal:
        P = 0.7 * P
        P[:, :, S - 2:] += 0.15
        term = [S - 2, S - 1]
    phi = rng.normal(size=(S, A, d))
    theta = rng.normal(size=d)
    mdp = ms.TabularMDP(P, phi @ theta, gamma, terminal=term)
    return mdp, phi, theta


def _expert(mdp, tau, horizon=None):
    return ms.solve(mdp, temperature=tau, tol=1e-13, method="pi" if horizon is None else "auto",
                    horizon=horizon).policy


@pytest.mark.parametrize("gamma", GAMMAS)
def test_log_likelihood_equals_expected_discounted_log_policy(gamma):
    """ℓ(θ) = (θᵀμ_E − μ0ᵀV_θ)/τ equals E_E Σ_t γ^t log π_θ(a_t|s_t) = Σ ρ_E(s,a) log π_θ(a|s) for ANY
    expert policy (the telescoping identity), with terminals."""
    mdp, phi, theta = _problem(gamma, terminal=True)
    tau = 0.6
    rng = np.random.default_rng(1)
    expert = rng.dirichlet(np.ones(3), size=8)
    fe = feature_expectations(mdp, expert, phi)
    th = rng.normal(size=4)
    pol = ms.solve(ms.TabularMDP(mdp.P, phi @ th, gamma, terminal=mdp.terminal), temperature=tau, tol=1e-13).policy
    direct = np.sum(state_action_occupancy(mdp, expert) * np.log(pol))
    assert mce_log_likelihood(th, mdp, phi, fe, tau) == pytest.approx(direct, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("terminal", [False, True])
def test_mce_gradient_is_zero_at_true_theta(gamma, terminal):
    mdp, phi, theta = _problem(gamma, terminal=terminal)
    tau = 0.5
    fe = feature_expectations(mdp, _expert(mdp, tau), phi)
    g = mce_gradient(theta, mdp, phi, fe, tau)
    assert np.max(np.abs(g)) < 1e-10 * (1 + np.max(np.abs(fe)))


def test_mce_gradient_is_zero_at_true_theta_gamma_one_with_termination():
    mdp, phi, theta = _problem(1.0, terminal=True)
    fe = feature_expectations(mdp, _expert(mdp, 0.8), phi)
    assert np.max(np.abs(mce_gradient(theta, mdp, phi, fe, 0.8))) < 1e-10 * (1 + np.max(np.abs(fe)))


@pytest.mark.parametrize("gamma", [0.5, 0.9, 1.0])
def test_mce_gradient_is_zero_at_true_theta_finite_horizon(gamma):
    mdp, phi, theta = _problem(gamma)
    H, tau = 9, 0.7
    expert = _expert(mdp, tau, horizon=H)  # (H, S, A) time-indexed
    fe = feature_expectations(mdp, expert, phi, horizon=H)
    assert np.max(np.abs(mce_gradient(theta, mdp, phi, fe, tau, horizon=H))) < 1e-11 * (1 + np.max(np.abs(fe)))


@pytest.mark.parametrize("gamma,horizon", [(0.0, None), (0.5, None), (0.9, None), (0.99, None), (0.9, 6),
                                           (1.0, 6)])
def test_mce_gradient_and_hessian_equal_finite_differences(gamma, horizon):
    """Central differences of ℓ and of ∇ℓ at a θ away from the optimum; Hessian ⪯ 0 (concavity)."""
    mdp, phi, theta = _problem(gamma, seed=2)
    tau = 0.9
    rng = np.random.default_rng(5)
    fe = feature_expectations(mdp, rng.dirichlet(np.ones(3), size=8), phi, horizon=horizon)
    th = theta + rng.normal(size=4)
    g = mce_gradient(th, mdp, phi, fe, tau, horizon=horizon)
    Hs = mce_hessian(th, mdp, phi, tau, horizon=horizon)
    eps = 1e-5
    E = np.eye(4) * eps
    ll = [mce_log_likelihood(th + e, mdp, phi, fe, tau, horizon=horizon)
          - mce_log_likelihood(th - e, mdp, phi, fe, tau, horizon=horizon) for e in E]
    gg = np.array([mce_gradient(th + e, mdp, phi, fe, tau, horizon=horizon)
                   - mce_gradient(th - e, mdp, phi, fe, tau, horizon=horizon) for e in E])
    scale = 1 + np.max(np.abs(fe))
    np.testing.assert_allclose(np.array(ll) / (2 * eps), g, atol=1e-6 * scale)
    np.testing.assert_allclose(gg / (2 * eps), Hs, atol=1e-6 * scale)
    np.testing.assert_allclose(Hs, Hs.T, atol=1e-12 * scale)
    assert np.max(np.linalg.eigvalsh(Hs)) <= 1e-12 * scale


@pytest.mark.parametrize("method", ["lbfgs", "newton"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
def test_mce_irl_recovers_theta_from_population_statistics(method, gamma):
    mdp, phi, theta = _problem(gamma, S=10, seed=3)
    tau = 0.5
    expert = _expert(mdp, tau)
    assert unidentified_directions(mdp, phi).shape == (4, 0)
    res = mce_irl(mdp, phi, expert_policy=expert, temperature=tau, method=method, tol=1e-11)
    assert res.converged and res.fe_error <= 1e-11
    np.testing.assert_allclose(res.theta, theta, atol=1e-8)
    assert res.tv_to_expert < 1e-8 and res.nullspace.shape == (4, 0)
    np.testing.assert_allclose(res.reward, phi @ theta, atol=1e-7)
    assert res.n_solves >= res.iterations


@pytest.mark.parametrize("method", ["lbfgs", "newton"])
def test_mce_irl_recovers_theta_gamma_one_with_termination_and_finite_horizon(method):
    mdp, phi, theta = _problem(1.0, terminal=True, seed=4)
    res = mce_irl(mdp, phi, expert_policy=_expert(mdp, 1.0), temperature=1.0, method=method)
    np.testing.assert_allclose(res.theta, theta, atol=1e-8)
    mdp9, phi9, theta9 = _problem(0.9, seed=6)
    H = 8
    res = mce_irl(mdp9, phi9, expert_policy=_expert(mdp9, 0.4, horizon=H), temperature=0.4, method=method,
                  horizon=H)
    assert res.policy.shape == (H, 8, 3) and res.tv_to_expert < 1e-8
    np.testing.assert_allclose(res.theta, theta9, atol=1e-8)


@pytest.mark.parametrize("tau", [1e-8, 1e-3, 1e3, 1e8])
def test_mce_irl_extreme_temperature_recovers_theta_over_tau(tau):
    """The optimum in η = θ/τ does not depend on τ; θ = τη* is exact at every τ (no overflow)."""
    mdp, phi, eta = _problem(0.9, seed=7)
    theta = tau * eta
    tmdp = ms.TabularMDP(mdp.P, phi @ theta, 0.9)
    expert = ms.solve(tmdp, temperature=tau, tol=1e-13 * tau, method="pi").policy
    res = mce_irl(mdp, phi, expert_policy=expert, temperature=tau, method="newton", tol=1e-10)
    assert np.all(np.isfinite(res.q)) and res.converged
    np.testing.assert_allclose(res.theta / tau, eta, atol=1e-7)
    np.testing.assert_allclose(res.grad_norm * tau, res.fe_error, rtol=1e-12)


def test_tabular_reward_recovered_up_to_shaping_and_nullspace_reported():
    """One-hot (s, a) features: the policy is recovered exactly and r̂ − r = Φ − γPΦ (a shaping); the
    reported nullspace is the S-dimensional shaping subspace."""
    gamma, S, A = 0.9, 6, 3
    mdp = ms.garnet(S, A, 3, gamma=gamma, seed=8)
    phi = state_action_features(S, A)
    expert = _expert(mdp, 1.0)
    res = mce_irl(mdp, phi, expert_policy=expert, temperature=1.0, method="newton")
    assert res.tv_to_expert < 1e-9
    K = np.repeat(np.eye(S), A, axis=0) - gamma * mdp.P2  # (SA, S): Φ ↦ Φ(s) − γ(PΦ)(s, a)
    diff = (res.reward - mdp.R).ravel()
    Phi, *_ = np.linalg.lstsq(K, diff, rcond=None)
    assert np.max(np.abs(K @ Phi - diff)) < 1e-8
    assert res.nullspace.shape == (S * A, S) and unidentified_directions(mdp, phi).shape == (S * A, S)
    # the nullspace spans exactly the shaping directions range(K)
    Q, _ = np.linalg.qr(K)
    np.testing.assert_allclose(res.nullspace @ res.nullspace.T, Q @ Q.T, atol=1e-8)


def test_state_features_leave_only_the_constant_unidentified():
    mdp = ms.garnet(7, 3, 3, gamma=0.8, seed=9)
    null = unidentified_directions(mdp, state_features(7, 3))
    assert null.shape == (7, 1)
    np.testing.assert_allclose(np.abs(null[:, 0]), np.full(7, 7 ** -0.5), atol=1e-10)
    # with a terminal state that every action can reach, a constant reward is no longer a shaping
    P = 0.8 * mdp.dense_P()
    P[:, :, 6] += 0.2
    mdp_t = ms.TabularMDP(P, mdp.R, 0.8, terminal=[6])
    null_t = unidentified_directions(mdp_t, state_features(7, 3))
    assert null_t.shape == (7, 1)  # only the terminal state's own reward (never paid)
    np.testing.assert_allclose(np.abs(null_t[:, 0]), np.eye(7)[6], atol=1e-10)


def test_require_identified_raises_naming_directions():
    mdp = ms.garnet(5, 2, 3, gamma=0.9, seed=1)
    with pytest.raises(ValueError, match="features cannot identify the reward: 1 direction"):
        mce_irl(mdp, state_features(5, 2), expert_policy=np.full((5, 2), 0.5), require_identified=True)


@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_undiscounted_policy_shortcut_is_wrong_below_gamma_one(gamma):
    """The shortcut (soft policy computed with γ = 1, occupancy discounted) is nonzero at the true θ for
    γ < 1, while the exact gradient vanishes; it coincides with the exact gradient at γ = 1."""
    mdp, phi, theta = _problem(gamma, seed=10)
    H, tau = 15, 0.5
    fe = feature_expectations(mdp, _expert(mdp, tau, horizon=H), phi, horizon=H)
    exact = mce_gradient(theta, mdp, phi, fe, tau, horizon=H)
    short = mce_gradient_undiscounted_shortcut(theta, mdp, phi, fe, tau, horizon=H)
    assert np.max(np.abs(exact)) < 1e-11 * (1 + np.max(np.abs(fe)))
    assert np.max(np.abs(short)) > 1e-2
    mdp1, phi1, theta1 = _problem(1.0, seed=10)
    fe1 = feature_expectations(mdp1, _expert(mdp1, tau, horizon=H), phi1, horizon=H)
    np.testing.assert_allclose(mce_gradient_undiscounted_shortcut(theta1, mdp1, phi1, fe1, tau, horizon=H),
                               mce_gradient(theta1, mdp1, phi1, fe1, tau, horizon=H), atol=1e-11)


def test_mce_irl_from_demonstrations_matches_empirical_moments():
    """From finite demonstrations, the MLE matches the empirical discounted feature expectations exactly,
    and it lands within sampling error of the true θ."""
    mdp, phi, theta = _problem(0.5, seed=11)
    H = 30
    expert = _expert(mdp, 1.0, horizon=H)
    demos = sample_trajectories(mdp, expert, 20000, H, seed=0)
    res = mce_irl(mdp, phi, demonstrations=demos, temperature=1.0, horizon=H, method="newton")
    fe_hat = empirical_feature_expectations(demos, phi, 0.5)
    np.testing.assert_allclose(feature_expectations(mdp, res.policy, phi, horizon=H), fe_hat, atol=1e-10)
    assert np.max(np.abs(res.theta - theta)) < 0.15


def test_gradient_ascent_baseline_converges_slowly_to_the_same_theta():
    mdp, phi, theta = _problem(0.5, seed=12)
    expert = _expert(mdp, 1.0)
    newton = mce_irl(mdp, phi, expert_policy=expert, method="newton", tol=1e-6)
    with pytest.warns(ms.ConvergenceWarning):
        plain = mce_irl(mdp, phi, expert_policy=expert, method="gradient", tol=1e-6, max_iter=20)
    assert not plain.converged and plain.fe_error > newton.fe_error and newton.n_solves < 20


def test_bad_input_raises_value_error_naming_argument():
    mdp, phi, theta = _problem(0.9)
    expert = np.full((8, 3), 1 / 3)
    fe = feature_expectations(mdp, expert, phi)
    with pytest.raises(ValueError, match="features must have shape"):
        mce_irl(mdp, phi[:, :2], expert_policy=expert)
    with pytest.raises(ValueError, match=r"features must have shape \(S, A, d\)"):
        mce_gradient(theta, mdp, phi[..., 0], fe[:1], 1.0)
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        mce_irl(mdp, phi, expert_policy=expert, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        mce_gradient(theta, mdp, phi, fe, -1.0)
    with pytest.raises(ValueError, match="expert_fe must have shape"):
        mce_irl(mdp, phi, expert_fe=fe[:3])
    with pytest.raises(ValueError, match="theta must have shape"):
        mce_gradient(theta[:2], mdp, phi, fe, 1.0)
    with pytest.raises(ValueError, match="exactly one of"):
        mce_irl(mdp, phi, expert_policy=expert, expert_fe=fe)
    with pytest.raises(ValueError, match="expert_policy must have shape"):
        mce_irl(mdp, phi, expert_policy=expert[:5])
    with pytest.raises(ValueError, match="method must be one of"):
        mce_irl(mdp, phi, expert_policy=expert, method="adam")
    with pytest.raises(ValueError, match="gamma must lie in"):
        ms.TabularMDP(mdp.P, mdp.R, 1.5)
    loop = ms.garnet(4, 2, 2, gamma=1.0, seed=0)
    with pytest.raises(ValueError, match="gamma = 1 requires every policy"):
        mce_irl(loop, np.ones((4, 2, 1)), expert_policy=np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="features must be finite"):
        mce_irl(mdp, np.where(phi > 1, np.nan, phi), expert_policy=expert)


@settings(deadline=None, max_examples=15)
@given(st.data(), st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]), st.booleans(),
       st.sampled_from([1e-8, 1.0, 1e8]))
def test_gradient_vanishes_at_true_theta_and_matches_finite_differences_on_random_mdps(data, gamma, sparse, tau):
    """Random MDPs (dense or sparse P, terminals drawn; γ = 1 always with proper termination), random
    features: ∇ℓ(θ*) = 0 and ∇ℓ = central differences of ℓ away from θ*, at extreme τ too."""
    mdp = data.draw(tabular_mdps(max_states=6, max_actions=3, gamma=gamma, sparse=sparse, reward_scale=1.0))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    S, A = mdp.n_states, mdp.n_actions
    phi = rng.normal(size=(S, A, 3))
    eta = rng.normal(size=3)
    theta = tau * eta
    true = ms.TabularMDP(mdp.P, phi @ theta, gamma, terminal=mdp.terminal, initial=mdp.initial)
    expert = ms.solve(true, temperature=tau, tol=1e-13 * tau, method="pi").policy
    fe = feature_expectations(mdp, expert, phi)
    scale = 1 + np.max(np.abs(fe))
    assert np.max(np.abs(mce_gradient(theta, mdp, phi, fe, tau))) * tau < 1e-9 * scale
    th = theta + tau * rng.normal(size=3)
    g = mce_gradient(th, mdp, phi, fe, tau) * tau  # η-space gradient μ_E − μ(π_θ)
    eps = 1e-5
    fd = [(mce_log_likelihood(th + tau * eps * e, mdp, phi, fe, tau)
           - mce_log_likelihood(th - tau * eps * e, mdp, phi, fe, tau)) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(fd, g, atol=1e-5 * scale)



@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_sparse_and_dense_transition_storage_give_the_same_irl_answer(gamma):
    """Sparse CSR P (sparse LU in every solve) = dense P: Hessian, and Newton's θ and policy."""
    mdp, phi, theta = _problem(gamma, S=9, seed=13, terminal=gamma == 1.0)
    sp_mdp = ms.TabularMDP(sparse.csr_matrix(mdp.P2), mdp.R, gamma, terminal=mdp.terminal, initial=mdp.initial)
    np.testing.assert_allclose(mce_hessian(theta, sp_mdp, phi, 0.7), mce_hessian(theta, mdp, phi, 0.7), atol=1e-11)
    expert = _expert(mdp, 0.7)
    a = mce_irl(sp_mdp, phi, expert_policy=expert, temperature=0.7, method="newton")
    b = mce_irl(mdp, phi, expert_policy=expert, temperature=0.7, method="newton")
    np.testing.assert_allclose(a.theta, b.theta, atol=1e-10)
    np.testing.assert_allclose(a.theta, theta, atol=1e-8)
