r"""Claims about inverse RL and reward transfer (docs/math.md §10).

* MCE IRL (Ziebart et al. 2010, discounted form): the causal log-likelihood's gradient
  (μ_E − μ(π_θ))/τ is 0 at the true θ for every γ and for finite horizons — and the public
  shortcut that computes the model policy with γ = 1 is wrong at γ < 1 (by how much).
* Identifiability: a potential shaping is harmless when only τ changes, harmful when P or γ changes.
* Reward transfer (Hao, van der Laan, Bibaut & Kallus 2026 — only the abstract is public; the
  estimators are our reconstruction, :mod:`mdpsandbox.irl.transfer`): plug-in sequential = coupled;
  target error against the source Bellman residual under restricted linear classes; regret against
  the number of demonstrations on the sepsis-style MDP (Oberst & Sontag 2019 dynamics).

Cell functions are module-level so sweep workers can import them (``validation.irl:<name>``); the
transfer task is also registered as the sweep task ``"irl_transfer"``.
"""
from __future__ import annotations

import numpy as np

from mdpsandbox import TabularMDP, garnet, solve
from mdpsandbox.claims import Context, claim
from mdpsandbox.irl import feature_expectations, mce_gradient, mce_gradient_undiscounted_shortcut, mce_irl
from mdpsandbox.irl.identifiability import potential_shaping
from mdpsandbox.irl.transfer import (
    coupled_linear, coupled_tabular, sequential_linear, sequential_tabular, shifted_problem, transfer_metrics,
    transfer_problem, transfer_task,
)
from ._plots import ok_rows, subplots

TOPIC = "irl"

try:  # register the transfer cell as a named sweep task (sweeps sit above irl: registration lives here)
    from mdpsandbox.sweeps import task as _task, task_names as _task_names

    if "irl_transfer" not in _task_names():
        _task("irl_transfer")(transfer_task)
except ImportError:  # pragma: no cover - sweeps is part of the package
    pass


def _slope(x, y) -> float:
    x, y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    return float(np.polyfit(x, y, 1)[0])


# ====================================================================== MCE gradient at θ*
def mce_cell(*, gamma: float, seed: int, n_states: int, n_actions: int, n_features: int, tau: float,
             horizon: int = 0) -> dict:
    """Gradient of the causal log-likelihood at the true θ* (expert = soft-optimal policy of r = θ*ᵀφ,
    population μ_E), exact and by the γ = 1 shortcut (finite horizon only), relative to ‖μ_E‖∞."""
    rng = np.random.default_rng([seed, 10])
    base = garnet(n_states, n_actions, 3, gamma=gamma, seed=seed)
    phi = rng.normal(size=(n_states, n_actions, n_features))
    theta = rng.normal(size=n_features)
    mdp = TabularMDP(base.P, phi @ theta, gamma, initial=base.initial)
    H = int(horizon) or None
    expert = solve(mdp, temperature=tau, horizon=H, **({} if H else {"method": "pi", "tol": 1e-12})).policy
    mu_e = feature_expectations(mdp, expert, phi, horizon=H)
    scale = float(np.abs(mu_e).max())
    g = mce_gradient(theta, mdp, phi, mu_e, tau, horizon=H)
    out = {"grad_rel": float(np.abs(g).max() * tau / scale), "scale": scale}
    if H:
        gs = mce_gradient_undiscounted_shortcut(theta, mdp, phi, mu_e, tau, horizon=H)
        out["shortcut_rel"] = float(np.abs(gs).max() * tau / scale)
    else:
        res = mce_irl(mdp, phi, expert_policy=expert, temperature=tau, tol=1e-11)
        out["theta_error"] = float(np.abs(res.theta - theta).max())
        out["n_solves"] = int(res.n_solves)
    return out


@claim(id="mce_gradient_zero_at_truth",
       title="MCE IRL: the gradient is 0 at the true θ for every γ; the γ = 1 policy shortcut is not",
       statement="For r = θ*ᵀφ and the soft-optimal expert, ∇ℓ(θ*) = (μ_E − μ(π_θ*))/τ = 0 for γ ∈ {0, 0.5, 0.9, "
                 "0.99} and for a finite horizon (γ ≤ 1); computing π_θ by undiscounted backward induction and "
                 "discounting only its occupancy (a public implementation's discounted path) leaves a non-zero "
                 "gradient at θ* when γ < 1 (above 0.1 % of ‖μ_E‖∞ for γ ≤ 0.9; the median shrinks roughly like "
                 "1 − γ: about 9 %, 1.7 %, 0.2 % at γ = 0.5, 0.9, 0.99 on 8-state garnets) and 0 at γ = 1.",
       citation="Ziebart et al. (2010); docs/math.md §10",
       topic=TOPIC,
       assertions=("gradient_zero_discounted", "gradient_zero_finite_horizon", "shortcut_wrong_below_one",
                   "shortcut_exact_at_one", "theta_recovered"),
       sizes={"quick": dict(n_seeds=3, n_states=8), "full": dict(n_seeds=50, n_states=30)})
