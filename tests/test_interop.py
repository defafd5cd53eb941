"""Converters from/to gymnasium toy-text tables and QuantEcon DiscreteDP inputs: round trips and the
libraries' documented examples solved to their published (or exactly derived) values."""
import itertools
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings

import mdpsandbox as ms
from mdpsandbox.envs.interop import from_gymnasium, from_quantecon, to_gymnasium, to_quantecon
from mdpsandbox.solvers.classic import solve_ssp
from mdpsandbox.testing import tabular_mdps

gym = pytest.importorskip("gymnasium")


def _independent_vi(P, S, A, gamma, tol=1e-13):
    """Value iteration straight on the toy-text dict (terminated transitions bootstrap 0)."""
    v = np.zeros(S)
    while True:
        q = np.array([[sum(p * (r + (0.0 if term else gamma * v[s2])) for p, s2, r, term in P[s][a])
                       for a in range(A)] for s in range(S)])
        nv = q.max(axis=1)
        if np.abs(nv - v).max() < tol:
            return nv
        v = nv


@pytest.mark.parametrize("name,kwargs", [("FrozenLake-v1", {}), ("FrozenLake-v1", {"map_name": "8x8"}),
                                         ("Taxi-v4", {})])
def test_gymnasium_envs_match_an_independent_vi_on_the_P_dict(name, kwargs):
    env = gym.make(name, **kwargs).unwrapped
    S, A = env.observation_space.n, env.action_space.n
    mdp = from_gymnasium(env, gamma=0.95)
    assert mdp.n_states == S + 1 and mdp.terminal[S]
    np.testing.assert_allclose(mdp.initial[:S], env.initial_state_distrib)
    ours = ms.solve(mdp, method="pi").v[:S]
    ref = _independent_vi(env.P, S, A, 0.95)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_transition_dependent_termination_goes_to_the_sink():
    # from state 0, action 0 ends the episode w.p. 1/2 (landing on state 1, flagged terminated) and
    # otherwise moves to state 1 without ending: only the terminated half stops
    P = {0: {0: [(0.5, 1, 1.0, True), (0.5, 1, 0.0, False)]}, 1: {0: [(1.0, 1, -1.0, False)]}}
    mdp = from_gymnasium(P=P, n_states=2, n_actions=1, gamma=0.5, initial=[1.0, 0.0])
    np.testing.assert_allclose(mdp.dense_P()[0, 0], [0.0, 0.5, 0.5])
    v = ms.solve(mdp, method="pi").v
    # v1 = −1/(1−γ) = −2; v0 = 0.5·1 + 0.5·γ·v1 = 0.5 − 0.5
    np.testing.assert_allclose(v[:2], [0.0, -2.0], atol=1e-14)


def test_from_gymnasium_refuses_malformed_tables():
    with pytest.raises(ValueError, match="sum to"):
        from_gymnasium(P={0: {0: [(0.5, 0, 0.0, False)]}}, n_states=1, n_actions=1)
    with pytest.raises(ValueError, match="outside"):
        from_gymnasium(P={0: {0: [(1.0, 3, 0.0, False)]}}, n_states=1, n_actions=1)
    with pytest.raises(ValueError, match="actions"):
        from_gymnasium(P={0: {0: [(1.0, 0, 0.0, False)]}}, n_states=1, n_actions=2)
    with pytest.raises(ValueError, match=r"\(p, next_state, reward, terminated\)"):
        from_gymnasium(P={0: {0: [(1.0, 0)]}}, n_states=1, n_actions=1)
    with pytest.raises(ValueError, match="no entry for state 1"):
        from_gymnasium(P={0: {0: [(1.0, 0, 0.0, False)]}}, n_states=2, n_actions=1)
    for outs, msg in (([(1.0, 0.5, 0.0, False)], "not an integer"), ([(1.0, "x", 0.0, False)], "not an integer"),
                      ([1.0], r"\(p, next_state, reward, terminated\)"), (1.0, "must be a list"),
                      ([(-0.5, 0, 0.0, False), (1.5, 0, 0.0, False)], "probability -0.5"),
                      ([(1.0, 0, float("nan"), False)], "non-finite reward"),
                      ([(float("inf"), 0, 0.0, False)], "probability inf")):
        with pytest.raises(ValueError, match=msg):
            from_gymnasium(P={0: {0: outs}}, n_states=1, n_actions=1)
    with pytest.raises(ValueError, match=r"initial must have shape \(1,\)"):
        from_gymnasium(P={0: {0: [(1.0, 0, 0.0, False)]}}, n_states=1, n_actions=1, initial=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"^pass either env or P, not both$"):
        from_gymnasium(object(), P={0: {0: [(1.0, 0, 0.0, False)]}})
    with pytest.raises(ValueError, match=r"^env has no transition table P \(got object\)"):
        from_gymnasium(object())
    with pytest.raises(ValueError, match=r"^from_gymnasium needs env, or P with n_states and n_actions$"):
        from_gymnasium(P={0: {0: [(1.0, 0, 0.0, False)]}}, n_states=1)


@settings(deadline=None, max_examples=25)
@given(tabular_mdps(max_states=5, max_actions=3, sparse=None, terminal=None))
def test_gymnasium_view_round_trips(mdp):
    view = to_gymnasium(mdp)
    back = from_gymnasium(P=view.P, n_states=mdp.n_states, n_actions=mdp.n_actions,
                          initial=mdp.initial, gamma=mdp.gamma)
    a = ms.solve(mdp, method="pi").v
    b = ms.solve(back, method="pi").v[:-1]
    np.testing.assert_allclose(b, a, atol=1e-9 * (1 + np.abs(a).max()))


