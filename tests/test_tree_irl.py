"""Token-tree IRL (docs/math.md §4, §10): π* identifies every sequence's return up to one constant per
prompt — exactly from population statistics, within binomial error from samples."""
import numpy as np
import pytest

import mdpsandbox as ms
from mdpsandbox.irl.tree import tree_demonstrations, tree_irl, tree_irl_from_samples


@pytest.mark.parametrize("reward", ["terminal", "dense"])
@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
@pytest.mark.parametrize("eos", [None, 0])
def test_tree_irl_recovers_returns_up_to_the_root_value(reward, gamma, eos):
    """Ĝ(x) = G(x) − V*(root) for every sequence; r̂ = β log(π*/π_ref) has V̂ ≡ 0 and optimal policy π*."""
    env = ms.TokenMDP.random(3, 4, reward=reward, gamma=gamma, eos=eos, offset_scale=3.0, seed=1)
    beta = 0.3
    sol = ms.solve(env, beta=beta)
    res = tree_irl(env, sol.policy, beta)
    np.testing.assert_allclose(res.leaf_returns, env.leaf_returns() - sol.v[0], atol=1e-12)
    assert res.observed.all()
    canon = ms.solve(env.with_rewards(res.rewards), beta=beta)
    np.testing.assert_allclose(canon.policy, sol.policy, atol=1e-12)
    np.testing.assert_allclose(canon.v[env.reachable], 0.0, atol=1e-12)
    seq = ms.solve(env.with_rewards(res.sequence_rewards(env)), beta=beta)
    np.testing.assert_allclose(seq.policy[env.reachable], sol.policy[env.reachable], atol=1e-10)


def test_sequence_reward_recovered_up_to_beta_log_z_with_several_prompts():
    """γ = 1, sequence reward: R̂(x) = R(x) − β log Z_p per prompt p (the only unidentified direction)."""
    env = ms.TokenMDP.random(2, 3, reward="terminal", n_prompts=3, seed=4)
    beta = 0.05
    sol = ms.solve(env, beta=beta)
    res = tree_irl(env, sol.policy, beta)
    logZ = np.log(np.sum(np.exp(env.leaf_log_probs() + env.leaf_returns() / beta), axis=1))
    np.testing.assert_allclose(res.leaf_returns, env.leaf_returns() - beta * logZ[:, None], atol=1e-11)


@pytest.mark.parametrize("beta", [1e-6, 1e6])
def test_tree_irl_is_finite_at_extreme_beta(beta):
    env = ms.TokenMDP.random(3, 3, reward="terminal", seed=2)
    sol = ms.solve(env, beta=beta)
    res = tree_irl(env, sol.policy, beta)
    fin = np.isfinite(res.leaf_returns)
    if beta > 1:
        assert fin.all()
        np.testing.assert_allclose(res.leaf_returns, env.leaf_returns() - sol.v[0], atol=1e-6)
    else:  # π* ≈ deterministic: non-optimal sequences underflow to probability 0 → −inf, never NaN
        assert not np.isnan(res.leaf_returns).any() and fin.any()


def test_tree_irl_from_samples_within_binomial_error():
    """γ = 1: Ĝ(x) − (G(x) − V*(root)) = β log(p̂(x)/p(x)); within 5 delta-method standard errors
    β·sqrt((1−p)/(np)) on every well-observed sequence."""
    env = ms.TokenMDP.random(3, 3, reward="terminal", seed=3)
    beta, n = 0.5, 200000
    sol = ms.solve(env, beta=beta)
    demos = tree_demonstrations(env, beta, n, seed=0)
    res = tree_irl_from_samples(env, demos, beta)
    p = np.exp(env.leaf_log_probs(sol.policy))
    truth = env.leaf_returns() - sol.v[0]
    ok = n * p >= 100
    assert ok.sum() >= 20 and res.observed[ok].all()
    err = np.abs(res.leaf_returns[ok] - truth[ok])
    assert np.all(err <= 5 * beta * np.sqrt((1 - p[ok]) / (n * p[ok])))
    assert res.counts.sum() == demos.lengths.sum()


def test_tree_irl_bad_input():
    env = ms.TokenMDP.random(2, 2, seed=0)
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        tree_irl(env, env.ref_policy, 0.0)
    with pytest.raises(ValueError, match="policy must have shape"):
        tree_irl(env, np.full((2, 2), 0.5), 1.0)
    with pytest.raises(ValueError, match="env must be a TokenMDP"):
        tree_irl(ms.garnet(3, 2, 2), np.full((3, 2), 0.5), 1.0)
    with pytest.raises(ValueError, match="trajectories must have 3 steps"):
        tree_irl_from_samples(ms.TokenMDP.random(2, 3, seed=0), env.sample(n=5, seed=0), 1.0)
