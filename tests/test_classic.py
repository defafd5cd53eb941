"""Classic DP methods (docs/math.md §1–3, §14): each equals policy iteration / the linear solve."""
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import mdpsandbox as ms
from mdpsandbox.solvers.classic import (average_reward, gauss_seidel_vi, modified_policy_iteration, proper_policy,
                                        recurrent_classes, relative_value_iteration, solve_lp, solve_ssp)
from mdpsandbox.testing import tabular_mdps

GAMMAS = st.sampled_from([0.0, 0.5, 0.9, 0.99])


def _exact_hard(mdp):
    return ms.solve(mdp, method="pi")


@settings(deadline=None, max_examples=40)
@given(tabular_mdps(max_states=6, max_actions=3, gamma=GAMMAS, sparse=None), st.integers(1, 30))
def test_mpi_and_gauss_seidel_equal_policy_iteration_hard(mdp, m):
    exact = _exact_hard(mdp)
    tol = 1e-10 * (1 + np.abs(exact.v).max())
    for sol in (modified_policy_iteration(mdp, m=m, tol=tol), gauss_seidel_vi(mdp, tol=tol)):
        assert sol.converged
        err = np.abs(sol.v - exact.v).max()
        assert err <= sol.bound + 1e-12 * (1 + np.abs(exact.v).max())   # the certificate holds
        assert sol.bound <= tol / 2 + 1e-15
        np.testing.assert_allclose(sol.v, exact.v, atol=tol, rtol=0)


@settings(deadline=None, max_examples=30)
@given(tabular_mdps(max_states=5, max_actions=3, gamma=GAMMAS, sparse=None),
       st.sampled_from([1e-8, 1e-3, 1.0, 1e3]), st.booleans())
def test_mpi_and_gauss_seidel_equal_policy_iteration_regularised(mdp, lam, kl):
    S, A = mdp.n_states, mdp.n_actions
    kw = dict(beta=lam, ref_policy=np.random.default_rng(S).dirichlet(np.ones(A), size=S)) if kl else \
        dict(temperature=lam)
    exact = ms.solve(mdp, method="pi", tol=1e-11, **kw)
    tol = 1e-9 * (1 + np.abs(exact.v).max())
    for sol in (modified_policy_iteration(mdp, m=5, tol=tol, **kw), gauss_seidel_vi(mdp, tol=tol, **kw)):
        np.testing.assert_allclose(sol.v, exact.v, atol=2 * tol, rtol=0)
        np.testing.assert_allclose(sol.policy, exact.policy, atol=1e-6)


@pytest.mark.parametrize("beta", [1e8, 1e12, 1e100, 1e300])
def test_gauss_seidel_kl_tends_to_reference_value_at_large_beta(beta):
    # β → ∞: π* → π_ref and V* → V^{π_ref} (docs/math.md §3), with no β·ε cancellation
    mdp = ms.garnet(30, 4, 3, gamma=0.9, seed=3)
    ref = np.random.default_rng(0).dirichlet(np.ones(4), size=30)
    v_ref = ms.evaluate(mdp, ref).v
    sol = gauss_seidel_vi(mdp, beta=beta, ref_policy=ref, tol=1e-9)
    # V* − V^{π_ref} = O(Var/β): below 1e-6 already at β = 1e8
    np.testing.assert_allclose(sol.v, v_ref, atol=1e-6 if beta == 1e8 else 1e-9, rtol=0)


def test_gauss_seidel_kl_tends_to_greedy_on_support_at_small_beta():
    mdp = ms.garnet(30, 4, 3, gamma=0.9, seed=4)
    ref = np.random.default_rng(1).dirichlet(np.ones(4), size=30)
    hard = ms.solve(mdp, method="pi")
    sol = gauss_seidel_vi(mdp, beta=1e-10, ref_policy=ref, tol=1e-8)
    np.testing.assert_allclose(sol.v, hard.v, atol=1e-7)


def test_mpi_with_m_1_is_value_iteration_and_warm_start_counts():
    mdp = ms.garnet(40, 3, 4, gamma=0.95, seed=0)
    exact = _exact_hard(mdp)
    cold = modified_policy_iteration(mdp, m=1, tol=1e-8)
    vi = ms.solve(mdp, method="vi", tol=1e-8)
    assert cold.iterations in (vi.iterations, vi.iterations + 1)
    warm = modified_policy_iteration(mdp, m=1, tol=1e-8, v0=exact.v)
    assert warm.iterations == 1 and np.abs(warm.v - exact.v).max() < 1e-8
    many = modified_policy_iteration(mdp, m=50, tol=1e-8)
    assert many.iterations < cold.iterations


@settings(deadline=None, max_examples=25)
@given(tabular_mdps(max_states=6, max_actions=3, gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99]), sparse=None),
       st.sampled_from(["highs-ipm", "highs-ds"]))
