r"""Distributional TD for policy evaluation from sampled transitions (MATH.md §7, §9).

A Markov reward process (P, r, γ) — or a TabularMDP with a fixed policy, turned into the MRP on
state–action pairs by :func:`policy_mrp` — is evaluated *distributionally* from samples of a
generative model (every state draws next states X' ~ P(·|x) each iteration, seeded):

* **categorical TD** (C51-style; Bellemare et al. 2017, Rowland et al. 2018): target
  Π_C law(r(x) + γ Z(X')) with the hat projection of :func:`mdpsandbox.solvers.distributional.
  categorical_projection` (no mass loss when a target lands on an atom); updated either as the
  cross-entropy (C51) gradient step on logits or as the probability mixture (CTD). Fixed point:
  the categorical DP fixed point (:func:`categorical_fixed_point`).
* **quantile TD** (QR; Dabney et al. 2018): m quantile locations at levels τ_i = (2i−1)/(2m),
  stochastic (sub)gradient steps on the quantile Huber loss (κ = 0: pinball loss). Fixed point:
  the quantile DP fixed point (:func:`quantile_dp`); with κ > 0 within κ of it.
* **HL-Gauss** value regression (Farebrother et al. 2024, "Stop regressing: training value
  functions via classification for scalable deep RL"): a histogram over fixed bins trained by
  cross-entropy to the Gaussian-smoothed histogram of the TD target r + γ V̂(X'); the value is the
  histogram mean, whose fixed point matches the exact V^π (the smoothing is mean-preserving up to
  an exponentially small discretisation error when σ ≳ 0.5 bin width and the target is a few σ
  from the edges).

Pure functions first (targets, losses and their gradients), then the three learners, which only
call them. Step sizes α_k = lr / (k+1)^ω (Robbins–Monro for ω ∈ (1/2, 1]).
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
    "quantile_levels",
    "quantile_huber_loss",
    "quantile_huber_grad",
    "hl_gauss_target",
    "hl_gauss_mean",
    "hl_gauss_loss",
    "TDConfig",
    "DEFAULT_CONFIGS",
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
    [z_1, z_m] must contain [min r/(1−γ), max r/(1−γ)] (MATH.md §7) so that every Bellman target
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


# ====================================================================== learners
@dataclass(frozen=True)
class TDConfig:
    r"""Sampling and step sizes shared by the three learners.

    n_iterations : synchronous iterations; each draws ``n_next`` next states X' ~ P(·|x) for every
        state x from the generative model (seeded) and updates every state once.
    lr, lr_power : step size α_k = lr/(k+1)^ω (ω ∈ (1/2, 1] satisfies Robbins–Monro; 0 = constant).
    average_from : Polyak–Ruppert averaging of the iterates from this fraction of the run on
        (1.0 = no averaging); reduces the O(α_k) jitter of the last iterate.
    """

    n_iterations: int = 5000
    n_next: int = 1
    lr: float = 1.0
    lr_power: float = 1.0
    average_from: float = 1.0
    seed: int = 0
    progress: bool = False


@dataclass
class TDResult:
    r"""estimate : ``(S, m)`` — atom probabilities (categorical, HL-Gauss) or quantile locations
    (QR); mean : ``(S,)`` the implied value estimate; n_samples : transitions used per state."""

    estimate: np.ndarray
    mean: np.ndarray
    n_samples: int
    method: str


def _next_state_sampler(P, n_next, seed):
    """Generative model: ``draw()`` returns ``(S, n_next)`` next states X' ~ P(·|x), one row per x."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(P, axis=1)
    cdf[:, -1] = 1.0
    S = P.shape[0]

    def draw():
        u = rng.random((S, n_next))
        return np.minimum((u[:, :, None] >= cdf[:, None, :]).sum(axis=-1), S - 1)

    return draw


def _run(cfg: TDConfig, state, update, name):
    """The shared loop: α_k schedule, iterate averaging, progress bar."""
    lr, omega = _steps(cfg.lr, cfg.lr_power)
    K = check_int(cfg.n_iterations, "n_iterations")
    if not 0.0 <= cfg.average_from <= 1.0:
        raise ValueError(f"average_from must lie in [0, 1], got {cfg.average_from!r}")
    start = int(cfg.average_from * K)
    avg, n_avg = None, 0
    it = range(K)
    if cfg.progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=name, leave=False)
    for k in it:
        alpha = lr / (k + 1.0) ** omega
        state = update(state, alpha)
        if k >= start:
            n_avg += 1
            avg = state.copy() if avg is None else avg + (state - avg) / n_avg
    return state if avg is None else avg


#: Default schedules (checked on the tests' MRPs): the mixture update converges with α_k = 1/(k+1)
#: (a running average of targets); the logit (cross-entropy) step moves probabilities by only
#: ≈ α p(1−p), so it needs larger, slower-decaying steps and iterate averaging.
DEFAULT_CONFIGS = {
    "probs": TDConfig(n_iterations=5000, n_next=4, lr=1.0, lr_power=1.0),
    "logits": TDConfig(n_iterations=5000, n_next=4, lr=30.0, lr_power=0.6, average_from=0.5),
    "quantile": TDConfig(n_iterations=5000, n_next=4, lr=1.0, lr_power=0.7, average_from=0.5),
}


