"""The test cases of QuantEcon's DiscreteDP suite (quantecon/markov/tests/test_ddp.py), restated for
mdpsandbox through :func:`~mdpsandbox.envs.interop.from_quantecon`.

Every expected value comes from the problem's analytic solution (closed forms, exact fractions, or a
brute force over all deterministic policies in fractions) — never from our output or QuantEcon's.
The quantecon package is NOT needed: one extra cross-check at the end runs only when it is installed.
Where their test accepts an ε-approximation (value iteration, modified PI) ours is checked against
the exact V* with its own certificate, ‖v − v*‖∞ ≤ bound ≤ tol/2."""
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp

import mdpsandbox as ms
from mdpsandbox.envs.interop import from_quantecon
from mdpsandbox.solvers.backups import q_backup
from mdpsandbox.solvers.classic import average_reward, modified_policy_iteration, recurrent_classes, solve_lp

EXACT_METHODS = ("pi", "lp")
EPS_METHODS = ("vi", "mpi", "gauss-seidel")


def _sigma(sol, feasible, t=None):
    """QuantEcon's σ: the first maximiser of q over the feasible actions."""
    q = sol.q if t is None else sol.q[t]
    return np.argmax(np.where(feasible, q, -np.inf), axis=1)


def _brute_force(R, Q, beta):
    """Exact V* in fractions: the best of all deterministic policies, each evaluated by Gauss–Jordan
    elimination on (I − βP_σ)v = r_σ (product form with -inf for infeasible actions)."""
    import itertools

    n, m = len(R), len(R[0])
    feas = [[a for a in range(m) if R[s][a] != -np.inf] for s in range(n)]
    b = Fraction(beta)
    best, best_sigma = None, None
    for sigma in itertools.product(*feas):
        M = [[(1 if i == j else 0) - b * Fraction(Q[i][sigma[i]][j]) for j in range(n)] + [Fraction(R[i][sigma[i]])]
             for i in range(n)]
        for c in range(n):
            piv = next(r for r in range(c, n) if M[r][c] != 0)
            M[c], M[piv] = M[piv], M[c]
            M[c] = [x / M[c][c] for x in M[c]]
            for r in range(n):
                if r != c:
                    M[r] = [x - M[r][c] * y for x, y in zip(M[r], M[c])]
        v = [M[i][n] for i in range(n)]
        if best is None or all(x >= y for x, y in zip(v, best)) and v != best:
            best, best_sigma = v, sigma
    return best, best_sigma


# ---------------------------------------------------------------------- Puterman (2005) §3.1, two states
def _puterman_two_state(beta, form):
    """State 0: a0 stays/moves w.p. ½ (reward 5), a1 moves to 1 (reward 10); state 1: a0 stays (−1),
    a1 infeasible. Product form, or state–action pairs (sparse / dense Q)."""
    R = [[5.0, 10.0], [-1.0, -np.inf]]
    Q = np.zeros((2, 2, 2))
    Q[0, 0] = 0.5, 0.5
    Q[0, 1] = 0.0, 1.0
    Q[1, :] = 0.0, 1.0
    if form == "product":
        return from_quantecon(R, Q, beta)
    Q_sa = np.array([Q[0, 0], Q[0, 1], Q[1, 0]])
    return from_quantecon([5.0, 10.0, -1.0], sp.lil_matrix(Q_sa) if form == "sa-sparse" else Q_sa, beta,
                          s_indices=[0, 0, 1], a_indices=[0, 1, 0])


def _two_state_closed_form(beta):
    """Puterman's Example 6.2.1: v*(1) = −1/(1−β); for β > 10/11 σ* = (0, 0) and
    v*(0) = (5 − 5.5β)/((1 − β/2)(1 − β)); for β < 10/11 σ* = (1, 0) and v*(0) = 10 + βv*(1)."""
    b = Fraction(beta)
    v1 = -1 / (1 - b)
    if b > Fraction(10, 11):
        return [(5 - Fraction(11, 2) * b) / ((1 - b / 2) * (1 - b)), v1], [0, 0]
    return [10 + b * v1, v1], [1, 0]


