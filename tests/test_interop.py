"""Converters from/to gymnasium toy-text tables and QuantEcon DiscreteDP inputs: round trips and the
libraries' documented examples solved to their published (or exactly derived) values."""
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
    with pytest.raises(ValueError, match="either env or P"):
        from_gymnasium(object(), P={0: {0: [(1.0, 0, 0.0, False)]}})
    with pytest.raises(ValueError, match="no transition table P"):
        from_gymnasium(object())
    with pytest.raises(ValueError, match="needs env, or P"):
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