def test_lp_equals_policy_iteration_and_its_dual_is_the_occupancy(mdp, lp_method):
    exact = _exact_hard(mdp)
    lp = solve_lp(mdp, lp_method=lp_method)
    scale = 1 + np.abs(exact.v).max()
    np.testing.assert_allclose(lp.v, exact.v, atol=1e-10 * scale, rtol=0)
    np.testing.assert_allclose(lp.primal_v[~mdp.terminal], exact.v[~mdp.terminal], atol=1e-6 * scale)
    S, A = mdp.n_states, mdp.n_actions
    live = ~mdp.terminal

    def flow(x):   # Σ_a x(s',a) − γ Σ_{s,a} P(s'|s,a) x(s,a), the dual's equality constraints
        inflow = np.asarray(mdp.P2.T @ x.ravel()).ravel() if sp.issparse(mdp.P2) else mdp.P2.T @ x.ravel()
        return x.sum(axis=1) - mdp.gamma * inflow

    # the returned dual is feasible to round-off and complementary slack with V* (mass on greedy actions only)
    x = lp.occupancy
    assert np.all(x >= 0)
    np.testing.assert_allclose(flow(x)[live], lp.weights[live], atol=1e-12 * (1 + lp.weights.sum() / (1 - mdp.gamma)))
    gap = np.max(exact.q, axis=1, keepdims=True) - exact.q
    assert np.all(x[gap > 1e-9 * scale] == 0)
    # strong duality: Σ x r = wᵀV*, for the exact dual and for HiGHS's own multipliers
    assert abs(float(np.sum(x * mdp.R)) - float(lp.weights @ exact.v)) < 1e-10 * scale / (1 - mdp.gamma)
    assert abs(float(np.sum(lp.lp_occupancy * mdp.R)) - float(lp.weights @ exact.v)) < 1e-6 * scale
    np.testing.assert_allclose(flow(lp.lp_occupancy)[live], lp.weights[live], atol=1e-7)
    # with a unique optimum both equal ρ = (I − γ P_πᵀ)^{-1} w of the optimal policy (a direct solve here)
    top2 = np.sort(exact.q, axis=1)[:, -2:] if A > 1 else None
    if A > 1 and np.all((top2[:, 1] - top2[:, 0])[live] > 1e-6):
        act = np.argmax(exact.q, axis=1)
        pol = np.eye(A)[act]
        Ppi = np.asarray(mdp.policy_matrix(pol).todense()) if sp.issparse(mdp.P2) else mdp.policy_matrix(pol)
        Ppi = Ppi * live[:, None]
        rho = np.linalg.solve(np.eye(S) - mdp.gamma * Ppi.T, lp.weights)
        np.testing.assert_allclose(x[live][np.arange(live.sum()), act[live]], rho[live], atol=1e-10 * (1 + rho.max()))
        np.testing.assert_allclose(lp.lp_occupancy[live][np.arange(live.sum()), act[live]], rho[live], atol=1e-6)


def test_lp_at_scale_uses_interior_point_and_stays_exact():
    # the dual simplex needs minutes at S = 3000 (pivots grow with S·A); the IPM default is seconds,
    # and the polish makes the answer exact: equal to policy iteration's
    mdp = ms.garnet(600, 4, 5, gamma=0.99, seed=1, sparse=True)
    exact = _exact_hard(mdp)
    lp = solve_lp(mdp)
    assert lp.lp_method == "highs-ipm"
    np.testing.assert_allclose(lp.v, exact.v, atol=1e-10 * (1 + np.abs(exact.v).max()), rtol=0)
    np.testing.assert_array_equal(np.argmax(lp.policy, axis=1), np.argmax(exact.policy, axis=1))
    with pytest.raises(ValueError, match="lp_method"):
        solve_lp(mdp, lp_method="simplex")


def test_lp_refuses_an_unbounded_program():
    # γ = 1 and a reward-1 self-loop with no exit: V(0) ≥ 1 + V(0) is infeasible
    P = np.ones((1, 1, 1))
    mdp = ms.TabularMDP(P, np.array([[1.0]]), gamma=1.0)
    for m in ("highs-ipm", "highs-ds"):
        with pytest.raises(ValueError, match="linear program of mdp is"):
            solve_lp(mdp, lp_method=m)


def _small():
    # pymdptoolbox's example.small(): P is action-first (A, S, S), R is (S, A)
    Pa = np.array([[[0.5, 0.5], [0.8, 0.2]], [[0.0, 1.0], [0.1, 0.9]]])
    R = np.array([[5.0, 10.0], [-1.0, 2.0]])
    return Pa.transpose(1, 0, 2), R


