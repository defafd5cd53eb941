"""Token MDPs (docs/math.md §4): the canonical node order contract, leaves, sampling, and the exact
KL-regularised solution on trees — checked against brute-force enumeration of token sequences
written here (itertools.product, not env.leaves()) and against regularised VI/PI on to_tabular().
"""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import stats

import mdpsandbox as ms
from mdpsandbox.testing import assert_policy_close, assert_values_close, policies, token_mdps


# ---------------------------------------------------------------------- independent enumeration
def node_of(prefix, V):
    """Canonical node index written from the contract: Σ_{k<h} V^k + base-V value of the prefix."""
    off = 0
    for t in prefix:
        off = off * V + t
    return sum(V**k for k in range(len(prefix))) + off


def sequences(V, H, eos=None):
    """Every complete sequence: length-H token tuples truncated after the first EOS (deduplicated)."""
    out = set()
    for x in itertools.product(range(V), repeat=H):
        if eos is not None and eos in x:
            x = x[: x.index(eos) + 1]
        out.add(x)
    return sorted(out)


def continuations(V, H, eos, prefix):
    """Complete sequences extending ``prefix`` (prefix itself non-terminal)."""
    return [x for x in sequences(V, H, eos) if x[: len(prefix)] == tuple(prefix) and len(x) > len(prefix)]


def seq_stats(env, x, policy=None, prompt=0, start=0):
    """(log prob of x[start:] given x[:start] under policy (default π_ref), Σ_{t≥start} γ^{t-start} r_t)."""
    V = env.vocab_size
    logits = env._ref[prompt]
    logp, ret = 0.0, 0.0
    for t in range(start, len(x)):
        n = node_of(x[:t], V)
        if policy is None:
            row = logits[n] - np.log(np.sum(np.exp(logits[n] - logits[n].max()))) - logits[n].max()
            logp += row[x[t]]
        else:
            logp += np.log(policy[n, x[t]])
        ret += env.gamma ** (t - start) * env._rew[prompt, n, x[t]]
    return logp, ret


def lse(a):
    a = np.asarray(a, dtype=float)
    m = a.max()
    return m + np.log(np.sum(np.exp(a - m)))


# ---------------------------------------------------------------------- node order contract
def test_worked_example_of_the_canonical_node_order_docstring():
    env = ms.TokenMDP(2, 3, np.zeros((7, 2)), np.zeros((7, 2)))
    assert env.n_nodes == 7
    assert [env.prefix(n) for n in range(7)] == [(), (0,), (1,), (0, 0), (0, 1), (1, 0), (1, 1)]
    assert env.index((1, 0)) == 3 + 1 * 2 + 0 == 5
    assert list(env.children(2)) == [5, 6]
    assert env.parent(6) == 2 and env.parent(0) == -1
    assert list(env.children(5)) == [-1, -1]  # (1, 0, 1) is the terminal edge (node 5, token 1)
    assert list(env.level_start) == [0, 1, 3, 7]


@given(V=st.integers(1, 4), H=st.integers(1, 4), eos=st.booleans(), data=st.data())
def test_index_prefix_children_parent_round_trip(V, H, eos, data):
    e = data.draw(st.integers(0, V - 1)) if eos else None
    env = ms.TokenMDP(V, H, np.zeros((ms.envs.n_tree_nodes(V, H), V)), np.zeros((ms.envs.n_tree_nodes(V, H), V)), eos=e)
    assert env.n_nodes == sum(V**h for h in range(H))
    for x in itertools.chain.from_iterable(itertools.product(range(V), repeat=h) for h in range(H)):
        n = env.index(x)
        assert n == node_of(x, V) and env.prefix(n) == x and env.level(n) == len(x)
        ch = env.children(n)
        for a in range(V):
            if len(x) + 1 == H or a == e:
                assert ch[a] == -1
            else:
                assert ch[a] == node_of(x + (a,), V) and env.parent(ch[a]) == n
    assert env.reachable.sum() == len({x[:h] for x in sequences(V, H, e) for h in range(len(x)) if h < H})


