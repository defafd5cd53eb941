"""compare() and assert_logits_match_q read logits in each convention against exact DP."""
import numpy as np
import pytest

import mdpsandbox as ms
from mdpsandbox import TokenMDP, evaluate, solve
from mdpsandbox.testing import assert_logits_match_q

BETA = 0.3


@pytest.fixture(scope="module")
def case():
    env = TokenMDP.random(3, 3, seed=4, offset_scale=10.0, reward="dense")
    return env, solve(env, beta=BETA)


def test_exact_logits_have_zero_error_in_every_convention(case):
    env, sol = case
    tables = {"shiq": env.ref_logits + sol.q / BETA, "l2": env.log_ref_policy + sol.q / BETA, "q": sol.q,
              "policy": np.log(sol.policy) + 7.0}  # policy logits up to a per-node constant
    for conv, g in tables.items():
        m = ms.compare(g, env, beta=BETA, convention=conv, solution=sol)
        assert m["logit_error"] < 1e-10 and m["tv_max"] < 1e-12 and m["kl_max"] < 1e-12, conv
        assert m["value_error"] < 1e-10, conv
        assert abs(m["suboptimality"]) < 1e-10


def test_objective_is_reward_minus_beta_kl_and_bounded_by_v_star(case):
    env, sol = case
    m = ms.compare(env.ref_logits, env, beta=BETA, convention="shiq", solution=sol)
    # at g = ℓ_ref the policy is π_ref: KL 0, reward = E_ref return (independent pass with evaluate)
    assert abs(m["kl"]) < 1e-12
    assert abs(m["reward"] - evaluate(env, env.ref_policy).value_initial) < 1e-12
    assert m["objective"] <= m["value_star"] + 1e-12 and m["suboptimality"] > 0
    g = np.random.default_rng(0).normal(size=env.ref_logits.shape)
    m = ms.compare(g, env, beta=BETA, convention="policy", solution=sol)
    pi = np.exp(g) / np.exp(g).sum(1, keepdims=True)
    assert abs(m["objective"] - evaluate(env, pi, beta=BETA).value_initial) < 1e-10
    assert abs(m["objective"] - (m["reward"] - BETA * m["kl"])) < 1e-10


def test_worst_entry_is_named_by_prefix_and_token(case):
    env, sol = case
    g = env.ref_logits + sol.q / BETA
    node = env.index((2, 1))
    g[node, 0] += 0.5
    m = ms.compare(g, env, beta=BETA, convention="shiq", solution=sol)
    assert m["worst"]["prefix"] == (2, 1) and m["worst"]["token"] == 0
    assert abs(m["logit_error"] - 0.5) < 1e-10
    with pytest.raises(AssertionError, match=r"prefix \(2, 1\) token 0: expected .* actual"):
        assert_logits_match_q(g, env, BETA, solution=sol)
    # a mask that excludes the node passes
    mask = np.ones(env.n_nodes, bool)
    mask[node] = False
    assert_logits_match_q(g, env, BETA, solution=sol, mask=mask)


def test_compare_refuses_bad_input(case):
    env, sol = case
    with pytest.raises(ValueError, match="beta"):
        ms.compare(sol.q, env, beta=0.0)
    with pytest.raises(ValueError, match="convention"):
        ms.compare(sol.q, env, beta=BETA, convention="logits")
    with pytest.raises(ValueError, match="logits must have shape"):
        ms.compare(sol.q[:-1], env, beta=BETA)
    bad = sol.q.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ms.compare(bad, env, beta=BETA)


def test_compare_handles_several_prompts_and_eos():
    env = TokenMDP.random(3, 3, seed=1, n_prompts=2, eos=2, offset_scale=5.0)
    sol = solve(env, beta=BETA)
    g = env.ref_logits + sol.q / BETA
    m = ms.compare(g, env, beta=BETA, solution=sol)
    assert m["logit_error"] < 1e-10 and m["tv_max"] < 1e-12
    g[1, env.index((1,)), 2] -= 1.0
    m = ms.compare(g, env, beta=BETA, solution=sol)
    assert m["worst"]["prompt"] == 1 and m["worst"]["prefix"] == (1,)