def test_average_reward_of_toolbox_small_is_35_over_9():
    P, R = _small()
    # exact: the optimal policy (a1 in s0, a0 in s1) has chain [[0,1],[.8,.2]], stationary law (4/9, 5/9)
    stat = (Fraction(4, 9), Fraction(5, 9))
    assert stat[0] * 10 + stat[1] * (-1) == Fraction(35, 9)
    sol = average_reward(ms.TabularMDP(P, R, gamma=0.5))
    np.testing.assert_allclose(sol.gain, 35 / 9, atol=1e-13)
    assert sol.residual < 1e-12
    np.testing.assert_array_equal(np.argmax(sol.policy, axis=1), [1, 0])
    lo_hi = relative_value_iteration(ms.TabularMDP(P, R, gamma=0.5), tol=1e-10)[1]
    assert lo_hi[0] <= 35 / 9 <= lo_hi[1] and lo_hi[1] - lo_hi[0] < 1e-10


@pytest.mark.parametrize("seed", range(4))
def test_gain_is_the_limit_of_one_minus_gamma_times_discounted_value(seed):
    mdp = ms.garnet(15, 3, 15, gamma=0.5, seed=seed)        # full support: unichain
    sol = average_reward(mdp)
    g = 1 - 1e-7
    disc = ms.solve(ms.TabularMDP(mdp.P, mdp.R, gamma=g), method="pi")
    # (1−γ)V*_γ = g + (1−γ)h + O((1−γ)²)
    np.testing.assert_allclose((1 - g) * disc.v, sol.gain, atol=1e-6 * (1 + np.abs(sol.bias).max()))
    # evaluation of the optimal policy reproduces gain and bias exactly
    ev = average_reward(mdp, sol.policy)
    np.testing.assert_allclose(ev.gain, sol.gain, atol=1e-12)
    np.testing.assert_allclose(ev.bias, sol.bias, atol=1e-10)
    assert ev.residual < 1e-10


def test_average_reward_refuses_multichain_and_evaluates_it_exactly():
    # two absorbing states with rewards 1 and 2: a multichain MDP
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 1] = 1.0
    P[2, :, 2] = 1.0
    R = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    mdp = ms.TabularMDP(P, R, gamma=0.9)
    with pytest.raises(ValueError, match="multichain"):
        average_reward(mdp)
    half = np.array([[0.5, 0.5], [1, 0], [1, 0]])
    ev = average_reward(mdp, half)
    np.testing.assert_allclose(ev.gain, [1.5, 1.0, 2.0])      # absorption-weighted gains
    assert ev.recurrent_classes == 2
    assert len(recurrent_classes(mdp.policy_matrix(half))) == 2


def _cliff(gamma=1.0):
    gym = pytest.importorskip("gymnasium")
    from mdpsandbox.envs.interop import from_gymnasium

    return from_gymnasium(gym.make("CliffWalking-v1"), gamma=gamma)


def test_cliffwalking_at_gamma_one_is_minus_13_from_the_start():
    mdp = _cliff()
    assert not mdp.has_proper_policies                  # walking in circles is improper
    sol = solve_ssp(mdp)
    assert sol.v[36] == pytest.approx(-13.0, abs=1e-12)  # Sutton & Barto, Example 6.6
    assert sol.residual < 1e-9
    assert solve_lp(mdp).v[36] == pytest.approx(-13.0, abs=1e-9)
    pol = proper_policy(mdp)
    assert pol is not None


def test_ssp_refuses_without_a_proper_policy_and_with_free_cycles():
    P = np.zeros((2, 1, 2))
    P[0, 0, 0] = 1.0            # state 0 loops forever: no proper policy
    P[1, 0, 1] = 1.0
    mdp = ms.TabularMDP(P, np.array([[-1.0], [0.0]]), gamma=1.0, terminal=[1])
    with pytest.raises(ValueError, match="no proper policy"):
        solve_ssp(mdp)
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = 1.0            # a free loop (reward 0) next to an exit
    P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    mdp = ms.TabularMDP(P, np.array([[0.0, -1.0], [0.0, 0.0]]), gamma=1.0, terminal=[1])
    with pytest.raises(ValueError, match="cycle forever with reward >= 0"):
        solve_ssp(mdp)


def test_bad_input_is_refused_before_work():
    mdp = ms.garnet(5, 2, 2, gamma=0.9, seed=0)
    with pytest.raises(ValueError, match="m must be"):
        modified_policy_iteration(mdp, m=0)
    with pytest.raises(ValueError, match="v0"):
        gauss_seidel_vi(mdp, v0=np.zeros(3))
    with pytest.raises(ValueError, match="tol"):
        gauss_seidel_vi(mdp, tol=-1)
    with pytest.raises(ValueError, match="weights"):
        solve_lp(mdp, weights=np.ones(5))
    with pytest.raises(ValueError, match="mdp must be a TabularMDP"):
        solve_lp("not an mdp")
    with pytest.raises(ValueError, match="gamma < 1"):
        gauss_seidel_vi(_cliff())
    with pytest.raises(ValueError, match="aperiodicity"):
        relative_value_iteration(mdp, aperiodicity=0)