@pytest.mark.parametrize("V,H,eos", [(2, 3, None), (3, 3, None), (3, 3, 0), (3, 4, 2), (1, 3, None), (2, 1, 1)])
def test_leaves_are_exactly_the_complete_sequences(V, H, eos):
    env = ms.TokenMDP.random(V, H, seed=0, eos=eos)
    lv = env.leaves()
    want = sequences(V, H, eos)
    got = [tuple(int(t) for t in row[:L]) for row, L in zip(lv.tokens, lv.length)]
    assert sorted(got) == want
    # count formula: Σ_{L<H} (V−1)^{L−1} sequences end in EOS early, (V−1)^{H−1}·V run to length H
    count = V**H if eos is None else sum((V - 1) ** (L - 1) for L in range(1, H)) + (V - 1) ** (H - 1) * V
    assert len(lv) == count
    for x, n, a in zip(got, lv.node, lv.action):
        assert node_of(x[:-1], V) == n and x[-1] == a
    # leaf probabilities under π_ref sum to 1, and equal the product of per-token probabilities
    lp = env.leaf_log_probs()
    assert np.isclose(np.exp(lp).sum(), 1.0, atol=1e-12)
    assert np.allclose(lp, [seq_stats(env, x)[0] for x in got], atol=1e-12)
    assert np.allclose(env.leaf_returns(), [seq_stats(env, x)[1] for x in got], atol=1e-12)


def test_node_log_probs_equal_products_of_token_probabilities():
    env = ms.TokenMDP.random(3, 4, seed=1, eos=1)
    pol = np.random.default_rng(0).dirichlet(np.ones(3), size=env.n_nodes)
    nlp = env.node_log_probs(pol)
    for n in range(env.n_nodes):
        x = env.prefix(n)
        if 1 in x:
            assert nlp[n] == -np.inf and not env.reachable[n]
        else:
            assert np.isclose(nlp[n], sum(np.log(pol[node_of(x[:t], 3), x[t]]) for t in range(len(x))), atol=1e-12)


# ---------------------------------------------------------------------- sampling
@pytest.mark.parametrize("eos", [None, 2])
def test_sample_leaf_frequencies_match_exact_leaf_probabilities(eos):
    env = ms.TokenMDP.random(3, 3, seed=4, eos=eos)
    pol = ms.solve(env, beta=0.5).policy
    n = 40_000
    tr = env.sample(pol, n=n, seed=123)
    lv = env.leaves()
    keys = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(lv.node, lv.action))}
    last = tr.lengths - 1
    idx = np.array([keys[(int(tr.nodes[i, last[i]]), int(tr.tokens[i, last[i]]))] for i in range(n)])
    counts = np.bincount(idx, minlength=len(lv))
    p = np.exp(env.leaf_log_probs(pol))
    chi2 = np.sum((counts - n * p) ** 2 / (n * p))
    assert stats.chi2.sf(chi2, df=len(lv) - 1) > 1e-4, chi2  # seeded: deterministic
    # node visit frequencies against exact node_log_probs
    visits = np.bincount(tr.nodes[tr.mask], minlength=env.n_nodes) / n
    pn = np.exp(env.node_log_probs(pol))
    assert np.all(np.abs(visits - pn) <= 5 * np.sqrt(pn * (1 - pn) / n) + 1e-12)
    # trajectories are consistent with the tree: rewards, nodes, padding, returns
    assert np.all(tr.rewards[tr.mask] == env.rewards[tr.nodes[tr.mask], tr.tokens[tr.mask]])
    assert np.all(tr.rewards[~tr.mask] == 0) and np.all(tr.nodes[~tr.mask] == -1)
    assert np.allclose(tr.returns, env.leaf_returns()[idx])


def test_same_seed_same_samples_and_different_seed_different_samples():
    env = ms.TokenMDP.random(4, 4, seed=0, eos=3, n_prompts=2)
    a, b, c = env.sample(n=500, seed=7), env.sample(n=500, seed=7), env.sample(n=500, seed=8)
    for f in ("prompts", "nodes", "tokens", "rewards", "lengths"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.tokens, c.tokens)


