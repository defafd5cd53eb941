"""Exact DP on tabular MDPs: every check of docs/math.md §1–3.

Reference numbers are computed *in the tests* independently of the solvers: dense linear solves
written here, enumeration of deterministic policies, hand-written backward recursions.
"""
import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, strategies as st

import mdpsandbox as ms
from mdpsandbox.solvers.backups import Regulariser, bellman_backup
from mdpsandbox.testing import assert_policy_close, assert_values_close, policies, tabular_mdps


# ---------------------------------------------------------------------- independent references
def dense(mdp):
    return mdp.dense_P()


def lin_eval(mdp, pi, cost=None):
    """V^π = (I − γ P_π)^{-1}(r_π − cost_π), terminals pinned to 0 — a dense solve written here."""
    P, S = dense(mdp), mdp.n_states
    keep = ~mdp.terminal
    P_pi = np.einsum("sa,sat->st", pi, P) * keep[:, None]
    r = np.sum(pi * mdp.R, axis=1) - (0.0 if cost is None else cost)
    r = np.where(keep, r, 0.0)
    return np.linalg.solve(np.eye(S) - mdp.gamma * P_pi, r)


def kl_ent(pi, ref):
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = np.where(pi > 0, np.log(np.where(pi > 0, pi, 1)), 0.0)
        kl = np.sum(np.where(pi > 0, pi * (lp - np.log(ref)), 0.0), axis=1)
    return kl, -np.sum(pi * lp, axis=1)


def q_of(mdp, v):
    q = mdp.R + mdp.gamma * np.einsum("sat,t->sa", dense(mdp), v)
    q[mdp.terminal] = 0.0
    return q


def best_deterministic(mdp, allowed=None):
    """max over all deterministic stationary policies of V^π (elementwise), by enumeration."""
    S, A = mdp.n_states, mdp.n_actions
    best = np.full(S, -np.inf)
    choices = [[a for a in range(A) if allowed is None or allowed[s, a]] for s in range(S)]
    for acts in itertools.product(*choices):
        best = np.maximum(best, lin_eval(mdp, np.eye(A)[list(acts)]))
    return best


def with_terminal(mdp, n_term=3):
    term = np.zeros(mdp.n_states, bool)
    term[-n_term:] = True
    return ms.TabularMDP(mdp.P, mdp.R, mdp.gamma, terminal=term)


def make_mdp(gamma, sparse, terminal, S=25, A=4, seed=3):
    m = ms.garnet(S, A, 4, gamma=gamma, seed=seed, sparse=sparse)
    return with_terminal(m) if terminal else m


def uniform(mdp):
    return np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)


def random_ref(mdp, seed=0, zeros=False):
    rng = np.random.default_rng(seed)
    w = rng.random((mdp.n_states, mdp.n_actions)) + 0.05
    if zeros:
        w[:, 1:] *= rng.random((mdp.n_states, mdp.n_actions - 1)) < 0.5  # action 0 always allowed
    return w / w.sum(axis=1, keepdims=True)


REGS = {
    "hard": dict(),
    "entropy": dict(temperature=0.3),
    "kl": dict(beta=0.3),
}


def reg_kwargs(kind, mdp):
    kw = dict(REGS[kind])
    if kind == "kl":
        kw["ref_policy"] = random_ref(mdp, 1)
    return kw


def reg_cost(kind, mdp, pi, kw):
    if kind == "hard":
        return None
    kl, ent = kl_ent(pi, kw.get("ref_policy", uniform(mdp)))
    return kw["beta"] * kl if kind == "kl" else -kw["temperature"] * ent


# ---------------------------------------------------------------------- §1–3 contraction
@given(mdp=tabular_mdps(max_states=6, max_actions=4, sparse=None), kind=st.sampled_from(["hard", "entropy", "kl"]),
       lam=st.floats(1e-3, 1e2), seed=st.integers(0, 2**16))
