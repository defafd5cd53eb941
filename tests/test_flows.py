"""Exact GFlowNet flows (docs/math.md §8): trees, DAGs with fixed P_B, the forward mass push, and the
soft-RL equivalence — each checked against brute-force enumeration or the generic DP solver."""
import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import mdpsandbox as m
from mdpsandbox.envs.dag import DAG, multiset_dag, random_log_reward, tree_dag
from mdpsandbox.solvers.flows import (backward_log_policy, flows, kl_control_log_reward, log_reward_from_reward,
                                      soft_rl_solve, soft_values, state_log_probs, terminating_distribution,
                                      tv_distance)


def _all_paths(dag):
    """Brute force: every complete trajectory as (list of (s, a)), by depth-first search."""
    out = []

    def go(s, path):
        if dag.can_stop[s]:
            out.append(path + [(s, dag.stop)])
        for a in range(dag.n_actions):
            c = dag.children[s, a]
            if c >= 0:
                go(int(c), path + [(s, a)])

    go(0, [])
    return out


def _random_policy(dag, seed):
    rng = np.random.default_rng(seed)
    z = np.where(dag.valid, rng.normal(size=dag.valid.shape), -np.inf)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# ---------------------------------------------------------------------- DAG environment
def test_multiset_path_counts_equal_multinomial_coefficients():
    dag = multiset_dag(3, 4)
    assert dag.n_states == math.comb(4 + 3, 3)
    assert np.array_equal(dag.n_paths, dag.path_count_formula())
    # brute force: number of enumerated trajectories ending at each object
    counts = defaultdict(int)
    for p in _all_paths(dag):
        counts[p[-1][0]] += 1
    assert all(counts[int(x)] == dag.n_paths[x] for x in dag.objects)
    assert not dag.is_tree and dag.n_parents.max() == 3


def test_dag_rejects_backward_edges_and_dead_ends():
    with pytest.raises(ValueError, match="children"):
        DAG(np.array([[1], [0]]), np.array([False, True]))
    with pytest.raises(ValueError, match="dead end"):
        DAG(np.array([[1], [-1]]), np.array([False, False]))
    with pytest.raises(ValueError, match="max_size"):
        multiset_dag(2, 1, min_size=3)


# ---------------------------------------------------------------------- trees
@pytest.mark.parametrize("eos", [None, 2])
def test_tree_flow_equals_sum_of_rewards_below(eos):
    env = m.TokenMDP.random(3, 3, seed=1, eos=eos)
    dag = tree_dag(env)
    lr = random_log_reward(dag, seed=2)
    fl = flows(env, lr)
    leaves = env.leaves()
    R = np.exp(lr)
    for s, node in enumerate(dag.node_of_state):
        if node < 0:
            continue
        pre = env.prefix(int(node))
        below = [i for i in range(len(leaves)) if tuple(leaves.tokens[i, :len(pre)]) == pre
                 and leaves.length[i] > len(pre)]
        assert fl.log_flow[s] == pytest.approx(math.log(R[below].sum()), abs=1e-12)
    assert fl.log_z == pytest.approx(math.log(R.sum()), abs=1e-12)
    # P_F*(stop|x) = R(x)/F(x) = 1 at a complete sequence, and F(x) = R(x)
    assert np.allclose(fl.log_flow[dag.objects], lr, atol=1e-12)
    assert np.allclose(fl.log_pf[dag.objects, dag.stop], 0.0, atol=1e-12)


def test_tree_pf_star_is_ratio_of_child_flows():
    env = m.TokenMDP.random(2, 4, seed=3)
    dag = tree_dag(env)
    fl = flows(dag, random_log_reward(dag, seed=4))
    for s in range(dag.n_states):
        for a in range(dag.n_actions):
            c = dag.children[s, a]
            if c >= 0:
                assert fl.log_pf[s, a] == pytest.approx(fl.log_flow[c] - fl.log_flow[s], abs=1e-12)