@settings(deadline=None, max_examples=25)
@given(tabular_mdps(max_states=6, max_actions=3, gamma=st.sampled_from([0.5, 0.9, 0.99]), sparse=None))
def test_solve_front_door_methods_agree_and_warm_starts_are_fixed_points(mdp):
    exact = ms.solve(mdp, method="pi")
    scale = 1 + np.abs(exact.v).max()
    for method in ("mpi", "gauss-seidel", "lp", "vi"):
        sol = ms.solve(mdp, method=method, tol=1e-10 * scale)
        np.testing.assert_allclose(sol.v, exact.v, atol=1e-9 * scale)
        # started at V*, every iterative method stops after one sweep with V*
        warm = ms.solve(mdp, method=method, tol=1e-10 * scale, v0=exact.v)
        if method != "lp":
            assert warm.iterations == 1
        np.testing.assert_allclose(warm.v, exact.v, atol=1e-9 * scale)
    assert ms.solve(mdp, method="pi", policy0=exact.policy).iterations == 1


@settings(deadline=None, max_examples=25)
@given(tabular_mdps(max_states=5, max_actions=3, gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99]), sparse=None),
       st.integers(1, 6), st.sampled_from([None, 0.3]))
def test_finite_horizon_with_terminal_value_v_star_returns_v_star(mdp, H, tau):
    # T^H V* = V*: backward induction from the infinite-horizon optimum reproduces it at every stage
    exact = ms.solve(mdp, method="pi", temperature=tau, tol=1e-11)
    fin = ms.solve(mdp, horizon=H, temperature=tau, terminal_value=exact.v)
    np.testing.assert_allclose(fin.v, np.broadcast_to(exact.v, fin.v.shape), atol=1e-8 * (1 + np.abs(exact.v).max()))


def test_gamma_one_episodic_task_solves_as_ssp_through_solve():
    mdp = _cliff()
    assert ms.solve(mdp).v[36] == pytest.approx(-13.0)
    assert ms.solve(mdp, method="lp").v[36] == pytest.approx(-13.0)
    with pytest.raises(ValueError, match="gamma = 1 requires"):
        ms.solve(mdp, temperature=0.1)          # regularised SSP: refused, not invented
    with pytest.raises(ValueError, match="hard control only"):
        ms.solve(mdp, method="lp", temperature=0.1)
    with pytest.raises(ValueError, match="terminal_value"):
        ms.solve(ms.garnet(4, 2, 2, seed=0), terminal_value=np.zeros(4))


# ---------------------------------------------------------------------- method="auto" (solve's docstring rule)
def _auto_rule(mdp, gamma, hard):
    """solve()'s documented choice for an infinite-horizon TabularMDP with 0 ≤ γ < 1, a tol that value
    iteration can certify and no policy0, written from its docstring."""
    S = mdp.n_states
    if gamma > 0.9:
        return "pi"
    if not mdp.is_sparse and S >= 100:
        return "mpi" if gamma <= 0.5 and S < 400 else "pi"
    if hard or gamma <= 0.5 or S <= 300:
        return "gauss-seidel"
    return "pi"


def _reg_kw(kind, S, A, lam):
    if kind == "hard":
        return {}
    if kind == "tau":
        return {"temperature": lam}
    return {"beta": lam, "ref_policy": np.random.default_rng(S).dirichlet(np.ones(A), size=S)}


@pytest.mark.parametrize("S,sparse", [(8, False), (8, True), (120, False), (120, True), (350, True), (420, False)])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.7, 0.9, 0.95])
@pytest.mark.parametrize("kind", ["hard", "tau", "kl"])
def test_auto_picks_the_method_its_docstring_names(S, sparse, gamma, kind):
    mdp = ms.garnet(S, 3, 4, gamma=gamma, seed=0, sparse=sparse)
    kw = _reg_kw(kind, S, 3, 0.5)
    assert ms.solve(mdp, **kw).method == _auto_rule(mdp, gamma, kind == "hard")
    # a PI warm start is used by PI; a tol that VI cannot certify above round-off → PI
    assert ms.solve(mdp, policy0=np.full((S, 3), 1 / 3), **kw).method == "pi"
    if gamma > 0 and S < 400:
        assert ms.solve(mdp, tol=1e-15, **kw).method == "pi"


@settings(deadline=None, max_examples=20)
@given(st.sampled_from([(6, False), (6, True), (110, False), (40, True), (320, True)]),
       st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99]), st.sampled_from(["hard", "tau", "kl"]),
       st.sampled_from([1e-3, 1.0]), st.sampled_from([1e-9, 1e-6]), st.integers(0, 2**16))