def test_bellman_operator_is_gamma_contraction_in_sup_norm(mdp, kind, lam, seed):
    rng = np.random.default_rng(seed)
    S, A = mdp.n_states, mdp.n_actions
    if kind == "hard":
        reg = Regulariser()
    elif kind == "entropy":
        reg = Regulariser(temperature=lam)
    else:
        with np.errstate(divide="ignore"):
            reg = Regulariser(beta=lam, log_ref=np.log(random_ref(mdp, seed, zeros=A > 1)))
    scale = 10.0 ** rng.integers(-2, 3)
    v1, v2 = rng.normal(0, scale, S), rng.normal(0, scale, S)
    _, t1 = bellman_backup(mdp.P2, mdp.R, mdp.gamma, v1, reg, mdp.terminal)
    _, t2 = bellman_backup(mdp.P2, mdp.R, mdp.gamma, v2, reg, mdp.terminal)
    lhs = np.max(np.abs(t1 - t2))
    rhs = mdp.gamma * np.max(np.abs(v1 - v2))
    roundoff = 1e-12 * (1 + np.max(np.abs(t1)) + np.max(np.abs(t2)))
    assert lhs <= rhs + roundoff, (lhs, rhs)


# ---------------------------------------------------------------------- §1–3 VI = PI = linear solve
@pytest.mark.parametrize("kind", ["hard", "entropy", "kl"])
@pytest.mark.parametrize("terminal", [False, True], ids=["noterm", "term"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("gamma", [0.99, 0.999])
def test_vi_equals_pi_equals_linear_solve(gamma, sparse, terminal, kind):
    mdp = make_mdp(gamma, sparse, terminal)
    kw = reg_kwargs(kind, mdp)
    pi_sol = ms.solve(mdp, method="pi", **kw)
    assert pi_sol.converged and pi_sol.method == "pi"
    # the optimal policy's exact evaluation, by a dense solve written here
    v_lin = lin_eval(mdp, pi_sol.policy, reg_cost(kind, mdp, pi_sol.policy, kw))
    assert_values_close(pi_sol.v, v_lin, atol=1e-8, rtol=1e-10, env=mdp, name="V (PI vs linear solve)")
    # the policy is optimal for its own Q (Bellman optimality, not only self-consistency)
    q = q_of(mdp, v_lin)
    tv = Regulariser(kw.get("temperature", 0.0), kw.get("beta", 0.0),
                     np.log(kw["ref_policy"]) if "ref_policy" in kw else None).value(q)
    tv[mdp.terminal] = 0.0
    assert_values_close(tv, v_lin, atol=1e-8, rtol=1e-10, env=mdp, name="T V_lin")
    tol = 1e-6 if gamma == 0.999 else 1e-8
    vi_sol = ms.solve(mdp, method="vi", tol=tol, **kw)
    assert vi_sol.converged and vi_sol.method == "vi"
    err = np.max(np.abs(vi_sol.v - v_lin))
    assert err <= vi_sol.bound + 1e-9 and err < tol / 2 + 1e-9, (err, vi_sol.bound)
    assert_values_close(vi_sol.v, pi_sol.v, atol=tol, rtol=0, env=mdp, name="V (VI vs PI)")
    if kind != "hard":
        assert_policy_close(vi_sol.policy, pi_sol.policy, atol=10 * tol / min(kw.get("beta", 1), kw.get("temperature", 1)), env=mdp)


def test_hard_optimum_equals_best_deterministic_policy_by_enumeration():
    for seed in range(4):
        for term in (False, True):
            m = ms.garnet(5, 3, 3, gamma=0.95, seed=seed)
            mdp = with_terminal(m, 1) if term else m
            best = best_deterministic(mdp)
            for method in ("pi", "vi"):
                sol = ms.solve(mdp, method=method, tol=1e-10)
                assert_values_close(sol.v, best, atol=1e-9, rtol=0, env=mdp, name=f"V* ({method})")


@given(mdp=tabular_mdps(max_states=6, max_actions=3, sparse=None), data=st.data(),
       kind=st.sampled_from(["hard", "entropy", "kl"]))
def test_optimal_value_dominates_value_of_random_policies(mdp, data, kind):
    kw = reg_kwargs(kind, mdp)
    sol = ms.solve(mdp, **kw)
    for _ in range(3):
        pi = data.draw(policies(mdp))
        ev = ms.evaluate(mdp, pi, **kw)
        v_pi = lin_eval(mdp, pi, reg_cost(kind, mdp, pi, kw))
        assert_values_close(ev.v, v_pi, atol=1e-8, rtol=1e-8, env=mdp, name="evaluate vs linear solve")
        slack = 1e-7 * (1 + np.max(np.abs(sol.v)))
        assert np.all(v_pi <= sol.v + slack), np.max(v_pi - sol.v)


# ---------------------------------------------------------------------- §1 finite horizon
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.8, 0.99, 1.0])
@pytest.mark.parametrize("terminal", [None, [2]])
def test_finite_horizon_backward_induction_is_exact_in_H_sweeps(gamma, terminal):
    """V_0 of backward induction = max over all deterministic non-stationary policies (enumerated);
    terminal states keep value 0 at every stage."""
    S, A, H = 3, 2, 3
    base = ms.garnet(S, A, 2, gamma=0.5, seed=7)
    mdp = ms.TabularMDP(base.P, base.R, gamma, terminal=terminal)  # γ = 1 is legal with a finite horizon
    sol = ms.solve(mdp, horizon=H)
    assert sol.method == "backward" and sol.iterations == H and sol.v.shape == (H, S)
    assert sol.residual == 0.0 and sol.bound == 0.0 and sol.converged and sol.beta is None and sol.temperature is None
    P = mdp.dense_P()
    alive = ~mdp.terminal
    best = np.full(S, -np.inf)
    stage_policies = list(itertools.product(range(A), repeat=S))
    for plan in itertools.product(stage_policies, repeat=H):
        v = np.zeros(S)
        for t in reversed(range(H)):
            a = np.array(plan[t])
            v = (mdp.R[np.arange(S), a] + gamma * P[np.arange(S), a] @ v) * alive
        best = np.maximum(best, v)
    if terminal is not None:
        assert np.all(sol.v[:, mdp.terminal] == 0.0) and np.all(sol.q[:, mdp.terminal] == 0.0)
    assert_values_close(sol.v[0], best, atol=1e-12, rtol=1e-12, env=mdp, name="V_0")
    # the stage-wise greedy policy attains it (evaluate with a (H, S, A) policy)
    ev = ms.evaluate(mdp, sol.policy, horizon=H)
    assert_values_close(ev.v[0], best, atol=1e-12, rtol=1e-12, env=mdp)


