r"""KL / entropy log-sum-exp at extreme β and τ through every entry point (docs/math.md §2–4, §6).

Reference: the same fixed point computed in 40-digit arithmetic (mpmath) — soft policy iteration on
small tabular MDPs, backward induction on trees — so every β from 1e-300 to 1e300 has an exact
answer. The backup must not cancel: V = β log Σ π_ref e^{Q/β} is ≈ E_{π_ref} Q + Var Q/(2β) for
large β (the naive β·LSE(log π_ref + Q/β) loses ~β·ε), and must not overflow for tiny β (Q/β).
Analytic limits are asserted too: β → ∞ gives Q^{π_ref}, V^{π_ref}; β → 0 gives the hard optimum
restricted to supp π_ref.
"""
import functools

import mpmath as mp
import numpy as np
import pytest
import scipy.sparse as sp

import mdpsandbox as ms
from mdpsandbox.solvers.return_laws import cd_policy, qsharp_q

BETAS = [1e-300, 1e-8, 1e-3, 1.0, 1e3, 1e8, 1e12, 1e300]
GAMMAS = [0.0, 0.5, 0.9, 0.99]
RTOL = 1e-12
mp.mp.dps = 40


# ---------------------------------------------------------------------- exact references
def _mp_soft_value(q_row, ref_row, beta):
    """β log Σ_a π_ref(a) e^{Q(a)/β} (mpmath, any β); -inf excluded actions have ref 0."""
    # π_ref normalised exactly (a float row sums to 1 only to ~1e-16, which β = 1e300 would amplify)
    tot = mp.fsum(mp.mpf(r) for r in ref_row)
    terms = [(mp.mpf(r) / tot, mp.mpf(q)) for q, r in zip(q_row, ref_row) if r > 0]
    qmax = max(q for _, q in terms)
    b = mp.mpf(beta)
    # log1p/expm1 so that 40 digits suffice even when (q − qmax)/β ~ 1e-300
    return qmax + b * mp.log1p(mp.fsum(r * mp.expm1((q - qmax) / b) for r, q in terms))


@functools.lru_cache(maxsize=None)
def _mp_kl_pi(key):
    """Soft (KL) policy iteration in 40 digits; returns float64 V*, Q*, π*. ``key`` indexes _CASES."""
    P, R, gamma, ref, beta, terminal = _CASES[key]
    S, A = R.shape
    Pm = [[[mp.mpf(P[s, a, t]) for t in range(S)] for a in range(A)] for s in range(S)]
    g, b = mp.mpf(gamma), mp.mpf(beta)
    refm = [[mp.mpf(ref[s, a]) for a in range(A)] for s in range(S)]
    refm = [[x / mp.fsum(row) for x in row] for row in refm]  # exactly normalised
    pol = [list(row) for row in refm]
    v = [mp.mpf(0)] * S
    for _ in range(60):
        # evaluate: (I − γ P_π) v = Σ π (r − β log(π/π_ref))
        M = mp.matrix(S, S)
        rhs = mp.matrix(S, 1)
        for s in range(S):
            M[s, s] = 1
            if terminal[s]:
                continue
            for a in range(A):
                p = pol[s][a]
                if p > 0:
                    rhs[s] += p * (R[s, a] - b * mp.log(p / refm[s][a]))
                    for t in range(S):
                        M[s, t] -= g * p * Pm[s][a][t]
        vv = mp.lu_solve(M, rhs)
        v_new = [vv[s] for s in range(S)]
        q = [[mp.mpf(0) if terminal[s] else R[s, a] + g * mp.fsum(Pm[s][a][t] * v_new[t] for t in range(S))
              for a in range(A)] for s in range(S)]
        tv = [mp.mpf(0) if terminal[s] else _mp_soft_value(q[s], ref[s], beta) for s in range(S)]
        pol = [[refm[s][a] * mp.exp((q[s][a] - tv[s]) / b) if ref[s, a] > 0 else mp.mpf(0)
                for a in range(A)] for s in range(S)]
        pol = [[x / mp.fsum(row) for x in row] for row in pol]
        done = max(abs(tv[s] - v_new[s]) for s in range(S)) < mp.mpf(10) ** -25  # ≫ 40-digit noise × β
        v = v_new
        if done:
            break
    f = np.vectorize(float)
    return f(np.array(v, dtype=object)), f(np.array(q, dtype=object)), f(np.array(pol, dtype=object))