def test_gymnasium_view_samples_the_transition_law():
    mdp = ms.garnet(4, 2, 3, gamma=0.9, seed=0)
    env = to_gymnasium(mdp)
    env.reset(seed=0)
    n = 20000
    counts = np.zeros(4)
    for _ in range(n):
        env._s = 1
        s2, r, *_ = env.step(0)
        counts[s2] += 1
        assert r == mdp.R[1, 0]
    p = mdp.dense_P()[1, 0]
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(counts / n - p) <= 5 * se + 1e-12)
    assert np.all(counts[p == 0] == 0)


def test_gymnasium_view_of_a_token_mdp_walks_the_canonical_order():
    env_t = ms.TokenMDP.random(3, 3, reward="dense", seed=0)
    env = to_gymnasium(env_t)
    s, _ = env.reset(seed=1)
    assert s == 0
    total, prefix = 0.0, ()
    for tok in (2, 0, 1):
        expected_r = env_t.rewards[env_t.index(prefix), tok]
        s2, r, term, trunc, _ = env.step(tok)
        assert r == expected_r
        total += r
        prefix = prefix + (tok,)
        if len(prefix) < env_t.horizon:
            assert s2 == env_t.index(prefix) and not term
    assert term and s2 == env_t.n_nodes


def test_quantecon_documented_example_exact():
    # DiscreteDP's documented two-state example (beta = 0.95, one infeasible action): policy (0, 0),
    # v1 = −1/(1−β) = −20, v0 = (5 + β/2·v1)/(1 − β/2) = −60/7 exactly
    R = [[5.0, 10.0], [-1.0, -np.inf]]
    Q = [[(0.5, 0.5), (0.0, 1.0)], [(0.0, 1.0), (0.5, 0.5)]]
    mdp, feasible = from_quantecon(R, Q, 0.95)
    np.testing.assert_array_equal(feasible, [[True, True], [True, False]])
    sol = ms.solve(mdp, method="pi")
    b = Fraction(95, 100)
    v1 = Fraction(-1) / (1 - b)
    v0 = (5 + b / 2 * v1) / (1 - b / 2)
    np.testing.assert_allclose(sol.v, [float(v0), float(v1)], atol=1e-12)
    assert np.argmax(sol.policy[0]) == 0
    # the same problem in state–action-pair form
    s_idx, a_idx = np.array([0, 0, 1]), np.array([0, 1, 0])
    mdp2, f2 = from_quantecon([5.0, 10.0, -1.0], sp.csr_matrix([[0.5, 0.5], [0.0, 1.0], [0.0, 1.0]]), 0.95,
                              s_indices=s_idx, a_indices=a_idx)
    np.testing.assert_array_equal(f2, feasible)
    np.testing.assert_allclose(ms.solve(mdp2, method="pi").v, sol.v, atol=1e-12)
    # KL control with π_ref = 0 on the infeasible action excludes it exactly
    ref = np.where(feasible, 1.0, 0.0)
    ref /= ref.sum(axis=1, keepdims=True)
    kl = ms.solve(mdp, beta=0.1, ref_policy=ref)
    assert kl.policy[1, 1] == 0.0


@settings(deadline=None, max_examples=25)
@given(tabular_mdps(max_states=5, max_actions=3, sparse=None, terminal=None, gamma=0.9))
def test_quantecon_round_trip(mdp):
    R, Q, beta = to_quantecon(mdp)
    back, feasible = from_quantecon(R, Q, beta)
    assert feasible.all()
    np.testing.assert_allclose(ms.solve(back, method="pi").v, ms.solve(mdp, method="pi").v, atol=1e-9)


def test_quantecon_bad_input():
    with pytest.raises(ValueError, match="beta"):
        from_quantecon([[1.0]], [[[1.0]]], 1.5)
    with pytest.raises(ValueError, match="no feasible action"):
        from_quantecon([[-np.inf]], [[[1.0]]], 0.9)
    with pytest.raises(ValueError, match="shape"):
        from_quantecon([[1.0, 2.0]], [[[1.0]]], 0.9)
    with pytest.raises(ValueError, match="repeated"):
        from_quantecon([1.0, 2.0], [[1.0], [1.0]], 0.9, s_indices=[0, 0], a_indices=[0, 0])


def test_cliffwalking_view_roundtrip_still_minus_13():
    mdp = from_gymnasium(gym.make("CliffWalking-v1"), gamma=1.0)
    assert solve_ssp(mdp).v[36] == pytest.approx(-13.0)


def test_tabular_classmethods_are_the_converters():
    env = gym.make("FrozenLake-v1").unwrapped
    a = ms.TabularMDP.from_gymnasium(env, gamma=0.9)
    b = from_gymnasium(env, gamma=0.9)
    np.testing.assert_array_equal(a.dense_P(), b.dense_P())
    mdp = ms.garnet(5, 2, 3, gamma=0.9, seed=0)
    R, Q, beta = mdp.to_quantecon()
    back, _ = ms.TabularMDP.from_quantecon(R, Q, beta)
    np.testing.assert_allclose(ms.solve(back, method="pi").v, ms.solve(mdp, method="pi").v, atol=1e-12)
    assert mdp.to_gymnasium().n_actions == 2


def _forest(p=0.1, r1=4.0, r2=2.0):
    # pymdptoolbox's example.forest(S=3): action 0 = wait, 1 = cut; action-first (A, S, S) layout
    Pw = np.array([[p, 1 - p, 0], [p, 0, 1 - p], [p, 0, 1 - p]])
    Pc = np.array([[1.0, 0, 0]] * 3)
    return np.stack([Pw, Pc]), np.array([[0, 0], [0, 1], [r1, r2]], dtype=float)