def test_sample_multi_prompt_uses_each_prompts_tree():
    env = ms.TokenMDP.random(3, 2, seed=2, n_prompts=3)
    pol = ms.solve(env, beta=1.0).policy  # (3, N, V)
    prompts = np.repeat(np.arange(3), 20_000)
    tr = env.sample(pol, n=len(prompts), seed=0, prompts=prompts)
    assert np.array_equal(tr.prompts, prompts)
    for p in range(3):
        first = tr.tokens[prompts == p, 0]
        freq = np.bincount(first, minlength=3) / len(first)
        assert np.all(np.abs(freq - pol[p, 0]) < 0.015)
        rows = prompts == p
        assert np.all(tr.rewards[rows][tr.mask[rows]] == env.rewards[p][tr.nodes[rows][tr.mask[rows]], tr.tokens[rows][tr.mask[rows]]])


# ---------------------------------------------------------------------- §4 backward induction = VI/PI on to_tabular
@pytest.mark.parametrize("reg", [dict(), dict(temperature=0.3), dict(beta=0.3), dict(beta=0.2, temperature=0.1)],
                         ids=["hard", "entropy", "kl", "kl+entropy"])
@given(env=token_mdps(max_vocab=3, max_horizon=3, eos=None, n_prompts=None, gamma=None))
def test_tree_backward_induction_equals_regularised_vi_and_pi_on_to_tabular(env, reg):
    tree = ms.solve(env, **reg)
    assert tree.method == "backward" and tree.converged
    tab = env.to_tabular()
    for method in ("pi", "vi"):
        sol = ms.solve(tab, method=method, tol=1e-9, **reg)  # to_tabular carries π_ref
        v = sol.v[:-1].reshape(env.shape[:-1])
        q = sol.q[:-1].reshape(env.shape)
        assert_values_close(tree.v, v, atol=1e-9, rtol=1e-9, env=env, name=f"V (tree vs {method})")
        assert_values_close(tree.q, q, atol=1e-9, rtol=1e-9, env=env, name=f"Q (tree vs {method})")
        if reg:
            assert_policy_close(tree.policy, sol.policy[:-1].reshape(env.shape), atol=1e-7, env=env)
        # the front door's own cross-check path
        via = ms.solve(env, method=method, tol=1e-9, **reg)
        assert_values_close(tree.v, via.v, atol=1e-9, rtol=1e-9, env=env)


def test_multi_prompt_solution_is_each_prompt_solved_alone():
    env = ms.TokenMDP.random(3, 3, seed=5, n_prompts=3, eos=0, reward="dense")
    sol = ms.solve(env, beta=0.4)
    for p in range(3):
        one = ms.TokenMDP(3, 3, env.ref_logits[p], env.rewards[p], eos=0)
        s1 = ms.solve(one, beta=0.4)
        assert_values_close(sol.v[p], s1.v, atol=1e-13, rtol=0, env=one)
        assert_policy_close(sol.policy[p], s1.policy, atol=1e-13, env=one)
    assert np.isclose(sol.value_initial, np.mean(sol.v[:, 0]))


def test_ref_policy_argument_equals_tree_with_those_reference_logits():
    env = ms.TokenMDP.random(3, 3, seed=6)
    p = np.random.default_rng(1).dirichlet(np.ones(3), size=env.n_nodes)
    a = ms.solve(env, beta=0.3, ref_policy=p)
    b = ms.solve(env.with_ref_logits(np.log(p) + 7.0), beta=0.3)  # per-node offsets do not matter
    assert_values_close(a.v, b.v, atol=1e-12, rtol=1e-12, env=env)
    assert_policy_close(a.policy, b.policy, atol=1e-12, env=env)


# ---------------------------------------------------------------------- §4 closed forms by enumeration
@pytest.mark.parametrize("reward", ["terminal", "dense"])
@pytest.mark.parametrize("eos", [None, 1])
@pytest.mark.parametrize("beta", [0.05, 1.0, 20.0])
def test_optimal_sequence_policy_is_ref_times_exp_reward_over_beta_and_root_value_is_beta_log_Z(beta, eos, reward):
    """γ = 1: π*(x) = π_ref(x) e^{R(x)/β}/Z over all complete sequences and V*(root) = β log Z,
    Z = E_{π_ref} e^{R/β} (R(x) = sum of token rewards; the sequence-reward case is 'terminal')."""
    V, H = 3, 3
    env = ms.TokenMDP.random(V, H, seed=9, eos=eos, reward=reward, offset_scale=2.0)
    sol = ms.solve(env, beta=beta)
    xs = sequences(V, H, eos)
    logref, R = np.array([seq_stats(env, x) for x in xs]).T
    logZ = lse(logref + R / beta)
    assert abs(sol.v[0] - beta * logZ) <= 1e-12 * (1 + abs(sol.v[0]))
    logpi_star = np.array([seq_stats(env, x, sol.policy)[0] for x in xs])
    assert np.allclose(logpi_star, logref + R / beta - logZ, atol=1e-10, rtol=0)