_CASES = {}


def _case(gamma, beta, terminal, seed=0, S=4, A=3):
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) ** 3
    P /= P.sum(-1, keepdims=True)
    R = rng.normal(size=(S, A))
    ref = rng.random((S, A)) + 0.05
    ref[0, 2] = 0.0  # an excluded action (supp π_ref ≠ all actions)
    ref /= ref.sum(1, keepdims=True)
    term = np.zeros(S, dtype=bool)
    if terminal:
        term[S - 1] = True
    key = (gamma, beta, terminal, seed)
    _CASES[key] = (P, R, gamma, ref, beta, term)
    return key, P, R, ref, term


def _close(x, ref, scale, name):
    err = float(np.max(np.abs(np.asarray(x) - ref)))
    assert err <= RTOL * scale, f"{name}: max error {err:.3g} > {RTOL:g} × scale {scale:.3g}"


# ---------------------------------------------------------------------- tabular: solve / solve_batch / evaluate
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("terminal", [False, True])
def test_kl_value_is_exact_for_every_beta_through_every_tabular_entry_point(gamma, beta, terminal):
    key, P, R, ref, term = _case(gamma, beta, terminal, seed=int(gamma * 100) + terminal)
    v_ex, q_ex, pol_ex = _mp_kl_pi(key)
    scale = 1.0 + float(np.max(np.abs(q_ex)))
    for sparse in (terminal,):  # dense without terminals, sparse with them: both layouts, half the work
        mdp = ms.TabularMDP(sp.csr_matrix(P.reshape(-1, P.shape[0])) if sparse else P, R, gamma, terminal=term)
        # VI certifies |V − V*| < tol/2 and cannot certify below round-off at γ = 0.99
        for method in ("pi", "vi", "auto") if gamma <= 0.9 else ("pi", "auto"):
            sol = ms.solve(mdp, beta=beta, ref_policy=ref, method=method, tol=RTOL * scale)
            _close(sol.v, v_ex, scale, f"solve({method}, sparse={sparse}).v")
            _close(sol.q, q_ex, scale, f"solve({method}, sparse={sparse}).q")
            np.testing.assert_allclose(sol.policy, pol_ex, atol=1e-9)
        # the value of the reference policy itself: KL = 0 exactly, whatever β
        ev = ms.evaluate(mdp, ref, beta=beta, ref_policy=ref)
        ev_plain = ms.evaluate(mdp, ref)
        _close(ev.v, ev_plain.v, scale, "evaluate(π_ref, β).v vs V^{π_ref}")
        if beta <= 1e12:  # β·KL of a rounded π* is β·O(ε²): meaningful up to β ~ 1/ε
            ev_star = ms.evaluate(mdp, pol_ex, beta=beta, ref_policy=ref)
            _close(ev_star.v, v_ex, scale, "evaluate(π*, β).v vs V*")
    if not terminal:
        for method in ("pi", "vi") if gamma <= 0.9 else ("pi",):
            b = ms.solve_batch(P[None], R[None], gamma, beta=beta, ref_policy=ref, method=method, tol=RTOL * scale)
            _close(b.v[0], v_ex, scale, f"solve_batch({method}).v")
            _close(b.q[0], q_ex, scale, f"solve_batch({method}).q")


@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_kl_limits_large_beta_is_ref_value_small_beta_is_hard_on_support(gamma):
    key, P, R, ref, term = _case(gamma, 1.0, False, seed=7)
    mdp = ms.TabularMDP(P, R, gamma)
    v_ref = ms.evaluate(mdp, ref).v
    hard_R = np.where(ref > 0, R, -1e6)  # hard control restricted to supp π_ref
    v_hard = ms.solve(ms.TabularMDP(P, hard_R, gamma), method="pi").v
    for beta in (1e12, 1e100, 1e300):
        np.testing.assert_allclose(ms.solve(mdp, beta=beta, ref_policy=ref, tol=1e-13).v, v_ref, rtol=0, atol=1e-10)
    for beta in (1e-12, 1e-100, 1e-300):
        np.testing.assert_allclose(ms.solve(mdp, beta=beta, ref_policy=ref, tol=1e-13).v, v_hard, rtol=0, atol=1e-10)