@pytest.mark.parametrize("form", ["product", "sa-sparse", "sa-dense"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.95, 0.99])
def test_two_state_example_exact_methods_equal_puterman_closed_form(form, beta):
    mdp, feasible = _puterman_two_state(beta, form)
    v_star, sigma_star = _two_state_closed_form(beta)
    bf, bf_sigma = _brute_force([[5, 10], [-1, -np.inf]], [[(0.5, 0.5), (0, 1)], [(0, 1), (0, 1)]], Fraction(beta))
    assert bf == v_star and list(bf_sigma) == sigma_star          # the closed form is the brute-force optimum
    for method in EXACT_METHODS:
        for v0 in (None, [0.0, 1.0]):
            sol = ms.solve(mdp, method=method, v0=v0) if method == "pi" else ms.solve(mdp, method=method)
            np.testing.assert_allclose(sol.v, [float(x) for x in v_star], rtol=1e-14, atol=1e-14)
            np.testing.assert_array_equal(_sigma(sol, feasible), sigma_star)


@pytest.mark.parametrize("form", ["product", "sa-sparse", "sa-dense"])
@pytest.mark.parametrize("beta", [0.5, 0.95])
def test_two_state_example_epsilon_methods_certify_half_epsilon(form, beta):
    # their VI/MPI tests accept any ε/2-approximation (ε = 1e-2); ours certify the same, and the bound holds
    mdp, feasible = _puterman_two_state(beta, form)
    v_star = np.array([float(x) for x in _two_state_closed_form(beta)[0]])
    sigma_star = _two_state_closed_form(beta)[1]
    eps = 1e-2
    for method in EPS_METHODS:
        for v0 in (None, [0.0, 1.0]):
            sol = ms.solve(mdp, method=method, tol=eps, v0=v0)
            assert sol.converged and sol.bound <= eps / 2
            # the bound is attained here (state 1 is a geometric series): allow the round-off of V's scale
            assert np.abs(sol.v - v_star).max() <= sol.bound + 1e-12 * (1 + np.abs(v_star).max())
            np.testing.assert_array_equal(_sigma(sol, feasible), sigma_star)


def test_two_state_example_mpi_with_no_partial_sweeps_is_value_iteration():
    # QuantEcon's k = 0 ↔ our m = 1: every outer step is one application of T
    mdp, _ = _puterman_two_state(0.95, "product")
    v_star = np.array([float(x) for x in _two_state_closed_form(0.95)[0]])
    mpi = modified_policy_iteration(mdp, m=1, tol=1e-2)
    vi = ms.solve(mdp, method="vi", tol=1e-2)
    assert mpi.iterations in (vi.iterations, vi.iterations + 1)
    assert np.abs(mpi.v - v_star).max() <= mpi.bound + 1e-12 * (1 + np.abs(v_star).max()) and mpi.bound <= 1e-2 / 2


def test_two_state_example_controlled_chain_value_and_greedy_step():
    # controlled_mc(σ*) = P_σ*; evaluate_policy(σ) = exact V^σ; compute_greedy(V^σ) = one improvement step
    beta = Fraction(95, 100)
    mdp, feasible = _puterman_two_state(0.95, "product")
    pol_star = np.eye(2)[[0, 0]]
    np.testing.assert_array_equal(mdp.policy_matrix(pol_star), [[0.5, 0.5], [0.0, 1.0]])
    classes = recurrent_classes(mdp.policy_matrix(pol_star))
    assert [c.tolist() for c in classes] == [[1]]                 # state 1 absorbs: stationary law (0, 1)
    np.testing.assert_allclose(average_reward(mdp, pol_star).gain, [-1.0, -1.0], atol=1e-14)
    # σ = (1, 0): v(1) = −1/(1−β) = −20, v(0) = 10 + β v(1) = −9 exactly
    ev = ms.evaluate(mdp, np.eye(2)[[1, 0]])
    v1 = -1 / (1 - beta)
    np.testing.assert_allclose(ev.v, [float(10 + beta * v1), float(v1)], rtol=1e-14)
    # greedy w.r.t. V^σ: q(0,0) = 5 + β(v0 + v1)/2 = −8.775 > q(0,1) = −9, so σ' = (0, 0)
    assert 5 + beta * (10 + beta * v1 + v1) / 2 == Fraction(-8775, 1000)
    np.testing.assert_array_equal(np.argmax(np.where(feasible, ev.q, -np.inf), axis=1), [0, 0])
    q = q_backup(mdp.P2, mdp.R, mdp.gamma, ev.v)
    np.testing.assert_allclose(q[0], [-8.775, -9.0], rtol=1e-14)
    # the Bellman operator: (Tv)(s) = max over feasible a of q(s, a)
    np.testing.assert_allclose(np.max(np.where(feasible, q, -np.inf), axis=1), [-8.775, -20.0], rtol=1e-14)


