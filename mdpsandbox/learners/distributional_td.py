r"""Distributional TD for policy evaluation from sampled transitions (docs/math.md §7, §9).

A Markov reward process (P, r, γ) — or a TabularMDP with a fixed policy, turned into the MRP on
state–action pairs by :func:`policy_mrp` — is evaluated *distributionally* from samples of a
generative model (every state draws next states X' ~ P(·|x) each iteration, seeded):

* **categorical TD** (C51-style; Bellemare et al. 2017, Rowland et al. 2018): target
  Π_C law(r(x) + γ Z(X')) with the hat projection of :func:`mdpsandbox.solvers.distributional.
  categorical_projection` (no mass loss when a target lands on an atom); updated as the
  probability mixture (CTD), as its mirror-descent form on a logit table (the default logit step),
  or as the plain cross-entropy (C51) gradient step on logits (a slow, named variant). Fixed point:
  the categorical DP fixed point (:func:`categorical_fixed_point`).
* **quantile TD** (QR; Dabney et al. 2018): m quantile locations at levels τ_i = (2i−1)/(2m),
  stochastic (sub)gradient steps on the quantile Huber loss (κ = 0: pinball loss), each scaled by the
  slope of the current quantile function (≈ 1/density, :func:`quantile_slope_scale`) and projected on
  the return interval. Fixed point: the quantile DP fixed point (:func:`quantile_dp`); with κ > 0
  within κ of it.
* **HL-Gauss** value regression (Farebrother et al. 2024, "Stop regressing: training value
  functions via classification for scalable deep RL"): a histogram over fixed bins trained by
  cross-entropy to the Gaussian-smoothed histogram of the TD target r + γ V̂(X'); the value is the
  histogram mean, whose fixed point matches the exact V^π (the smoothing is mean-preserving up to
  an exponentially small discretisation error when σ ≳ 0.5 bin width and the target is a few σ
  from the edges).

Pure functions first (targets, losses and their gradients), then the three learners, which only
call them. Step sizes: :class:`TDConfig` (the rescaled linear step c/(c + (1−γ)k) by default, or
lr / (k+1)^ω, Robbins–Monro for ω ∈ (1/2, 1]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.special import ndtr

from .._math import log_softmax
from ..solvers import distributional as _dist
from ..solvers.distributional import categorical_projection, policy_mrp, quantile_levels
from .._validate import check_finite, check_int, check_positive

__all__ = [
    "policy_mrp",
    "check_support",
    "categorical_td_target",
    "categorical_target_matrices",
    "categorical_cross_entropy",
    "categorical_mirror_step",
    "quantile_levels",
    "quantile_slope_scale",
    "quantile_huber_loss",
    "quantile_huber_grad",
    "hl_gauss_target",
    "hl_gauss_mean",
    "hl_gauss_loss",
    "TDConfig",
    "DEFAULT_CONFIGS",
    "resolve_config",
    "TDResult",
    "categorical_td",
    "quantile_td",
    "hl_gauss_td",
    "hl_gauss_fixed_point",
    "mrp_value",
]


# ====================================================================== inputs
def _check_mrp(P, r, gamma):
    """MRP checks of the distributional solver (stochastic P, finite r, γ in [0, 1)); P returned
    dense (the learners sample next states row by row; MRPs here are small)."""
    P, r, gamma = _dist._check_mrp(P, r, gamma)
    P = P.toarray() if hasattr(P, "toarray") else np.asarray(P, dtype=np.float64)
    return P, r, gamma


def mrp_value(P, r, gamma) -> np.ndarray:
    r"""Exact V = (I − γP)^{-1} r of an MRP, through :func:`mdpsandbox.evaluate` on the one-action MDP."""
    from ..envs.tabular import TabularMDP
    from ..solvers.dp import evaluate

    P, r, gamma = _check_mrp(P, r, gamma)
    S = P.shape[0]
    mdp = TabularMDP(P[:, None, :], r[:, None], gamma)
    return evaluate(mdp, np.ones((S, 1))).v


def check_support(support, r, gamma, name: str = "atoms") -> np.ndarray:
    r"""Refuse a support that cannot hold the returns: strictly increasing, and its range
    [z_1, z_m] must contain [min r/(1−γ), max r/(1−γ)] (docs/math.md §7) so that every Bellman target
    r + γ z_j stays inside and nothing is clipped (the distributional solver's check)."""
    z, _ = _dist.check_atoms(support, name, even=False)
    _dist._check_support(z, np.asarray(r, dtype=np.float64), gamma, name)
    return z


def _steps(lr, lr_power):
    lr = check_positive(lr, "lr")
    if not 0.5 < float(lr_power) <= 1.0 and float(lr_power) != 0.0:
        raise ValueError(f"lr_power must lie in (0.5, 1] (Robbins–Monro) or be 0 (constant), got {lr_power!r}")
    return lr, float(lr_power)


# ====================================================================== pure functions (mdpsandbox.learners.losses.distributional)
from .losses.distributional import (_check_edges, categorical_cross_entropy, categorical_target_matrices,  # noqa: E402,F401
                                    categorical_td_target, hl_gauss_loss, hl_gauss_mean, hl_gauss_target,
                                    quantile_huber_grad, quantile_huber_loss)


def categorical_mirror_step(logits, target_probs, alpha) -> np.ndarray:
    r"""One mirror-descent (KL-proximal) step of the C51 cross-entropy in logit space:

    .. math:: \theta' = \log\big((1-\alpha)\,\mathrm{softmax}\,\theta + \alpha\,\hat\eta\big),
              \qquad \mathrm{softmax}\,\theta' = (1-\alpha)\,\mathrm{softmax}\,\theta + \alpha\,\hat\eta .

    Two readings of the same step (Rowland et al. 2018 analyse its probability form as CTD):

    * proximal point: softmax θ' = argmin_q α·CE(η̂, q) + (1 − α)·KL(p ‖ q) over the simplex (p = softmax θ;
      the minimiser of a weighted sum of KL(· ‖ q) is the mixture) — *the CTD mixture step written in
      logits*, equal to it on probabilities up to rounding;
    * natural gradient: the Fisher metric of the softmax in logit coordinates is F = diag(p) − pp^T, and
      F δ = p − η̂ (the C51 gradient) is solved by δ_i = 1 − η̂_i/p_i; the natural-gradient step θ − α δ
      equals θ' + logsumexp θ to first order in α (θ' − log p = log(1 + α(η̂/p − 1)); Amari 1998, "Natural
      gradient works efficiently in learning"). The plain gradient step θ − α(p − η̂) instead moves p_i by
      ≈ α p_i(η̂_i − p_i − c), c = Σ_j p_j(p_j − η̂_j) common to all atoms: a factor p_i slower on
      atoms of small mass.

    Computed as the log of the mixture, and in log space (``logaddexp``) where a softmax entry underflows,
    so logits stay finite for 0 ≤ α < 1 even where η̂_i = 0; the result is normalised (logsumexp θ' = 0).
    logits ``(B, m)``, target_probs ``(B, m)`` (non-negative rows summing to 1), alpha in [0, 1).
    Returns ``(B, m)``.
    """
    alpha = float(alpha)
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must lie in [0, 1) (a finite logit needs 1 − α > 0), got {alpha!r}")
    lp = log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)
    t = np.asarray(target_probs, dtype=np.float64)
    if t.shape != lp.shape or np.any(t < 0):
        raise ValueError(f"target_probs must be non-negative with the logits' shape {lp.shape}, got {t.shape}")
    return lp if alpha == 0.0 else _mirror(lp, np.exp(lp), t, alpha)


