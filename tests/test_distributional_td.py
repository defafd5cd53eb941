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


@pytest.mark.parametrize("alpha", [0.0, 1e-9, 0.3, 0.999999])
def test_categorical_mirror_step_is_the_mixture_step_on_probabilities(alpha):
    # softmax(θ') = (1 − α) softmax θ + α η̂ exactly, with zeros in η̂ and a logit far below the others
    rng = np.random.default_rng(4)
    theta = rng.normal(size=(3, 7)) * 3
    theta[0, 2] = -800.0  # softmax underflows to 0 in float64: the log-space branch
    target = rng.dirichlet(np.ones(7), size=3)
    target[1, :3] = 0.0
    target[1] /= target[1].sum()
    out = dtd.categorical_mirror_step(theta, target, alpha)
    assert np.all(np.isfinite(out))
    p = np.exp(theta - theta.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(np.exp(out), (1 - alpha) * p + alpha * target, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(np.exp(out).sum(1), 1.0, atol=1e-14)


def test_categorical_mirror_step_linearises_to_the_natural_gradient_step():
    # Fisher of the softmax in logits F = diag(p) − pp^T; F δ = p − η̂ for δ = 1 − η̂/p, and the mirror step
    # is θ − lse θ − α δ + O(α²)
    rng = np.random.default_rng(5)
    theta, target = rng.normal(size=(2, 6)), rng.dirichlet(np.ones(6), size=2)
    p = np.exp(theta) / np.exp(theta).sum(1, keepdims=True)
    delta = 1 - target / p
    for x in range(2):
        F = np.diag(p[x]) - np.outer(p[x], p[x])
        np.testing.assert_allclose(F @ delta[x], p[x] - target[x], atol=1e-14)
    lse = np.log(np.exp(theta).sum(1, keepdims=True))
    for alpha in (1e-3, 1e-4):
        out = dtd.categorical_mirror_step(theta, target, alpha)
        # second-order remainder of log(1 + α u), u = η̂/p − 1: |rest| ≤ α² u²/(2(1 − α|u|)²)
        u = target / p - 1
        bound = alpha**2 * u**2 / (2 * (1 - alpha * np.abs(u)) ** 2) + 1e-14
        assert np.all(np.abs(out - (theta - lse - alpha * delta)) <= bound)
    with pytest.raises(ValueError, match="alpha"):
        dtd.categorical_mirror_step(theta, target, 1.0)


def test_logit_mirror_path_is_ctd_with_steps_alpha_k_plus_1():
    # the default logit learner = the CTD mixture on the same draws with α_{k+1} = c/(c + (1 − γ)(k + 1))
    P, r = small_mrp(2)
    gamma, K = 0.9, 200
    cfg = dtd.TDConfig(n_iterations=K, seed=3)
    res = dtd.categorical_td(P, r, gamma, np.linspace(0, 10, 31), parametrisation="logits", config=cfg)
    c = dtd.DEFAULT_CONFIGS["logits"]
    draw = dtd._next_state_sampler(P, c.n_next, 3)
    H = dtd.categorical_target_matrices(np.linspace(0, 10, 31), r, gamma)
    eta, avg, n = np.full((4, 31), 1 / 31), np.zeros((4, 31)), 0
    for k in range(K):
        a = c.lr / (c.lr + (1 - gamma) * (k + 1))
        eta = (1 - a) * eta + a * np.einsum("xj,xji->xi", eta[draw()].mean(1), H)
        if k >= int(c.average_from * K):
            n += 1
            avg += (eta - avg) / n
    np.testing.assert_allclose(res.estimate, avg, atol=1e-12)


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
@pytest.mark.parametrize("parametrisation", ["logits", "probs", "logits_sgd"])
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
    cfg = dtd.DEFAULT_CONFIGS["logits_sgd" if parametrisation == "logits" else "probs"]  # HL-Gauss: plain CE step
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
    with pytest.raises(ValueError, match="target_probs"):
        dtd.categorical_mirror_step(np.zeros((2, 3)), np.full((2, 4), 0.25), 0.5)
    with pytest.raises(ValueError, match="target_probs"):
        dtd.categorical_mirror_step(np.zeros((1, 2)), np.array([[1.5, -0.5]]), 0.5)
    with pytest.raises(ValueError, match="parametrisation"):
        dtd.hl_gauss_td(P, r, GAMMA, EDGES, SIGMA, parametrisation="logits_sgd")  # HL-Gauss: "logits" is the CE step


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


@pytest.mark.parametrize("parametrisation", ["probs", "logits"])
@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_c51_default_schedule_reaches_fixed_point_at_gamma_0_99(gamma, parametrisation):
    """Categorical TD with its default schedule (rescaled linear steps + Polyak averaging) ends within
    4× the plug-in DCFP estimate's sup-W1 error from the same samples (+ 2e-4 of the return range), for
    seeds 0–4 up to γ = 0.99 — for the mixture (CTD) and for its logit form, the mirror step (the same
    iteration). Observed ratios 0.2–3.8 (max: seed 4, γ = 0.9); 4× is train()'s far_from_exact threshold."""
    for seed in range(5):
        err, plug, span = _plugin_and_td_errors(seed, gamma, parametrisation)
        assert err <= 4.0 * plug + 2e-4 * span, (seed, err, plug)


def test_one_over_k_schedule_without_averaging_stalls_at_gamma_0_99():
    # negative control for the test above: the old default (α_k = 1/(k+1), no averaging)
    old = dtd.TDConfig(schedule="power", lr=1.0, lr_power=1.0, average_from=1.0, seed=0)
    err, plug, _ = _plugin_and_td_errors(0, 0.99, config=old)
    assert err > 20 * plug


def test_c51_plain_gradient_step_is_far_and_flagged_at_gamma_0_99():
    # negative control: the plain C51 cross-entropy gradient step on logits moves p_i by ≈ α p_i(η̂_i − p_i),
    # so at γ = 0.99 it ends far from the fixed point (observed 14–77× the plug-in error, seeds 1–4) where
    # the mirror step (the default "logits") is within 4×; train() flags it far_from_exact
    from mdpsandbox.learners import train

    for seed in (1, 2, 4):
        err, plug, _ = _plugin_and_td_errors(seed, 0.99, "logits_sgd", config=dtd.TDConfig(seed=seed))
        assert err > 10 * plug, (seed, err, plug)
    P, r = small_mrp(4)
    bad = train("c51", (P, r, 0.99), parametrisation="logits_sgd", seed=4, progress=False)
    good = train("c51", (P, r, 0.99), parametrisation="logits", seed=4, progress=False)
    assert bad.far_from_exact and not good.far_from_exact
    assert bad.convention == "categorical-logits_sgd"


def test_tdconfig_fields_left_none_take_the_one_default():
    for kind in ("probs", "logits", "logits_sgd", "quantile"):
        cfg = dtd.resolve_config(dtd.TDConfig(seed=1), kind)
        assert cfg == dataclasses.replace(dtd.DEFAULT_CONFIGS[kind], seed=1)
    P, r = small_mrp(0)
    for par in ("probs", "logits", "logits_sgd"):
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


def _plugin_risk(seed, gamma, n, m=8, reps=10):
    """Mean sup-W1 error of the plug-in QDP over ``reps`` independent generative-model sample sets of n next
    states per state (a fixed rng): the plug-in's *typical* error at this sample size."""
    P, r = small_mrp(seed)
    fp = quantile_dp(P, r, gamma, m).locations
    rng = np.random.default_rng(1000 + seed)
    errs = [np.max(np.mean(np.abs(quantile_dp(np.array([rng.multinomial(n, p) for p in P]) / n, r, gamma, m).locations
                                  - fp), 1)) for _ in range(reps)]
    return float(np.mean(errs))


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_qr_default_schedule_reaches_quantile_dp_fixed_point(gamma):
    """QR TD with its default (slope-scaled, projected rescaled-linear steps from the uniform law + Polyak
    averaging) ends within 3× the plug-in QDP's sup-W1 error + 0.005 of the return range, for seeds 0–4 up to
    γ = 0.99. The plug-in QDP on P̂ is often *exactly* the fixed point (QDP picks atoms: piecewise constant in P),
    hence the additive floor; and where the fixed point sits on a near-tie of P the same-sample plug-in is right
    or wrong by luck, so the reference is the larger of its same-sample error and its mean error over 10
    independent sample sets of the same size (computed only when needed). Measured (error / range, seeds 0–4):
    γ=0.5 0.0022–0.0038 (plug-in ≤ 0.0038), γ=0.9 ≤ 0.0038, γ=0.99 0.0005–0.0025 and 0.0108 for seed 4 (a
    near-tie: P(0|0) = 0.4991 vs the 1/2 where state 0's top quantile jumps by 0.34 of the range; plug-in mean
    error 0.021). The previous range-scaled step: 0.019 (seed 3) and 0.056 (seed 4) at γ = 0.99."""
    for seed in range(5):
        err, plug, span = _qr_errors(seed, gamma)
        ref = plug
        if err > 3.0 * ref + 0.005 * span:
            ref = max(plug, _plugin_risk(seed, gamma, 5000 * dtd.DEFAULT_CONFIGS["quantile"].n_next))
        assert err <= 3.0 * ref + 0.005 * span, (seed, err / span, plug / span, ref / span)


@pytest.mark.parametrize("n_quantiles", [8, 32])
def test_train_qr_at_gamma_0_99_is_not_flagged_far(n_quantiles):
    # train()'s far_from_exact for QR: sup-W1 > 4× plug-in + 5e-3 of the return range (the old range-scaled step
    # ended at 0.019 of the range on seed 3 and was flagged)
    from mdpsandbox.learners import train

    P, r = small_mrp(3)
    out = train("qr", (P, r, 0.99), n_quantiles=n_quantiles, seed=3, progress=False)
    span = (r.max() - r.min()) / (1 - 0.99)
    assert not out.far_from_exact and out.final["sup_w1"] < 5e-3 * span, out.notes


def test_qdp_fixed_point_of_seed_4_is_a_near_tie_at_gamma_0_99():
    # why seed 4 is judged against the plug-in's mean error: moving 0.002 of P(·|0) onto the self-loop
    # (P(0|0): 0.4991 → 0.5011, about half a binomial standard error at 20000 draws) sends state 0's top
    # quantile to max r/(1 − γ) (the self atom r(0) + γθ carries ≥ 1/16 of the mass), 0.053 of the range in sup-W1
    P, r = small_mrp(4)
    gamma, m = 0.99, 8
    span, hi = (r.max() - r.min()) / (1 - gamma), r.max() / (1 - gamma)
    base = quantile_dp(P, r, gamma, m).locations
    Q = P.copy()
    Q[0, 0] += 0.002
    Q[0, 2] -= 0.002
    moved = quantile_dp(Q, r, gamma, m).locations
    assert r.argmax() == 0 and P[0, 0] < 0.5 < Q[0, 0]
    np.testing.assert_allclose(moved[0, -1], hi, rtol=1e-9)  # r(0)/(1 − γ), up to the QDP iteration tolerance
    np.testing.assert_allclose(moved[:, :-1], base[:, :-1], rtol=1e-12)
    assert np.max(np.mean(np.abs(moved - base), 1)) / span > 0.05


def test_quantile_slope_scale_is_the_divided_difference_of_the_quantile_function():
    # exact on a uniform law (linear quantile function), the centred divided difference of any other,
    # one-sided at the ends, floored, and equivariant under permuting a row
    m = 6
    taus = dtd.quantile_levels(m)
    lin = (2.0 + 3.0 * taus)[None, :]
    np.testing.assert_allclose(dtd.quantile_slope_scale(lin, 1e-3), 3.0, rtol=1e-13)
    q = -np.log1p(-taus)[None, :]  # Exp(1) quantiles
    w = dtd.quantile_slope_scale(q, 1e-3)[0]
    want = [(q[0, 1] - q[0, 0]) / (taus[1] - taus[0])] + \
        [(q[0, i + 1] - q[0, i - 1]) / (taus[i + 1] - taus[i - 1]) for i in range(1, m - 1)] + \
        [(q[0, -1] - q[0, -2]) / (taus[-1] - taus[-2])]
    np.testing.assert_allclose(w, want, rtol=1e-13)
    perm = np.random.default_rng(0).permutation(m)
    np.testing.assert_allclose(dtd.quantile_slope_scale(q[:, perm], 1e-3)[0], w[perm], rtol=1e-13)
    np.testing.assert_array_equal(dtd.quantile_slope_scale(np.zeros((2, m)), 0.25), 0.25)  # Dirac: the floor
    np.testing.assert_array_equal(dtd.quantile_slope_scale(np.zeros((2, 1)), 0.25), 0.25)


def test_qr_range_scaled_step_stalls_on_the_near_tie_at_gamma_0_99():
    # negative control for the slope scale: the previous default (steps α_k × the return range from the
    # Dirac at mean r/(1 − γ)), written out on the same draws, at seed 4, γ = 0.99: its top quantile of state 0
    # random-walks in the gap above the fixed point (drift (1/2 − P(0|0))/8 ≈ 1e-4 per step)
    seed, gamma, m = 4, 0.99, 8
    P, r = small_mrp(seed)
    c = dtd.DEFAULT_CONFIGS["quantile"]
    lo, hi = r.min() / (1 - gamma), r.max() / (1 - gamma)
    span, taus = hi - lo, dtd.quantile_levels(m)
    draw = dtd._next_state_sampler(P, c.n_next, seed)
    theta = np.full((4, m), r.mean() / (1 - gamma))
    K, avg, n = c.n_iterations, np.zeros((4, m)), 0
    for k in range(K):
        y = r[:, None] + gamma * theta[draw()].reshape(4, -1)
        a = c.lr / (c.lr + (1 - gamma) * k)
        theta = np.clip(theta - a * span * dtd.quantile_huber_grad(theta, y, taus), lo, hi)
        if k >= int(c.average_from * K):
            n += 1
            avg += (theta - avg) / n
    fp = quantile_dp(P, r, gamma, m).locations
    old = np.max(np.mean(np.abs(np.sort(avg, 1) - fp), 1)) / span
    new, _, _ = _qr_errors(seed, gamma)
    assert old > 0.03 and new / span < 0.015, (old, new / span)