@pytest.mark.parametrize("reg", [dict(temperature=0.5), dict(beta=0.5)])
def test_finite_horizon_regularised_backward_induction_is_its_policys_value_and_dominates(reg):
    S, A, H = 4, 3, 4
    mdp = ms.garnet(S, A, 2, gamma=1.0 - 1e-12, seed=2)
    if "beta" in reg:
        reg = dict(reg, ref_policy=random_ref(mdp, 4))
    sol = ms.solve(mdp, horizon=H, **reg)
    assert sol.beta == reg.get("beta") and sol.temperature == reg.get("temperature") and sol.bound == 0.0
    ev = ms.evaluate(mdp, sol.policy, horizon=H, **reg)
    assert_values_close(ev.v, sol.v, atol=1e-12, rtol=1e-12, env=mdp)
    rng = np.random.default_rng(0)
    for _ in range(20):
        pol = rng.dirichlet(np.ones(A), size=(H, S))
        assert np.all(ms.evaluate(mdp, pol, horizon=H, **reg).v[0] <= sol.v[0] + 1e-12)


# ---------------------------------------------------------------------- §2 soft control
@given(mdp=tabular_mdps(max_states=6, max_actions=4, gamma=st.sampled_from([0.5, 0.9, 0.99]), sparse=None),
       log_tau=st.floats(-4.0, 2.0))
def test_soft_value_gap_is_between_zero_and_tau_log_A_over_one_minus_gamma(mdp, log_tau):
    tau = 10.0**log_tau
    hard = ms.solve(mdp, method="pi")
    soft = ms.solve(mdp, temperature=tau, method="pi")
    gap = soft.v - hard.v
    bound = tau * math.log(mdp.n_actions) / (1 - mdp.gamma)
    slack = 1e-8 * (1 + np.max(np.abs(soft.v)))
    assert np.all(gap >= -slack), gap.min()
    assert np.all(gap <= bound + slack), (gap.max(), bound)