def test_mdptoolbox_forest_documented_values():
    from fractions import Fraction as Fr

    P, R = _forest()
    # PolicyIteration's documented answer at discount 0.9 is exact: V = (26.244, 29.484, 33.484), policy (0,0,0)
    sol = ms.solve(ms.TabularMDP.from_mdptoolbox(P, R, 0.9), method="pi")
    np.testing.assert_allclose(sol.v, [26.244, 29.484, 33.484], atol=1e-12)
    np.testing.assert_array_equal(np.argmax(sol.policy, axis=1), [0, 0, 0])
    # ValueIteration's documented V at 0.96, (5.93215488, 9.38815488, 13.38815488), is an iterate of its
    # early stop; the exact value of the same (optimal) policy, in fractions, is an order of magnitude larger
    g, p = Fr(96, 100), Fr(1, 10)
    Pw = [[p, 1 - p, 0], [p, 0, 1 - p], [p, 0, 1 - p]]
    M = [[(1 if i == j else 0) - g * Pw[i][j] for j in range(3)] + [Fr([0, 0, 4][i])] for i in range(3)]
    for c in range(3):                      # Gauss–Jordan in exact fractions
        M[c] = [x / M[c][c] for x in M[c]]
        for i in range(3):
            if i != c:
                M[i] = [a - M[i][c] * b for a, b in zip(M[i], M[c])]
    exact = [float(M[i][3]) for i in range(3)]
    sol = ms.solve(ms.TabularMDP.from_mdptoolbox(P, R, 0.96), method="pi")
    np.testing.assert_allclose(sol.v, exact, rtol=1e-13)
    assert np.all(np.abs(np.array([5.93215488, 9.38815488, 13.38815488]) - sol.v) > 60)


# ---------------------------------------------------------------------- gymnasium view: samplers vs their laws
from scipy.stats import chi2  # noqa: E402


def _chi2_ok(counts, p, alpha=1e-6):
    """Pearson's chi-square goodness of fit of ``counts`` to the law ``p`` (zero-probability cells must
    be empty). With a fixed seed the test is deterministic; alpha bounds how unlucky that seed may be."""
    counts, p = np.asarray(counts, dtype=float), np.asarray(p, dtype=float)
    n = counts.sum()
    assert np.all(counts[p == 0] == 0), (counts, p)
    pos = p > 0
    stat = float(((counts[pos] - n * p[pos]) ** 2 / (n * p[pos])).sum())
    df = int(pos.sum()) - 1
    return df == 0 or stat <= chi2.ppf(1 - alpha, df)


def _chain_mdp(S=5, terminal_last=True):
    """Deterministic chain: action 0 moves s → s + 1 (the last state loops), action 1 stays; reward s + 10a."""
    P = np.zeros((S, 2, S))
    for s in range(S):
        P[s, 0, min(s + 1, S - 1)] = 1.0
        P[s, 1, s] = 1.0
    R = np.arange(S, dtype=float)[:, None] + np.array([0.0, 10.0])[None, :]
    init = np.zeros(S)
    init[0] = 1.0
    return ms.TabularMDP(P, R, 0.9, terminal=[S - 1] if terminal_last else None, initial=init)


def test_gymnasium_view_reset_draws_the_initial_law():
    S = 6
    P = np.full((S, 2, S), 1.0 / S)
    init = np.array([0.1, 0.0, 0.2, 0.3, 0.4, 0.0])      # non-uniform, with zero-probability states
    mdp = ms.TabularMDP(P, np.zeros((S, 2)), 0.9, initial=init)
    env = to_gymnasium(mdp)
    n = 20000
    counts = np.zeros(S)
    s, info = env.reset(seed=123)
    counts[s] += 1
    assert info == {}
    for _ in range(n - 1):                                # reset() without a seed continues the stream
        s, _ = env.reset()
        counts[s] += 1
    assert _chi2_ok(counts, init)
    # a never-seeded view draws from the same support
    fresh = to_gymnasium(mdp)
    assert all(init[fresh.reset()[0]] > 0 for _ in range(50))


def test_gymnasium_view_step_samples_every_pair_law():
    mdp = ms.garnet(5, 3, 3, gamma=0.9, seed=2).replace(terminal=[4])
    env = to_gymnasium(mdp)
    env.reset(seed=7)
    Pd = mdp.dense_P()
    n = 3000
    for s in range(4):
        for a in range(3):
            counts = np.zeros(5)
            for _ in range(n):
                env._s = s
                s2, r, term, trunc, info = env.step(a)
                counts[s2] += 1
                assert r == mdp.R[s, a] and term == (s2 == 4) and not trunc and info == {}
                assert env._s == s2
            assert _chi2_ok(counts, Pd[s, a]), (s, a, counts, Pd[s, a])


class _FixedUniform:
    """Stands in for the view's generator: ``random()`` returns the given u ∈ [0, 1)."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u


def _one_row_mdp(data, indices, S):
    """S states, one action; state 0's row holds ``data`` at ``indices`` (explicit zeros kept), others loop."""
    data, indices = list(map(float, data)), list(indices)
    ptr = [0, len(data)]
    for s in range(1, S):
        data.append(1.0)
        indices.append(s)
        ptr.append(ptr[-1] + 1)
    return ms.TabularMDP(sp.csr_matrix((data, indices, ptr), shape=(S, S)), np.zeros((S, 1)), 0.9)


