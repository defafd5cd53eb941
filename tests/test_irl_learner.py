"""The torch MCE IRL learner checked against the exact mce_irl (docs/math.md §10)."""
import numpy as np
import pytest
import torch

import mdpsandbox as ms
from mdpsandbox.irl import (empirical_feature_expectations, mce_irl, mce_log_likelihood, sample_trajectories,
                            state_action_features)
from mdpsandbox.learners.irl import train_mce_irl

torch.set_num_threads(1)  # tiny tensors: threads only add overhead


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    S, A, d, gamma = 8, 3, 4, 0.9
    base = ms.garnet(S, A, 3, gamma=gamma, seed=1)
    phi = rng.normal(size=(S, A, d))
    theta = rng.normal(size=d)
    expert = ms.solve(ms.TabularMDP(base.P, phi @ theta, gamma), temperature=1.0, tol=1e-12).policy
    demos = sample_trajectories(base, expert, 2000, 60, seed=0)
    exact = mce_irl(base, phi, demonstrations=demos, temperature=1.0, method="newton", tol=1e-12)
    return base, phi, theta, expert, demos, exact


@pytest.mark.parametrize("optimizer,steps,tol", [("lbfgs", 40, 1e-7), ("adam", 300, 1e-5)])
def test_linear_learner_reaches_exact_mce_solution(problem, optimizer, steps, tol):
    mdp, phi, theta, expert, demos, exact = problem
    res = train_mce_irl(mdp, demonstrations=demos, features=phi, optimizer=optimizer, steps=steps, exact=exact,
                        progress=False, seed=0)
    assert res.final["theta_error"] < tol and res.final["policy_tv"] < tol
    np.testing.assert_allclose(res.theta, exact.theta, atol=tol)
    assert res.n_solves >= steps


def test_learner_objective_is_the_causal_log_likelihood(problem):
    """The recorded objective equals mce_log_likelihood at the same θ (θ = 0 at step 0 and at the end)."""
    mdp, phi, theta, expert, demos, exact = problem
    res = train_mce_irl(mdp, demonstrations=demos, features=phi, steps=3, eval_every=1, progress=False)
    fe = empirical_feature_expectations(demos, phi, mdp.gamma)
    assert res.history[0]["log_likelihood"] == pytest.approx(mce_log_likelihood(np.zeros(4), mdp, phi, fe, 1.0),
                                                             rel=1e-12)
    assert res.history[-1]["log_likelihood"] == pytest.approx(mce_log_likelihood(res.theta, mdp, phi, fe, 1.0),
                                                              rel=1e-12)


def test_mlp_reward_recovers_the_expert_policy_from_population_statistics():
    """A small network on one-hot (s, a) inputs: its soft-optimal policy reaches the exact tabular MCE
    solution (= the expert) in TV."""
    mdp = ms.garnet(6, 3, 3, gamma=0.8, seed=3)
    expert = ms.solve(mdp, temperature=1.0, tol=1e-12).policy
    exact = mce_irl(mdp, state_action_features(6, 3), expert_policy=expert, method="newton")
    res = train_mce_irl(mdp, expert_policy=expert, reward="mlp", steps=400, lr=0.02, exact=exact,
                        progress=False, seed=1)
    assert exact.tv_to_expert < 1e-9
    assert res.final["policy_tv"] < 1e-4 and res.theta is None


def test_finite_horizon_learner_matches_exact():
    mdp = ms.garnet(5, 2, 3, gamma=1.0, seed=4)
    phi = np.random.default_rng(2).normal(size=(5, 2, 3))
    H = 6
    expert = ms.solve(ms.TabularMDP(mdp.P, phi @ np.array([1.0, -0.5, 0.3]), 1.0), temperature=0.5,
                      horizon=H).policy
    exact = mce_irl(mdp, phi, expert_policy=expert, temperature=0.5, horizon=H)
    res = train_mce_irl(mdp, expert_policy=expert, features=phi, temperature=0.5, horizon=H, steps=40,
                        exact=exact, progress=False)
    np.testing.assert_allclose(res.theta, exact.theta, atol=1e-6)
    np.testing.assert_allclose(res.theta, [1.0, -0.5, 0.3], atol=1e-6)


def test_learner_bad_input(problem):
    mdp, phi, theta, expert, demos, exact = problem
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        train_mce_irl(mdp, demonstrations=demos, temperature=0.0)
    with pytest.raises(ValueError, match="exactly one of"):
        train_mce_irl(mdp)
    with pytest.raises(ValueError, match="reward must be one of"):
        train_mce_irl(mdp, demonstrations=demos, reward="transformer")
    with pytest.raises(ValueError, match="features must have shape"):
        train_mce_irl(mdp, demonstrations=demos, features=phi[:4])
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_mce_irl(mdp, demonstrations=demos, optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps must be"):
        train_mce_irl(mdp, demonstrations=demos, steps=0)
    with pytest.raises(ValueError, match="the reward model must map"):
        train_mce_irl(mdp, demonstrations=demos, reward=torch.nn.Linear(24, 2, dtype=torch.float64), steps=1,
                      progress=False)


@pytest.mark.parametrize("tau", [1e-8, 1e8])
def test_learner_at_extreme_temperature_matches_exact(tau):
    """The network outputs r/τ, so training is τ-invariant: θ/τ equals the exact η* at τ = 1e-8 and 1e8."""
    mdp = ms.garnet(6, 2, 3, gamma=0.9, seed=5)
    phi = np.random.default_rng(3).normal(size=(6, 2, 3))
    eta = np.array([0.7, -1.0, 0.4])
    expert = ms.solve(ms.TabularMDP(mdp.P, phi @ (tau * eta), 0.9), temperature=tau, tol=1e-13 * tau,
                      method="pi").policy
    exact = mce_irl(mdp, phi, expert_policy=expert, temperature=tau, method="newton")
    res = train_mce_irl(mdp, expert_policy=expert, features=phi, temperature=tau, steps=40, exact=exact,
                        progress=False)
    assert np.all(np.isfinite(res.q)) and res.final["policy_tv"] < 1e-7
    np.testing.assert_allclose(res.theta / tau, eta, atol=1e-7)