def _mirror(lp, p, t, alpha):
    """log((1 − α) p + α t) from log p = lp (p = exp(lp)), 0 < α < 1, in log space where p underflowed."""
    q = (1.0 - alpha) * p + alpha * t
    if q.min() > 0.0:  # the usual case: no softmax entry underflowed
        return np.log(q)
    with np.errstate(divide="ignore"):
        lt = np.log(t)
    return np.logaddexp(math.log1p(-alpha) + lp, math.log(alpha) + lt)


# ====================================================================== learners
@dataclass(frozen=True)
class TDConfig:
    r"""Sampling and step sizes of the three learners. A field left at ``None`` takes the learner's
    default from :data:`DEFAULT_CONFIGS` (the one source of defaults: ``TDConfig(seed=1)`` keeps the
    default schedule and changes only the seed).

    n_iterations : synchronous iterations; each draws ``n_next`` next states X' ~ P(·|x) for every
        state x from the generative model (seeded) and updates every state once.
    schedule : ``"rescaled"`` — the rescaled linear step :math:`\alpha_k = c/(c + (1-\gamma)k)`, c = ``lr``
        (Wainwright 2019, "Stochastic approximation with cone-contractive operators": the step that
        keeps TD's error within a constant of the sample average at every γ; :math:`\alpha_0 = 1`) — or
        ``"power"`` — :math:`\alpha_k = \mathrm{lr}/(k+1)^\omega`, ω = ``lr_power`` (Robbins–Monro for
        ω ∈ (1/2, 1]; 0 = constant).
    average_from : Polyak–Ruppert averaging from this fraction of the run on (1.0 = no averaging) of the
        *estimate* (probabilities for the logit parametrisations, locations for QR); it removes the
        O(α_k) jitter of the last iterate.

    The logit mirror step (``parametrisation="logits"``) takes α_{k+1} in place of α_k (so α < 1 and
    every logit stays finite; the rescaled schedule has α_0 = 1).
    """

    n_iterations: Optional[int] = None
    n_next: Optional[int] = None
    lr: Optional[float] = None
    lr_power: Optional[float] = None
    average_from: Optional[float] = None
    schedule: Optional[str] = None
    seed: int = 0
    progress: bool = False


@dataclass
class TDResult:
    r"""estimate : ``(S, m)`` — atom probabilities (categorical, HL-Gauss) or quantile locations
    (QR); mean : ``(S,)`` the implied value estimate; n_samples : transitions used per state;
    config : the resolved :class:`TDConfig`; empirical_P : ``(S, S)`` the generative-model estimate
    P̂ built from *the same* sampled next states (for the plug-in comparison: the categorical fixed
    point of P̂ is what a model-based learner gets from these samples)."""

    estimate: np.ndarray
    mean: np.ndarray
    n_samples: int
    method: str
    config: Optional[TDConfig] = None
    empirical_P: Optional[np.ndarray] = None