def mce_gradient_zero_at_truth(ctx: Context, n_seeds: int, n_states: int) -> None:
    fixed = dict(n_states=n_states, n_actions=3, n_features=4, tau=1.0)
    disc = [mce_cell(gamma=g, seed=s, **fixed) for g in (0.0, 0.5, 0.9, 0.99) for s in range(n_seeds)]
    fin = {g: [mce_cell(gamma=g, seed=s, horizon=10, **fixed) for s in range(n_seeds)] for g in (0.5, 0.9, 0.99, 1.0)}
    ctx.check("gradient_zero_discounted", measured=max(d["grad_rel"] for d in disc), threshold=1e-10, op="<",
              note="max ‖∇ℓ(θ*)‖∞·τ/‖μ_E‖∞ over γ ∈ {0, .5, .9, .99}")
    ctx.check("gradient_zero_finite_horizon", measured=max(d["grad_rel"] for v in fin.values() for d in v),
              threshold=1e-10, op="<", note="H = 10, γ ∈ {.5, .9, .99, 1}")
    below = min(d["shortcut_rel"] for g, v in fin.items() if g <= 0.9 for d in v)
    ctx.check("shortcut_wrong_below_one", measured=below, threshold=1e-3, op=">",
              note="min relative shortcut gradient at θ* over γ ∈ {0.5, 0.9} (it vanishes as γ → 1)")
    ctx.check("shortcut_exact_at_one", measured=max(d["shortcut_rel"] for d in fin[1.0]), threshold=1e-10, op="<")
    ctx.check("theta_recovered", measured=max(d["theta_error"] for d in disc), threshold=1e-6, op="<",
              note="‖θ̂ − θ*‖∞ by L-BFGS from population μ_E (generic full-rank features)")
    for g, v in fin.items():
        ctx.record(f"shortcut_rel_median_g{g:g}", float(np.median([d["shortcut_rel"] for d in v])))
    ctx.record("n_solves_median", float(np.median([d["n_solves"] for d in disc])))
    fig, ax = subplots(figsize=(5, 3.2))
    gs = sorted(fin)
    ax.semilogy(gs, [max(np.median([d["shortcut_rel"] for d in fin[g]]), 1e-17) for g in gs], "o-",
                label="γ = 1 shortcut")
    ax.semilogy(gs, [max(np.median([d["grad_rel"] for d in fin[g]]), 1e-17) for g in gs], "s-", label="exact")
    ax.set_xlabel("γ (horizon 10)")
    ax.set_ylabel("‖∇ℓ(θ*)‖∞ τ / ‖μ_E‖∞")
    ax.legend()
    fig.tight_layout()
    ctx.figure("gradient_at_truth", fig)


# ====================================================================== shaping under shifts
def shaping_cell(*, seed: int, shift: str, size: float, n_states: int, tau: float = 0.5) -> dict:
    """TV between the target soft-optimal policies of r and of a shaped r (shaped in the source)."""
    base = garnet(n_states, 3, 3, gamma=0.9, seed=seed)
    phi = np.random.default_rng([seed, 3]).normal(size=n_states) * 2.0
    shaped = TabularMDP(base.P, potential_shaping(base.R, base, 0.9, phi), 0.9)
    kw = {"dtau": dict(delta_tau=size), "dP": dict(epsilon=size), "dgamma": dict(delta_gamma=-size)}[shift]
    p1 = shifted_problem(base, temperature=tau, normalize=False, seed=seed + 1, **kw)
    p2 = shifted_problem(shaped, temperature=tau, normalize=False, seed=seed + 1, **kw)
    a, b = p1.target_solution().policy, p2.target_solution().policy
    return {"tv": float(0.5 * np.abs(a - b).sum(axis=1).max())}