def test_gymnasium_view_step_is_the_inverse_cdf_at_every_boundary():
    # row (0, 0) stores p = (0, 1/4, 0, 1/2, 1/4, 0) with explicit zeros; the inverse CDF of u maps
    # [0, 1/4) → 1, [1/4, 3/4) → 3, [3/4, 1) → 4 and never reaches a zero-probability state
    p = [Fraction(0), Fraction(1, 4), Fraction(0), Fraction(1, 2), Fraction(1, 4), Fraction(0)]
    mdp = _one_row_mdp([float(x) for x in p], range(6), 6)
    env = to_gymnasium(mdp)
    env.reset(seed=0)
    cum = np.cumsum([float(x) for x in p])

    def inverse_cdf(u):                                   # exact, in fractions
        c = Fraction(0)
        for k, pk in enumerate(p):
            if pk > 0 and c <= Fraction(u) < c + pk:
                return k
            c += pk

    us = [0.0, np.nextafter(1.0, 0.0)] + [b for c in cum[:-1] if 0 < c < 1 for b in (np.nextafter(c, 0.0), c)]
    for u in us:
        env._s, env._rng = 0, _FixedUniform(float(u))
        assert env.step(0)[0] == inverse_cdf(u), u


def test_gymnasium_view_never_samples_a_stored_zero_at_the_top_of_the_cdf():
    # twelve probabilities whose pairwise sum exceeds their running sum by an ulp, then an explicit 0:
    # u = 1 − 2⁻⁵³ must still land on the last positive-probability state
    rng = np.random.default_rng(0)
    while True:
        x = rng.random(12)
        x /= x.sum()
        if x.sum() > np.cumsum(x)[-1]:
            break
    mdp = _one_row_mdp(list(x) + [0.0], range(13), 13)
    env = to_gymnasium(mdp)
    env.reset(seed=0)
    env._s, env._rng = 0, _FixedUniform(np.nextafter(1.0, 0.0))
    assert env.step(0)[0] == 11


def test_gymnasium_view_truncation_and_termination():
    mdp = _chain_mdp(5)                                   # 0 → 1 → 2 → 3 → 4 (terminal)
    env = to_gymnasium(mdp, max_episode_steps=3)
    assert env.max_episode_steps == 3
    for episode in range(2):                              # the step counter restarts at every reset
        assert env.reset(seed=episode)[0] == 0
        outs = [env.step(0) for _ in range(3)]
        assert [o[0] for o in outs] == [1, 2, 3]
        assert [o[1] for o in outs] == [0.0, 1.0, 2.0]
        assert [o[2] for o in outs] == [False, False, False]
        assert [o[3] for o in outs] == [False, False, True]
    # at the step limit a terminating transition is terminated, not truncated
    env = to_gymnasium(mdp, max_episode_steps=4)
    env.reset(seed=0)
    outs = [env.step(0) for _ in range(4)]
    assert [o[3] for o in outs] == [False] * 4
    assert outs[-1][:3] == (4, 3.0, True)
    assert env.step(1) == (4, 0.0, True, False, {})        # the terminal state absorbs with reward 0
    # without a limit nothing is ever truncated
    env = to_gymnasium(_chain_mdp(5, terminal_last=False))
    env.reset(seed=0)
    assert not any(env.step(0)[3] for _ in range(50))


def test_gymnasium_view_spaces_and_refusals():
    mdp = _chain_mdp(5)
    env = to_gymnasium(mdp)
    assert env.observation_space.n == 5 and env.action_space.n == 2
    assert (env.n_observations, env.n_actions) == (5, 2)
    with pytest.raises(ValueError, match=r"^call reset\(\) before step\(\)$"):
        env.step(0)
    env.reset(seed=0)
    for bad in (2, -1, 1.5, "x", None):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    assert env.step(np.int64(1))[0] == 0                  # numpy integers are actions
    with pytest.raises(ValueError, match=r"^mdp must be a TabularMDP or TokenMDP, got object$"):
        to_gymnasium(object())
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"^max_episode_steps must"):
            to_gymnasium(mdp, max_episode_steps=bad)
    for bad in (-1, 1.5, "0"):
        with pytest.raises(ValueError, match="seed"):
            env.reset(seed=bad)
    tok = ms.TokenMDP.random(3, 2, seed=0)
    tenv = to_gymnasium(tok)
    assert tenv.observation_space.n == tok.n_nodes + 1 == tenv.n_observations == 1 + 3 + 1
    assert tenv.action_space.n == 3
    with pytest.raises(AttributeError, match="tabular"):
        tenv.P
    with pytest.raises(ValueError, match=r"^call reset\(\) before step\(\)$"):
        tenv.step(0)
    tenv.reset(seed=0)
    for bad in (3, -1, 0.5):
        with pytest.raises(ValueError, match="action"):
            tenv.step(bad)


def test_gymnasium_view_seeded_resets_repeat_the_episode():
    mdp = ms.garnet(6, 2, 3, gamma=0.9, seed=4)
    mdp = mdp.replace(initial=np.full(6, 1.0 / 6))
    env = to_gymnasium(mdp)

    def episode(seed):
        out = [env.reset(seed=seed)[0]]
        out += [env.step(t % 2)[0] for t in range(30)]
        return out

    runs = {k: episode(k) for k in range(4)}
    for k in range(4):
        assert episode(k) == runs[k]
    assert len({tuple(v) for v in runs.values()}) == 4


def _node(V, prefix):
    """Canonical index of a prefix, from the documented formula Σ_{k<h} V^k + base-V offset."""
    off = 0
    for t in prefix:
        off = off * V + t
    return sum(V**k for k in range(len(prefix))) + off