def test_auto_certifies_its_tolerance_in_every_branch(size, gamma, kind, lam, tol, seed):
    S, sparse = size
    mdp = ms.garnet(S, 3, 3, gamma=gamma, seed=seed, sparse=sparse)
    kw = _reg_kw(kind, S, 3, lam)
    sol = ms.solve(mdp, tol=tol, **kw)
    assert sol.method == _auto_rule(mdp, gamma, kind == "hard")
    assert sol.converged and sol.bound <= tol
    # reference: policy iteration (hard: a stable policy, exact V^π by a linear solve; regularised: a
    # Bellman residual at round-off, certified bound ref.bound)
    ref = ms.solve(mdp, method="pi", tol=1e-12, **kw)
    err = float(np.abs(sol.v - ref.v).max())
    assert err <= tol + ref.bound + 1e-12 * (1 + np.abs(ref.v).max())
    if kind == "hard":
        # the greedy policy of an auto answer is optimal: its exact value (one direct solve) is V*
        act = np.argmax(sol.q, axis=1)
        Ppi = mdp.dense_P()[np.arange(S), act]
        v_act = np.linalg.solve(np.eye(S) - gamma * Ppi, mdp.R[np.arange(S), act])
        assert np.abs(v_act - ref.v).max() <= 2 * tol / (1 - gamma) + 1e-10 * (1 + np.abs(ref.v).max())


# ---------------------------------------------------------------------- average reward, RVI and SSP
# against brute-force references: exact rational Laurent expansions, enumeration of every
# deterministic policy (mutation testing of classic.py found these functions' tests too narrow)
from itertools import product  # noqa: E402
import warnings  # noqa: E402


def _frac_solve(M, b):
    """Exact Gauss–Jordan elimination over Fractions (M nonsingular)."""
    n = len(b)
    M = [list(row) + [b[i]] for i, row in enumerate(M)]
    for k in range(n):
        p = next(i for i in range(k, n) if M[i][k] != 0)
        M[k], M[p] = M[p], M[k]
        for i in range(n):
            if i != k and M[i][k] != 0:
                f = M[i][k] / M[k][k]
                M[i] = [x - f * y for x, y in zip(M[i], M[k])]
    return [M[i][n] / M[i][i] for i in range(n)]


def _closed_classes(P):
    """Closed communicating classes of a small chain by Warshall's transitive closure."""
    S = len(P)
    reach = [[i == j or P[i][j] > 0 for j in range(S)] for i in range(S)]
    for k in range(S):
        for i in range(S):
            if reach[i][k]:
                for j in range(S):
                    reach[i][j] = reach[i][j] or reach[k][j]
    out = []
    for i in range(S):
        Ri = frozenset(j for j in range(S) if reach[i][j])
        if all(frozenset(j2 for j2 in range(S) if reach[j][j2]) == Ri for j in Ri) and Ri not in out:
            out.append(Ri)
    return out


@st.composite
def _rational_chain_problems(draw):
    """(P (S,A,S) Fractions, R (S,A) Fractions, policy (S,A) Fractions, terminal list): integer weights
    with zeros, so chains are multichain, periodic or have transient states."""
    S = draw(st.integers(2, 5))
    A = draw(st.integers(1, 3))
    P = []
    for _s in range(S):
        rows = []
        for _a in range(A):
            w = draw(st.lists(st.integers(0, 3), min_size=S, max_size=S).filter(any))
            rows.append([Fraction(x, sum(w)) for x in w])
        P.append(rows)
    R = [[Fraction(draw(st.integers(-4, 4)), 2) for _a in range(A)] for _s in range(S)]
    pol = []
    for _s in range(S):
        w = draw(st.lists(st.integers(0, 2), min_size=A, max_size=A).filter(any))
        pol.append([Fraction(x, sum(w)) for x in w])
    terminal = draw(st.lists(st.integers(0, S - 1), max_size=S - 1, unique=True))
    return P, R, pol, sorted(terminal)


def _laurent_gain_bias(P, R, pol, terminal):
    """Exact (to ~1e-20) gain and bias of a fixed policy from the Laurent expansion
    εV_{1−ε} = g + εh + O(ε²), ε = 1e-20 and 2e-20 in rational arithmetic; terminal states absorb
    with reward 0. The bias of this expansion is the deviation-matrix bias (P*h = 0)."""
    S = len(P)
    Pp = [[sum(pol[s][a] * P[s][a][t] for a in range(len(pol[s]))) for t in range(S)] for s in range(S)]
    rp = [sum(pol[s][a] * R[s][a] for a in range(len(pol[s]))) for s in range(S)]
    for t in terminal:
        Pp[t] = [Fraction(int(j == t)) for j in range(S)]
        rp[t] = Fraction(0)
    eps = Fraction(1, 10**20)
    a = []
    for e in (eps, 2 * eps):
        g = 1 - e
        V = _frac_solve([[int(i == j) - g * Pp[i][j] for j in range(S)] for i in range(S)], rp)
        a.append([e * x for x in V])
    gain = [2 * x - y for x, y in zip(*a)]
    bias = [(y - x) / eps for x, y in zip(*a)]
    return np.array(gain, dtype=float), np.array(bias, dtype=float), Pp