def categorical_td(P, r, gamma, atoms, *, parametrisation: str = "logits",
                   config: Optional[TDConfig] = None) -> TDResult:
    r"""Categorical TD policy evaluation of the MRP (P, r, γ) from sampled next states.

    Each iteration, for every state x with sampled X'_1..X'_n:
    target η̂(x) = (1/n) Σ_b Π_C law(r(x) + γ Z(X'_b)) (:func:`categorical_td_target`), then

    * ``"logits"`` (C51; Bellemare et al. 2017): θ(x) ← θ(x) − α_k (softmax θ(x) − η̂(x)), the
      gradient step of :func:`categorical_cross_entropy`;
    * ``"probs"`` (CTD; Rowland et al. 2018): η(x) ← (1 − α_k) η(x) + α_k η̂(x).

    Both have the categorical DP fixed point η_C = Π_C T^π η_C as their only fixed point
    (MATH.md §7, §9). atoms : ``(m,)``, must contain [min r/(1−γ), max r/(1−γ)]. Returns
    :class:`TDResult` with ``estimate`` ``(S, m)`` probabilities.
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    z = check_support(atoms, r, gamma, "atoms")
    if parametrisation not in ("logits", "probs"):
        raise ValueError(f"parametrisation must be 'logits' or 'probs', got {parametrisation!r}")
    config = config or DEFAULT_CONFIGS[parametrisation]
    n_next = check_int(config.n_next, "n_next")
    S, m = P.shape[0], z.size
    draw = _next_state_sampler(P, n_next, config.seed)
    H = categorical_target_matrices(z, r, gamma)  # (S, m, m); = categorical_td_target row by row

    def target(probs):
        xn = draw()
        return np.einsum("xj,xji->xi", probs[xn].mean(axis=1), H)  # mean over X'_b, then Π_C (linear)

    if parametrisation == "probs":
        def update(eta, alpha):
            return (1.0 - alpha) * eta + alpha * target(eta)

        est = _run(config, np.full((S, m), 1.0 / m), update, "categorical TD")
    else:
        def update(theta, alpha):
            p = np.exp(log_softmax(theta))
            return theta - alpha * (p - target(p))

        theta = _run(config, np.zeros((S, m)), update, "C51")
        est = np.exp(log_softmax(theta))
    return TDResult(est, est @ z, config.n_iterations * n_next, f"categorical-{parametrisation}")


def quantile_td(P, r, gamma, n_quantiles: int, *, kappa: float = 0.0,
                config: Optional[TDConfig] = None) -> TDResult:
    r"""Quantile TD (QR; Dabney et al. 2018) policy evaluation of the MRP (P, r, γ).

    θ(x) ∈ R^m at levels τ_i = (2i−1)/(2m). Each iteration, for every x with sampled X'_1..X'_n,
    targets y_{bj} = r(x) + γ θ_j(X'_b) (n·m equally weighted samples) and
    θ(x) ← θ(x) − α_k ∇_θ :func:`quantile_huber_loss` (κ = 0: pinball). The expected update vanishes
    exactly when θ_i(x) is a τ_i-quantile of the target mixture — the quantile DP fixed point
    (MATH.md §7); with κ > 0 the fixed point moves by at most κ. Returns :class:`TDResult` with
    ``estimate`` ``(S, m)`` quantile locations (mean = their average).
    """
    P, r, gamma = _check_mrp(P, r, gamma)
    m = check_int(n_quantiles, "n_quantiles")
    if kappa != 0:
        kappa = check_positive(kappa, "kappa")
    config = config or DEFAULT_CONFIGS["quantile"]
    n_next = check_int(config.n_next, "n_next")
    taus = quantile_levels(m)
    S = P.shape[0]
    draw = _next_state_sampler(P, n_next, config.seed)

    def update(theta, alpha):
        xn = draw()
        y = r[:, None] + gamma * theta[xn].reshape(S, n_next * m)
        return theta - alpha * quantile_huber_grad(theta, y, taus, kappa)

    theta0 = np.full((S, m), float(np.mean(r)) / (1.0 - gamma))
    est = _run(config, theta0, update, "quantile TD")
    return TDResult(est, est.mean(axis=1), config.n_iterations * n_next, "quantile" if kappa == 0 else "quantile-huber")


def _hl_gauss_checks(P, r, gamma, edges, sigma):
    P, r, gamma = _check_mrp(P, r, gamma)
    e = _check_edges(edges)
    check_support(e, r, gamma, "edges")
    sigma = check_positive(sigma, "sigma")
    return P, r, gamma, e, sigma


def hl_gauss_td(P, r, gamma, edges, sigma: float, *, parametrisation: str = "logits",
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
    config = config or DEFAULT_CONFIGS[parametrisation]
    n_next = check_int(config.n_next, "n_next")
    S, m = P.shape[0], e.size - 1
    draw = _next_state_sampler(P, n_next, config.seed)

    def target(p):
        xn = draw()
        y = r[:, None] + gamma * hl_gauss_mean(p, e)[xn]
        return hl_gauss_target(np.clip(y.ravel(), e[0], e[-1]), e, sigma).reshape(S, n_next, m).mean(axis=1)

    if parametrisation == "probs":
        est = _run(config, np.full((S, m), 1.0 / m), lambda p, a: (1 - a) * p + a * target(p), "HL-Gauss TD")
    else:
        def update(theta, alpha):
            p = np.exp(log_softmax(theta))
            return theta - alpha * (p - target(p))

        est = np.exp(log_softmax(_run(config, np.zeros((S, m)), update, "HL-Gauss TD")))
    return TDResult(est, hl_gauss_mean(est, e), config.n_iterations * n_next, f"hl-gauss-{parametrisation}")


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