# ---------------------------------------------------------------------- DAGs with a fixed P_B
@pytest.mark.parametrize("kind", ["uniform", "path_count"])
def test_dag_flow_is_the_reverse_topological_recursion(kind):
    dag = multiset_dag(3, 3)
    lr = random_log_reward(dag, seed=5)
    fl = flows(dag, lr, log_pb=kind)
    R = np.zeros(dag.n_states)
    R[dag.objects] = np.exp(lr)
    pb = np.exp(backward_log_policy(dag, kind))
    # the recursion written out edge by edge
    for s in range(dag.n_states):
        rhs = R[s] + sum(math.exp(fl.log_flow[c]) * pb[s, a] for a, c in enumerate(dag.children[s]) if c >= 0)
        assert math.exp(fl.log_flow[s]) == pytest.approx(rhs, rel=1e-12)
    # brute force: F(s) = Σ over complete trajectories through s of R(x) P_B(τ | x)
    brute = np.zeros(dag.n_states)
    for p in _all_paths(dag):
        x = p[-1][0]
        w = R[x] * np.prod([pb[s, a] for s, a in p[:-1]])
        for s, _ in p:
            brute[s] += w
    assert np.allclose(np.exp(fl.log_flow), brute, rtol=1e-12)
    assert fl.log_z == pytest.approx(math.log(np.exp(lr).sum()), abs=1e-12)


def test_backward_policies_normalise_and_path_count_is_n_ratio():
    dag = multiset_dag(3, 4)
    for kind in ("uniform", "path_count"):
        pb = np.exp(backward_log_policy(dag, kind))
        tot = np.zeros(dag.n_states)
        np.add.at(tot, dag.edge_dst, pb[dag.edge_src, dag.edge_action])
        assert np.allclose(tot[1:], 1.0, atol=1e-14)
    s = dag.index((1, 1, 0))
    c = dag.index((2, 1, 0))
    assert np.exp(backward_log_policy(dag, "path_count")[s, 0]) == pytest.approx(2 / 3)  # n(s)=2, n(c)=3
    assert np.exp(backward_log_policy(dag, "uniform")[s, 0]) == pytest.approx(1 / 2)


@pytest.mark.parametrize("kind", ["uniform", "path_count"])
def test_pf_star_terminates_at_r_over_z(kind):
    dag = multiset_dag(3, 3, min_size=1)
    lr = random_log_reward(dag, seed=6, scale=2.0)
    fl = flows(dag, lr, log_pb=kind)
    assert np.allclose(terminating_distribution(dag, fl.log_pf), fl.target, atol=1e-12)


def test_terminating_distribution_equals_enumeration_of_any_policy():
    dag = multiset_dag(2, 4, min_size=2)
    lp = _random_policy(dag, 7)
    brute = np.zeros(dag.n_objects)
    for p in _all_paths(dag):
        brute[dag.object_index[p[-1][0]]] += math.exp(sum(lp[s, a] for s, a in p))
    assert np.allclose(terminating_distribution(dag, lp), brute, atol=1e-14)
    assert terminating_distribution(dag, lp).sum() == pytest.approx(1.0, abs=1e-12)
    reach = np.exp(state_log_probs(dag, lp))
    assert reach[0] == 1.0


# ---------------------------------------------------------------------- soft-RL equivalence
@pytest.mark.parametrize("kind", ["uniform", "path_count"])
@pytest.mark.parametrize("solver", ["backward", "solve"])
def test_soft_rl_with_log_pb_rewards_equals_log_flows(kind, solver):
    dag = multiset_dag(3, 3)
    lr = random_log_reward(dag, seed=8, scale=1.5)
    fl = flows(dag, lr, log_pb=kind)
    sol = soft_values(dag, lr, log_pb=kind) if solver == "backward" else soft_rl_solve(dag, lr, log_pb=kind)
    v = dag.valid
    assert np.max(np.abs(sol.v - fl.log_flow)) < 1e-10                      # V*_soft = log F
    assert np.max(np.abs(sol.q[v] - fl.log_edge_flow[v])) < 1e-10          # Q* = log F(s') + log P_B(s|s')
    assert np.max(np.abs(sol.log_policy[v] - fl.log_pf[v])) < 1e-10        # π*_soft = P_F*
    assert abs(sol.v[0] - fl.log_z) < 1e-10                                # V*(s0) = log Z


@settings(max_examples=15, deadline=None)
@given(V=st.integers(1, 3), n=st.integers(1, 3), seed=st.integers(0, 10**6),
       kind=st.sampled_from(["uniform", "path_count"]))
def test_soft_rl_equivalence_property(V, n, seed, kind):
    dag = multiset_dag(V, n, min_size=0)
    lr = random_log_reward(dag, seed=seed, scale=3.0)
    fl = flows(dag, lr, log_pb=kind)
    sol = soft_values(dag, lr, log_pb=kind)
    assert np.max(np.abs(sol.v - fl.log_flow)) < 1e-10
    assert np.allclose(terminating_distribution(dag, sol.log_policy), fl.target, atol=1e-10)