# ---------------------------------------------------------------------- β = 0
@pytest.mark.parametrize("form", ["product", "sa-sparse", "sa-dense"])
def test_beta_zero_is_the_myopic_maximum_exactly(form):
    # γ = 0: v* = max_a r(s, a) = (1, 1, 1), σ* = (1, 0, 1), bit-exact for every method
    R = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    Q = np.full((3, 2, 3), 1 / 3)
    if form == "product":
        mdp, feasible = from_quantecon(R, Q, 0)
    else:
        Q2 = Q.reshape(6, 3)
        mdp, feasible = from_quantecon(R.ravel(), sp.csr_matrix(Q2) if form == "sa-sparse" else Q2, 0,
                                       s_indices=np.repeat(np.arange(3), 2), a_indices=np.tile(np.arange(2), 3))
    for method in ("vi", "pi", "mpi", "gauss-seidel", "lp", "auto"):
        sol = ms.solve(mdp, method=method, v0=None if method == "lp" else np.zeros(3))
        np.testing.assert_array_equal(sol.v, [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(_sigma(sol, feasible), [1, 0, 1])


# ---------------------------------------------------------------------- state–action-pair order and forms
def test_state_action_pairs_in_any_order_give_the_same_mdp():
    R, Q = [0.0, 1.0, 2.0], [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    ref, f_ref = from_quantecon(R, Q, 0.95, s_indices=[0, 0, 1], a_indices=[0, 1, 0])
    for R2, Q2, s2, a2 in [(R, sp.csr_matrix(Q), [0, 0, 1], [0, 1, 0]),
                           ([0.0, 2.0, 1.0], [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)], [0, 1, 0], [0, 0, 1]),
                           ([0.0, 2.0, 1.0], sp.csr_matrix([(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)]), [0, 1, 0], [0, 0, 1])]:
        mdp, f = from_quantecon(R2, Q2, 0.95, s_indices=s2, a_indices=a2)
        np.testing.assert_array_equal(f, f_ref)
        np.testing.assert_array_equal(mdp.dense_P(), ref.dense_P())
        np.testing.assert_array_equal(mdp.R, ref.R)
    # v*(1) = 2/(1−β) = 40; state 0: a1 gives 1 + β(v0 + v1)/2, a0 gives 0 + βv0 → v0 = (1 + 19)/(1 − 0.475)
    b = Fraction(95, 100)
    v1 = 2 / (1 - b)
    v0 = (1 + b * v1 / 2) / (1 - b / 2)
    assert v0 > b * v0                                              # a1 beats staying at state 0
    np.testing.assert_allclose(ms.solve(ref, method="pi").v, [float(v0), float(v1)], rtol=1e-14)


def test_product_and_pair_forms_with_an_infeasible_action_solve_alike():
    # R[2, 0] = −inf; the 5 feasible pairs in pair form; brute force over the 4 deterministic policies
    R = [[0.0, 1.0], [1.0, 0.0], [-np.inf, 1.0]]
    Q = np.full((3, 2, 3), 1 / 3)
    Q[0, 0, 0], Q[0, 0, 1] = 0.0, 2 / 3
    v_star, sigma_star = _brute_force(R, [[[Fraction(0), Fraction(2, 3), Fraction(1, 3)], [Fraction(1, 3)] * 3],
                                          [[Fraction(1, 3)] * 3] * 2, [[Fraction(1, 3)] * 3] * 2], Fraction(95, 100))
    prod, f1 = from_quantecon(R, Q, 0.95)
    keep = np.isfinite(np.asarray(R).ravel())
    s_idx, a_idx = np.repeat(np.arange(3), 2)[keep], np.tile(np.arange(2), 3)[keep]
    Q_sa = Q.reshape(6, 3)[keep]
    for Qx in (Q_sa, sp.coo_matrix(Q_sa)):
        pair, f2 = from_quantecon(np.asarray(R).ravel()[keep], Qx, 0.95, s_indices=s_idx, a_indices=a_idx)
        np.testing.assert_array_equal(f2, f1)
        for method in ("pi", "lp", "auto"):
            a, b = ms.solve(prod, method=method), ms.solve(pair, method=method)
            np.testing.assert_allclose(a.v, [float(x) for x in v_star], rtol=1e-13)
            np.testing.assert_allclose(b.v, a.v, rtol=1e-14)
            np.testing.assert_array_equal(_sigma(a, f1), sigma_star)
            np.testing.assert_array_equal(_sigma(b, f2), sigma_star)
    # a Fortran-ordered Q is the same problem
    fort, _ = from_quantecon(R, np.asfortranarray(Q), 0.95)
    np.testing.assert_allclose(ms.solve(fort, method="pi").v, ms.solve(prod, method="pi").v, rtol=0, atol=0)


# ---------------------------------------------------------------------- finite horizon, β = 1
def test_inventory_backward_induction_equals_puterman_section_4_6_1():
    # single-product stochastic inventory control (Puterman 2005, §3.2 / §4.6.1): stock s ∈ {0..3},
    # order a ≤ 3 − s, horizon T = 3, β = 1; published values vs[t] and order quantities σ[t]
    s_idx = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3]
    a_idx = [0, 1, 2, 3, 0, 1, 2, 0, 1, 0]
    R = [0.0, -1.0, -2.0, -5.0, 5.0, 0.0, -3.0, 6.0, -1.0, 5.0]
    Q = [[1, 0, 0, 0], [.75, .25, 0, 0], [.25, .5, .25, 0], [0, .25, .5, .25], [.75, .25, 0, 0],
         [.25, .5, .25, 0], [0, .25, .5, .25], [.25, .5, .25, 0], [0, .25, .5, .25], [0, .25, .5, .25]]
    published = [[Fraction(67, 16), Fraction(129, 16), Fraction(194, 16), Fraction(227, 16)],
                 [Fraction(2), Fraction(25, 4), Fraction(10), Fraction(21, 2)], [0, 5, 6, 5]]
    published_sigma = [[3, 0, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0]]
    # independent backward induction in exact fractions confirms the published table
    v = [Fraction(0)] * 4
    for t in (2, 1, 0):
        q = {}
        for k, (s, a) in enumerate(zip(s_idx, a_idx)):
            q[s, a] = Fraction(R[k]) + sum(Fraction(Q[k][j]).limit_denominator(4) * v[j] for j in range(4))
        v = [max(q[s, a] for (s2, a) in q if s2 == s) for s in range(4)]
        assert v == [Fraction(x) for x in published[t]]
        assert [max((a for (s2, a) in q if s2 == s), key=lambda a: (q[s, a], -a)) for s in range(4)] == published_sigma[t]
    mdp, feasible = from_quantecon(R, np.array(Q, dtype=float), 1.0, s_indices=s_idx, a_indices=a_idx)
    sol = ms.solve(mdp, horizon=3)
    for t in range(3):
        np.testing.assert_allclose(sol.v[t], [float(x) for x in published[t]], rtol=1e-15, atol=1e-15)
        np.testing.assert_array_equal(_sigma(sol, feasible, t), published_sigma[t])


# ---------------------------------------------------------------------- refusals
def test_a_state_with_no_feasible_action_is_refused_in_every_form():
    R = np.array([[0.0, 1.0], [0.0, -np.inf], [-np.inf, -np.inf]])
    Q = np.full((3, 2, 3), 1 / 3)
    with pytest.raises(ValueError, match="state 2 has no feasible action"):
        from_quantecon(R, Q, 0.95)
    s_idx, a_idx = np.repeat(np.arange(3), 2), np.tile(np.arange(2), 3)
    for Qx in (Q.reshape(6, 3), sp.csr_matrix(Q.reshape(6, 3))):
        with pytest.raises(ValueError, match="state 2 has no feasible action"):
            from_quantecon(R.ravel(), Qx, 0.95, s_indices=s_idx, a_indices=a_idx)
    # a state without any pair: in the middle, and the last one (sorted and unsorted indices)
    Q3 = [(1 / 3, 1 / 3, 1 / 3)] * 4
    with pytest.raises(ValueError, match="state 1 has no feasible action"):
        from_quantecon([1.0, 0.0, 0.0, 1.0], Q3, 0.95, s_indices=[0, 0, 2, 2], a_indices=[0, 1, 0, 1])
    for s_i, a_i in (([0, 0, 1, 1], [0, 1, 0, 1]), ([1, 0, 1, 0], [0, 0, 1, 1])):
        with pytest.raises(ValueError, match="state 2 has no feasible action"):
            from_quantecon([1.0, 0.0, 0.0, 1.0], Q3, 0.95, s_indices=s_i, a_indices=a_i)


def test_duplicate_and_out_of_range_pairs_are_refused():
    Q = [(0.5, 0.5), (1.0, 0.0), (0.25, 0.75), (0.6, 0.4)]
    for Qx in (Q, sp.csr_matrix(Q)):
        with pytest.raises(ValueError, match="repeated state-action pair"):
            from_quantecon([1.0, 2.0, 3.0, 4.0], Qx, 0.95, s_indices=[1, 1, 0, 0], a_indices=[0, 0, 0, 1])
    Q2 = [(1.0, 0.0), (0.0, 1.0)]
    for Qx in (Q2, sp.csr_matrix(Q2)):
        for s_i in ([0, 2], [2, 0]):
            with pytest.raises(ValueError, match="s_indices must lie in"):
                from_quantecon([1.0, 2.0], Qx, 0.95, s_indices=s_i, a_indices=[0, 0])
    with pytest.raises(ValueError, match="s_indices must lie in"):
        from_quantecon([1.0, 2.0], Q2, 0.95, s_indices=[-1, 0], a_indices=[0, 0])
    with pytest.raises(ValueError, match="a_indices must be >= 0"):
        from_quantecon([1.0, 2.0], Q2, 0.95, s_indices=[0, 1], a_indices=[0, -1])


def test_nonpositive_max_iter_is_refused_before_work():
    mdp, _ = from_quantecon([[0.0, 1.0], [1.0, 0.0]], np.full((2, 2, 2), 0.5), 0.95)
    for method in ("vi", "pi", "mpi", "gauss-seidel", "lp"):
        for max_iter in (0, -1):
            with pytest.raises(ValueError, match="max_iter"):
                ms.solve(mdp, method=method, max_iter=max_iter)


def test_beta_one_infinite_horizon_is_refused_but_finite_horizon_solves():
    # DiscreteDP raises NotImplementedError for β = 1; ours: ValueError naming the missing condition
    mdp, _ = from_quantecon(np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), np.full((3, 2, 3), 1 / 3), 1.0)
    for method in ("vi", "pi"):
        with pytest.raises(ValueError, match="gamma = 1 requires"):
            ms.solve(mdp, method=method)
    for method in ("mpi", "gauss-seidel"):
        with pytest.raises(ValueError, match="gamma < 1"):
            ms.solve(mdp, method=method)
    with pytest.raises(ValueError, match="no proper policy"):
        ms.solve(mdp)
    with pytest.raises(ValueError, match="gamma = 1 requires"):
        ms.evaluate(mdp, np.full((3, 2), 0.5))
    # T stages of the myopic maximum 1: v_0 = T exactly
    np.testing.assert_array_equal(ms.solve(mdp, horizon=4).v[0], [4.0, 4.0, 4.0])