@pytest.mark.parametrize("gamma", [1.0, 0.8])
@pytest.mark.parametrize("eos", [None, 0])
def test_trajectory_kl_of_optimal_policy_equals_sum_of_per_token_kls_and_value_identity(gamma, eos):
    V, H, beta = 3, 3, 0.3
    env = ms.TokenMDP.random(V, H, seed=3, eos=eos, reward="dense", gamma=gamma)
    sol = ms.solve(env, beta=beta)
    ev = ms.evaluate(env, sol.policy)  # reward-only value of π*, per-node KL to π_ref
    reach = np.exp(env.node_log_probs(sol.policy))
    disc = np.array([gamma ** len(env.prefix(n)) for n in range(env.n_nodes)])
    per_token = np.sum(reach * ev.kl)
    xs = sequences(V, H, eos)
    lp_star = np.array([seq_stats(env, x, sol.policy)[0] for x in xs])
    lp_ref = np.array([seq_stats(env, x)[0] for x in xs])
    seq_kl = np.sum(np.exp(lp_star) * (lp_star - lp_ref))
    assert np.isclose(seq_kl, per_token, atol=1e-12, rtol=1e-12)
    # V*(root) = E_{π*}[Σ γ^t r_t] − β E_{π*}[Σ γ^t KL_t]
    assert np.isclose(sol.v[0], ev.v[0] - beta * np.sum(reach * disc * ev.kl), atol=1e-12, rtol=1e-12)
    assert np.isclose(ms.evaluate(env, sol.policy, beta=beta).v[0], sol.v[0], atol=1e-12, rtol=1e-12)
    if gamma == 1.0:
        R = np.array([seq_stats(env, x)[1] for x in xs])
        assert np.isclose(sol.v[0], np.exp(lp_star) @ R - beta * seq_kl, atol=1e-12)


@pytest.mark.parametrize("reward", ["terminal", "dense", "bernoulli"])
@pytest.mark.parametrize("eos", [None, 2])
@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_qsharp_identity_q_star_is_beta_log_mean_exp_of_ref_reward_to_go(beta, eos, reward):
    """Q*(s,a) = β log E_{z~Z^{π_ref}(s,a)} e^{z/β} at every edge (γ = 1), Z by enumeration."""
    V, H = 3, 3
    env = ms.TokenMDP.random(V, H, seed=12, eos=eos, reward=reward)
    sol = ms.solve(env, beta=beta)
    checked = 0
    for h in range(H):
        for prefix in itertools.product(range(V), repeat=h):
            if eos is not None and eos in prefix:
                continue
            n = node_of(prefix, V)
            for a in range(V):
                conts = [x for x in continuations(V, H, eos, prefix) if x[h] == a]
                # law of the reward-to-go after (s, a): r(s,a) + rewards of π_ref's continuation
                logp, z = np.array([seq_stats(env, x, start=h + 1) for x in conts]).T
                z = z + env.rewards[n, a]
                q_sharp = beta * lse(logp + z / beta)
                assert abs(sol.q[n, a] - q_sharp) <= 1e-12 * (1 + abs(q_sharp)), (prefix, a)
                checked += 1
    assert checked > 0