def _float_mdp(P, R, terminal, gamma=0.9):
    return ms.TabularMDP(np.array(P, dtype=float), np.array(R, dtype=float), gamma=gamma,
                         terminal=terminal or None)


@settings(deadline=None, max_examples=60)
@given(_rational_chain_problems())
def test_average_reward_evaluation_equals_the_laurent_expansion_of_the_discounted_value(problem):
    P, R, pol, terminal = problem
    g_ref, h_ref, Pp = _laurent_gain_bias(P, R, pol, terminal)
    mdp = _float_mdp(P, R, terminal)
    pol_f = np.array(pol, dtype=float)
    ev = average_reward(mdp, pol_f)
    np.testing.assert_allclose(ev.gain, g_ref, atol=1e-9)
    np.testing.assert_allclose(ev.bias, h_ref, atol=1e-9)     # every state: recurrent, transient, terminal
    assert ev.residual < 1e-9
    np.testing.assert_array_equal(ev.policy, pol_f)
    assert ev.iterations == 0 and ev.method == "evaluation"
    classes = _closed_classes(Pp)
    # terminal states (each absorbing here) count as one class in average_reward
    expected = sum(1 for C in classes if not C & set(terminal)) + (1 if terminal else 0)
    assert ev.recurrent_classes == expected
    # the Poisson equation g + h = r_π + P_π h and zero stationary mean (P*h = 0) hold exactly
    q = np.array(R, dtype=float) + np.einsum("sat,t->sa", np.array(P, dtype=float), ev.bias)
    nt = np.setdiff1d(np.arange(len(P)), terminal)
    np.testing.assert_allclose(np.sum(pol_f * q, axis=1)[nt], (ev.gain + ev.bias)[nt], atol=1e-9)


def test_average_reward_keeps_the_current_action_on_an_exact_tie():
    # state 0: a0 (r = 0) → 1, a1 (r = 1) → 2; states 1 (r = 1) and 2 (r = 0) return to 0.
    # Start a1 (argmax r): gain 1/2, h = (1/4, 3/4, −1/4), q(0, ·) = (3/4, 3/4) — a tie: PI keeps a1
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 0] = P[2, :, 0] = 1.0
    R = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    sol = average_reward(ms.TabularMDP(P, R, gamma=0.5))
    assert sol.iterations == 1
    np.testing.assert_array_equal(np.argmax(sol.policy, axis=1), [1, 0, 0])
    np.testing.assert_allclose(sol.gain, 0.5, atol=1e-15)
    np.testing.assert_allclose(sol.bias, [0.25, 0.75, -0.25], atol=1e-15)


def test_average_reward_refuses_two_recurrent_classes_even_with_equal_gains_and_bad_arguments():
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 1] = P[2, :, 2] = 1.0
    R = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])          # both absorbing states: gain 1
    mdp = ms.TabularMDP(P, R, gamma=0.9)
    with pytest.raises(ValueError, match=r"2 recurrent classes \(gains \[1.0\]\).*multichain"):
        average_reward(mdp)
    with pytest.raises(ValueError, match="policy"):
        average_reward(mdp, np.ones((3, 3)) / 3)
    with pytest.raises(ValueError, match="policy"):
        average_reward(mdp, np.array([[0.5, 0.6], [1, 0], [1, 0]]))
    with pytest.raises(ValueError, match="max_iter"):
        average_reward(ms.garnet(4, 2, 4, gamma=0.5, seed=0), max_iter=0)


def test_average_reward_counts_its_policy_improvement_steps():
    for seed in range(20):
        mdp = ms.garnet(12, 4, 12, gamma=0.5, seed=seed)
        sol = average_reward(mdp)
        if sol.iterations > 1:
            break
    assert sol.iterations > 1
    assert average_reward(mdp, max_iter=sol.iterations).iterations == sol.iterations
    with pytest.raises(ValueError, match="did not stabilise"):
        average_reward(mdp, max_iter=sol.iterations - 1)