@pytest.mark.parametrize("solver", ["backward", "solve"])
def test_soft_q_without_log_pb_samples_proportional_to_paths_times_reward(solver):
    dag = multiset_dag(3, 3)
    lr = random_log_reward(dag, seed=9)
    R = np.exp(lr)
    biased = dag.n_paths[dag.objects] * R / np.sum(dag.n_paths[dag.objects] * R)
    run = soft_values if solver == "backward" else soft_rl_solve
    p_plain = terminating_distribution(dag, run(dag, lr, log_pb=None).log_policy)
    assert np.max(np.abs(p_plain - biased)) < 1e-6                     # ∝ n(x) R(x), uncorrected
    assert tv_distance(p_plain, R / R.sum()) > 0.05                    # ... which is not R/Z here
    for kind in ("uniform", "path_count"):
        p_fixed = terminating_distribution(dag, run(dag, lr, log_pb=kind).log_policy)
        assert np.max(np.abs(p_fixed - R / R.sum())) < 1e-6            # corrected with log P_B rewards


def test_soft_q_on_a_tree_is_unbiased():
    env = m.TokenMDP.random(2, 3, seed=10)
    lr = random_log_reward(tree_dag(env), seed=11)
    p = terminating_distribution(tree_dag(env), soft_values(env, lr, log_pb=None).log_policy)
    assert np.allclose(p, np.exp(lr) / np.exp(lr).sum(), atol=1e-12)   # n(x) ≡ 1 on a tree


@pytest.mark.parametrize("solver", ["backward", "solve"])
def test_gamma_below_one_breaks_proportionality(solver):
    dag = multiset_dag(3, 3)
    lr = random_log_reward(dag, seed=12)
    target = np.exp(lr) / np.exp(lr).sum()
    run = soft_values if solver == "backward" else soft_rl_solve
    p1 = terminating_distribution(dag, run(dag, lr, log_pb="uniform", gamma=1.0).log_policy)
    p9 = terminating_distribution(dag, run(dag, lr, log_pb="uniform", gamma=0.9).log_policy)
    assert tv_distance(p1, target) < 1e-10
    assert tv_distance(p9, target) > 1e-2


@pytest.mark.parametrize("reward", ["terminal", "dense"])
def test_kl_control_is_gflownet_with_ref_times_exp_reward(reward):
    beta = 0.3
    env = m.TokenMDP.random(3, 3, seed=13, reward=reward)
    fl = flows(env, kl_control_log_reward(env, beta))
    sol = m.solve(env, beta=beta)
    assert fl.log_z == pytest.approx(sol.v[0] / beta, abs=1e-10)
    assert np.max(np.abs(fl.dag.token_policy(fl.log_pf) - sol.policy)) < 1e-10


# ---------------------------------------------------------------------- bad input
def test_nonpositive_reward_raises_unless_clipped():
    dag = multiset_dag(2, 2)
    R = np.ones(dag.n_objects)
    R[1] = 0.0
    with pytest.raises(ValueError, match="reward must be > 0"):
        log_reward_from_reward(R)
    lr = log_reward_from_reward(R, log_reward_floor=-20.0)
    assert lr[1] == -20.0 and lr[0] == 0.0
    with pytest.raises(ValueError, match="log_reward_floor"):
        flows(dag, np.where(R > 0, 0.0, -np.inf))
    fl = flows(dag, np.where(R > 0, 0.0, -np.inf), log_reward_floor=-20.0)
    assert fl.target[1] == pytest.approx(math.exp(-20) / (fl.target.size - 1 + math.exp(-20)), rel=1e-12)
    with pytest.raises(ValueError, match="log_reward"):
        flows(dag, np.zeros(dag.n_objects + 1))


def test_bad_beta_pb_and_policy_raise():
    env = m.TokenMDP.random(2, 2, seed=0)
    for beta in (0.0, -1.0):
        with pytest.raises(ValueError, match="beta"):
            kl_control_log_reward(env, beta)
    dag = multiset_dag(2, 2)
    with pytest.raises(ValueError, match="log_pb"):
        flows(dag, np.zeros(dag.n_objects), log_pb="nonsense")
    with pytest.raises(ValueError, match="normalised"):
        terminating_distribution(dag, np.where(dag.valid, 0.0, -np.inf))
    with pytest.raises(ValueError, match="gamma"):
        soft_values(dag, np.zeros(dag.n_objects), gamma=1.5)