@claim(id="shaping_harmless_only_under_dtau",
       title="A potential shaping is harmless under a temperature shift, harmful under a kernel or discount shift",
       statement="r' = r + γPΦ − Φ has the same soft-optimal policy as r for every τ (so Δτ transfer is exact), "
                 "but in a target with P_T = (1−ε)P + εP' or γ_T ≠ γ the two policies differ, the TV growing "
                 "linearly in ε for small ε.",
       citation="Ng, Harada & Russell (1999); Cao, Cohen & Szpruch (2021); docs/math.md §10",
       topic=TOPIC,
       assertions=("harmless_under_dtau", "harmful_under_dp", "harmful_under_dgamma", "tv_linear_in_epsilon"),
       sizes={"quick": dict(n_seeds=3, n_states=8), "full": dict(n_seeds=30, n_states=30)})
def shaping_harmless_only_under_dtau(ctx: Context, n_seeds: int, n_states: int) -> None:
    eps = [0.01, 0.03, 0.1, 0.3]
    rows = {}
    for shift, sizes in (("dtau", [0.5, 2.0]), ("dP", eps), ("dgamma", [0.1, 0.4])):
        for size in sizes:
            rows[(shift, size)] = [shaping_cell(seed=s, shift=shift, size=size, n_states=n_states)["tv"]
                                   for s in range(n_seeds)]
    ctx.check("harmless_under_dtau", measured=max(max(v) for (k, _), v in rows.items() if k == "dtau"),
              threshold=1e-9, op="<", note="max TV(π_T(r), π_T(r')) under Δτ")
    ctx.check("harmful_under_dp", measured=min(rows[("dP", 0.3)]), threshold=1e-2, op=">", note="ε = 0.3")
    ctx.check("harmful_under_dgamma", measured=min(rows[("dgamma", 0.4)]), threshold=1e-2, op=">", note="Δγ = −0.4")
    slopes = [_slope(eps[:3], [rows[("dP", e)][s] for e in eps[:3]]) for s in range(n_seeds)]
    ctx.check("tv_linear_in_epsilon", measured=float(np.max(np.abs(np.subtract(slopes, 1.0)))), threshold=0.15,
              op="<", note="|log-log slope − 1| of TV vs ε ∈ [0.01, 0.1]")
    for key, v in rows.items():
        ctx.record(f"tv_median_{key[0]}_{key[1]:g}", float(np.median(v)))
    fig, ax = subplots(figsize=(5, 3.2))
    med = [np.median(rows[("dP", e)]) for e in eps]
    ax.loglog(eps, med, "o-", label="ΔP: P_T = (1−ε)P + εP'")
    ax.loglog(eps, np.array(eps) * med[0] / eps[0], "k:", label="slope 1")
    ax.set_xlabel("ε")
    ax.set_ylabel("TV(π*_T(r), π*_T(r'))")
    ax.legend()
    fig.tight_layout()
    ctx.figure("tv_vs_epsilon", fig)


# ====================================================================== coupled vs sequential
def _anchor_free_features(S: int, A: int, anchor: int = 0) -> np.ndarray:
    """One-hot (s, a) reward features for a ≠ anchor: the class of anchor-normalised rewards."""
    cols = [(s, a) for s in range(S) for a in range(A) if a != anchor]
    phi = np.zeros((S, A, len(cols)))
    for j, (s, a) in enumerate(cols):
        phi[s, a, j] = 1.0
    return phi


def residual_cell(*, seed: int, delta: float, n_states: int, n_actions: int = 3, epsilon: float = 0.5) -> dict:
    """Sequential and coupled transfer under restricted classes whose source misspecification is δ:
    V_S class = span{V*_S + δ‖V*_S‖u} (u a random unit vector: the source equation is solvable only
    at δ = 0), Q_T class = span{Q*_T, two random directions} (contains the target truth), reward class
    = anchor-normalised rewards (identified). Returns both estimators' metrics."""
    prob = shifted_problem(garnet(n_states, n_actions, 3, gamma=0.9, seed=seed), temperature=1.0, epsilon=epsilon,
                           seed=seed + 100)
    pi = prob.source_solution().policy
    vS, qT = prob.source_solution().v, prob.target_solution().q
    rng = np.random.default_rng([seed, 17])
    u = rng.normal(size=n_states)
    u /= np.linalg.norm(u)
    vf = (vS + delta * np.linalg.norm(vS) * u)[:, None]
    qf = np.concatenate([qT[..., None], rng.normal(size=(n_states, n_actions, 2))], axis=2)
    feats = _anchor_free_features(n_states, n_actions)
    out = {}
    for name, fn in (("seq", sequential_linear), ("cpl", coupled_linear)):
        m = transfer_metrics(prob, fn(prob, pi, feats, value_features=vf, q_features=qf))
        out.update({f"{name}_{k}": v for k, v in m.items()})
    return out