def test_converted_mdp_pickles_and_solves_alike():
    import pickle

    mdp, _ = _puterman_two_state(0.95, "sa-sparse")
    back = pickle.loads(pickle.dumps(mdp))
    a, b = ms.solve(mdp, method="pi"), ms.solve(back, method="pi")
    np.testing.assert_array_equal(a.v, b.v)
    np.testing.assert_array_equal(a.policy, b.policy)


# ---------------------------------------------------------------------- optional: QuantEcon itself
def test_quantecon_cross_check_exact_methods_agree_and_vi_is_an_epsilon_iterate():
    qe = pytest.importorskip("quantecon")
    R = [[5.0, 10.0], [-1.0, -np.inf]]
    Q = np.zeros((2, 2, 2))
    Q[0, 0] = 0.5, 0.5
    Q[0, 1] = 0.0, 1.0
    Q[1, :] = 0.0, 1.0
    ddp = qe.markov.DiscreteDP(R, Q, 0.95)
    mdp, feasible = from_quantecon(R, Q, 0.95)
    v_star = np.array([float(x) for x in _two_state_closed_form(0.95)[0]])
    ours = ms.solve(mdp, method="pi")
    res = ddp.solve(method="policy_iteration")
    np.testing.assert_allclose(res.v, ours.v, rtol=1e-13)
    np.testing.assert_allclose(res.v, v_star, rtol=1e-13)
    np.testing.assert_array_equal(res.sigma, _sigma(ours, feasible))
    np.testing.assert_allclose(ddp.evaluate_policy(np.array([1, 0])), ms.evaluate(mdp, np.eye(2)[[1, 0]]).v, rtol=1e-13)
    np.testing.assert_array_equal(res.mc.P, mdp.policy_matrix(np.eye(2)[res.sigma]))
    # their value iteration with ε = 1e-2 stops at an iterate within ε/2 of v*, not at v*
    vi = ddp.solve(method="value_iteration", epsilon=1e-2)
    err = np.abs(vi.v - v_star).max()
    assert err < 1e-2 / 2 and err > 1e-8
