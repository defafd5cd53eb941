"""Pure helper functions of the Q♯, distributional and GFlowNet claim modules (validation/), each
checked against an independent exact reference (enumeration, direct sums, exact fractions, the
package's solvers). The claims themselves run with ``mdpsandbox validate --quick``."""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the claim modules live in <repo>/validation

import mdpsandbox as m  # noqa: E402
from mdpsandbox.envs.dag import random_log_reward, tree_dag  # noqa: E402
from mdpsandbox.solvers.flows import soft_values, terminating_distribution, tv_distance  # noqa: E402
from mdpsandbox.solvers.return_laws import cd_policy, qsharp_q, return_distribution  # noqa: E402
from validation import distributional as vd  # noqa: E402
from validation import gflownet as vg  # noqa: E402
from validation import qsharp as vq  # noqa: E402


# ---------------------------------------------------------------------- perfect-sampler TV floor
@settings(deadline=None, max_examples=40)
@given(st.integers(2, 4), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_expected_tv_closed_form_equals_multinomial_enumeration(k, n, seed):
    p = np.random.default_rng(seed).dirichlet(np.ones(k))
    assert abs(vg.expected_tv_perfect_sampler(p, n) - vg.expected_tv_enumeration(p, n)) <= 1e-12


@pytest.mark.parametrize("n", [1, 2, 5, 10, 37, 200])
@pytest.mark.parametrize("p", [0.0, 1e-6, 0.05, 0.2, 0.25, 0.5, 0.7, 0.999, 1.0])
def test_binomial_mean_abs_deviation_equals_direct_sum(n, p):
    k = np.arange(n + 1)
    direct = float(np.sum(binom.pmf(k, n, p) * np.abs(k - n * p)))
    assert abs(vg.binomial_mean_abs_deviation(n, np.array([p]))[0] - direct) <= 1e-12 * max(1.0, n)


def test_expected_tv_rejects_bad_input():
    with pytest.raises(ValueError, match="probability vector"):
        vg.expected_tv_perfect_sampler(np.array([0.5, 0.6]), 10)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        vg.expected_tv_perfect_sampler(np.array([0.5, 0.5]), 0)


# ---------------------------------------------------------------------- hypergrid
@pytest.mark.parametrize("side,dim", [(3, 2), (4, 3), (20, 2)])
def test_hypergrid_path_counts_are_multinomial(side, dim):
    dag = vg.hypergrid_dag(side, dim)
    assert dag.n_states == side**dim and dag.n_objects == side**dim
    np.testing.assert_allclose(dag.n_paths, vg.multinomial_path_counts(dag.coords), rtol=1e-12)
    # every move adds one to exactly one coordinate
    s, a = np.nonzero(dag.children >= 0)
    d = dag.coords[dag.children[s, a]] - dag.coords[s]
    assert np.all(d.sum(axis=1) == 1) and np.all(d[np.arange(len(a)), a] == 1)


def test_hypergrid_reward_levels():
    dag = vg.hypergrid_dag(20, 2)
    R = np.exp(vg.hypergrid_log_reward(dag, 20))
    np.testing.assert_allclose(np.unique(np.round(R, 12)), [0.1, 0.6, 2.6])


# ---------------------------------------------------------------------- Munchausen
def test_munchausen_alpha_zero_is_soft_q():
    dag = vg.hypergrid_dag(5, 2)
    lr = vg.hypergrid_log_reward(dag, 5)
    lp, _, _ = vg.munchausen_soft_q(dag, lr, 0.0, log_pb="uniform")
    ref = soft_values(dag, lr, log_pb="uniform").log_policy
    np.testing.assert_allclose(np.where(dag.valid, lp, 0), np.where(dag.valid, ref, 0), atol=1e-12)


@pytest.mark.parametrize("alpha", [0.2, 0.6, 0.9])
def test_munchausen_fixed_point_is_soft_optimum_at_temperature_one_minus_alpha(alpha):
    # on a tree (no log P_B), the soft optimum at temperature 1 − α is soft_values with log R/(1 − α)
    dag = tree_dag(m.TokenMDP.random(3, 3, seed=2))
    lr = random_log_reward(dag, seed=3)
    lp, k, step = vg.munchausen_soft_q(dag, lr, alpha)
    ref = soft_values(dag, lr / (1 - alpha), log_pb=None).log_policy
    np.testing.assert_allclose(np.where(dag.valid, lp, 0), np.where(dag.valid, ref, 0), atol=1e-9)
    assert step <= 1e-12 and k > 1
    p = terminating_distribution(dag, lp)
    assert tv_distance(p, vg._normalised(lr / (1 - alpha))) <= 1e-9


def test_munchausen_rejects_alpha_one():
    dag = vg.hypergrid_dag(3, 2)
    with pytest.raises(ValueError, match="alpha"):
        vg.munchausen_soft_q(dag, vg.hypergrid_log_reward(dag, 3), 1.0)


# ---------------------------------------------------------------------- categorical fixed point
def test_worked_example_exact_fractions():
    F, z = vd.worked_example_exact()
    assert F == [[0, 0, Fraction(5, 14), Fraction(11, 14)], [Fraction(15, 28), Fraction(25, 28), 1, 1]]
    # means z_m − ς Σ F_i = 10/7 and 2/7 = V^π
    assert [z[-1] - Fraction(1, 2) * sum(row) for row in F] == [Fraction(10, 7), Fraction(2, 7)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_mrp_is_stochastic_with_fixed_branching(seed):
    P, r = vd.random_mrp(7, 3, seed)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-14)
    assert np.all((P > 0).sum(axis=1) == 3) and r.shape == (7,) and np.all((r >= 0) & (r < 1))
    np.testing.assert_allclose(vd.mrp_value(P, r, 0.9), np.linalg.solve(np.eye(7) - 0.9 * P, r))


# ---------------------------------------------------------------------- Q♯ helpers
@pytest.mark.parametrize("beta", [1e-8, 1e-3, 0.05, 1.0, 10.0, 1e4])
def test_counterexample_closed_form_matches_exact_policies(beta):
    env = m.qsharp_counterexample()
    cf = vq.counterexample_closed_form(beta)
    assert all(np.isfinite(v) for v in cf.values())
    pi_cd = cd_policy(env, beta)
    assert abs(pi_cd[0, 0] - cf["cd_p_left"]) <= 1e-12
    assert abs(vq.policy_report(env, pi_cd, beta)[1] - cf["cd_reward"]) <= 1e-12
    _, r_opt, kl_opt = vq.policy_report(env, m.solve(env, beta=beta).policy, beta)
    assert abs(r_opt - cf["opt_reward"]) <= 1e-12 and abs(kl_opt - cf["opt_kl"]) <= 1e-9 * max(1.0, kl_opt)
    assert abs(cf["kl_limit"] - (np.log(2) + np.log(20))) <= 1e-15


def test_perturbed_laws_zero_tilt_is_identity_and_hellinger_bounds():
    env = m.bernoulli_tree(3, 3, seed=0)
    laws = return_distribution(env)
    same = vq.perturbed_laws(laws, 0.0)
    np.testing.assert_allclose(same.edge_probs, laws.edge_probs, atol=1e-15)
    assert np.max(vq.edge_hellinger(laws, same)) <= 1e-7
    hat = vq.perturbed_laws(laws, 0.5, seed=1)
    np.testing.assert_allclose(np.add.reduceat(hat.edge_probs, hat.edge_offsets[:-1]), 1.0, atol=1e-14)
    H = vq.edge_hellinger(laws, hat)
    assert np.all((H >= 0) & (H <= 1)) and H.max() > 0
    # Hellinger from its definition ½ Σ (√p − √q)² = 1 − Σ √(pq) on one two-atom edge
    e = int(np.argmax(np.diff(laws.edge_offsets) == 2))
    a, b = laws.edge_offsets[e], laws.edge_offsets[e + 1]
    h2 = 0.5 * np.sum((np.sqrt(laws.edge_probs[a:b]) - np.sqrt(hat.edge_probs[a:b])) ** 2)
    assert abs(H[e] ** 2 - h2) <= 1e-14


def test_guided_policy_with_exact_qsharp_is_optimal():
    env = m.TokenMDP.random(3, 3, seed=4)
    for beta in (1e-3, 0.3, 30.0):
        pi = vq.guided(env, qsharp_q(env, beta), beta)
        np.testing.assert_allclose(pi, m.solve(env, beta=beta).policy, atol=1e-12)


def test_torch_threads_restores_the_setting():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with vg.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