@claim(id="coupled_vs_sequential_source_residual",
       title="Reward transfer: sequential vs coupled target error against the source Bellman residual",
       statement="Reconstruction of Hao et al. (2026): with exact tabular solves sequential = coupled (1e-10). Under "
                 "restricted linear classes the abstract says the coupled estimator's target error has no "
                 "first-order term in the source residual. In our least-squares reconstruction this does NOT "
                 "reproduce: both estimators' ‖q̂_T − q*_T‖∞ scale linearly with the source residual (log-log slope "
                 "≈ 1); coupling lowers the constant (median ratio ≤ 1) but not the order.",
       citation="Hao, van der Laan, Bibaut & Kallus (2026), abstract; docs/math.md §10",
       topic=TOPIC,
       assertions=("plugin_sequential_equals_coupled", "sequential_first_order", "coupled_first_order",
                   "coupled_not_worse"),
       sizes={"quick": dict(n_seeds=2, n_states=8), "full": dict(n_seeds=20, n_states=20)})
def coupled_vs_sequential_source_residual(ctx: Context, n_seeds: int, n_states: int) -> None:
    diffs = []
    for s in range(n_seeds):
        prob = shifted_problem(garnet(n_states, 3, 3, gamma=0.9, seed=s), temperature=1.0, epsilon=0.5,
                               delta_gamma=-0.2, seed=s + 1)
        pi = prob.source_solution().policy
        pi = pi * np.exp(0.3 * np.random.default_rng(s).normal(size=pi.shape))  # an imperfect π̂_S
        pi /= pi.sum(axis=1, keepdims=True)
        diffs.append(float(np.abs(sequential_tabular(prob, pi).q - coupled_tabular(prob, pi).q).max()))
    ctx.check("plugin_sequential_equals_coupled", measured=max(diffs), threshold=1e-10, op="<",
              note="max ‖q̂_seq − q̂_cpl‖∞, tabular plug-in")
    deltas = np.logspace(-4, -2, 5)
    cells = [[residual_cell(seed=s, delta=d, n_states=n_states) for d in deltas] for s in range(n_seeds)]
    res = [[c["seq_source_residual"] for c in row] for row in cells]
    s_seq = [_slope(r, [c["seq_q_error"] for c in row]) for r, row in zip(res, cells)]
    s_cpl = [_slope(r, [c["cpl_q_error"] for c in row]) for r, row in zip(res, cells)]
    ctx.check("sequential_first_order", measured=float(np.max(np.abs(np.subtract(s_seq, 1.0)))), threshold=0.2,
              op="<", note="|slope − 1|, log ‖q̂_T − q*_T‖∞ vs log source residual")
    ctx.check("coupled_first_order", measured=float(np.max(np.abs(np.subtract(s_cpl, 1.0)))), threshold=0.2, op="<",
              note="the abstract's 'no first-order term' would give slope ≈ 2")
    ratios = [c["cpl_q_error"] / c["seq_q_error"] for row in cells for c in row]
    ctx.check("coupled_not_worse", measured=float(np.median(ratios)), threshold=1.0 + 1e-9, op="<=",
              note="median of ‖q̂_cpl − q*‖ / ‖q̂_seq − q*‖")
    ctx.record("slope_sequential_mean", float(np.mean(s_seq)))
    ctx.record("slope_coupled_mean", float(np.mean(s_cpl)))
    ctx.record("ratio_min", float(np.min(ratios)))
    ctx.record("ratio_max", float(np.max(ratios)))
    ctx.record("regret_slope_sequential_mean",
               float(np.mean([_slope(r, [c["seq_regret_soft"] for c in row]) for r, row in zip(res, cells)])))
    fig, ax = subplots(figsize=(5, 3.4))
    for i, (r, row) in enumerate(zip(res, cells)):
        ax.loglog(r, [c["seq_q_error"] for c in row], "o-", color="C0", label="sequential" if i == 0 else None)
        ax.loglog(r, [c["cpl_q_error"] for c in row], "s--", color="C1", label="coupled" if i == 0 else None)
    r0 = np.array(res[0])
    ax.loglog(r0, r0 * cells[0][0]["seq_q_error"] / r0[0], "k:", label="slope 1")
    ax.set_xlabel("source Bellman residual (RMS)")
    ax.set_ylabel("‖q̂_T − q*_T‖∞")
    ax.legend()
    fig.tight_layout()
    ctx.figure("target_error_vs_residual", fig)