def test_soft_value_gap_bound_is_tight_for_indifferent_actions():
    """With rewards independent of the action, V*_τ − V* = τ log A/(1−γ) exactly (the bound is tight)."""
    S, A, g, tau = 4, 3, 0.9, 0.7
    base = ms.garnet(S, 1, 2, gamma=g, seed=0)
    P = np.repeat(base.dense_P(), A, axis=1)
    R = np.repeat(base.R, A, axis=1)
    mdp = ms.TabularMDP(P, R, g)
    gap = ms.solve(mdp, temperature=tau).v - ms.solve(mdp).v
    assert_values_close(gap, np.full(S, tau * math.log(A) / (1 - g)), atol=1e-9, rtol=1e-12)


# ---------------------------------------------------------------------- §3 KL control
@pytest.mark.parametrize("beta", [0.01, 0.3, 5.0])
def test_kl_to_uniform_equals_entropy_solution_minus_beta_log_A_per_discounted_step(beta):
    """No terminal states: every policy takes the same discounted number of steps 1/(1−γ), so
    KL(π‖U) = log A − H(π) shifts every value by β log A/(1−γ) and π* is identical."""
    mdp = make_mdp(0.9, False, False, S=12, A=3)
    kl = ms.solve(mdp, beta=beta, ref_policy=uniform(mdp))
    ent = ms.solve(mdp, temperature=beta)
    assert_policy_close(kl.policy, ent.policy, atol=1e-9, env=mdp)
    keep = np.ones(mdp.n_states)
    P_pi = np.einsum("sa,sat->st", ent.policy, mdp.dense_P())
    steps = np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi, keep)  # discounted steps, written here
    assert_values_close(steps, np.full(mdp.n_states, 1 / (1 - mdp.gamma)), atol=1e-9, rtol=0)
    assert_values_close(kl.v, ent.v - beta * math.log(mdp.n_actions) * steps, atol=1e-8, rtol=1e-10, env=mdp)


@pytest.mark.parametrize("beta", [0.01, 0.3, 5.0])
def test_kl_to_uniform_equals_entropy_with_reward_minus_beta_log_A_when_episodes_can_end(beta):
    """With terminal states the number of remaining steps depends on the policy, so the shift
    β log A per step is part of the reward: KL-to-uniform = entropy control of r − β log A
    (same π*), and V_KL = V^{π*}_entropy − β log A · (discounted remaining steps under π*)."""
    mdp = make_mdp(0.9, False, True, S=12, A=3)
    logA = math.log(mdp.n_actions)
    kl = ms.solve(mdp, beta=beta, ref_policy=uniform(mdp))
    ent = ms.solve(ms.TabularMDP(mdp.P, mdp.R - beta * logA, mdp.gamma, terminal=mdp.terminal), temperature=beta)
    assert_policy_close(kl.policy, ent.policy, atol=1e-9, env=mdp)
    assert_values_close(kl.v, ent.v, atol=1e-8, rtol=1e-10, env=mdp)
    keep = (~mdp.terminal).astype(float)
    P_pi = np.einsum("sa,sat->st", kl.policy, mdp.dense_P()) * keep[:, None]
    steps = np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi, keep)
    v_ent_pi = ms.evaluate(mdp, kl.policy, temperature=beta).v
    assert_values_close(kl.v, v_ent_pi - beta * logA * steps, atol=1e-8, rtol=1e-10, env=mdp)


def test_entropy_plus_kl_equals_entropy_at_temperature_alpha_plus_beta_with_reward_shifted_by_beta_log_ref():
    mdp = ms.garnet(10, 3, 3, gamma=0.9, seed=5)
    ref = random_ref(mdp, 2)
    alpha, beta = 0.2, 0.5
    both = ms.solve(mdp, temperature=alpha, beta=beta, ref_policy=ref)
    shifted = ms.TabularMDP(mdp.P, mdp.R + beta * np.log(ref), mdp.gamma)
    ent = ms.solve(shifted, temperature=alpha + beta)
    assert_values_close(both.v, ent.v, atol=1e-8, rtol=1e-10, env=mdp)
    assert_policy_close(both.policy, ent.policy, atol=1e-9, env=mdp)


