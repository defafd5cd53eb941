"""Distributional TD (C51 / CTD, QR, HL-Gauss) against the exact distributional DP fixed points
(docs/math.md §7, §9). Every learner runs seeded on a small MRP; tolerances are stated per test."""
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mdpsandbox import TabularMDP, evaluate
from mdpsandbox.learners import distributional_td as dtd
from mdpsandbox.solvers.distributional import (
    Categorical,
    categorical_fixed_point,
    policy_mrp,
    quantile_dp,
    wasserstein1,
)

GAMMA = 0.5
ATOMS = np.linspace(0.0, 2.0, 21)  # [min r, max r]/(1 − γ) ⊂ [0, 2] for r ∈ [0, 1)
EDGES = np.linspace(-1.0, 3.0, 41)  # bin width 0.1, ≥ 13σ margin around [0, 2]
SIGMA = 0.075  # 0.75 × bin width (Farebrother et al. 2024)


def small_mrp(seed):
    """4 states, generic (Dirichlet) transitions: no ties in the QDP quantiles."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(4), size=4), rng.random(4)


# ---------------------------------------------------------------------- pure functions
def test_categorical_target_matrices_equal_projected_pushforward():
    P, r = small_mrp(0)
    rng = np.random.default_rng(1)
    nxt = rng.dirichlet(np.ones(ATOMS.size), size=4)
    H = dtd.categorical_target_matrices(ATOMS, r, GAMMA)
    via_matrix = np.einsum("xj,xji->xi", nxt, H)
    direct = dtd.categorical_td_target(ATOMS, r, GAMMA, nxt)
    np.testing.assert_allclose(via_matrix, direct, atol=1e-14)
    # Π_C keeps mass and (inside the range) the mean: Σ_i p_i z_i = r + γ Σ_j p_j(x') z_j
    np.testing.assert_allclose(direct.sum(1), 1.0, atol=1e-14)
    np.testing.assert_allclose(direct @ ATOMS, r + GAMMA * nxt @ ATOMS, atol=1e-13)


def test_categorical_target_on_an_atom_loses_no_mass():
    # r + γ z_j lands exactly on atoms (r = 0.2, γ = 0.5, gap 0.1): the floor/ceil bug would drop it
    t = dtd.categorical_td_target(ATOMS, np.array([0.2]), GAMMA, np.eye(ATOMS.size)[[4]])
    np.testing.assert_allclose(t.sum(), 1.0, atol=1e-15)
    assert t[0, 4] == pytest.approx(1.0)  # 0.2 + 0.5·0.4 = 0.4 = z_4


def test_categorical_cross_entropy_gradient_is_softmax_minus_target():
    rng = np.random.default_rng(0)
    logits, target = rng.normal(size=(3, 6)), rng.dirichlet(np.ones(6), size=3)
    th = torch.tensor(logits, requires_grad=True)
    loss = -(torch.tensor(target) * torch.log_softmax(th, -1)).sum()
    loss.backward()
    np.testing.assert_allclose(dtd.categorical_cross_entropy(logits, target).sum(), loss.item(), rtol=1e-13)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(th.grad.numpy(), p - target, atol=1e-13)


@pytest.mark.parametrize("kappa", [0.0, 0.3])
def test_quantile_huber_grad_matches_autograd(kappa):
    rng = np.random.default_rng(2)
    theta, y = rng.normal(size=(2, 5)), rng.normal(size=(2, 7))
    taus = dtd.quantile_levels(5)
    th = torch.tensor(theta, requires_grad=True)
    u = torch.tensor(y)[:, None, :] - th[:, :, None]
    w = (torch.tensor(taus)[None, :, None] - (u < 0).double()).abs()
    if kappa == 0:
        rho = w * u.abs()
    else:
        rho = w * torch.where(u.abs() <= kappa, 0.5 * u**2, kappa * (u.abs() - 0.5 * kappa)) / kappa
    rho.mean(2).sum().backward()
    np.testing.assert_allclose(dtd.quantile_huber_loss(theta, y, taus, kappa).sum(), rho.mean(2).sum().item(),
                               rtol=1e-13)
    np.testing.assert_allclose(dtd.quantile_huber_grad(theta, y, taus, kappa), th.grad.numpy(), atol=1e-13)


def test_pinball_loss_is_minimised_at_the_tau_quantile():
    rng = np.random.default_rng(3)
    y = rng.normal(size=11)
    taus = dtd.quantile_levels(4)
    grid = np.linspace(-3, 3, 6001)
    for i, tau in enumerate(taus):
        loss = dtd.quantile_huber_loss(grid[:, None], np.broadcast_to(y, (grid.size, y.size)), [tau])
        best = grid[np.argmin(loss)]
        # generalised inverse F^{-1}(τ) = inf{y : F(y) ≥ τ} of the 11 equally weighted samples
        q = np.sort(y)[int(np.ceil(tau * y.size)) - 1]
        assert abs(best - q) <= 1e-3


@settings(max_examples=40, deadline=None)
@given(y=st.floats(0.0, 2.0))
def test_hl_gauss_target_mean_preserving_within_poisson_bound(y):
    # E[bin centre of Y] − y for Y ~ N(y, σ²) on an infinite uniform grid of width ς is a Fourier
    # series whose k-th term is ≤ (ς/πk) exp(−2π²k²σ²/ς²); the truncation at ≥ 13σ is < 1e-30.
    p = dtd.hl_gauss_target(np.array([y]), EDGES, SIGMA)
    gap = EDGES[1] - EDGES[0]
    q = np.exp(-2 * np.pi**2 * SIGMA**2 / gap**2)
    bound = gap / np.pi * q / (1 - q)
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-14)
    assert abs(dtd.hl_gauss_mean(p, EDGES)[0] - y) <= bound + 1e-14


# ---------------------------------------------------------------------- learners vs DP fixed points
@pytest.mark.parametrize("parametrisation", ["logits", "probs"])
@pytest.mark.parametrize("seed", [0, 1])
def test_categorical_td_reaches_categorical_fixed_point(parametrisation, seed):
    P, r = small_mrp(seed)
    res = dtd.categorical_td(P, r, GAMMA, ATOMS, parametrisation=parametrisation,
                             config=dataclasses.replace(dtd.DEFAULT_CONFIGS[parametrisation], seed=seed))
    fp = categorical_fixed_point(P, r, GAMMA, ATOMS)
    np.testing.assert_allclose(res.estimate.sum(1), 1.0, atol=1e-12)
    # 5000 iterations × 4 next states per state: sup-W1 error ≈ 3e-3 observed; tolerance 0.015
    assert np.max(wasserstein1(Categorical(ATOMS, res.estimate), fp)) < 0.015
    assert np.max(np.abs(res.mean - dtd.mrp_value(P, r, GAMMA))) < 0.015


@pytest.mark.parametrize("kappa", [0.0, 0.02])
def test_quantile_td_reaches_quantile_dp_fixed_point(kappa):
    P, r = small_mrp(0)
    res = dtd.quantile_td(P, r, GAMMA, 8, kappa=kappa)
    qfp = quantile_dp(P, r, GAMMA, 8)
    # sup-W1 between the two quantile laws = max_x mean_i |θ_i − θ*_i| (both sorted);
    # Huber κ > 0 moves the fixed point by at most κ
    err = np.max(np.mean(np.abs(np.sort(res.estimate, 1) - qfp.locations), axis=1))
    assert err < 0.015 + kappa


def test_hl_gauss_fixed_point_mean_equals_exact_value():
    P, r = small_mrp(0)
    p = dtd.hl_gauss_fixed_point(P, r, GAMMA, EDGES, SIGMA)
    gap = EDGES[1] - EDGES[0]
    q = np.exp(-2 * np.pi**2 * SIGMA**2 / gap**2)
    per_step = gap / np.pi * q / (1 - q)  # smoothing bias per Bellman step, amplified by 1/(1 − γ)
    V = evaluate(TabularMDP(P[:, None, :], r[:, None], GAMMA), np.ones((4, 1))).v
    assert np.max(np.abs(dtd.hl_gauss_mean(p, EDGES) - V)) <= per_step / (1 - GAMMA) + 1e-12


@pytest.mark.parametrize("parametrisation", ["logits", "probs"])
def test_hl_gauss_td_mean_matches_exact_value(parametrisation):
    P, r = small_mrp(1)
    cfg = dtd.DEFAULT_CONFIGS[parametrisation]
    res = dtd.hl_gauss_td(P, r, GAMMA, EDGES, SIGMA, parametrisation=parametrisation,
                          config=dtd.TDConfig(n_iterations=3000, n_next=cfg.n_next, lr=cfg.lr,
                                              lr_power=cfg.lr_power, average_from=cfg.average_from))
    assert np.max(np.abs(res.mean - dtd.mrp_value(P, r, GAMMA))) < 0.015


def test_categorical_td_on_policy_mrp_learns_state_action_return_law():
    # a 3-state, 2-action MDP with action-dependent rewards: the state–action MRP keeps the law
    rng = np.random.default_rng(5)
    P = rng.dirichlet(np.ones(3), size=(3, 2))
    R = rng.random((3, 2))
    mdp = TabularMDP(P, R, GAMMA)
    pi = rng.dirichlet(np.ones(2), size=3)
    Psa, rsa = policy_mrp(mdp, pi)
    res = dtd.categorical_td(Psa.toarray(), rsa, GAMMA, ATOMS, parametrisation="probs")
    fp = categorical_fixed_point(Psa, rsa, GAMMA, ATOMS)
    assert np.max(wasserstein1(Categorical(ATOMS, res.estimate), fp)) < 0.015
    # the fixed point's mean is exactly Q^π (categorical DP preserves means inside the range)
    np.testing.assert_allclose(fp.mean, evaluate(mdp, pi).q.ravel(), atol=1e-9)


def test_same_seed_same_numbers():
    P, r = small_mrp(0)
    cfg = dtd.TDConfig(n_iterations=50, seed=7)
    a = dtd.quantile_td(P, r, GAMMA, 4, config=cfg).estimate
    b = dtd.quantile_td(P, r, GAMMA, 4, config=cfg).estimate
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument():
    P, r = small_mrp(0)
    with pytest.raises(ValueError, match="atoms.*returns"):
        dtd.categorical_td(P, r, GAMMA, np.linspace(0.0, 1.0, 11))  # max r/(1−γ) ≈ 1.9 > 1
    with pytest.raises(ValueError, match="edges.*returns"):
        dtd.hl_gauss_td(P, r, GAMMA, np.linspace(r.min() / (1 - GAMMA) + 0.1, 3.0, 11), SIGMA)
    with pytest.raises(ValueError, match="gamma"):
        dtd.categorical_td(P, r, 1.0, ATOMS)
    with pytest.raises(ValueError, match="n_quantiles"):
        dtd.quantile_td(P, r, GAMMA, 0)
    with pytest.raises(ValueError, match="kappa"):
        dtd.quantile_td(P, r, GAMMA, 4, kappa=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        dtd.hl_gauss_td(P, r, GAMMA, EDGES, 0.0)
    with pytest.raises(ValueError, match="P"):
        dtd.categorical_td(P * 2, r, GAMMA, ATOMS)
    with pytest.raises(ValueError, match="lr_power"):
        dtd.categorical_td(P, r, GAMMA, ATOMS, config=dtd.TDConfig(lr_power=0.3))
    with pytest.raises(ValueError, match="parametrisation"):
        dtd.categorical_td(P, r, GAMMA, ATOMS, parametrisation="floor-ceil")
    with pytest.raises(ValueError, match="y must lie inside"):
        dtd.hl_gauss_target(np.array([5.0]), EDGES, SIGMA)


# ---------------------------------------------------------------------- default schedules (one source)
def _plugin_and_td_errors(seed, gamma, parametrisation="probs", config=None):
    from mdpsandbox.solvers.distributional import default_atoms

    P, r = small_mrp(seed)
    z = default_atoms(r, gamma, 51)
    fp = categorical_fixed_point(P, r, gamma, z)
    res = dtd.categorical_td(P, r, gamma, z, parametrisation=parametrisation,
                             config=config if config is not None else dtd.TDConfig(seed=seed))
    # the plug-in (model-based) estimate from the very same sampled next states
    plug = categorical_fixed_point(res.empirical_P, r, gamma, z)
    err = np.max(wasserstein1(Categorical(z, res.estimate), fp))
    return err, np.max(wasserstein1(plug, fp)), z[-1] - z[0]


@pytest.mark.parametrize("gamma", [0.8, 0.9, 0.99])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c51_default_schedule_reaches_fixed_point_at_gamma_0_99(gamma, seed):
    """Categorical TD with its default schedule (rescaled linear steps + Polyak averaging) ends within
    a small factor of the plug-in DCFP estimate from the same samples, up to γ = 0.99 (observed
    ratios 0.2–3.8 over seeds 0–4)."""
    err, plug, span = _plugin_and_td_errors(seed, gamma)
    assert err <= 4.0 * plug + 2e-4 * span, (err, plug)


def test_one_over_k_schedule_without_averaging_stalls_at_gamma_0_99():
    # negative control for the test above: the old default (α_k = 1/(k+1), no averaging)
    old = dtd.TDConfig(schedule="power", lr=1.0, lr_power=1.0, average_from=1.0, seed=0)
    err, plug, _ = _plugin_and_td_errors(0, 0.99, config=old)
    assert err > 20 * plug


@pytest.mark.parametrize("gamma", [0.8, 0.9])
def test_c51_logit_step_default_reaches_fixed_point_at_gamma_0_9(gamma):
    # the cross-entropy step on logits moves p_i by ≈ α p_i(1 − p_i): its default converges more slowly
    # (observed within 10.4× of the plug-in at γ ≤ 0.9 over seeds 0–4, 4–77× at γ = 0.99)
    for seed in (0, 1):
        err, plug, span = _plugin_and_td_errors(seed, gamma, "logits")
        assert err <= 6.0 * plug + 2e-4 * span, (seed, err, plug)


def test_tdconfig_fields_left_none_take_the_one_default():
    for kind in ("probs", "logits", "quantile"):
        cfg = dtd.resolve_config(dtd.TDConfig(seed=1), kind)
        assert cfg == dataclasses.replace(dtd.DEFAULT_CONFIGS[kind], seed=1)
    P, r = small_mrp(0)
    for par in ("probs", "logits"):
        a = dtd.categorical_td(P, r, GAMMA, ATOMS, parametrisation=par, config=dtd.TDConfig(seed=1))
        b = dtd.categorical_td(P, r, GAMMA, ATOMS, parametrisation=par,
                               config=dataclasses.replace(dtd.DEFAULT_CONFIGS[par], seed=1))
        np.testing.assert_array_equal(a.estimate, b.estimate)
    with pytest.raises(ValueError, match="schedule"):
        dtd.categorical_td(P, r, GAMMA, ATOMS, config=dtd.TDConfig(schedule="cosine"))
    with pytest.raises(ValueError, match="average_from"):
        dtd.categorical_td(P, r, GAMMA, ATOMS, config=dtd.TDConfig(average_from=1.5))


def test_empirical_P_counts_exactly_the_drawn_next_states():
    P, r = small_mrp(3)
    res = dtd.categorical_td(P, r, GAMMA, ATOMS, config=dtd.TDConfig(n_iterations=250, n_next=2))
    n = 250 * 2
    np.testing.assert_allclose(res.empirical_P.sum(1), 1.0, atol=1e-12)
    assert np.all(res.empirical_P * n == np.round(res.empirical_P * n))  # counts / n
    assert np.all((res.empirical_P > 0) <= (P > 0))
    # each entry within 5 binomial standard errors of P
    assert np.all(np.abs(res.empirical_P - P) <= 5 * np.sqrt(P * (1 - P) / n) + 1e-12)


def test_train_front_door_runs_qr_and_hl_gauss_on_an_mrp():
    from mdpsandbox.learners import train

    P, r = small_mrp(0)
    V = dtd.mrp_value(P, r, GAMMA)
    q = train("qr", (P, r, GAMMA), n_quantiles=8, progress=False)
    qfp = quantile_dp(P, r, GAMMA, 8)
    np.testing.assert_array_equal(q.exact["locations"], qfp.locations)
    assert q.learned["locations"].shape == (4, 8)
    assert np.max(np.mean(np.abs(q.learned["locations"] - qfp.locations), axis=1)) == pytest.approx(q.final["sup_w1"])
    assert q.final["sup_w1"] < 0.015
    h = train("hl_gauss", (P, r, GAMMA), progress=False)
    np.testing.assert_allclose(h.exact["mean"], V, atol=1e-12)
    assert h.final["value_error"] < 0.015 and h.learned["probs"].shape == h.exact["probs"].shape
    np.testing.assert_allclose(h.learned["probs"].sum(1), 1.0, atol=1e-12)


# ---------------------------------------------------------------------- QR default schedule vs the plug-in
def _qr_errors(seed, gamma, config=None, m=8):
    """(sup-W1 of QR TD to the quantile DP fixed point, same for the plug-in QDP on P̂ of the same samples,
    return range) — sup-W1 of two quantile laws = max_x mean_i |θ_i − θ*_i| (both sorted)."""
    P, r = small_mrp(seed)
    res = dtd.quantile_td(P, r, gamma, m, config=config if config is not None else dtd.TDConfig(seed=seed))
    fp = quantile_dp(P, r, gamma, m).locations
    plug = quantile_dp(res.empirical_P, r, gamma, m).locations
    span = (r.max() - r.min()) / (1 - gamma)
    return (np.max(np.mean(np.abs(np.sort(res.estimate, 1) - fp), 1)), np.max(np.mean(np.abs(plug - fp), 1)), span)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_qr_default_schedule_reaches_quantile_dp_fixed_point(gamma):
    """QR TD with its default (projected, range-scaled rescaled-linear steps + Polyak averaging) ends near the
    quantile DP fixed point over 5 seeds. The plug-in QDP on P̂ is often *exactly* the fixed point (QDP picks
    atoms, piecewise constant in P), so the factor is stated with an additive floor in return-range units.
    Measured (error / range, seeds 0–4): γ=0.5 ≤ 0.0051 (plug-in ≤ 0.0038), γ=0.9 ≤ 0.0083, γ=0.99: 0.0024–0.0032
    for four seeds and 0.056 for seed 4 (its top quantile of state 0 still descending; the old schedule: up to 0.38)."""
    errs, plugs, spans = zip(*(_qr_errors(s, gamma) for s in range(5)))
    errs, plugs, spans = map(np.asarray, (errs, plugs, spans))
    floor = {0.5: 0.01, 0.9: 0.01, 0.99: 0.02}[gamma]
    ok = errs <= 4.0 * plugs + floor * spans
    assert ok.sum() >= (5 if gamma < 0.99 else 4), (errs / spans, plugs / spans)
    assert np.all(errs <= 4.0 * plugs + 0.07 * spans), (errs / spans, plugs / spans)


def test_qr_old_power_schedule_is_far_at_gamma_0_99():
    # negative control for the test above: the previous default (α_k = 1/(k+1)^0.7, unscaled, with averaging)
    old = dict(schedule="power", lr=1.0, lr_power=0.7, average_from=0.5)
    new_errs, old_errs = [], []
    for s in (1, 3):
        e_new, _, span = _qr_errors(s, 0.99)
        P, r = small_mrp(s)
        # unscaled steps = the new projected step with lr divided by the return range
        e_old, _, _ = _qr_errors(s, 0.99, config=dtd.TDConfig(seed=s, **{**old, "lr": 1.0 / span}))
        new_errs.append(e_new / span)
        old_errs.append(e_old / span)
    assert max(new_errs) < 0.03 and min(old_errs) > 0.1, (new_errs, old_errs)