# ====================================================================== sepsis transfer curve
@claim(id="sepsis_transfer_vs_demonstrations",
       title="Sepsis-style MDP: transfer regret against the number of expert demonstrations",
       statement="Source: 0 % diabetic patients, target: 100 % (the kernel shift of the Oberst & Sontag simulator's "
                 "hidden diabetes flag), γ = 0.95, τ = 0.1, anchor 'no treatment'. With the exact expert, "
                 "sequential IRL transfer has zero target regret while behaviour cloning does not; from "
                 "demonstrations (Laplace-smoothed BC of 20-step episodes) the sequential regret falls with the "
                 "number of demonstrations, and the coupled plug-in equals the sequential one. The 720-state space is "
                 "sparsely covered: at 10⁴ demonstrations sequential and BC are still close (≈ 0.6 in the quick "
                 "run); their limits differ (0 for sequential, BC's exact-expert regret ≈ 0.47).",
       citation="Oberst & Sontag (2019); Hao et al. (2026, reconstructed); docs/math.md §10",
       topic=TOPIC,
       assertions=("exact_expert_sequential_zero_regret", "bc_biased_under_shift", "regret_decreases_with_demos",
                   "coupled_equals_sequential"),
       sizes={"quick": dict(n_seeds=1, demos=(100, 10000)), "full": dict(n_seeds=10, demos=(30, 100, 300, 1000, 3000,
                                                                                              10000, 30000, 100000))})
def sepsis_transfer_vs_demonstrations(ctx: Context, n_seeds: int, demos) -> None:
    from mdpsandbox.sweeps import Sweep

    fixed = dict(env="sepsis", horizon=20, gamma=0.95, temperature=0.1, diabetes_source=0.0, diabetes_target=1.0)
    df = ok_rows(ctx.sweep("sepsis", Sweep(task=transfer_task, axes={"estimator": ["bc", "sequential"],
                                                                     "n_demos": [0, *demos], "seed": range(n_seeds)},
                                           fixed=fixed)))
    seq = df[df["estimator"] == "sequential"]
    bc = df[df["estimator"] == "bc"]
    ctx.check("exact_expert_sequential_zero_regret",
              measured=float(seq.loc[seq["n_demos"] == 0, "regret_soft"].abs().max()), threshold=1e-8, op="<")
    ctx.check("bc_biased_under_shift", measured=float(bc.loc[bc["n_demos"] == 0, "regret_soft"].min()),
              threshold=0.05, op=">", note="soft regret of the exact source expert deployed in the target")
    lo = seq.loc[seq["n_demos"] == min(demos), "regret_soft"].mean()
    hi = seq.loc[seq["n_demos"] == max(demos), "regret_soft"].mean()
    ctx.check("regret_decreases_with_demos", measured=float(hi / lo), threshold=1.0, op="<",
              note=f"mean sequential soft regret at n={max(demos)} / at n={min(demos)}")
    from mdpsandbox.envs.sepsis import sepsis_mdp

    prob = transfer_problem(sepsis_mdp(0.0, gamma=0.95), sepsis_mdp(1.0, gamma=0.95), tau_source=0.1)
    pi = prob.source_solution().policy
    pi = pi * np.exp(0.5 * np.random.default_rng(0).normal(size=pi.shape))  # an imperfect π̂_S
    pi /= pi.sum(axis=1, keepdims=True)
    a, b = sequential_tabular(prob, pi), coupled_tabular(prob, pi)
    ctx.check("coupled_equals_sequential", measured=float(np.abs(a.q - b.q).max()), threshold=1e-8, op="<",
              note="‖q̂_seq − q̂_cpl‖∞ for a perturbed expert, plug-in estimators")
    for est, sub in (("bc", bc), ("sequential", seq)):
        for n, g in sub.groupby("n_demos"):
            ctx.record(f"regret_soft_{est}_n{int(n)}", float(g["regret_soft"].mean()))
    fig, ax = subplots(figsize=(5, 3.4))
    for est, sub, c in (("behaviour cloning", bc, "C0"), ("sequential (= coupled)", seq, "C1")):
        g = sub[sub["n_demos"] > 0].groupby("n_demos")["regret_soft"].mean()
        ax.semilogx(g.index, g.values, "o-", color=c, label=est)
        ax.axhline(float(sub.loc[sub["n_demos"] == 0, "regret_soft"].mean()), color=c, ls=":", lw=1)
    ax.set_xlabel("expert demonstrations (source)")
    ax.set_ylabel("target soft regret from μ0")
    ax.legend()
    fig.tight_layout()
    ctx.figure("sepsis_regret_vs_demos", fig)