@pytest.mark.parametrize("beta", [1e4, 1e6, 1e8])
def test_kl_policy_tends_to_ref_as_beta_grows(beta):
    mdp = ms.garnet(10, 3, 3, gamma=0.9, seed=1)
    ref = random_ref(mdp, 3)
    sol = ms.solve(mdp, beta=beta, ref_policy=ref)
    assert np.all(np.isfinite(sol.v)) and np.all(np.isfinite(sol.policy))
    # |log π* − log π_ref| = |Q* − V*|/β ≤ 2 max|Q|/β
    assert_policy_close(sol.policy, ref, atol=50 / beta, env=mdp)
    assert_values_close(sol.v, lin_eval(mdp, ref), atol=1e-4 + 1e3 / beta, rtol=0, env=mdp, name="V* vs V^ref")


@pytest.mark.parametrize("beta", [1e-2, 1e-4, 1e-8])
def test_kl_policy_tends_to_greedy_on_hard_q_restricted_to_ref_support_as_beta_shrinks(beta):
    mdp = ms.garnet(6, 3, 3, gamma=0.9, seed=11)
    ref = random_ref(mdp, 9, zeros=True)
    support = ref > 0
    assert not support.all()
    v_restr = best_deterministic(mdp, allowed=support)  # enumeration over allowed actions only
    q_restr = np.where(support, q_of(mdp, v_restr), -np.inf)
    greedy = np.eye(mdp.n_actions)[np.argmax(q_restr, axis=1)]
    sol = ms.solve(mdp, beta=beta, ref_policy=ref)
    assert np.all(sol.policy[~support] == 0.0)  # never leaves supp π_ref
    # V*_β ∈ [V_restr − β max(−log π_ref(greedy))/(1−γ), V_restr]
    lo = v_restr - beta * np.max(-np.log(ref[greedy > 0])) / (1 - mdp.gamma)
    assert np.all(sol.v <= v_restr + 1e-9) and np.all(sol.v >= lo - 1e-9)
    if beta <= 1e-4:
        assert_policy_close(sol.policy, greedy, atol=1e-6, env=mdp)


@pytest.mark.parametrize("gamma", [0.5, 0.95])
def test_kl_value_identity_reward_minus_beta_discounted_kl_under_optimal_policy(gamma):
    mdp = with_terminal(ms.garnet(12, 4, 3, gamma=gamma, seed=8), 2)
    ref, beta = random_ref(mdp, 5), 0.4
    sol = ms.solve(mdp, beta=beta, ref_policy=ref)
    # E_{π*}[Σγ^t r]: evaluate with no regulariser; E_{π*}[Σγ^t KL_t]: a linear solve on the KL
    reward_part = ms.evaluate(mdp, sol.policy).v
    kl_t, _ = kl_ent(sol.policy, ref)
    keep = ~mdp.terminal
    P_pi = np.einsum("sa,sat->st", sol.policy, mdp.dense_P()) * keep[:, None]
    kl_part = np.linalg.solve(np.eye(mdp.n_states) - gamma * P_pi, np.where(keep, kl_t, 0.0))
    assert_values_close(sol.v, reward_part - beta * kl_part, atol=1e-9, rtol=1e-10, env=mdp)
    assert_values_close(ms.evaluate(mdp, sol.policy, beta=beta, ref_policy=ref).v, sol.v, atol=1e-9, rtol=1e-10)
    assert np.isclose(sol.value_initial, mdp.initial @ (reward_part - beta * kl_part), atol=1e-9)


# ---------------------------------------------------------------------- solver bookkeeping
def test_vi_certified_bound_holds_and_is_reported():
    mdp = ms.garnet(30, 4, 5, gamma=0.95, seed=0)
    exact = lin_eval(mdp, ms.solve(mdp, method="pi").policy)
    for tol in (1e-2, 1e-4, 1e-8):
        sol = ms.solve(mdp, method="vi", tol=tol)
        assert sol.converged and sol.residual < tol * (1 - mdp.gamma) / (2 * mdp.gamma)
        assert np.max(np.abs(sol.v - exact)) <= sol.bound + 1e-12 and sol.bound <= tol / 2
        # the greedy policy is tol-optimal
        assert np.all(lin_eval(mdp, sol.policy) >= exact - tol)