#: The default schedules, one per update kind — the single source :class:`TDConfig` fields fall back to.
#: Mixture updates (``"probs"``: CTD, HL-Gauss mixture) use the rescaled linear step (c = 2) and
#: averaging: at γ = 0.99 on 4-state MRPs they end within a small factor of the plug-in estimate from
#: the same samples (tests/test_distributional_td.py), where 1/(k+1) steps stall at errors ~100× larger
#: (the 1/(k+1) step forgets the initial law only like k^{-(1-γ)}). ``"logits"``: the mirror step
#: :func:`categorical_mirror_step` (= the mixture, written in logits) with the same schedule.
#: ``"logits_sgd"`` (the plain cross-entropy gradient step of C51, and HL-Gauss's logit step) moves
#: probability p_i only by ≈ α p_i(1 − p_i), so it takes a large constant step with averaging of the
#: probabilities (still 4–77× the plug-in error at γ = 0.99 for C51). QR: the rescaled linear step (c = 1)
#: times the per-quantile slope scale :func:`quantile_slope_scale` (≈ 1/density), projected onto the return
#: interval, from the uniform law on it, with averaging (the return-range-scaled step ended at 0.019 and
#: 0.056 of the return range at γ = 0.99 on two of five MRPs; the old ω = 0.7 power step up to 0.38).
DEFAULT_CONFIGS = {
    "probs": TDConfig(n_iterations=5000, n_next=4, lr=2.0, lr_power=0.0, average_from=0.5, schedule="rescaled"),
    "logits": TDConfig(n_iterations=5000, n_next=4, lr=2.0, lr_power=0.0, average_from=0.5, schedule="rescaled"),
    "logits_sgd": TDConfig(n_iterations=5000, n_next=4, lr=10.0, lr_power=0.0, average_from=0.5, schedule="power"),
    "quantile": TDConfig(n_iterations=5000, n_next=4, lr=1.0, lr_power=0.0, average_from=0.5, schedule="rescaled"),
}


def resolve_config(config: Optional[TDConfig], kind: str) -> TDConfig:
    """``config`` with every ``None`` field filled from ``DEFAULT_CONFIGS[kind]`` (validated)."""
    if config is None:
        config = TDConfig()
    if not isinstance(config, TDConfig):
        raise ValueError(f"config must be a TDConfig, got {type(config).__name__}")
    base = DEFAULT_CONFIGS[kind]
    filled = {f: (getattr(base, f) if getattr(config, f) is None else getattr(config, f))
              for f in ("n_iterations", "n_next", "lr", "lr_power", "average_from", "schedule")}
    cfg = TDConfig(**filled, seed=config.seed, progress=config.progress)
    check_int(cfg.n_iterations, "n_iterations")
    check_int(cfg.n_next, "n_next")
    _steps(cfg.lr, cfg.lr_power)
    if cfg.schedule not in ("rescaled", "power"):
        raise ValueError(f"schedule must be 'rescaled' or 'power', got {cfg.schedule!r}")
    if not (isinstance(cfg.average_from, (int, float)) and 0.0 <= cfg.average_from <= 1.0):
        raise ValueError(f"average_from must lie in [0, 1], got {cfg.average_from!r}")
    return cfg