def _positive_mdp(rng, S, A, terminal=None):
    P = rng.integers(1, 5, size=(S, A, S)).astype(float)
    P /= P.sum(-1, keepdims=True)
    return ms.TabularMDP(P, rng.normal(size=(S, A)), gamma=0.5, terminal=terminal)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("with_terminal", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_relative_value_iteration_brackets_the_exact_gain_and_returns_the_relative_bias(alpha, with_terminal, seed):
    rng = np.random.default_rng(seed)
    S, A = 6, 3
    mdp = _positive_mdp(rng, S, A, terminal=[S - 1] if with_terminal else None)   # unichain, aperiodic
    exact = average_reward(mdp)
    ref = int(rng.integers(0, S - 1))
    tol = 1e-11
    g, (lo, hi), h, it = relative_value_iteration(mdp, tol=tol, ref_state=ref, aperiodicity=alpha)
    slack = 1e-13 * (1 + abs(exact.g))
    assert lo - slack <= exact.g <= hi + slack                   # the Odoni interval holds
    assert hi - lo < tol and abs(g - exact.g) < tol
    if with_terminal:
        assert exact.g == 0.0 and abs(g) < tol                     # every policy terminates: gain 0
    assert h[ref] == 0.0
    np.testing.assert_allclose(h, exact.bias - exact.bias[ref], atol=1e-8 * (1 + np.abs(exact.bias).max()))
    assert it > 1
    with pytest.warns(ms.ConvergenceWarning, match="max_iter"):
        relative_value_iteration(mdp, tol=tol, ref_state=ref, aperiodicity=alpha, max_iter=it - 1)


def test_relative_value_iteration_needs_the_aperiodicity_transform_on_a_periodic_chain():
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = P[1, 0, 0] = 1.0                                 # period 2
    mdp = ms.TabularMDP(P, np.array([[1.0], [0.0]]), gamma=0.5)
    with pytest.warns(ms.ConvergenceWarning):
        g, (lo, hi), _h, it = relative_value_iteration(mdp, max_iter=200)
    assert it == 200 and lo <= 0.5 <= hi and hi - lo >= 1.0 - 1e-12   # bounds valid, never tight
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g, (lo, hi), h, _ = relative_value_iteration(mdp, tol=1e-12, aperiodicity=0.5)
    assert abs(g - 0.5) < 1e-12
    np.testing.assert_allclose(h, [0.0, -0.5], atol=1e-11)       # bias (1/4, −1/4) relative to state 0


def test_relative_value_iteration_refuses_bad_arguments():
    mdp = ms.garnet(4, 2, 4, gamma=0.5, seed=0)
    for kw, name in ((dict(ref_state=4), "ref_state"), (dict(ref_state=-1), "ref_state"), (dict(tol=0.0), "tol"),
                     (dict(max_iter=0), "max_iter"), (dict(aperiodicity=1.5), "aperiodicity")):
        with pytest.raises(ValueError, match=name):
            relative_value_iteration(mdp, **kw)


def _brute_force_ssp(P, R, terminal):
    """V* of a γ = 1 SSP: max over every deterministic proper policy of its total reward (B–T: the
    optimum is attained by a proper deterministic policy); None if no policy is proper."""
    S, A = R.shape
    nt = [s for s in range(S) if s not in terminal]
    best = None
    for acts in product(range(A), repeat=len(nt)):
        Pp = np.zeros((S, S))
        r = np.zeros(S)
        for s, a in zip(nt, acts):
            Pp[s] = P[s, a]
            r[s] = R[s, a]
        for t in terminal:
            Pp[t, t] = 1.0
        if any(not C <= set(terminal) for C in _closed_classes(Pp.tolist())):
            continue                                               # improper: a class avoids termination
        v = np.zeros(S)
        v[nt] = np.linalg.solve(np.eye(len(nt)) - Pp[np.ix_(nt, nt)], r[nt])
        best = v if best is None else np.maximum(best, v)
    return best


@st.composite
def _ssp_problems(draw, every_action_may_terminate):
    S = draw(st.integers(2, 5))
    A = draw(st.integers(1, 3))
    n_term = draw(st.integers(1, max(1, S - 1)))
    terminal = list(range(S - n_term, S))
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            w = np.array(draw(st.lists(st.integers(0, 3), min_size=S, max_size=S)), dtype=float)
            if every_action_may_terminate:
                w[terminal[0]] += 1.0
            if w.sum() == 0:
                w[s] = 1.0
            P[s, a] = w / w.sum()
    if every_action_may_terminate:   # any sign: every policy is proper
        R = np.array(draw(st.lists(st.integers(-6, 6), min_size=S * A, max_size=S * A)), dtype=float).reshape(S, A) / 2
    else:                            # step costs: every improper policy has value −∞
        R = -np.array(draw(st.lists(st.integers(1, 6), min_size=S * A, max_size=S * A)), dtype=float).reshape(S, A) / 2
    init = np.ones(S) / S
    return ms.TabularMDP(P, R, gamma=1.0, terminal=terminal, initial=init), P, R, terminal


@settings(deadline=None, max_examples=40)
@given(_ssp_problems(every_action_may_terminate=False))
def test_ssp_equals_the_best_proper_policy_by_enumeration(problem):
    mdp, P, R, terminal = problem
    ref = _brute_force_ssp(P, R, terminal)
    pol = proper_policy(mdp)
    if ref is None:
        assert pol is None
        with pytest.raises(ValueError, match="no proper policy"):
            solve_ssp(mdp)
        return
    # proper_policy returns a proper deterministic policy (terminal entries are 0 by convention)
    assert pol is not None and pol.shape == (mdp.n_states,)
    Pp = np.array([P[s, pol[s]] if s not in terminal else np.eye(mdp.n_states)[s] for s in range(mdp.n_states)])
    assert all(C <= set(terminal) for C in _closed_classes(Pp.tolist()))
    sol = solve_ssp(mdp)
    np.testing.assert_allclose(sol.v, ref, atol=1e-10 * (1 + np.abs(ref).max()))
    assert sol.bound == 0.0 and sol.residual < 1e-10 and sol.converged
    assert sol.value_initial == pytest.approx(float(mdp.initial @ ref), abs=1e-9 * (1 + np.abs(ref).max()))
    assert solve_ssp(mdp, max_iter=sol.iterations).iterations == sol.iterations
    if sol.iterations > 1:
        with pytest.raises(ValueError, match="did not stabilise"):
            solve_ssp(mdp, max_iter=sol.iterations - 1)


@settings(deadline=None, max_examples=30)
@given(_ssp_problems(every_action_may_terminate=True))
def test_ssp_with_rewards_of_any_sign_when_every_policy_terminates_equals_average_reward_bias(problem):
    # every policy is proper: condition (ii) holds vacuously, so positive rewards are allowed; the
    # average-reward problem has gain 0 and its optimal bias (terminal bias 0) is the SSP value
    mdp, P, R, terminal = problem
    ref = _brute_force_ssp(P, R, terminal)
    sol = solve_ssp(mdp)
    np.testing.assert_allclose(sol.v, ref, atol=1e-10 * (1 + np.abs(ref).max()))
    ar = average_reward(mdp)
    np.testing.assert_allclose(ar.gain, 0.0, atol=1e-12)
    np.testing.assert_allclose(ar.bias, ref, atol=1e-9 * (1 + np.abs(ref).max()))


def test_ssp_refuses_bad_max_iter():
    with pytest.raises(ValueError, match="max_iter"):
        solve_ssp(_float_mdp([[[Fraction(1)]]], [[Fraction(-1)]], []), max_iter=0)


def test_relative_value_iteration_on_one_state_stops_after_exactly_one_backup():
    mdp = ms.TabularMDP(np.ones((1, 2, 1)), np.array([[0.25, -1.0]]), gamma=0.5)
    g, (lo, hi), h, it = relative_value_iteration(mdp, tol=1e-12)
    assert (g, lo, hi, it) == (0.25, 0.25, 0.25, 1)
    np.testing.assert_array_equal(h, [0.0])


def test_relative_value_iteration_on_a_multichain_mdp_warns_and_its_interval_holds_every_gain():
    # two absorbing states with rewards 1 and 2 (gains 1 and 2): the span never shrinks; with α = 1/2
    # each iteration's Th − h is (α·1, α·2) there, so the returned interval is exactly [1, 2]
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = 0.5
    P[0, 0, 2] = 0.5
    P[1, 0, 1] = P[2, 0, 2] = 1.0
    mdp = ms.TabularMDP(P, np.array([[0.0], [1.0], [2.0]]), gamma=0.5)
    with pytest.warns(ms.ConvergenceWarning, match="max_iter=50"):
        g, (lo, hi), h, it = relative_value_iteration(mdp, aperiodicity=0.5, max_iter=50)
    assert it == 50 and (lo, hi) == (1.0, 2.0) and g == 1.5
    assert h[0] == 0.0 and h.shape == (3,)


def test_ssp_keeps_the_proper_start_on_an_exact_tie_and_reports_q_policy_and_steps():
    # state 0: a0 costs 1/2 and moves to state 1 (which costs 1/2 and terminates), a1 costs 1 and
    # terminates: both total −1. proper_policy starts with a1 (it reaches the terminal set directly),
    # PI keeps it on the tie and stops after one evaluation
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 2] = P[2, :, 2] = 1.0
    R = np.array([[-0.5, -1.0], [-0.5, -0.5], [0.0, 0.0]])
    mdp = ms.TabularMDP(P, R, gamma=1.0, terminal=[2])
    assert proper_policy(mdp)[0] == 1
    sol = solve_ssp(mdp)
    assert sol.iterations == 1 and sol.method == "ssp-pi" and sol.converged
    np.testing.assert_array_equal(sol.v, [-1.0, -0.5, 0.0])
    np.testing.assert_array_equal(sol.q, [[-1.0, -1.0], [-0.5, -0.5], [0.0, 0.0]])
    np.testing.assert_array_equal(sol.policy[:2], [[0.5, 0.5], [0.5, 0.5]])   # uniform over ties, as solve
    one = ms.TabularMDP(np.ones((1, 1, 1)), np.array([[0.0]]), gamma=1.0, terminal=[0])
    assert solve_ssp(one).iterations == 1