def test_qsharp_formula_overestimates_q_star_with_stochastic_transitions():
    """With a random transition after (s0, a) the formula β log E e^{Z/β} exceeds Q* (Jensen gap),
    and the gap vanishes when both successors have the same value."""
    beta = 0.5

    def build(r2):
        # states: 0 (start, 1 action), 1 and 2 (2 actions each), 3 terminal
        P = np.zeros((4, 2, 4))
        P[0, :, 1] = P[0, :, 2] = 0.5
        P[1:, :, 3] = 1.0
        R = np.array([[0.0, 0.0], [1.0, 0.0], [r2, r2 - 1.0], [0.0, 0.0]])
        ref = np.full((4, 2), 0.5)
        ref[0] = [1.0, 0.0]
        return ms.TabularMDP(P, R, 1.0, terminal=[3]), ref

    for r2, strict in ((-2.0, True), (1.0, False)):
        mdp, ref = build(r2)
        q = ms.solve(mdp, beta=beta, ref_policy=ref).q[0, 0]
        # Z^{π_ref}(s0, a0): reward-to-go over (successor, action) with prob 0.5 · 0.5
        z = np.array([mdp.R[s, a] for s in (1, 2) for a in (0, 1)])
        q_sharp = beta * np.log(np.mean(np.exp(z / beta)))
        exact = 0.5 * sum(beta * np.log(np.mean(np.exp(mdp.R[s] / beta))) for s in (1, 2))
        assert np.isclose(q, exact, atol=1e-12)
        if strict:
            assert q_sharp - q > 0.1
        else:
            assert np.isclose(q_sharp, q, atol=1e-12)


@given(env=token_mdps(max_vocab=3, max_horizon=3, eos=None, n_prompts=1, gamma=1.0), data=st.data())
def test_kl_optimal_value_dominates_regularised_value_of_random_policies(env, data):
    beta = data.draw(st.sampled_from([0.1, 1.0]))
    sol = ms.solve(env, beta=beta)
    pi = data.draw(policies(env))
    ev = ms.evaluate(env, pi, beta=beta)
    assert np.all(ev.v <= sol.v + 1e-9 * (1 + np.abs(sol.v)))


def test_hard_and_entropy_tree_solutions_by_enumeration():
    V, H = 2, 3
    env = ms.TokenMDP.random(V, H, seed=1, reward="dense")
    xs = sequences(V, H)
    R = np.array([seq_stats(env, x)[1] for x in xs])
    assert np.isclose(ms.solve(env).v[0], R.max(), atol=1e-13)
    tau = 0.7  # γ = 1 soft: V*_τ(root) = τ log Σ_x e^{R(x)/τ} (uniform-free sum over sequences)
    assert np.isclose(ms.solve(env, temperature=tau).v[0], tau * lse(R / tau), atol=1e-12)


# ---------------------------------------------------------------------- assertion helpers name prefixes
def test_assert_values_close_message_names_prompt_node_prefix_and_token():
    env = ms.TokenMDP.random(3, 3, seed=0, n_prompts=2, eos=2)
    q = ms.solve(env, beta=0.5).q
    bad = q.copy()
    n = env.index((1, 0))
    bad[1, n, 2] += 0.25
    with pytest.raises(AssertionError) as exc:
        assert_values_close(bad, q, atol=1e-6, rtol=0, env=env, name="Q")
    msg = str(exc.value)
    assert "prompt 1" in msg and f"node {n}" in msg and "prefix (1, 0)" in msg and "token 2 = EOS" in msg
    assert repr(q[1, n, 2]) in msg and "1 of" in msg


def test_assert_policy_close_message_names_prefix_and_token():
    env = ms.TokenMDP.random(2, 3, seed=0)
    pol = ms.solve(env, beta=0.5).policy
    bad = pol.copy()
    n = env.index((0, 1))
    bad[n] = bad[n, ::-1]
    with pytest.raises(AssertionError) as exc:
        assert_policy_close(bad, pol, atol=1e-6, env=env)
    msg = str(exc.value)
    assert "prefix (0, 1)" in msg and f"node {n}" in msg and "token" in msg and "total variation" in msg
    not_dist = pol.copy()
    not_dist[env.index((1,))] *= 2
    with pytest.raises(AssertionError, match=r"not a distribution at prompt 0, node 2 \(prefix \(1,\)\)"):
        assert_policy_close(not_dist, pol, atol=1e-6, env=env)
    assert_policy_close(pol, pol.copy(), atol=0, env=env)  # passes


@given(env=token_mdps(max_vocab=3, max_horizon=3, eos=None, n_prompts=None, gamma=None), data=st.data())
def test_strategies_draw_valid_token_mdps_and_policies(env, data):
    pi = data.draw(policies(env))
    assert pi.shape == env.shape
    env.check_policy(pi)
    assert np.all(np.isfinite(env.ref_logits)) and np.all(np.isfinite(env.rewards))