def test_gymnasium_token_view_eos_horizon_and_truncation():
    V, H, eos = 3, 4, 1
    tok = ms.TokenMDP.random(V, H, reward="dense", eos=eos, seed=3)
    env = to_gymnasium(tok)
    end = tok.n_nodes
    # non-EOS tokens walk the canonical order; EOS ends the episode with its edge reward
    s, info = env.reset(seed=0)
    assert s == 0 and info == {"prompt": 0}
    prefix = ()
    for t in (0, 2):
        s2, r, term, trunc, info = env.step(t)
        assert r == tok.rewards[_node(V, prefix), t]
        prefix += (t,)
        assert (s2, term, trunc, info) == (_node(V, prefix), False, False, {"prompt": 0})
    s2, r, term, trunc, _ = env.step(eos)
    assert (s2, r, term, trunc) == (end, tok.rewards[_node(V, prefix), eos], True, False)
    assert env.step(0) == (end, 0.0, True, False, {"prompt": 0})     # after the end: absorbing, reward 0
    # the horizon ends the episode after H tokens
    env.reset(seed=0)
    prefix = ()
    for k, t in enumerate((2, 0, 2, 2)):
        s2, r, term, trunc, _ = env.step(t)
        assert r == tok.rewards[_node(V, prefix), t]
        prefix += (t,)
        assert term == (k == H - 1) and not trunc
        assert s2 == (end if k == H - 1 else _node(V, prefix))
    # max_episode_steps: truncated at the limit only when the step does not end the episode
    env = to_gymnasium(tok, max_episode_steps=2)
    for _ in range(2):
        env.reset(seed=0)
        assert [env.step(0)[2:4] for _ in range(2)] == [(False, False), (False, True)]
    env.reset(seed=0)
    assert [env.step(t)[2:4] for t in (0, eos)] == [(False, False), (True, False)]
    env = to_gymnasium(tok, max_episode_steps=H)
    env.reset(seed=0)
    assert [env.step(0)[2:4] for _ in range(H)] == [(False, False)] * (H - 1) + [(True, False)]


@pytest.mark.parametrize("n_prompts", [2, 3])
def test_gymnasium_token_view_draws_prompts_uniformly_and_pays_their_rewards(n_prompts):
    V, H = 2, 2
    tok = ms.TokenMDP.random(V, H, reward="dense", n_prompts=n_prompts, seed=5)
    env = to_gymnasium(tok)
    counts = np.zeros(n_prompts)
    env.reset(seed=11)
    for _ in range(6000):
        s, info = env.reset()
        assert s == 0
        counts[info["prompt"]] += 1
    assert _chi2_ok(counts, np.full(n_prompts, 1.0 / n_prompts))
    seen = set()
    for seed in range(40):
        _, info = env.reset(seed=seed)
        k = info["prompt"]
        seen.add(k)
        s2, r, term, trunc, info2 = env.step(1)
        assert info2 == {"prompt": k} and r == tok.rewards[k, 0, 1] and s2 == _node(V, (1,))
        s3, r, term, trunc, _ = env.step(0)
        assert r == tok.rewards[k, _node(V, (1,)), 0] and term and s3 == tok.n_nodes
    assert seen == set(range(n_prompts))
    # one prompt: always prompt 0
    one = to_gymnasium(ms.TokenMDP.random(V, H, reward="dense", seed=5))
    assert all(one.reset(seed=k)[1] == {"prompt": 0} for k in range(5))


# ---------------------------------------------------------------------- from_gymnasium: inputs
class _FakeToyText:
    """A toy-text-like environment without gymnasium: P, spaces, μ0 and no ``unwrapped``."""

    class _Space:
        def __init__(self, n):
            self.n = n

    def __init__(self):
        self.P = {0: {0: [(0.5, 1, 1.0, False), (0.5, 0, 0.0, True)], 1: [(1.0, 1, 2.0, False)]},
                  1: {0: [(1.0, 0, -1.0, False)], 1: [(0.25, 1, 4.0, True), (0.75, 0, 0.0, False)]}}
        self.observation_space, self.action_space = self._Space(2), self._Space(2)
        self.initial_state_distrib = np.array([0.25, 0.75])


class _EnvChain:
    def __init__(self, env):
        self.env = env


class _UnwrappedOnly:
    def __init__(self, env):
        self._inner = env

    @property
    def unwrapped(self):
        return self._inner


def _expected_fake(gamma=0.9, initial=(0.25, 0.75)):
    P = np.zeros((3, 2, 3))
    P[0, 0] = [0.0, 0.5, 0.5]
    P[0, 1] = [0.0, 1.0, 0.0]
    P[1, 0] = [1.0, 0.0, 0.0]
    P[1, 1] = [0.75, 0.0, 0.25]
    P[2, :, 2] = 1.0
    R = np.array([[0.5, 2.0], [-1.0, 1.0], [0.0, 0.0]])
    return P, R, np.r_[initial, 0.0]


def _with_unrelated_env_attribute(e):
    e.env = "not a wrapper"                                 # the object exposing P is used, not its .env
    return e


@pytest.mark.parametrize("wrap", [lambda e: e, _with_unrelated_env_attribute, _EnvChain,
                                  lambda e: _EnvChain(_EnvChain(e)), _UnwrappedOnly,
                                  lambda e: _EnvChain(_UnwrappedOnly(e))])
def test_from_gymnasium_reads_through_wrappers(wrap):
    mdp = from_gymnasium(wrap(_FakeToyText()), gamma=0.9)
    P, R, mu = _expected_fake()
    np.testing.assert_array_equal(mdp.dense_P(), P)
    np.testing.assert_array_equal(mdp.R, R)
    np.testing.assert_array_equal(mdp.initial, mu)
    np.testing.assert_array_equal(mdp.terminal, [False, False, True])