# ====================================================================== transfer vs shift size
@claim(id="transfer_regret_vs_shift",
       title="Reward transfer vs the size of a transition shift: behaviour cloning degrades, IRL transfer does not",
       statement="Garnet source, target kernel P_T = (1−ε)P_S + εP' (γ = 0.9, τ = 0.5). With the exact expert, "
                 "sequential transfer of the normalised reward has zero target regret for every ε, while behaviour "
                 "cloning's soft regret grows like ε² (a second-order loss of a first-order policy error). From 200 "
                 "demonstrations the sequential regret stays near its data-limited level (within a factor 4 over "
                 "ε ∈ [0.01, 1]) while BC's grows about 40-fold, so at ε = 1 IRL transfer beats BC by > 5×.",
       citation="Hao et al. (2026, reconstructed); docs/math.md §10",
       topic=TOPIC,
       assertions=("sequential_exact_every_shift", "bc_regret_second_order", "sequential_flat_in_shift",
                   "sequential_beats_bc_at_large_shift"),
       sizes={"quick": dict(n_seeds=3, n_states=10), "full": dict(n_seeds=30, n_states=30)})
def transfer_regret_vs_shift(ctx: Context, n_seeds: int, n_states: int) -> None:
    from mdpsandbox.sweeps import Sweep

    eps = [0.01, 0.03, 0.1, 0.3, 1.0]
    fixed = dict(env="garnet", n_states=n_states, n_actions=3, gamma=0.9, temperature=0.5, horizon=30)
    df = ok_rows(ctx.sweep("garnet_shift", Sweep(task=transfer_task, axes={
        "estimator": ["bc", "sequential"], "epsilon": eps, "n_demos": [0, 200], "env_seed": range(n_seeds)},
        fixed=fixed)))
    ex = df[df["n_demos"] == 0]
    ctx.check("sequential_exact_every_shift",
              measured=float(ex.loc[ex["estimator"] == "sequential", "regret_soft"].abs().max()), threshold=1e-9,
              op="<")
    bc = ex[ex["estimator"] == "bc"]
    slopes = [_slope(eps[:3], [float(bc.loc[(bc["env_seed"] == s) & (bc["epsilon"] == e), "regret_soft"].iloc[0])
                                for e in eps[:3]]) for s in range(n_seeds)]
    ctx.check("bc_regret_second_order", measured=float(np.max(np.abs(np.subtract(slopes, 2.0)))), threshold=0.3,
              op="<", note="|log-log slope − 2| of BC soft regret vs ε ∈ [0.01, 0.1]")
    dm = df[(df["n_demos"] == 200) & (df["estimator"] == "sequential")].groupby("epsilon")["regret_soft"].mean()
    ctx.check("sequential_flat_in_shift", measured=float(dm.max() / dm.min()), threshold=4.0, op="<",
              note="max/min over ε of the mean sequential soft regret from 200 demonstrations")
    bm = df[(df["n_demos"] == 200) & (df["estimator"] == "bc")].groupby("epsilon")["regret_soft"].mean()
    ctx.check("sequential_beats_bc_at_large_shift", measured=float(bm.loc[1.0] / dm.loc[1.0]), threshold=5.0,
              op=">", note="BC / sequential mean soft regret at ε = 1, 200 demonstrations")
    ctx.record("bc_growth_n200", float(bm.max() / bm.min()))
    ctx.record("bc_slope_mean", float(np.mean(slopes)))
    for (est, n), g in df.groupby(["estimator", "n_demos"]):
        m = g.groupby("epsilon")["regret_soft"].mean()
        ctx.record(f"regret_soft_{est}_n{int(n)}_eps1", float(m.loc[1.0]))
    fig, ax = subplots(figsize=(5, 3.4))
    for (est, n), g in df.groupby(["estimator", "n_demos"]):
        m = g.groupby("epsilon")["regret_soft"].mean()
        ax.loglog(m.index, np.maximum(m.values, 1e-16), "o-" if n else "s:",
                  label=f"{'BC' if est == 'bc' else 'sequential'}, {'exact expert' if n == 0 else f'{n} demos'}")
    ax.set_xlabel("transition shift ε")
    ax.set_ylabel("target soft regret from μ0")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.figure("regret_vs_shift", fig)
