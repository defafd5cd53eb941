"""Reward identifiability (docs/math.md §10): shaping, shaping residual, normalised reward, EPIC-style metric."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mdpsandbox import TabularMDP, garnet, gridworld, solve
from mdpsandbox.testing import tabular_mdps
from mdpsandbox.irl.identifiability import (
    canonical_reward, epic_distance, normalize_reward, normalized_reward, potential_shaping, shaped_mdp,
    shaping_residual,
)

GAMMAS = [0.0, 0.5, 0.9, 0.99]


def _mdp(seed=0, S=6, A=3, gamma=0.9, sparse=False):
    return garnet(S, A, 3, gamma=gamma, seed=seed, sparse=sparse)


def _phi(mdp, seed=0, scale=3.0):
    phi = np.random.default_rng(seed).normal(size=mdp.n_states) * scale
    phi[mdp.terminal] = 0.0
    return phi


def _soft(mdp, tau):
    return solve(mdp, temperature=tau, method="pi", tol=1e-12)


def _tv(p, q):
    return 0.5 * np.abs(p - q).sum(axis=1).max()


# ---------------------------------------------------------------------- shaping
def test_potential_shaping_equation_entrywise():
    mdp = _mdp()
    phi = _phi(mdp)
    P = mdp.dense_P()
    out = potential_shaping(mdp.R, mdp, mdp.gamma, phi)
    for s in range(mdp.n_states):
        for a in range(mdp.n_actions):
            assert out[s, a] == pytest.approx(mdp.R[s, a] + mdp.gamma * P[s, a] @ phi - phi[s], abs=1e-13)
    # same answer from a dense (S, A, S) array and a sparse (S*A, S) matrix
    np.testing.assert_allclose(potential_shaping(mdp.R, P, mdp.gamma, phi), out, atol=1e-14)
    sp_mdp = _mdp(sparse=True)
    np.testing.assert_allclose(potential_shaping(sp_mdp.R, sp_mdp.P2, 0.9, phi), out, atol=1e-14)


@settings(deadline=None, max_examples=30)
@given(log_tau=st.floats(-2, 2), gamma=st.floats(0.0, 0.97), seed=st.integers(0, 1000))
def test_shaping_leaves_soft_policy_unchanged_for_every_tau(log_tau, gamma, seed):
    tau = 10.0 ** log_tau
    mdp = _mdp(seed, gamma=gamma)
    phi = _phi(mdp, seed + 1)
    a, b = _soft(mdp, tau), _soft(shaped_mdp(mdp, phi), tau)
    np.testing.assert_allclose(b.policy, a.policy, atol=1e-8)
    np.testing.assert_allclose(b.q, a.q - phi[:, None], atol=1e-8 * (1 + np.abs(a.q).max()))
    np.testing.assert_allclose(b.v, a.v - phi, atol=1e-8 * (1 + np.abs(a.v).max()))


@pytest.mark.parametrize("tau", [1e-8, 1e-2, 1.0, 1e4, 1e8])
def test_shaping_invariance_with_terminal_states_at_extreme_tau(tau):
    mdp = gridworld(3, 4, slip=0.2, gamma=0.95)
    phi = _phi(mdp, 3)
    a, b = _soft(mdp, tau), _soft(shaped_mdp(mdp, phi), tau)
    assert np.all(np.isfinite(b.policy))
    np.testing.assert_allclose(b.policy, a.policy, atol=1e-7)
    np.testing.assert_allclose(b.v, a.v - phi, atol=1e-7 * (1 + np.abs(a.v).max()))


def test_shaping_changes_the_policy_under_another_kernel_or_discount():
    # a concrete source/target pair: shaping r by Φ in the source is not a shaping in the target
    src = _mdp(0, gamma=0.9)
    phi = _phi(src, 1)
    r_shaped = potential_shaping(src.R, src, src.gamma, phi)
    tau = 0.5
    # (a) another transition law P_T, same γ
    tgt = garnet(6, 3, 3, gamma=0.9, seed=7)
    p_true = _soft(TabularMDP(tgt.P, src.R, 0.9), tau).policy
    p_shaped = _soft(TabularMDP(tgt.P, r_shaped, 0.9), tau).policy
    assert _tv(p_true, p_shaped) > 0.05
    assert shaping_residual(r_shaped, src.R, tgt, 0.9, allow_constant=False).residual > 0.1
    # (b) same P, another discount γ_T
    p_true = _soft(TabularMDP(src.P, src.R, 0.5), tau).policy
    p_shaped = _soft(TabularMDP(src.P, r_shaped, 0.5), tau).policy
    assert _tv(p_true, p_shaped) > 0.05
    # (c) control: same P and γ, other τ — unchanged
    for t in (0.05, 5.0):
        np.testing.assert_allclose(_soft(TabularMDP(src.P, r_shaped, 0.9), t).policy,
                                   _soft(src, t).policy, atol=1e-8)


def test_potential_must_vanish_on_terminal_states():
    mdp = gridworld(3, 3, gamma=0.9)
    phi = np.ones(mdp.n_states)
    with pytest.raises(ValueError, match="phi must be 0 on terminal"):
        potential_shaping(mdp.R, mdp, 0.9, phi)


# ---------------------------------------------------------------------- shaping residual
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("sparse", [False, True])
def test_shaping_residual_zero_for_shaped_pairs_positive_otherwise(gamma, sparse):
    mdp = _mdp(2, gamma=gamma, sparse=sparse)
    phi = _phi(mdp, 4)
    r2 = potential_shaping(mdp.R, mdp, gamma, phi) + 0.7
    res = shaping_residual(r2, mdp.R, mdp, gamma)
    assert res.residual < 1e-10
    # the fit reproduces the difference exactly (Φ, c not unique for γ < 1: compare the fitted shaping)
    fit = potential_shaping(np.zeros_like(mdp.R), mdp, gamma, res.phi) + res.c
    np.testing.assert_allclose(fit, r2 - mdp.R, atol=1e-10)
    other = np.random.default_rng(5).normal(size=mdp.R.shape)
    assert shaping_residual(other, mdp.R, mdp, gamma).residual > 0.1


def test_shaping_residual_equals_brute_force_projection():
    mdp = _mdp(3, S=4, A=2, gamma=0.8)
    P = mdp.dense_P()
    r1, r2 = np.random.default_rng(0).normal(size=(2, 4, 2))
    cols = []
    for s in range(4):
        e = np.zeros(4)
        e[s] = 1.0
        cols.append((0.8 * P @ e - e[:, None]).ravel())
    M = np.column_stack(cols + [np.ones(8)])
    d = (r1 - r2).ravel()
    brute = np.linalg.norm(d - M @ np.linalg.pinv(M) @ d)
    assert shaping_residual(r1, r2, mdp, 0.8).residual == pytest.approx(brute, rel=1e-10)


def test_constant_is_a_shaping_only_without_terminal_states():
    mdp = _mdp(1, gamma=0.9)
    assert shaping_residual(mdp.R + 1.0, mdp.R, mdp, 0.9, allow_constant=False).residual < 1e-10
    grid = gridworld(3, 3, gamma=0.9)
    r = grid.R.copy()
    r[grid.terminal] = 0.0
    assert shaping_residual(r + 1.0, r, grid, 0.9, allow_constant=False).residual > 0.1
    assert shaping_residual(r + 1.0, r, grid, 0.9, allow_constant=True).residual < 1e-10


# ---------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("anchor", [0, 2, "state"])
def test_normalized_reward_of_soft_optimal_policy_is_true_normalized_reward(gamma, anchor):
    mdp = _mdp(4, gamma=gamma)
    for tau in (0.1, 1.0, 10.0):
        pol = _soft(mdp, tau).policy
        r_hat = normalized_reward(pol, mdp, gamma, tau, anchor=anchor)
        r_true = normalize_reward(mdp.R, mdp, gamma, anchor=anchor)
        np.testing.assert_allclose(r_hat, r_true, atol=1e-10)
        # it is normalised and in the same shaping class as the true reward
        w = np.eye(3)[anchor] if anchor != "state" else np.full(3, 1 / 3)
        np.testing.assert_allclose(r_hat @ w, 0.0, atol=1e-10)
        assert shaping_residual(r_hat, mdp.R, mdp, gamma, allow_constant=False).residual < 1e-9
        # and its soft-optimal policy is π
        np.testing.assert_allclose(_soft(TabularMDP(mdp.P, r_hat, gamma), tau).policy, pol, atol=1e-9)


def test_normalized_reward_potential_is_the_soft_value():
    mdp = _mdp(6, gamma=0.9)
    tau = 0.3
    r_true = normalize_reward(mdp.R, mdp, 0.9, anchor=1)
    sol = _soft(TabularMDP(mdp.P, r_true, 0.9), tau)
    # r(s, a0) = 0  ⇒  Q(s, a0) = γ P_{a0} V and V = τ log π + Q … check r = τ log π + V − γPV
    P = mdp.dense_P()
    np.testing.assert_allclose(tau * np.log(sol.policy) + sol.v[:, None] - 0.9 * P @ sol.v, r_true, atol=1e-9)


def test_normalized_reward_with_terminal_states_and_gamma_one():
    # step cost 1 > τ log A: the soft value is finite at γ = 1
    grid = gridworld(3, 3, slip=0.1, gamma=1.0, step_reward=-1.0)
    tau = 0.2
    sol = solve(grid, temperature=tau, method="pi", tol=1e-11)
    r_hat = normalized_reward(sol.policy, grid, 1.0, tau, anchor="state")
    np.testing.assert_allclose(r_hat, normalize_reward(grid.R, grid, 1.0, anchor="state"), atol=1e-9)
    np.testing.assert_allclose(solve(TabularMDP(grid.P, r_hat, 1.0, terminal=grid.terminal),
                                     temperature=tau, method="pi", tol=1e-11).policy[~grid.terminal],
                               sol.policy[~grid.terminal], atol=1e-9)


def test_normalization_fails_clearly_when_anchor_never_terminates():
    # γ = 1, the anchor action 0 self-loops forever in state 0: I − P_{a0} is singular
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = 1.0
    P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    term = np.array([False, True])
    with pytest.raises(ValueError, match="does not identify"):
        normalize_reward(np.zeros((2, 2)), P, 1.0, anchor=0, terminal=term)
    assert np.isfinite(normalize_reward(np.zeros((2, 2)), P, 1.0, anchor=1, terminal=term)).all()


# ---------------------------------------------------------------------- EPIC-style
def test_epic_zero_for_shaped_pairs_and_scale_invariant():
    mdp = _mdp(8, gamma=0.9)
    phi = _phi(mdp, 9)
    r2 = potential_shaping(mdp.R, mdp, 0.9, phi) - 3.0
    assert epic_distance(mdp.R, r2, mdp, 0.9) < 1e-7
    other = np.random.default_rng(3).normal(size=mdp.R.shape)
    d = epic_distance(mdp.R, other, mdp, 0.9)
    assert 0.05 < d <= 1.0
    for lam in (1e-6, 0.3, 7.0, 1e6):
        assert epic_distance(lam * mdp.R, other, mdp, 0.9) == pytest.approx(d, abs=1e-9)
        assert epic_distance(mdp.R, lam * other, mdp, 0.9) == pytest.approx(d, abs=1e-9)
    assert epic_distance(mdp.R, -mdp.R, mdp, 0.9) == pytest.approx(1.0, abs=1e-12)
    # canonical form is exactly shaping-invariant and has coverage-mean 0
    np.testing.assert_allclose(canonical_reward(r2, mdp, 0.9), canonical_reward(mdp.R, mdp, 0.9), atol=1e-10)
    assert abs(canonical_reward(mdp.R, mdp, 0.9).mean()) < 1e-12


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 10_000), gamma=st.sampled_from(GAMMAS), weighted=st.booleans())
def test_epic_symmetric_and_triangle_inequality(seed, gamma, weighted):
    mdp = _mdp(seed % 7, S=5, A=2, gamma=gamma)
    rng = np.random.default_rng(seed)
    cov = rng.random((5, 2)) + 0.01 if weighted else None
    r = rng.normal(size=(3, 5, 2))
    # mix in shaped copies so near-zero distances are exercised too
    r[2] = potential_shaping(r[0], mdp, gamma, rng.normal(size=5)) + rng.normal() * 0.1 * r[1]
    d = lambda x, y: epic_distance(x, y, mdp, gamma, coverage=cov)  # noqa: E731
    assert d(r[0], r[1]) == pytest.approx(d(r[1], r[0]), abs=1e-12)
    for i, j, k in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
        assert d(r[i], r[k]) <= d(r[i], r[j]) + d(r[j], r[k]) + 1e-12


# ---------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument():
    mdp = _mdp()
    pol = _soft(mdp, 1.0).policy
    with pytest.raises(ValueError, match="temperature"):
        normalized_reward(pol, mdp, 0.9, 0.0)
    with pytest.raises(ValueError, match="gamma"):
        shaping_residual(mdp.R, mdp.R, mdp, 1.5)
    with pytest.raises(ValueError, match="r2"):
        shaping_residual(mdp.R, mdp.R[:, :2], mdp, 0.9)
    with pytest.raises(ValueError, match="anchor"):
        normalized_reward(pol, mdp, 0.9, 1.0, anchor=5)
    with pytest.raises(ValueError, match="anchor"):
        normalized_reward(pol, mdp, 0.9, 1.0, anchor="mean")
    bad = pol.copy()
    bad[0] = [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="positive"):
        normalized_reward(bad, mdp, 0.9, 1.0)
    with pytest.raises(ValueError, match="phi"):
        potential_shaping(mdp.R, mdp, 0.9, np.zeros(3))
    with pytest.raises(ValueError, match="P must"):
        potential_shaping(mdp.R, np.ones((6, 3)), 0.9, np.zeros(6))
    with pytest.raises(ValueError, match="coverage|weights"):
        epic_distance(mdp.R, mdp.R, mdp, 0.9, coverage=-np.ones((6, 3)))


@pytest.mark.parametrize("tau", [1e-8, 1e-4, 1e4, 1e8])
@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_normalized_reward_at_extreme_temperature_via_log_policy(tau, gamma):
    mdp = _mdp(11, gamma=gamma)
    sol = solve(mdp, temperature=tau, method="pi", tol=1e-10)
    log_pi = (sol.q - sol.v[:, None]) / tau
    assert np.all(np.isfinite(log_pi))
    r_hat = normalized_reward(None, mdp, gamma, tau, log_policy=log_pi)
    # τ log π = q − v carries the solve's absolute error (≈ tol, or eps·|v| with |v| ~ τ log A/(1−γ))
    atol = 1e-8 + 1e-13 * tau * np.log(3) / (1 - gamma)
    np.testing.assert_allclose(r_hat, normalize_reward(mdp.R, mdp, gamma), atol=atol)
    if tau <= 1e-4:
        # the policy itself underflows: the clear error points at log_policy
        with pytest.raises(ValueError, match="log_policy"):
            normalized_reward(sol.policy, mdp, gamma, tau)


def test_sparse_lsmr_path_equals_dense_least_squares(monkeypatch):
    import mdpsandbox.irl.identifiability as ident

    mdp = _mdp(12, S=30, A=4, gamma=0.99, sparse=True)
    rng = np.random.default_rng(0)
    r1 = rng.normal(size=(30, 4))
    shaped = potential_shaping(r1, mdp, 0.99, rng.normal(size=30))
    dense = (shaping_residual(r1, mdp.R, mdp, 0.99).residual, canonical_reward(r1, mdp, 0.99))
    monkeypatch.setattr(ident, "_DENSE_LIMIT", 0)
    assert shaping_residual(r1, mdp.R, mdp, 0.99).residual == pytest.approx(dense[0], rel=1e-9)
    np.testing.assert_allclose(canonical_reward(r1, mdp, 0.99), dense[1], atol=1e-9)
    assert shaping_residual(shaped, r1, mdp, 0.99).residual < 1e-9


@settings(deadline=None, max_examples=25)
@given(mdp=tabular_mdps(max_states=6, max_actions=3, gamma=st.sampled_from([0.0, 0.5, 0.9]), sparse=None,
                        reward_scale=1.0),
       seed=st.integers(0, 1000), log_tau=st.floats(-1, 1))
def test_shaping_class_properties_on_random_mdps(mdp, seed, log_tau):
    # every generated MDP (dense/sparse, with or without terminal states): shaping keeps the soft policy,
    # is detected by shaping_residual (no constant needed), and has EPIC distance 0
    tau = 10.0 ** log_tau
    phi = _phi(mdp, seed)
    r2 = potential_shaping(mdp.R, mdp, mdp.gamma, phi)
    assert shaping_residual(r2, mdp.R, mdp, mdp.gamma, allow_constant=False).residual < 1e-9 * (1 + np.abs(r2).max())
    assert epic_distance(r2, mdp.R, mdp, mdp.gamma) < 1e-6
    a, b = _soft(mdp, tau), _soft(shaped_mdp(mdp, phi), tau)
    live = ~mdp.terminal
    np.testing.assert_allclose(b.policy[live], a.policy[live], atol=1e-8)