@pytest.mark.parametrize("tau", [1e-300, 1e-8, 1e-3, 1e3, 1e8, 1e300])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_entropy_value_equals_kl_to_uniform_plus_tau_log_a_for_every_tau(tau, gamma):
    """docs/math.md §3: V_ent(τ) = V_KL(β=τ, uniform π_ref) + τ log A /(1−γ) (no terminals)."""
    key, P, R, _, _ = _case(gamma, tau, False, seed=3)
    S, A = R.shape
    mdp = ms.TabularMDP(P, R, gamma)
    uni = np.full((S, A), 1.0 / A)
    kl = ms.solve(mdp, beta=tau, ref_policy=uni, method="pi", tol=1e-13)
    want = kl.v + tau * np.log(A) / (1.0 - gamma)
    scale = 1.0 + np.max(np.abs(want))
    for method in ("pi", "vi"):
        ent = ms.solve(mdp, temperature=tau, method=method, tol=1e-12 * scale)
        np.testing.assert_allclose(ent.v, want, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(ent.policy, kl.policy, atol=1e-9)
        b = ms.solve_batch(P[None], R[None], gamma, temperature=tau, method=method, tol=1e-12 * scale)
        np.testing.assert_allclose(b.v[0], want, rtol=0, atol=1e-12 * scale)


# ---------------------------------------------------------------------- token trees
def _mp_tree(tree, beta, value=None):
    """Exact KL backward induction on the tree (40 digits): q, v as float64 (n_nodes, V)/(n_nodes,);
    ``value(q_row, ref_row, beta)`` replaces the KL soft value (default :func:`_mp_soft_value`)."""
    value = _mp_soft_value if value is None else value
    ref = tree.ref_policy
    rew = tree.rewards
    N, V = rew.shape
    ls = tree.level_start
    H = tree.horizon
    v = [mp.mpf(0)] * N
    q = [[mp.mpf(0)] * V for _ in range(N)]
    for h in range(H - 1, -1, -1):
        for i in range(ls[h], ls[h + 1]):
            for a in range(V):
                child = ls[h + 1] + (i - ls[h]) * V + a if h < H - 1 and a != tree.eos else None
                q[i][a] = mp.mpf(rew[i, a]) + (mp.mpf(tree.gamma) * v[child] if child is not None else 0)
            v[i] = value(q[i], ref[i], beta)
    f = np.vectorize(float)
    return f(np.array(q, dtype=object)), f(np.array(v, dtype=object))


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("gamma", [1.0, 0.5])
@pytest.mark.parametrize("reward", ["terminal", "dense"])
def test_tree_kl_backward_induction_is_exact_for_every_beta(beta, gamma, reward):
    tree = ms.TokenMDP.random(3, 3, seed=0, reward=reward, gamma=gamma)
    q_ex, v_ex = _mp_tree(tree, beta)
    scale = 1.0 + float(np.max(np.abs(q_ex)))
    sol = ms.solve(tree, beta=beta)
    _close(sol.v, v_ex, scale, "tree solve v")
    _close(sol.q, q_ex, scale, "tree solve q")
    assert np.all(np.isfinite(sol.policy)) and np.allclose(sol.policy.sum(-1), 1.0)
    if gamma == 1.0:  # the Q♯ identity through return_laws, at every β
        _close(qsharp_q(tree, beta), q_ex, scale, "qsharp_q")


def test_tree_large_beta_limit_is_reference_value():
    """The issue's case: V(root) of TokenMDP.random(3, 3, seed=0) at β = 1e300 is V^{π_ref}(root)."""
    tree = ms.TokenMDP.random(3, 3, seed=0)
    ev = ms.evaluate(tree, tree.ref_policy)
    for beta in (1e12, 1e300):
        sol = ms.solve(tree, beta=beta)
        np.testing.assert_allclose(sol.v, ev.v, rtol=0, atol=1e-11)
        np.testing.assert_allclose(sol.q, ev.q, rtol=0, atol=1e-11)
        np.testing.assert_allclose(qsharp_q(tree, beta), ev.q, rtol=0, atol=1e-11)
        ev_b = ms.evaluate(tree, tree.ref_policy, beta=beta)
        np.testing.assert_allclose(ev_b.v, ev.v, rtol=0, atol=1e-12)


def test_tree_small_beta_limit_is_hard_optimum():
    tree = ms.TokenMDP.random(3, 3, seed=1, reward="dense")
    hard = ms.solve(tree)
    for beta in (1e-12, 1e-300):
        sol = ms.solve(tree, beta=beta)
        np.testing.assert_allclose(sol.v, hard.v, rtol=0, atol=1e-10)
        np.testing.assert_allclose(qsharp_q(tree, beta), hard.q, rtol=0, atol=1e-10)


@pytest.mark.parametrize("beta", [1e-300, 1e-8, 1e-3, 1.0, 1e8, 1e300])
def test_cd_policy_is_softmax_of_ref_q_for_every_beta(beta):
    """π_CD ∝ π_ref exp(Q^{π_ref}/β): finite and normalised; β → ∞ gives π_ref, β → 0 the argmax of Q^{π_ref}."""
    tree = ms.TokenMDP.random(3, 3, seed=2, reward="dense")
    pol = cd_policy(tree, beta)
    assert np.all(np.isfinite(pol)) and np.allclose(pol.sum(-1), 1.0, atol=1e-12)
    q_ref = ms.evaluate(tree, tree.ref_policy).q
    ref = tree.ref_policy
    want = np.array([[_mp_soft_policy_entry(q_ref[i], ref[i], beta, a) for a in range(3)] for i in range(len(ref))])
    np.testing.assert_allclose(pol, want, rtol=1e-12, atol=1e-300)


def _mp_soft_policy_entry(q_row, ref_row, beta, a):
    supp = [i for i in range(len(q_row)) if ref_row[i] > 0]
    qmax = max(mp.mpf(q_row[i]) for i in supp)
    w = [mp.mpf(ref_row[i]) * mp.exp((mp.mpf(q_row[i]) - qmax) / mp.mpf(beta)) if ref_row[i] > 0 else mp.mpf(0)
         for i in range(len(q_row))]
    return float(w[a] / mp.fsum(w))


@pytest.mark.parametrize("tau", [1e-300, 1e-8, 1e-3, 1.0, 1e8, 1e300])
def test_tree_entropy_value_equals_kl_uniform_plus_tau_log_v(tau):
    """Entropy-regularised tree (uniform reference logits): V_ent = V_KL + τ log V · (steps to go)."""
    tree = ms.TokenMDP.random(3, 3, seed=4, reward="dense", ref="uniform")
    ent = ms.solve(tree, temperature=tau)
    kl = ms.solve(tree, beta=tau)
    steps = np.array([tree.horizon - tree.level(i) for i in range(tree.n_nodes)], dtype=float)
    np.testing.assert_allclose(ent.v, kl.v + tau * np.log(3) * steps, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------- GFlowNet flows
@pytest.mark.parametrize("scale", [0.0, 1e3, 1e17, 1e300])
def test_flows_are_shift_invariant_in_log_reward(scale):
    """docs/math.md §8: F scales by e^c when log R shifts by c, P_F* and R/Z do not change; log R ~ 1e17
    or 1e300 gave P_F*(·|root) summing to 3."""
    from mdpsandbox.solvers.flows import flows, soft_values, terminating_distribution
    tree = ms.TokenMDP.random(3, 3, seed=5)
    n = len(tree.leaves())
    lr0 = np.random.default_rng(0).normal(size=n)
    base = flows(tree, lr0)
    lr = lr0 + scale
    f = flows(tree, lr)
    pf = np.exp(f.log_pf)
    assert np.all(np.isfinite(f.log_z))
    np.testing.assert_allclose(pf.sum(axis=1)[np.isfinite(f.log_flow)], 1.0, atol=1e-12)
    if scale <= 1e3:  # lr0 + scale still resolves lr0
        np.testing.assert_allclose(f.log_pf[np.isfinite(f.log_pf)], base.log_pf[np.isfinite(base.log_pf)], atol=1e-12)
        np.testing.assert_allclose(f.target, base.target, atol=1e-12)
        np.testing.assert_allclose(f.log_z - scale, base.log_z, atol=1e-9)
    else:  # lr0 + 1e17 rounds to a multiple of 16: compare with the rounded rewards themselves
        want = np.exp((lr - lr.max()) - np.log(np.sum(np.exp(lr - lr.max()))))
        np.testing.assert_allclose(f.target, want, atol=1e-12)
    np.testing.assert_allclose(f.target.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(terminating_distribution(tree, f.log_pf), f.target, atol=1e-12)
    sv = soft_values(tree, lr)
    np.testing.assert_allclose(np.exp(sv.log_policy).sum(1)[np.isfinite(sv.v)], 1.0, atol=1e-12)
    np.testing.assert_allclose(sv.log_policy[np.isfinite(sv.log_policy)], f.log_pf[np.isfinite(f.log_pf)], atol=1e-12)


# ---------------------------------------------------------------------- entropy + KL, τ ≪ β and β ≪ τ
# λ = τ + β, c = β/λ: V = λ log Σ_a π_ref^c e^{Q/λ}. With τ ≪ β, c rounds to 1 − O(ε) (or to 1 exactly)
# and the max-shifted LSE cancels to ~λε: V was off by 2e-8 at (τ, β) = (1e-3, 1e8) and by 1e-4 at
# (1, 1e12) through VI, MPI, Gauss–Seidel, solve_batch and the tree kernel (PI was right: its value
# comes from a linear solve and is stationary in π). Reference: soft PI / backward induction in 40 digits,
# with the value in the form Q̄ + λ log1p(Σ π_ref expm1(d)), d = (Q − Q̄ − τ log π_ref)/λ.
EK_PAIRS = [(1e-3, 1e8), (1.0, 1e12), (1e-3, 1e15), (1e-8, 1e3), (1.0, 1.0), (1e3, 1e-3), (1e-3, 1e300)]


def _mp_ek_value(q_row, ref_row, tau, beta):
    """(V, π) of λ log Σ_a π_ref(a)^c e^{Q(a)/λ} in 40 digits, λ = τ + β, c = β/λ (π_ref renormalised exactly)."""
    t, b = mp.mpf(tau), mp.mpf(beta)
    lam = t + b
    tot = mp.fsum(mp.mpf(r) for r in ref_row)
    idx = [a for a in range(len(q_row)) if ref_row[a] > 0]
    refm = {a: mp.mpf(ref_row[a]) / tot for a in idx}
    qmax = max(mp.mpf(q_row[a]) for a in idx)
    d = {a: (mp.mpf(q_row[a]) - qmax - t * mp.log(refm[a])) / lam for a in idx}
    x = mp.fsum(refm[a] * mp.expm1(d[a]) for a in idx)
    v = qmax + lam * mp.log1p(x)
    pol = [refm[a] * mp.exp(d[a]) / (1 + x) if a in refm else mp.mpf(0) for a in range(len(q_row))]
    return v, pol


@functools.lru_cache(maxsize=None)
def _mp_ek_pi(key):
    """Soft policy iteration with entropy weight τ and KL weight β in 40 digits (float64 V*, Q*)."""
    P, R, gamma, ref, (tau, beta), terminal = _CASES[key]
    S, A = R.shape
    g, t, b = mp.mpf(gamma), mp.mpf(tau), mp.mpf(beta)
    refm = [[mp.mpf(x) for x in row] for row in ref]
    refm = [[x / mp.fsum(row) for x in row] for row in refm]
    pol = [list(row) for row in refm]
    for _ in range(80):
        M, rhs = mp.matrix(S, S), mp.matrix(S, 1)
        for s in range(S):
            M[s, s] = 1
            if terminal[s]:
                continue
            for a in range(A):
                p = pol[s][a]
                if p > 0:
                    rhs[s] += p * (R[s, a] - b * mp.log(p / refm[s][a]) - t * mp.log(p))
                    for u in range(S):
                        M[s, u] -= g * p * mp.mpf(P[s, a, u])
        vv = mp.lu_solve(M, rhs)
        v = [vv[s] for s in range(S)]
        q = [[mp.mpf(0) if terminal[s] else R[s, a] + g * mp.fsum(mp.mpf(P[s, a, u]) * v[u] for u in range(S))
              for a in range(A)] for s in range(S)]
        res = [(mp.mpf(0), [mp.mpf(0)] * A) if terminal[s] else _mp_ek_value(q[s], ref[s], tau, beta)
               for s in range(S)]
        pol = [r[1] for r in res]
        if max(abs(res[s][0] - v[s]) for s in range(S)) < mp.mpf(10) ** -28:
            break
    f = np.vectorize(float)
    return f(np.array(v, dtype=object)), f(np.array(q, dtype=object))


@pytest.mark.parametrize("tau,beta", EK_PAIRS)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("terminal", [False, True])
def test_entropy_plus_kl_value_is_exact_for_tau_much_smaller_or_larger_than_beta(tau, beta, gamma, terminal):
    """docs/math.md §3: V = λ LSE(Q/λ + c log π_ref) to round-off through VI, PI, MPI, Gauss–Seidel and auto."""
    key, P, R, ref, term = _case(gamma, (tau, beta), terminal, seed=7 + int(gamma * 100) + terminal)
    v_ex, q_ex = _mp_ek_pi(key)
    scale = 1.0 + float(np.max(np.abs(q_ex)))
    mdp = ms.TabularMDP(sp.csr_matrix(P.reshape(-1, P.shape[0])) if terminal else P, R, gamma, terminal=term)
    methods = ("pi", "auto", "vi", "mpi", "gauss-seidel") if gamma <= 0.9 else ("pi", "auto")
    for method in methods:
        sol = ms.solve(mdp, beta=beta, temperature=tau, ref_policy=ref, method=method, tol=RTOL * scale)
        _close(sol.v, v_ex, scale, f"solve({method}).v")
        _close(sol.q, q_ex, scale, f"solve({method}).q")


@pytest.mark.parametrize("tau,beta", EK_PAIRS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_entropy_plus_kl_backup_is_exact_in_solve_batch(tau, beta, gamma):
    key, P, R, ref, term = _case(gamma, (tau, beta), False, seed=7 + int(gamma * 100))
    v_ex, q_ex = _mp_ek_pi(key)
    scale = 1.0 + float(np.max(np.abs(q_ex)))
    for method in ("vi", "pi"):
        b = ms.solve_batch(P[None], R[None], gamma, beta=beta, temperature=tau, ref_policy=ref, method=method,
                           tol=RTOL * scale)
        _close(b.v[0], v_ex, scale, f"solve_batch({method}).v")
        _close(b.q[0], q_ex, scale, f"solve_batch({method}).q")


def _mp_ek_tree(tree, tau, beta):
    """Exact entropy + KL backward induction on the tree (40 digits): float64 q (N, V), v (N,)."""
    return _mp_tree(tree, beta, value=lambda q_row, ref_row, b: _mp_ek_value(q_row, ref_row, tau, b)[0])


@pytest.mark.parametrize("tau,beta", EK_PAIRS)
@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_tree_entropy_plus_kl_backward_induction_is_exact(tau, beta, gamma):
    tree = ms.TokenMDP.random(3, 3, seed=6, reward="dense", gamma=gamma)
    q_ex, v_ex = _mp_ek_tree(tree, tau, beta)
    scale = 1.0 + float(np.max(np.abs(q_ex)))
    sol = ms.solve(tree, beta=beta, temperature=tau)
    _close(sol.v, v_ex, scale, "tree solve v")
    _close(sol.q, q_ex, scale, "tree solve q")
    assert np.allclose(sol.policy.sum(-1), 1.0, atol=1e-12)