def _next_state_sampler(P, n_next, seed):
    """Generative model: ``draw()`` returns ``(S, n_next)`` next states X' ~ P(·|x), one row per x;
    ``draw.counts`` ``(S, S)`` accumulates every draw (the empirical model P̂ of the same samples)."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(P, axis=1)
    cdf[:, -1] = 1.0
    S = P.shape[0]
    rows = np.repeat(np.arange(S), n_next)
    counts = np.zeros((S, S))

    def draw():
        u = rng.random((S, n_next))
        xn = np.minimum((u[:, :, None] >= cdf[:, None, :]).sum(axis=-1), S - 1)
        np.add.at(counts, (rows, xn.ravel()), 1.0)
        return xn

    draw.counts = counts
    return draw


def _run(cfg: TDConfig, gamma: float, state, update, name, view=None, k0: int = 0):
    """The shared loop: step schedule (α_{k0+k} at iteration k), Polyak averaging of ``view(state)``
    (default the state itself), progress bar. Returns the averaged view (or the last one without averaging)."""
    lr, omega = _steps(cfg.lr, cfg.lr_power)
    K = check_int(cfg.n_iterations, "n_iterations")
    view = (lambda s: s) if view is None else view
    start = min(int(cfg.average_from * K), K - 1) if cfg.average_from < 1.0 else K
    avg, n_avg = None, 0
    it = range(K)
    if cfg.progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=name, leave=False)
    for k in it:
        j = k + k0
        if cfg.schedule == "rescaled":
            alpha = lr / (lr + (1.0 - gamma) * j)
        else:
            alpha = lr / (j + 1.0) ** omega
        state = update(state, alpha)
        if k >= start:
            n_avg += 1
            v = view(state)
            avg = v.copy() if avg is None else avg + (v - avg) / n_avg
    return view(state) if avg is None else avg


def _empirical(draw):
    c = draw.counts
    return c / np.maximum(c.sum(axis=1, keepdims=True), 1.0)


def _categorical_td(P, r, gamma, atoms, *, parametrisation: str = "probs",
                   config: Optional[TDConfig] = None) -> TDResult:
    r"""Categorical TD policy evaluation of the MRP (P, r, γ) from sampled next states.

    Each iteration, for every state x with sampled X'_1..X'_n:
    target η̂(x) = (1/n) Σ_b Π_C law(r(x) + γ Z(X'_b)) (:func:`categorical_td_target`), then

    * ``"probs"`` (default; CTD, the tabular form of C51 analysed by Rowland et al. 2018):
      η(x) ← (1 − α_k) η(x) + α_k η̂(x);
    * ``"logits"`` (a softmax table θ trained on the C51 loss by mirror descent): θ(x) ←
      :func:`categorical_mirror_step` (θ(x), η̂(x), α_{k+1}) — on probabilities exactly the CTD step;
    * ``"logits_sgd"`` (the C51 loss of Bellemare et al. 2017 on a softmax table): θ(x) ← θ(x) − α_k
      (softmax θ(x) − η̂(x)), the gradient step of :func:`categorical_cross_entropy`.

    All three have the categorical DP fixed point η_C = Π_C T^π η_C as their only fixed point
    (docs/math.md §7, §9). atoms : ``(m,)``, must contain [min r/(1−γ), max r/(1−γ)]. Defaults:
    :data:`DEFAULT_CONFIGS` (fields of ``config`` left at None). Returns :class:`TDResult` with
    ``estimate`` ``(S, m)`` probabilities.
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    z = check_support(atoms, r, gamma, "atoms")
    if parametrisation not in ("logits", "probs", "logits_sgd"):
        raise ValueError(f"parametrisation must be 'probs', 'logits' or 'logits_sgd', got {parametrisation!r}")
    config = resolve_config(config, parametrisation)
    n_next = config.n_next
    S, m = P.shape[0], z.size
    draw = _next_state_sampler(P, n_next, config.seed)
    H = categorical_target_matrices(z, r, gamma)  # (S, m, m); = categorical_td_target row by row

    def target(probs):
        xn = draw()
        return np.einsum("xj,xji->xi", probs[xn].mean(axis=1), H)  # mean over X'_b, then Π_C (linear)

    if parametrisation == "probs":
        def update(eta, alpha):
            return (1.0 - alpha) * eta + alpha * target(eta)

        est = _run(config, gamma, np.full((S, m), 1.0 / m), update, "categorical TD")
    elif parametrisation == "logits":
        def update(theta, alpha):  # = categorical_mirror_step(theta, target(softmax theta), alpha), 0 < α < 1
            lp = log_softmax(theta)
            p = np.exp(lp)
            return _mirror(lp, p, target(p), alpha)

        est = _run(config, gamma, np.zeros((S, m)), update, "C51 (mirror)", view=lambda th: np.exp(log_softmax(th)),
                   k0=1)
    else:
        def update(theta, alpha):
            p = np.exp(log_softmax(theta))
            return theta - alpha * (p - target(p))

        est = _run(config, gamma, np.zeros((S, m)), update, "C51", view=lambda th: np.exp(log_softmax(th)))
    return TDResult(est, est @ z, config.n_iterations * n_next, f"categorical-{parametrisation}", config,
                    _empirical(draw))


def quantile_slope_scale(theta, lower: float) -> np.ndarray:
    r"""Per-quantile step scale of QR TD: the slope of the current quantile function,

    .. math:: w_i = \max\Big(\frac{\theta_{(i+1)} - \theta_{(i-1)}}{\tau_{i+1} - \tau_{i-1}},\;
              \text{lower}\Big) \approx \frac{1}{f(\theta_i)}

    (θ_(i) sorted; one-sided differences at i = 1, m; τ_{i+1} − τ_{i−1} = 2/m), returned at the positions of
    ``theta`` (unsorted rows keep their order). A quantile's expected pinball step is α (F(θ_i) − τ_i)
    ≈ α f(θ*_i)(θ_i − θ*_i) near the fixed point, so the gain is the target density f; multiplying by
    w_i ≈ 1/f makes it ≈ α for every quantile and every width of the return law: the Robbins–Monro gain
    1/f(θ*) with the slope estimated on line (Venter 1967, "An extension of the Robbins–Monro procedure",
    Ann. Math. Statist. 38; Polyak & Juditsky 1992 show averaging reaches the same asymptotic variance
    without it — the scale matters for the transient, which is what 5000 steps at γ = 0.99 are).
    w is a positive function of θ only, so the expected update
    vanishes exactly where the unscaled one does: the fixed points (the quantile DP fixed point) are
    unchanged; the floor ``lower`` > 0 keeps collapsed (Dirac) quantiles moving, and on θ ∈ [lo, hi]
    w ≤ m (hi − lo). theta ``(S, m)``. Returns ``(S, m)`` (m = 1: no slope, ``lower`` is returned).
    """
    theta = np.asarray(theta, dtype=np.float64)
    S, m = theta.shape
    if m == 1:
        return np.full((S, 1), float(lower))
    gaps = np.diff(theta, axis=1)
    ordered = gaps.min() >= 0.0  # the usual case: no quantile crossing
    order = None
    if not ordered:
        order = np.argsort(theta, axis=1)
        gaps = np.diff(np.take_along_axis(theta, order, axis=1), axis=1)
    d = np.empty((S, m))
    d[:, 0] = gaps[:, 0] * m
    d[:, -1] = gaps[:, -1] * m
    if m > 2:
        d[:, 1:-1] = (gaps[:, 1:] + gaps[:, :-1]) * (m / 2.0)
    if ordered:
        return np.maximum(d, lower, out=d)
    w = np.empty_like(d)
    np.put_along_axis(w, order, np.maximum(d, lower), axis=1)
    return w


def _quantile_td(P, r, gamma, n_quantiles: int, *, kappa: float = 0.0,
                config: Optional[TDConfig] = None) -> TDResult:
    r"""Quantile TD (QR; Dabney et al. 2018) policy evaluation of the MRP (P, r, γ).

    θ(x) ∈ R^m at levels τ_i = (2i−1)/(2m). Each iteration, for every x with sampled X'_1..X'_n,
    targets y_{bj} = r(x) + γ θ_j(X'_b) (n·m equally weighted samples) and the projected, slope-scaled step
    θ(x) ← clip(θ(x) − α_k w(θ(x)) ⊙ ∇_θ :func:`quantile_huber_loss`, [lo, hi]) (κ = 0: pinball),
    w = :func:`quantile_slope_scale` floored at the reward range (m = 1: w = hi − lo, the return range),
    θ_0 = the uniform law on [lo, hi] (see :func:`quantile_td`). The expected update vanishes
    exactly when θ_i(x) is a τ_i-quantile of the target mixture — the quantile DP fixed point
    (docs/math.md §7); with κ > 0 the fixed point moves by at most κ. Returns :class:`TDResult` with
    ``estimate`` ``(S, m)`` quantile locations (mean = their average).
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    m = check_int(n_quantiles, "n_quantiles")
    if kappa != 0:
        kappa = check_positive(kappa, "kappa")
    config = resolve_config(config, "quantile")
    n_next = config.n_next
    taus = quantile_levels(m)
    S = P.shape[0]
    draw = _next_state_sampler(P, n_next, config.seed)

    lo, hi = float(r.min()) / (1.0 - gamma), float(r.max()) / (1.0 - gamma)
    scale = max(hi - lo, 1e-300)  # the return range: steps in units of the returns (scale-equivariant)

    floor = (1.0 - gamma) * scale  # = max r − min r, the one-step reward range

    def update(theta, alpha):
        xn = draw()
        y = r[:, None] + gamma * theta[xn].reshape(S, n_next * m)
        w = scale if m == 1 else quantile_slope_scale(theta, floor)  # m = 1 (the median): no slope to read
        return np.clip(theta - alpha * w * quantile_huber_grad(theta, y, taus, kappa), lo, hi)

    theta0 = np.tile(lo + taus * (hi - lo), (S, 1))  # the uniform law on the return interval
    est = _run(config, gamma, theta0, update, "quantile TD")
    return TDResult(est, est.mean(axis=1), config.n_iterations * n_next,
                    "quantile" if kappa == 0 else "quantile-huber", config, _empirical(draw))


def _hl_gauss_checks(P, r, gamma, edges, sigma):
    P, r, gamma = _check_mrp(P, r, gamma)
    e = _check_edges(edges)
    check_support(e, r, gamma, "edges")
    sigma = check_positive(sigma, "sigma")
    return P, r, gamma, e, sigma


def _hl_gauss_td(P, r, gamma, edges, sigma: float, *, parametrisation: str = "logits",
                config: Optional[TDConfig] = None) -> TDResult:
    r"""HL-Gauss TD value learning (Farebrother et al. 2024) on the MRP (P, r, γ).

    A histogram p(x) over the bins of ``edges`` represents V̂(x) = Σ_i p_i(x) c_i
    (:func:`hl_gauss_mean`). Each iteration, for every x with sampled X'_1..X'_n, the TD target
    y_b = r(x) + γ V̂(X'_b) is turned into the Gaussian histogram :func:`hl_gauss_target` and
    the logits take a cross-entropy gradient step θ ← θ − α_k (softmax θ − (1/n)Σ_b p(y_b))
    (``"probs"``: the mixture p ← (1−α_k) p + α_k (1/n)Σ_b p(y_b)). Fixed point:
    :func:`hl_gauss_fixed_point`, whose mean equals V^π up to the exponentially small smoothing
    error. edges ``(m+1,)`` must contain [min r/(1−γ), max r/(1−γ)]; σ > 0 (the paper uses
    σ = 0.75 × bin width).
    """
    P, r, gamma, e, sigma = _hl_gauss_checks(P, r, gamma, edges, sigma)
    if parametrisation not in ("logits", "probs"):
        raise ValueError(f"parametrisation must be 'logits' or 'probs', got {parametrisation!r}")
    config = resolve_config(config, "logits_sgd" if parametrisation == "logits" else "probs")
    n_next = config.n_next
    S, m = P.shape[0], e.size - 1
    draw = _next_state_sampler(P, n_next, config.seed)

    def target(p):
        xn = draw()
        y = r[:, None] + gamma * hl_gauss_mean(p, e)[xn]
        return hl_gauss_target(np.clip(y.ravel(), e[0], e[-1]), e, sigma).reshape(S, n_next, m).mean(axis=1)

    if parametrisation == "probs":
        est = _run(config, gamma, np.full((S, m), 1.0 / m), lambda p, a: (1 - a) * p + a * target(p),
                   "HL-Gauss TD")
    else:
        def update(theta, alpha):
            p = np.exp(log_softmax(theta))
            return theta - alpha * (p - target(p))

        est = _run(config, gamma, np.zeros((S, m)), update, "HL-Gauss TD", view=lambda th: np.exp(log_softmax(th)))
    return TDResult(est, hl_gauss_mean(est, e), config.n_iterations * n_next, f"hl-gauss-{parametrisation}",
                    config, _empirical(draw))


def hl_gauss_fixed_point(P, r, gamma, edges, sigma: float, *, tol: float = 1e-13,
                         max_iter: int = 100_000) -> np.ndarray:
    r"""Exact (expected-update) fixed point of HL-Gauss TD:

    .. math:: p(x) = \sum_{x'} P(x'|x)\; p^{HL}\big(r(x) + \gamma\,\bar V(x')\big),
              \qquad \bar V(x') = \sum_i p_i(x')c_i,

    by fixed-point iteration on the means (a γ-Lipschitz map inside the support). Returns ``(S, m)``.
    """
    P, r, gamma, e, sigma = _hl_gauss_checks(P, r, gamma, edges, sigma)
    max_iter = check_int(max_iter, "max_iter")
    S, m = P.shape[0], e.size - 1
    v = np.zeros(S)
    for _ in range(max_iter):
        y = r[:, None] + gamma * v[None, :]  # (x, x')
        h = hl_gauss_target(np.clip(y.ravel(), e[0], e[-1]), e, sigma).reshape(S, S, m)
        p = np.einsum("xy,xym->xm", P, h)
        v_new = hl_gauss_mean(p, e)
        if np.max(np.abs(v_new - v)) < tol:
            return p
        v = v_new
    raise RuntimeError(f"hl_gauss_fixed_point did not converge in {max_iter} iterations")


# ====================================================================== the training front door
def _mrp_of(env, policy):
    """(P dense, r, gamma, (S, A) or None) of an MRP tuple or a TabularMDP with a policy."""
    from ..envs.tabular import TabularMDP

    if isinstance(env, TabularMDP):
        if policy is None:
            raise ValueError("distributional TD on a TabularMDP evaluates a policy: pass policy= (an (S, A) array "
                             "of probabilities), or give an MRP (P, r, gamma)")
        P, r = policy_mrp(env, policy)
        P, r, gamma = _check_mrp(P, r, env.gamma)
        return P, r, gamma, (env.n_states, env.n_actions)
    if isinstance(env, tuple) and len(env) == 3:
        P, r, gamma = _check_mrp(*env)
        return P, r, gamma, None
    raise ValueError(f"env must be an MRP tuple (P, r, gamma) or a TabularMDP with policy=, got {type(env).__name__}")


def _td_config(config, steps, lr, seed, progress):
    if config is not None and not isinstance(config, TDConfig):
        raise ValueError(f"config must be a TDConfig, got {type(config).__name__}")
    import dataclasses

    cfg = config or TDConfig()
    upd = {"seed": check_int(seed, "seed", minimum=0), "progress": bool(progress) and cfg.progress}
    if steps is not None:
        upd["n_iterations"] = check_int(steps, "steps")
    if lr is not None:
        upd["lr"] = check_positive(lr, "lr")
    return dataclasses.replace(cfg, **upd)


def _door_run(env, *, name, beta=None, model="tabular", data="full", steps=None, lr=None, optimizer="auto", seed=0,
              eval_every=None, progress=True, batch_size=None, dtype=None, solution=None, policy=None,
              config=None, atoms=51, parametrisation="probs", n_quantiles=32, kappa=0.0, n_bins=51, sigma=None,
              edges=None, **unknown):
    """``train("c51" | "qr" | "hl_gauss", mrp_or_mdp, ...)``: runs the learner, returns a TrainResult with
    the learned law next to the exact fixed point (and the plug-in fixed point of the same samples)."""
    from ..solvers.distributional import (Categorical, Quantile, categorical_fixed_point, default_atoms, quantile_dp,
                                          wasserstein1)
    from .trainer import FAR_TV, TrainResult, _flag  # noqa: F401  (FAR_TV documents the token threshold)

    if unknown:
        raise ValueError(f"unknown options for {name}: {sorted(unknown)}")
    for arg, val, default in (("model", model, "tabular"), ("data", data, "full"), ("optimizer", optimizer, "auto"),
                              ("batch_size", batch_size, None), ("beta", beta, None)):
        if not (val is default or val == default):
            raise ValueError(f"{arg} is not used by {name} (a numpy learner on sampled next states); got {arg}={val!r}")
    P, r, gamma, sa = _mrp_of(env, policy)
    cfg = _td_config(config, steps, lr, seed, progress)
    V = mrp_value(P, r, gamma)
    kind = {"c51": "categorical", "ctd": "categorical", "categorical_td": "categorical", "qr": "quantile",
            "quantile_td": "quantile", "hl_gauss": "hl_gauss"}[name]
    learned, exact, hist = {}, {}, {"step": 0, "loss": float("nan")}
    if kind == "categorical":
        z = default_atoms(r, gamma, atoms) if isinstance(atoms, (int, np.integer)) and not isinstance(atoms, bool) \
            else check_support(atoms, r, gamma)
        res = _categorical_td(P, r, gamma, z, parametrisation=parametrisation, config=cfg)
        fp = categorical_fixed_point(P, r, gamma, z)
        plug = categorical_fixed_point(res.empirical_P, r, gamma, z)
        err = float(np.max(wasserstein1(Categorical(z, res.estimate), fp)))
        plug_err = float(np.max(wasserstein1(plug, fp)))
        learned.update(probs=res.estimate, mean=res.mean, atoms=z)
        exact.update(probs=np.asarray(fp.probs), mean=V, atoms=z)
        convention = f"categorical-{parametrisation}"
    elif kind == "quantile":
        res = _quantile_td(P, r, gamma, n_quantiles, kappa=kappa, config=cfg)
        fp = quantile_dp(P, r, gamma, n_quantiles)
        plug = quantile_dp(res.empirical_P, r, gamma, n_quantiles)
        est = np.sort(res.estimate, axis=1)
        err = float(np.max(wasserstein1(Quantile(est), Quantile(fp.locations))))
        plug_err = float(np.max(wasserstein1(Quantile(plug.locations), Quantile(fp.locations))))
        learned.update(locations=est, mean=res.mean)
        exact.update(locations=np.asarray(fp.locations), mean=V)
        convention = "quantile"
    else:
        if edges is None:
            lo, hi = float(r.min()) / (1 - gamma), float(r.max()) / (1 - gamma)
            n_bins = check_int(n_bins, "n_bins", minimum=13)
            width = max(hi - lo, 1e-12) / (n_bins - 12)
            edges = np.linspace(lo - 6 * width, hi + 6 * width, n_bins + 1)
        else:
            edges = _check_edges(edges)
        sig = 0.75 * (edges[1] - edges[0]) if sigma is None else check_positive(sigma, "sigma")
        res = _hl_gauss_td(P, r, gamma, edges, sig, parametrisation=parametrisation, config=cfg)
        p_fp = hl_gauss_fixed_point(P, r, gamma, edges, sig)
        err = float(np.max(np.abs(res.mean - V)))
        plug_err = float(np.max(np.abs(hl_gauss_mean(hl_gauss_fixed_point(res.empirical_P, r, gamma, edges, sig),
                                                     edges) - V)))
        learned.update(probs=res.estimate, mean=res.mean, edges=edges)
        exact.update(probs=p_fp, mean=V, edges=edges)
        convention = f"hl-gauss-{parametrisation}"
    if sa is not None:  # state–action MRP of an (MDP, policy): (S, A, ...) views
        for d in (learned, exact):
            for k in ("probs", "locations", "mean"):
                if k in d:
                    d[k] = np.asarray(d[k]).reshape(sa + np.asarray(d[k]).shape[1:])
    metric = "sup_w1" if kind != "hl_gauss" else "value_error"
    hist.update({"step": res.config.n_iterations, metric: err, f"plugin_{metric}": plug_err,
                 "mean_error": float(np.max(np.abs(res.mean - V))), "n_samples": res.n_samples})
    out = TrainResult(None, None, [hist], name, convention, 0.0, None, learned, exact, steps_run=res.config.n_iterations,
                      raw=res)
    # far: more than 4× the plug-in error of the same samples plus 1e-3 of the return range (QR: 5e-3 — the
    # plug-in QDP is piecewise constant in P̂, so its error is exactly 0 at most sample sizes and the floor is
    # the learner's own resolution; tests/test_distributional_td.py)
    span = (float(r.max()) - float(r.min())) / (1 - gamma) + 1e-12
    floor = 5e-3 if kind == "quantile" else 1e-3
    _flag(out, err > 4 * plug_err + floor * span, name, False,
          f"{metric} {err:.3g} vs plug-in {plug_err:.3g} from the same samples")
    return out


def _register_doors():
    from .trainer import Door, register_door

    register_door(Door("c51", _door_run, description="categorical TD (CTD / C51) on an MRP (P, r, gamma) or a "
                       "TabularMDP with policy=", reference="Bellemare et al. 2017; Rowland et al. 2018"),
                  aliases=("ctd", "categorical_td"))
    register_door(Door("qr", _door_run, description="quantile TD on an MRP or a TabularMDP with policy=",
                       reference="Dabney et al. 2018"), aliases=("quantile_td",))
    register_door(Door("hl_gauss", _door_run, description="HL-Gauss TD on an MRP or a TabularMDP with policy=",
                       reference="Farebrother et al. 2024"))


_register_doors()


# ====================================================================== the specialised doors: thin wrappers of train()
def _via_train(name, P, r, gamma, config, **options) -> TDResult:
    """Run ``train(name, (P, r, gamma), config=config, ...)`` and return its :class:`TDResult` (``raw``);
    the seed and progress flag are the config's (train's own defaults would replace them)."""
    from .trainer import train

    if config is not None and not isinstance(config, TDConfig):
        raise ValueError(f"config must be a TDConfig, got {type(config).__name__}")
    cfg = TDConfig() if config is None else config
    return train(name, (P, r, gamma), config=cfg, seed=cfg.seed, progress=True, **options).raw


def categorical_td(P, r, gamma, atoms, *, parametrisation: str = "probs",
                   config: Optional[TDConfig] = None) -> TDResult:
    r"""Categorical TD (CTD / C51) policy evaluation of the MRP (P, r, γ) — a thin wrapper of
    ``train("c51", (P, r, gamma), atoms=atoms, parametrisation=..., config=config).raw``.

    Each iteration, for every state x with sampled X'_1..X'_n:
    target η̂(x) = (1/n) Σ_b Π_C law(r(x) + γ Z(X'_b)) (:func:`categorical_td_target`), then

    * ``"probs"`` (default; CTD, the tabular form of C51 analysed by Rowland et al. 2018):
      η(x) ← (1 − α_k) η(x) + α_k η̂(x), rescaled linear steps and Polyak averaging (its default reaches
      the categorical DP fixed point within a small factor of the plug-in estimate up to γ = 0.99);
    * ``"logits"`` (a softmax table on the C51 loss, stepped by mirror descent): θ(x) ←
      log((1 − α) softmax θ(x) + α η̂(x)) (:func:`categorical_mirror_step`, α = α_{k+1} < 1 so the logits
      stay finite) with averaging of softmax θ. This is the natural-gradient (Fisher = softmax Jacobian)
      form of the C51 step taken exactly on the simplex: on probabilities it *is* the CTD mixture step, so
      it inherits CTD's convergence (Rowland et al. 2018) and its default reaches the fixed point within
      a small factor of the plug-in estimate up to γ = 0.99 (tests/test_distributional_td.py);
    * ``"logits_sgd"`` (the plain C51 gradient step of Bellemare et al. 2017 on a softmax table):
      θ(x) ← θ(x) − α_k (softmax θ(x) − η̂(x)), the gradient of :func:`categorical_cross_entropy`. It moves
      p_i by only ≈ α_k p_i(1 − p_i) (the softmax Jacobian), so atoms whose mass is small — most of them
      for the peaked laws of γ → 1 — learn a factor p_i slower than CTD, and its error at γ = 0.99 stays
      4–77× the plug-in's after the default 5000 iterations; ``train("c51", ..., parametrisation=
      "logits_sgd")`` flags such a result ``far_from_exact``. Kept as the named negative control.

    All three have the categorical DP fixed point η_C = Π_C T^π η_C as their only fixed point
    (docs/math.md §7, §9). atoms : ``(m,)``, must contain [min r/(1−γ), max r/(1−γ)]. Defaults:
    :data:`DEFAULT_CONFIGS` (fields of ``config`` left at None). Returns :class:`TDResult` with
    ``estimate`` ``(S, m)`` probabilities. ``train`` also returns the exact and plug-in errors.
    """
    if isinstance(atoms, (int, np.integer)) and not isinstance(atoms, bool):
        raise ValueError(f"atoms must be an (m,) array of atom locations, got the int {atoms!r}")
    return _via_train("c51", P, r, gamma, config, atoms=atoms, parametrisation=parametrisation)


def quantile_td(P, r, gamma, n_quantiles: int, *, kappa: float = 0.0,
                config: Optional[TDConfig] = None) -> TDResult:
    r"""Quantile TD (QR; Dabney et al. 2018) policy evaluation of the MRP (P, r, γ) — a thin wrapper of
    ``train("qr", (P, r, gamma), n_quantiles=..., kappa=..., config=config).raw``.

    θ(x) ∈ R^m at levels τ_i = (2i−1)/(2m). Each iteration, for every x with sampled X'_1..X'_n,
    targets y_{bj} = r(x) + γ θ_j(X'_b) (n·m equally weighted samples) and the projected, slope-scaled step
    θ_i(x) ← clip(θ_i(x) − α_k w_i(x) ∂_{θ_i} :func:`quantile_huber_loss`, [lo, hi]), lo, hi = min r/(1−γ),
    max r/(1−γ), with w_i(x) = :func:`quantile_slope_scale` — the slope
    (θ_(i+1) − θ_(i−1))/(τ_{i+1} − τ_{i−1}) of the current quantile function ≈ 1/f(θ_i), floored at the
    reward range (1−γ)(hi − lo) (for m = 1, the median alone with no slope to read: hi − lo) — starting
    from the uniform law θ_i = lo + τ_i (hi − lo), and by default the rescaled linear step
    α_k = c/(c + (1−γ)k) with Polyak–Ruppert averaging of the second half. Why the slope: the pinball
    gradient F̂(θ_i) − τ_i has no units and its mean ≈ f(θ*_i)(θ_i − θ*_i) near the fixed point, so an
    unscaled (or return-range-scaled) step has gain f — much larger than 1 for the narrow laws of γ → 1
    (noisy) and much smaller in the flat tails (slow); w ≈ 1/f makes the gain ≈ 1 per quantile, the
    regime the rescaled linear step is designed for (Wainwright 2019), and the wide uniform start shrinks
    to the law with large early steps instead of growing from a Dirac with tiny ones. w is a positive
    function of θ, so the fixed points are those of the plain step; the interval contains every fixed
    point, so the projection keeps them (projected stochastic approximation). The expected update
    vanishes exactly when θ_i(x) is a τ_i-quantile of the target mixture — the quantile DP fixed point
    (docs/math.md §7); with κ > 0 the fixed point moves by at most κ. Returns :class:`TDResult` with
    ``estimate`` ``(S, m)`` quantile locations (mean =
    their average).
    """
    return _via_train("qr", P, r, gamma, config, n_quantiles=n_quantiles, kappa=kappa)


def hl_gauss_td(P, r, gamma, edges, sigma: float, *, parametrisation: str = "logits",
                config: Optional[TDConfig] = None) -> TDResult:
    r"""HL-Gauss TD value learning (Farebrother et al. 2024) on the MRP (P, r, γ) — a thin wrapper of
    ``train("hl_gauss", (P, r, gamma), edges=edges, sigma=sigma, parametrisation=..., config=config).raw``.

    A histogram p(x) over the bins of ``edges`` represents V̂(x) = Σ_i p_i(x) c_i
    (:func:`hl_gauss_mean`). Each iteration, for every x with sampled X'_1..X'_n, the TD target
    y_b = r(x) + γ V̂(X'_b) is turned into the Gaussian histogram :func:`hl_gauss_target` and
    the logits take a cross-entropy gradient step θ ← θ − α_k (softmax θ − (1/n)Σ_b p(y_b))
    (``"probs"``: the mixture p ← (1−α_k) p + α_k (1/n)Σ_b p(y_b)). Fixed point:
    :func:`hl_gauss_fixed_point`, whose mean equals V^π up to the exponentially small smoothing
    error. edges ``(m+1,)`` must contain [min r/(1−γ), max r/(1−γ)]; σ > 0 (the paper uses
    σ = 0.75 × bin width).
    """
    if sigma is None:
        raise ValueError("sigma must be a positive float, got None")
    return _via_train("hl_gauss", P, r, gamma, config, edges=edges, sigma=sigma, parametrisation=parametrisation)