def test_vi_max_iter_reached_warns_and_reports_not_converged():
    mdp = ms.garnet(10, 3, 3, gamma=0.99, seed=0)
    with pytest.warns(ms.ConvergenceWarning):
        sol = ms.solve(mdp, method="vi", max_iter=5, tol=1e-8)
    assert not sol.converged and sol.iterations == 5


def test_dense_and_sparse_transition_matrices_give_the_same_solution():
    d = ms.garnet(40, 3, 4, gamma=0.95, seed=2, sparse=False)
    s = ms.TabularMDP(sp.csr_matrix(d.P2), d.R, d.gamma)
    for kw in (dict(), dict(temperature=0.2), dict(beta=0.2, ref_policy=uniform(d))):
        for method in ("vi", "pi"):
            a, b = ms.solve(d, method=method, **kw), ms.solve(s, method=method, **kw)
            assert_values_close(a.v, b.v, atol=1e-10, rtol=0)


def test_gamma_one_with_proper_policies_is_solved_exactly():
    """γ = 1 is legal when every policy terminates: PI = enumeration (stochastic shortest path)."""
    S, A = 5, 2
    rng = np.random.default_rng(0)
    P = rng.random((S, A, S))
    P[:, :, -1] += 1.0  # every action reaches the terminal state with positive probability
    P /= P.sum(axis=2, keepdims=True)
    mdp = ms.TabularMDP(P, rng.random((S, A)) - 0.5, 1.0, terminal=[S - 1])
    assert mdp.has_proper_policies
    sol = ms.solve(mdp)
    assert_values_close(sol.v, best_deterministic(mdp), atol=1e-9, rtol=0, env=mdp)


def test_soft_pi_evaluation_is_certified_to_what_the_stop_needs_tol_below_the_default_accuracy():
    """A Krylov evaluation certified only to 1e-12 relative left the Bellman residual above PI's round-off
    stop for tol = 1e-15 (dense S = 420 ≥ KRYLOV_MIN_STATES, γ = 0.5): PI spun to max_iter. The evaluation
    is now asked for the accuracy the stop needs; PI converges in a few steps with |V − V*| at round-off
    (reference: the fixed point of VI iterated to a residual below 1e-15, exact for γ = 0.5)."""
    import warnings as _w
    mdp = ms.garnet(420, 4, branching=420, gamma=0.5, seed=0)
    with _w.catch_warnings():
        _w.simplefilter("error")
        sol = ms.solve(mdp, temperature=0.5, method="pi", tol=1e-15, max_iter=50)
    assert sol.converged and sol.iterations <= 6
    v = sol.v.copy()
    for _ in range(200):
        from mdpsandbox.solvers.backups import bellman_backup, Regulariser
        _, v_new = bellman_backup(mdp.P2, mdp.R, mdp.gamma, v, Regulariser(0.5), mdp.terminal)
        if np.max(np.abs(v_new - v)) < 1e-15:
            break
        v = v_new
    scale = 1.0 + float(np.max(np.abs(v)))
    assert float(np.max(np.abs(sol.v - v))) <= 64 * np.finfo(float).eps * scale


def test_soft_pi_stops_and_says_so_when_its_residual_stalls(monkeypatch):
    """If the evaluation cannot reach the stop (here: noise of 1e-9 injected into every evaluation) soft PI
    stops after 10 steps without improvement, converged=False, with a ConvergenceWarning naming the stall
    — not 10,000 silent steps."""
    import mdpsandbox.solvers.dp as dp
    real = dp._evaluate_tabular
    rng = np.random.default_rng(0)

    def noisy(*a, **k):
        v, kl, ent = real(*a, **k)
        return v + 1e-9 * rng.standard_normal(v.shape), kl, ent

    monkeypatch.setattr(dp, "_evaluate_tabular", noisy)
    mdp = ms.garnet(30, 3, branching=5, gamma=0.9, seed=1)
    with pytest.warns(ms.ConvergenceWarning, match="stalled"):
        sol = ms.solve(mdp, temperature=0.3, method="pi", tol=1e-12, max_iter=10_000)
    assert not sol.converged and sol.iterations <= 100  # (was max_iter = 10,000)
