"""TabularMDP construction, generators, and the assertion helpers / strategies of mdpsandbox.testing."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, strategies as st

import mdpsandbox as ms
from mdpsandbox.testing import assert_policy_close, assert_values_close, describe_entry, policies, tabular_mdps


def test_dense_and_csr_transition_inputs_define_the_same_mdp():
    d = ms.garnet(12, 3, 4, gamma=0.9, seed=0, sparse=False)
    s = ms.TabularMDP(sp.csr_matrix(d.P2), d.R, 0.9)
    assert s.is_sparse and not d.is_sparse
    assert np.array_equal(s.dense_P(), d.dense_P())
    pi = np.random.default_rng(0).dirichlet(np.ones(3), size=12)
    assert np.allclose(s.policy_matrix(pi).toarray(), d.policy_matrix(pi))
    assert np.allclose(d.policy_matrix(pi), np.einsum("sa,sat->st", pi, d.dense_P()))


def test_reward_of_next_state_is_reduced_to_its_expectation():
    d = ms.garnet(5, 2, 3, seed=1)
    R3 = np.random.default_rng(1).normal(size=(5, 2, 5))
    want = np.einsum("sat,sat->sa", d.dense_P(), R3)
    assert np.allclose(ms.TabularMDP(d.P, R3, 0.9).R, want)
    assert np.allclose(ms.TabularMDP(sp.csr_matrix(d.P2), R3, 0.9).R, want)


def test_terminal_list_equals_mask_and_default_initial_is_uniform_over_non_terminal():
    d = ms.garnet(6, 2, 3, seed=2)
    a = ms.TabularMDP(d.P, d.R, 0.9, terminal=[4, 5])
    b = ms.TabularMDP(d.P, d.R, 0.9, terminal=np.array([0, 0, 0, 0, 1, 1], bool))
    assert np.array_equal(a.terminal, b.terminal)
    assert np.allclose(a.initial, [0.25] * 4 + [0, 0])
    sol = ms.solve(a)
    assert np.all(sol.v[4:] == 0) and np.all(sol.q[4:] == 0)


def test_generators_are_seeded_and_valid():
    for gen in (lambda s: ms.garnet(30, 3, 4, seed=s), lambda s: ms.bandit(4, seed=s)):
        a, b, c = gen(1), gen(1), gen(2)
        assert np.array_equal(a.dense_P(), b.dense_P()) and np.array_equal(a.R, b.R)
        assert not np.array_equal(a.R, c.R)
    g = ms.garnet(30, 3, 4, seed=0)
    assert np.all((g.dense_P() > 0).sum(axis=2) == 4)  # exactly `branching` successors
    assert ms.garnet(600, 2, 3, seed=0).is_sparse


def test_bandit_value_is_the_best_arm_and_soft_value_is_tau_log_sum_exp():
    means = np.array([0.1, 0.7, 0.4])
    b = ms.bandit(3, means=means)
    assert np.isclose(ms.solve(b).v[0], 0.7)
    tau = 0.3
    assert np.isclose(ms.solve(b, temperature=tau).v[0], tau * np.log(np.sum(np.exp(means / tau))))


def test_chain_optimal_policy_goes_right_when_far_reward_is_worth_it():
    c = ms.chain(5, gamma=0.95)
    sol = ms.solve(c)
    assert np.all(np.argmax(sol.q, axis=1) == 1)
    # V*(last) = 1/(1−γ) by the geometric series
    assert np.isclose(sol.v[-1], 1 / (1 - 0.95))


def test_gridworld_goal_is_terminal_and_values_increase_towards_it():
    g = ms.gridworld(4, 4, slip=0.0, gamma=0.9, step_reward=0.0)
    assert g.terminal[15] and g.has_proper_policies is False  # an agent can bump into walls forever
    sol = ms.solve(g)
    # deterministic moves, reward 1 on entering the goal: V*(s) = γ^{d(s) − 1} with d = Manhattan distance
    for r in range(4):
        for c in range(4):
            d = (3 - r) + (3 - c)
            if d:
                assert np.isclose(sol.v[r * 4 + c], 0.9 ** (d - 1))


# ---------------------------------------------------------------------- mdpsandbox.testing
@given(mdp=tabular_mdps(max_states=5, max_actions=3, sparse=None), data=st.data())
def test_tabular_strategy_draws_valid_mdps_and_policies(mdp, data):
    P = mdp.dense_P()
    assert np.all(P >= 0) and np.allclose(P.sum(axis=2), 1.0)
    pi = data.draw(policies(mdp))
    assert pi.shape == (mdp.n_states, mdp.n_actions) and np.allclose(pi.sum(1), 1) and np.all(pi >= 0)
    det = data.draw(policies(mdp, deterministic=True))
    assert set(np.unique(det)) <= {0.0, 1.0}


@given(mdp=tabular_mdps(max_states=4, gamma=1.0))
def test_tabular_strategy_with_gamma_one_gives_proper_mdps(mdp):
    assert mdp.gamma == 1.0 and mdp.has_proper_policies
    assert np.all(np.isfinite(ms.solve(mdp).v))


def test_assert_values_close_names_state_action_expected_and_actual():
    mdp = ms.garnet(5, 3, 2, seed=0)
    q = ms.solve(mdp).q
    bad = q.copy()
    bad[3, 2] += 1e-3
    bad[1, 0] += 1e-5
    with pytest.raises(AssertionError) as exc:
        assert_values_close(bad, q, atol=1e-6, rtol=0, env=mdp, name="Q")
    msg = str(exc.value)
    assert "Q differs at state 3, action 2" in msg and repr(q[3, 2]) in msg and repr(bad[3, 2]) in msg
    assert "2 of 15" in msg
    nan = q[:, 0].copy()
    nan[4] = np.nan
    with pytest.raises(AssertionError, match="state 4"):
        assert_values_close(nan, q[:, 0], atol=1, env=mdp)
    with pytest.raises(AssertionError, match="shape mismatch"):
        assert_values_close(q, q[:, 0], atol=1)
    assert_values_close(np.array([np.inf, 1.0]), np.array([np.inf, 1.0 + 1e-12]), atol=1e-9)
    assert describe_entry(mdp, (4, 5, 3), (2, 1, 0)) == "stage 2, state 1, action 0"


def test_assert_policy_close_names_state_and_action():
    mdp = ms.garnet(4, 2, 2, seed=0)
    pi = ms.solve(mdp, temperature=1.0).policy
    bad = pi.copy()
    bad[2] = bad[2, ::-1]
    with pytest.raises(AssertionError, match=r"policy differs at state 2, action [01]: expected probability"):
        assert_policy_close(bad, pi, atol=1e-6, env=mdp)
    with pytest.raises(AssertionError, match="not a distribution at state 1"):
        assert_policy_close(pi * np.array([[1], [2], [1], [1]]), pi, atol=1e-6, env=mdp)
    with pytest.raises(AssertionError, match="negative probability at state 0, action 1"):
        assert_policy_close(np.array([[1.5, -0.5]] + [[0.5, 0.5]] * 3), pi, atol=1e-6, env=mdp)


# ---------------------------------------------------------------------- consistent state under assignment
def _two_mdps():
    a = ms.garnet(5, 2, 3, gamma=0.9, seed=0)
    b = ms.garnet(5, 2, 3, gamma=0.9, seed=1)
    return a, b


@pytest.mark.parametrize("sparse", [False, True])
def test_rebinding_P_is_seen_by_solve(sparse):
    """``mdp.P = other`` used to be ignored by solve (stale (S·A, S) view)."""
    import scipy.sparse as sps
    a, b = _two_mdps()
    Pb = sps.csr_matrix(b.dense_P().reshape(10, 5)) if sparse else b.dense_P()
    fresh = ms.TabularMDP(Pb, a.R, 0.9)
    a.P = Pb
    assert np.array_equal(a.dense_P(), b.dense_P()) and a.is_sparse == sparse
    np.testing.assert_allclose(ms.solve(a).v, ms.solve(fresh).v, atol=1e-12)


def test_rebinding_P_recomputes_properness_and_gamma_one_error():
    S = 3
    P = np.zeros((S, 2, S))
    P[:, :, 2] = 1.0  # every action goes to the terminal state
    mdp = ms.TabularMDP(P, np.ones((S, 2)), 1.0, terminal=[2])
    assert mdp.has_proper_policies and np.isfinite(ms.solve(mdp).v).all()
    P2 = P.copy()
    P2[0, 1] = [1.0, 0.0, 0.0]  # action 1 in state 0 loops forever
    mdp.P = P2
    assert not mdp.has_proper_policies
    with pytest.raises(ValueError, match="gamma"):
        ms.solve(mdp, temperature=0.1)


def test_rebinding_R_gamma_terminal_are_seen_by_solve():
    a, _ = _two_mdps()
    R2 = a.R + 1.0
    a.R = R2
    np.testing.assert_allclose(ms.solve(a).v, ms.solve(ms.TabularMDP(a.dense_P(), R2, 0.9)).v, atol=1e-12)
    a.gamma = 0.5
    np.testing.assert_allclose(ms.solve(a).v, ms.solve(ms.TabularMDP(a.dense_P(), R2, 0.5)).v, atol=1e-12)
    a.terminal = [0]
    want = ms.solve(ms.TabularMDP(a.dense_P(), R2, 0.5, terminal=[0])).v
    np.testing.assert_allclose(ms.solve(a).v, want, atol=1e-12)
    assert a.initial[0] == 0.0  # the default μ0 follows the terminal set
    with pytest.raises(ValueError, match="gamma"):
        a.gamma = 1.5
    with pytest.raises(ValueError, match="R must have shape"):
        a.R = np.zeros((3, 3))
    with pytest.raises(ValueError, match="keep"):
        a.P = ms.garnet(4, 2, 2, seed=0).dense_P()


def test_stored_arrays_are_read_only_and_replace_validates():
    a, b = _two_mdps()
    with pytest.raises(ValueError):
        a.R[0, 0] = 1.0  # numpy: assignment destination is read-only
    with pytest.raises(AttributeError):
        a.P2 = b.P2
    c = a.replace(gamma=0.5, R=b.R)
    assert c.gamma == 0.5 and np.array_equal(c.R, b.R) and a.gamma == 0.9
    with pytest.raises(ValueError, match="replace"):
        a.replace(discount=0.5)


# ---------------------------------------------------------------------- pymdptoolbox layout
@pytest.mark.parametrize("sparse", [False, True])
def test_from_mdptoolbox_transposes_action_first_and_round_trips(sparse):
    import scipy.sparse as sps
    from mdpsandbox.envs.convert import from_mdptoolbox, to_mdptoolbox
    ref = ms.garnet(4, 4, 2, gamma=0.9, seed=3)  # S = A: the case a transposed P would pass unnoticed
    P_af = ref.dense_P().transpose(1, 0, 2)  # (A, S, S)
    P_in = [sps.csr_matrix(m) for m in P_af] if sparse else P_af
    mdp = from_mdptoolbox(P_in, ref.R, 0.9)
    assert mdp.is_sparse == sparse
    np.testing.assert_array_equal(mdp.dense_P(), ref.dense_P())
    np.testing.assert_allclose(ms.solve(mdp).v, ms.solve(ref).v, atol=1e-12)
    P_out, R_out = to_mdptoolbox(mdp)
    P_out = np.stack([m.toarray() for m in P_out]) if sparse else P_out
    np.testing.assert_array_equal(P_out, P_af)
    np.testing.assert_array_equal(R_out, ref.R)
    # the misuse the converter exists for: the action-first array read as state-first is another MDP
    wrong = ms.TabularMDP(P_af, ref.R, 0.9)
    assert np.max(np.abs(ms.solve(wrong).v - ms.solve(ref).v)) > 1e-3
    # R as (A, S, S) and as (S,)
    R3 = np.random.default_rng(0).normal(size=(4, 4, 4))
    m3 = ms.TabularMDP.from_mdptoolbox(P_in, R3, 0.9)
    np.testing.assert_allclose(m3.R, np.einsum("sat,ast->sa", ref.dense_P(), R3), atol=1e-14)
    m1 = from_mdptoolbox(P_in, np.arange(4.0), 0.9)
    np.testing.assert_array_equal(m1.R, np.repeat(np.arange(4.0)[:, None], 4, axis=1))
    assert np.array_equal(ms.TabularMDP.to_mdptoolbox(mdp)[1], ref.R)
