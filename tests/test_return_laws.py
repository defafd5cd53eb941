"""Checks of docs/math.md §4/§6: exact return laws on token trees, the Q♯ identity, CD failure, Jensen gap."""
import numpy as np
import pytest

from mdpsandbox import TokenMDP, evaluate, qsharp_counterexample, solve
from mdpsandbox.solvers.return_laws import (
    cd_policy, jensen_gap_example, qsharp_q, return_distribution,
)


def _brute_force_law(tree, node, action):
    """Enumerate every continuation under π_ref (independent of return_distribution)."""
    out = {}
    pol = tree.ref_policy

    def rec(n, a, acc, disc, p):
        acc = acc + disc * tree.rewards[n, a]
        ch = tree.children(n)[a]
        if ch < 0:
            out[acc] = out.get(acc, 0.0) + p
            return
        for a2 in range(tree.vocab_size):
            rec(ch, a2, acc, disc * tree.gamma, p * pol[ch, a2])

    rec(node, action, 0.0, 1.0, 1.0)
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99, 1.0])  # every γ-dependent identity at γ < 1 too
@pytest.mark.parametrize("kw", [dict(reward="dense"), dict(reward="terminal", eos=2), dict(reward="dense", eos=1)])
def test_return_law_equals_brute_force_enumeration(kw, gamma):
    tree = TokenMDP.random(3, 3, seed=4, gamma=gamma, **kw)
    laws = return_distribution(tree)
    for node in [0, 1, 5]:
        for a in range(3):
            bf = _brute_force_law(tree, node, a)
            L = laws.law(node, a)
            vals = np.array(sorted(bf))
            np.testing.assert_allclose(L.values, vals, atol=1e-12)
            np.testing.assert_allclose(L.probs, [bf[v] for v in vals], atol=1e-12)
    np.testing.assert_allclose(laws.mean, evaluate(tree, tree.ref_policy).q, atol=1e-12)


@pytest.mark.parametrize("reward,eos,n_prompts", [("terminal", None, 1), ("dense", None, 1), ("dense", 1, 1),
                                                  ("bernoulli", None, 2)])
@pytest.mark.parametrize("beta", [0.03, 1.0, 20.0])
def test_qsharp_identity(reward, eos, n_prompts, beta):
    tree = TokenMDP.random(3, 4, reward=reward, eos=eos, n_prompts=n_prompts, seed=11)
    np.testing.assert_allclose(qsharp_q(tree, beta), solve(tree, beta=beta).q, atol=1e-10, rtol=0)


def test_equal_values_are_merged():
    tree = TokenMDP.random(2, 3, reward="bernoulli", seed=0)
    laws = return_distribution(tree)
    for node in range(tree.n_nodes):
        for a in range(2):
            v = laws.law(node, a).values
            assert len(np.unique(v)) == len(v)
            assert abs(laws.law(node, a).probs.sum() - 1) < 1e-12


def test_jensen_gap_positive_with_stochastic_transition():
    ex = jensen_gap_example(beta=0.5, p=0.5)
    s, a = ex.stochastic_edge
    assert ex.gap[s, a] > 1e-3
    other = np.ones_like(ex.gap, dtype=bool)
    other[s, a] = False
    assert np.max(np.abs(ex.gap[other])) < 1e-10
    # independent closed form: Q♯ = β log(p·E e^{R/β} + 1 − p), Q* = p β log E e^{R/β}
    beta, p = 0.5, 0.5
    e = 0.5 * np.exp(1 / beta) + 0.5
    assert abs(ex.q_sharp[s, a] - beta * np.log(p * e + 1 - p)) < 1e-12
    assert abs(ex.q_star[s, a] - p * beta * np.log(e)) < 1e-9


def test_cd_picks_left_and_kl_optimal_picks_right_as_beta_to_zero():
    tree = qsharp_counterexample()
    beta = 1e-3
    cd_value = evaluate(tree, cd_policy(tree, beta)).value_initial
    opt_value = evaluate(tree, solve(tree, beta=beta).policy).value_initial
    assert abs(cd_value - 0.1) < 1e-3
    assert abs(opt_value - 1.0) < 1e-3


def test_cd_policy_is_ref_times_exp_q_over_beta():
    tree = TokenMDP.random(3, 3, reward="dense", seed=2)
    beta = 0.7
    q = evaluate(tree, tree.ref_policy).q
    w = tree.ref_policy * np.exp(q / beta)
    np.testing.assert_allclose(cd_policy(tree, beta), w / w.sum(-1, keepdims=True), atol=1e-12)


def test_bad_input():
    tree = qsharp_counterexample()
    with pytest.raises(ValueError, match="beta"):
        qsharp_q(tree, 0.0)
    with pytest.raises(ValueError, match="beta"):
        cd_policy(tree, -1.0)
    with pytest.raises(ValueError, match="tree"):
        return_distribution("not a tree")


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_root_return_law_is_the_law_of_leaf_returns(gamma):
    """G^π(root) = Σ_x π(x) δ_{G(x)} with G(x) = Σ_t γ^t r_t the leaf's discounted return (dense rewards)."""
    tree = TokenMDP.random(3, 3, seed=6, reward="dense", gamma=gamma, eos=2)
    pol = solve(tree, beta=0.5).policy
    L = return_distribution(tree, pol).node_law(0)
    p = np.exp(tree.leaf_log_probs(pol))
    g = tree.leaf_returns()
    for val, prob in zip(L.values, L.probs):
        np.testing.assert_allclose(p[np.abs(g - val) <= 1e-12].sum(), prob, atol=1e-12)
    np.testing.assert_allclose(L.probs.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(L.probs @ L.values, evaluate(tree, pol).v[0], atol=1e-12)