def test_from_gymnasium_of_gym_make_equals_the_unwrapped_env():
    wrapped = gym.make("FrozenLake-v1", map_name="4x4")
    assert not hasattr(wrapped, "P")                      # gymnasium >= 1 wrappers do not forward P
    a = from_gymnasium(wrapped, gamma=0.9)
    b = from_gymnasium(P=wrapped.unwrapped.P, n_states=16, n_actions=4,
                       initial=wrapped.unwrapped.initial_state_distrib, gamma=0.9)
    np.testing.assert_array_equal(a.dense_P(), b.dense_P())
    np.testing.assert_array_equal(a.R, b.R)
    np.testing.assert_array_equal(a.initial, b.initial)


def test_from_gymnasium_user_initial_wins_and_zero_probabilities_are_accepted():
    mdp = from_gymnasium(_FakeToyText(), initial=[1.0, 0.0], gamma=0.9)
    np.testing.assert_array_equal(mdp.initial, [1.0, 0.0, 0.0])
    # no env μ0: uniform over the S real states, none on the sink
    fake = _FakeToyText()
    del fake.initial_state_distrib
    np.testing.assert_array_equal(from_gymnasium(fake).initial, [0.5, 0.5, 0.0])
    # a zero-probability entry (even one flagged terminated, with a reward) changes nothing
    P = {0: {0: [(1.0, 1, 2.0, False), (0.0, 0, 7.0, True)]}, 1: {0: [(0.0, 0, 3.0, False), (1.0, 1, 0.0, True)]}}
    mdp = from_gymnasium(P=P, n_states=2, n_actions=1, gamma=0.5)
    np.testing.assert_array_equal(mdp.dense_P()[:, 0], [[0, 1, 0], [0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(mdp.R[:, 0], [2.0, 0.0, 0.0])


def test_from_gymnasium_refuses_bad_sizes_and_the_boundary_state():
    ok = {0: {0: [(1.0, 1, 0.0, False)]}, 1: {0: [(1.0, 0, 0.0, False)]}}
    with pytest.raises(ValueError, match=r"names next state 2, outside \[0, 2\)"):
        from_gymnasium(P={0: {0: [(1.0, 2, 0.0, False)]}, 1: {0: [(1.0, 0, 0.0, False)]}}, n_states=2, n_actions=1)
    with pytest.raises(ValueError, match=r"P has no entry for state 1 \(expected states 0\.\.1\)"):
        from_gymnasium(P={0: ok[0]}, n_states=2, n_actions=1)
    with pytest.raises(ValueError, match=r"^from_gymnasium needs env, or P with n_states and n_actions$"):
        from_gymnasium(P=ok, n_actions=1)
    with pytest.raises(ValueError, match=r"^from_gymnasium needs env, or P with n_states and n_actions$"):
        from_gymnasium(n_states=2, n_actions=1)
    for bad in (0, 2.5, -1, True):
        with pytest.raises(ValueError, match=r"^n_states must"):
            from_gymnasium(P=ok, n_states=bad, n_actions=1)
        with pytest.raises(ValueError, match=r"^n_actions must"):
            from_gymnasium(P=ok, n_states=2, n_actions=bad)
    # total within 1e-9 of 1 is accepted (float sums of table entries), farther is refused
    from_gymnasium(P={0: {0: [(0.5, 0, 0.0, False), (0.5 + 5e-10, 0, 0.0, False)]}}, n_states=1, n_actions=1)
    with pytest.raises(ValueError, match="sum to"):
        from_gymnasium(P={0: {0: [(0.5, 0, 0.0, False), (0.5 + 5e-9, 0, 0.0, False)]}}, n_states=1, n_actions=1)


# ---------------------------------------------------------------------- QuantEcon: every refusal, both forms
def _sa_example():
    # the documented two-state example in state–action-pair form, pairs listed out of order
    R = np.array([-1.0, 10.0, 5.0])
    Q = np.array([[0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    return R, Q, np.array([1, 0, 0]), np.array([0, 1, 0])


def test_quantecon_pair_form_in_any_order_dense_or_sparse_equals_product_form():
    prod, f = from_quantecon([[5.0, 10.0], [-1.0, -np.inf]], [[(0.5, 0.5), (0.0, 1.0)], [(0.0, 1.0), (0.5, 0.5)]], 0.95)
    R, Q, s, a = _sa_example()
    for Qin in (Q, sp.csr_matrix(Q), sp.coo_matrix(Q)):
        mdp, f2 = from_quantecon(R, Qin, 0.95, s_indices=s, a_indices=a)
        np.testing.assert_array_equal(f2, f)
        np.testing.assert_array_equal(mdp.dense_P(), prod.dense_P())
        np.testing.assert_array_equal(mdp.R, prod.R)
        assert mdp.gamma == 0.95
    # the infeasible (1, 1) is a copy of state 1's first feasible action
    np.testing.assert_array_equal(prod.dense_P()[1, 1], [0.0, 1.0])
    assert prod.R[1, 1] == -1.0
    # product form with a 3-D sparse Q (scipy's n-D COO array) is the dense one
    Q3 = np.array([[(0.5, 0.5), (0.0, 1.0)], [(0.0, 1.0), (0.5, 0.5)]])
    sparse3, _ = from_quantecon([[5.0, 10.0], [-1.0, -np.inf]], sp.coo_array(Q3), 0.95)
    np.testing.assert_array_equal(sparse3.dense_P(), prod.dense_P())


def test_quantecon_refuses_every_bad_input():
    R, Q, s, a = _sa_example()

    def sa(**kw):
        args = dict(R=R, Q=Q, beta=0.9, s_indices=s, a_indices=a)
        args.update(kw)
        return from_quantecon(args.pop("R"), args.pop("Q"), args.pop("beta"), **args)

    sa()                                                     # the baseline is valid
    with pytest.raises(ValueError, match=r"^beta must lie in \[0, 1\]"):
        from_quantecon([[1.0]], [[[1.0]]], 1.5)
    shape = r"R, s_indices and a_indices must all be \(L,\)"
    with pytest.raises(ValueError, match=shape):
        sa(s_indices=s[:2])
    with pytest.raises(ValueError, match=shape):
        sa(a_indices=a[:2])
    with pytest.raises(ValueError, match=shape):
        sa(R=R[:, None], s_indices=s[:, None], a_indices=a[:, None])
    with pytest.raises(ValueError, match=r"^state-action-pair form needs both s_indices and a_indices$"):
        sa(a_indices=None)
    with pytest.raises(ValueError, match=r"^s_indices and a_indices must be integer arrays$"):
        sa(s_indices=s.astype(float))
    with pytest.raises(ValueError, match=r"^s_indices and a_indices must be integer arrays$"):
        sa(a_indices=a.astype(float))
    with pytest.raises(ValueError, match=r"s_indices must lie in \[0, 2\), got range \[-1, 1\]"):
        sa(s_indices=np.array([1, 0, -1]))
    with pytest.raises(ValueError, match=r"s_indices must lie in \[0, 2\), got range \[0, 2\]"):
        sa(s_indices=np.array([2, 0, 0]))
    with pytest.raises(ValueError, match=r"^a_indices must be >= 0$"):
        sa(a_indices=np.array([0, -1, 0]))
    with pytest.raises(ValueError, match=r"^\(s_indices, a_indices\) contain a repeated state-action pair$"):
        sa(a_indices=np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"Q must have shape \(L, n\) with L = len\(R\) = 3"):
        sa(Q=Q[:2])
    with pytest.raises(ValueError, match=r"^state-action-pair form needs at least one \(s_indices, a_indices\) pair$"):
        sa(R=np.zeros(0), Q=np.zeros((0, 2)), s_indices=np.zeros(0, int), a_indices=np.zeros(0, int))
    nonfinite = r"^R must not contain NaN or \+inf \(use -inf for infeasible actions\)$"
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match=nonfinite):
            sa(R=np.array([-1.0, bad, 5.0]))
        with pytest.raises(ValueError, match=nonfinite):
            from_quantecon([[5.0, bad], [-1.0, 0.0]], np.full((2, 2, 2), 0.5), 0.9)
    with pytest.raises(ValueError, match=r"no feasible action \(every R\[1, :\] is -inf\)"):
        sa(R=np.array([-np.inf, 10.0, 5.0]))
    # product form
    with pytest.raises(ValueError, match=r"R must be \(n, m\) in product form"):
        from_quantecon([1.0, 2.0], np.full((2, 1, 2), 0.5), 0.9)
    with pytest.raises(ValueError, match=r"Q must have shape \(n, m, n\) = \(1, 2, 1\) in product form, got \(1, 1\)"):
        from_quantecon([[1.0, 2.0]], [[1.0]], 0.9)
    with pytest.raises(ValueError,
                       match=r"Q must have shape \(n, m, n\) = \(2, 1, 2\) in product form, got \(2, 2\)"):
        from_quantecon([[1.0], [2.0]], sp.csr_matrix(np.full((2, 2), 0.5)), 0.9)   # a 2-D sparse Q is pair form


def test_to_quantecon_needs_beta_below_one_and_exports_terminals_absorbing():
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = 1.0
    P[1, 0, 0] = 1.0                                          # terminal state 1's row is ignored by mdpsandbox
    mdp = ms.TabularMDP(P, [[1.0], [5.0]], 1.0, terminal=[1])
    with pytest.raises(ValueError, match=r"^QuantEcon's DiscreteDP needs beta < 1; mdp has gamma = 1$"):
        to_quantecon(mdp)
    g = float(np.nextafter(1.0, 0.0))
    R, Q, beta = to_quantecon(mdp.replace(gamma=g))
    assert beta == g
    np.testing.assert_array_equal(Q, [[[0.0, 1.0]], [[0.0, 1.0]]])
    np.testing.assert_array_equal(R, [[1.0], [0.0]])
    with pytest.raises(ValueError, match=r"^mdp must be a TabularMDP, got TokenMDP$"):
        to_quantecon(ms.TokenMDP.random(2, 2, seed=0))
    mdp2 = ms.garnet(3, 2, 2, gamma=0.9, seed=0)
    with pytest.raises(ValueError, match=r"feasible must have shape \(3, 2\)"):
        to_quantecon(mdp2, feasible=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="feasible.*state 1 has no feasible action"):
        to_quantecon(mdp2, feasible=[[True, False], [False, False], [True, True]])
    R2, _, _ = to_quantecon(mdp2, feasible=[[True, False], [False, True], [True, True]])
    np.testing.assert_array_equal(np.isneginf(R2), [[False, True], [True, False], [False, False]])


# ---------------------------------------------------------------------- pymdptoolbox layout
def test_mdptoolbox_action_first_by_definition_dense_and_sparse():
    from mdpsandbox.envs.convert import from_mdptoolbox

    rng = np.random.default_rng(3)
    A, S = 3, 4                                  # A ≠ 2 and A ≠ S: a wrong row interleave cannot hide
    P = rng.random((A, S, S))
    P /= P.sum(axis=2, keepdims=True)
    R3 = rng.normal(size=(A, S, S))
    # the reference: P_sf[s, a, s'] = P[a][s, s'], r(s, a) = Σ_s' P[a][s, s'] R3[a][s, s'], by loops
    P_ref = np.zeros((S, A, S))
    r_ref = np.zeros((S, A))
    for a in range(A):
        for s in range(S):
            for t in range(S):
                P_ref[s, a, t] = P[a, s, t]
                r_ref[s, a] += P[a, s, t] * R3[a, s, t]
    for P_in, R_in in ((P, R3), (list(P), list(R3)), ([sp.csr_matrix(m) for m in P], R3),
                       ([sp.csr_matrix(m) for m in P], [sp.csr_matrix(m) for m in R3])):
        mdp = from_mdptoolbox(P_in, R_in, 0.9)
        np.testing.assert_allclose(mdp.dense_P(), P_ref, rtol=0, atol=1e-15)
        np.testing.assert_allclose(mdp.R, r_ref, rtol=1e-14, atol=1e-15)
    m = from_mdptoolbox([sp.csr_matrix(x) for x in P], np.array([1.0, 2.0, 3.0, 4.0]), 0.9)
    assert m.is_sparse
    np.testing.assert_array_equal(m.R, np.repeat([[1.0], [2.0], [3.0], [4.0]], 3, axis=1))


def test_mdptoolbox_passes_terminal_initial_and_ref_policy_through():
    from mdpsandbox.envs.convert import from_mdptoolbox

    P, R = _forest()
    init = np.array([0.25, 0.75, 0.0])                  # not the default (uniform off the terminal)
    ref = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    for P_in in (P, [sp.csr_matrix(m) for m in P]):
        mdp = from_mdptoolbox(P_in, R, 0.9, terminal=[2], initial=init, ref_policy=ref)
        np.testing.assert_array_equal(mdp.terminal, [False, False, True])
        np.testing.assert_array_equal(mdp.initial, init)
        np.testing.assert_array_equal(mdp.ref_policy, ref)


def test_mdptoolbox_refuses_mismatched_shapes():
    from mdpsandbox.envs.convert import from_mdptoolbox

    P, R = _forest()
    with pytest.raises(ValueError, match=r"P must have pymdptoolbox's shape \(A, S, S\).*got \(2, 3, 2\)"):
        from_mdptoolbox(P[:, :, :2], R, 0.9)
    with pytest.raises(ValueError, match=r"P must have pymdptoolbox's shape \(A, S, S\).*got \(3, 3\)"):
        from_mdptoolbox(P[0], R, 0.9)
    with pytest.raises(ValueError, match="P: every action's matrix must have the same shape"):
        from_mdptoolbox([P[0], P[1][:2, :2]], R, 0.9)
    with pytest.raises(ValueError, match=r"P: every action's matrix must be square"):
        from_mdptoolbox([sp.csr_matrix(P[0]), sp.csr_matrix(P[1][:2])], R, 0.9)
    with pytest.raises(ValueError, match=r"P: every action's matrix must be square"):
        from_mdptoolbox([sp.csr_matrix(P[0][:2]), sp.csr_matrix(P[1][:2])], R, 0.9)
    with pytest.raises(ValueError, match="P must hold at least one"):
        from_mdptoolbox([], R, 0.9)
    with pytest.raises(ValueError, match=r"R must have shape \(S, A\) = \(3, 2\)"):
        from_mdptoolbox(P, R.T, 0.9)
    with pytest.raises(ValueError, match="R: every action's matrix must have the same shape"):
        from_mdptoolbox(P, [np.zeros((3, 3)), np.zeros((2, 2))], 0.9)


def test_to_mdptoolbox_exports_terminal_states_absorbing_with_zero_reward():
    from mdpsandbox.envs.convert import from_mdptoolbox, to_mdptoolbox

    # state 2 is terminal in mdpsandbox (value 0; its stored row and reward are ignored). pymdptoolbox
    # has no terminal set, so the export must make it absorbing with reward 0 to mean the same MDP.
    P, R = _forest()
    for P_in, term in itertools.product((P, [sp.csr_matrix(m) for m in P]), ([2], [0], [0, 1])):
        mdp = from_mdptoolbox(P_in, R, 0.9, terminal=term)
        P_out, R_out = to_mdptoolbox(mdp)
        P_out = np.stack([m.toarray() for m in P_out]) if isinstance(P_out, list) else P_out
        keep = np.setdiff1d(np.arange(3), term)
        for t in term:
            np.testing.assert_array_equal(P_out[:, t], [np.eye(3)[t]] * 2)
            np.testing.assert_array_equal(R_out[t], [0.0, 0.0])
        np.testing.assert_array_equal(P_out[:, keep], P[:, keep])
        np.testing.assert_array_equal(R_out[keep], R[keep])
        # pymdptoolbox's Bellman operator on the exported arrays has mdpsandbox's V* as its fixed point
        v = np.zeros(3)
        for _ in range(2000):
            v = (R_out.T + 0.9 * P_out @ v).max(axis=0)
        np.testing.assert_allclose(v, ms.solve(mdp, method="pi").v, atol=1e-12)
    # one action (the transposed array is contiguous): an own, writable copy, the MDP left untouched
    one = ms.TabularMDP(np.array([[[0.0, 1.0]], [[1.0, 0.0]]]), [[1.0], [5.0]], 0.9, terminal=[1])
    P_out, R_out = to_mdptoolbox(one)
    np.testing.assert_array_equal(P_out, [[[0.0, 1.0], [0.0, 1.0]]])
    np.testing.assert_array_equal(R_out, [[1.0], [0.0]])
    np.testing.assert_array_equal(one.dense_P()[1, 0], [1.0, 0.0])
    assert P_out.flags.writeable and not np.shares_memory(P_out, one.dense_P())
