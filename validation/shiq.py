r"""Claims about ShiQ — Bellman losses on LLM logits (Clavier et al. 2025, "ShiQ: Bringing back
Bellman to LLMs"; docs/math.md §5): the L3/ShiQ fixed point g* = ℓ_ref + Q*/β, the naive L0 loss as a
negative control, L2's sensitivity to per-state logit offsets, multi-step (ShiQ) vs one-step (L3)
propagation of a sparse final reward, and the reward–KL frontier of ShiQ/DPO/DRO.

The losses are the package's (``mdpsandbox.learners``): L0 = ``naive``, L2 = ``shiq_l2``,
L3 = ``shiq_l3``, ShiQ = ``shiq``; tabular logits, float64. Exact answers from ``mdpsandbox.solve``.
Each training run is a sweep cell (module-level functions below), so runs resume and parallelise.
Learning curves are returned by the cells as JSON strings (a scalar metric) for the figures.
"""
from __future__ import annotations

import json

import numpy as np

from mdpsandbox import TokenMDP, solve
from mdpsandbox.claims import Context, claim

from ._plots import ok_rows, subplots

TOPIC = "shiq"
LABELS = {"shiq": "ShiQ (multi-step)", "shiq_l3": "L3 (one-step, ℓ_ref shift)", "shiq_l2": "L2 (log π_ref shift)",
          "naive": "L0 (naive logits-as-Q)"}


# ---------------------------------------------------------------------- helpers
def _torch_single_thread():
    import torch

    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and 2 cores are shared)


def offset_env(vocab: int, horizon: int, *, seed: int, offset_scale: float, gamma: float = 1.0,
               reward: str = "terminal") -> TokenMDP:
    """``TokenMDP.random(vocab, horizon, seed=seed, reward=reward, gamma=gamma)`` with per-node logit
    offsets c(s) ~ N(0, offset_scale²) added to ℓ_ref (drawn from a separate stream, so π_ref, the
    rewards and hence Q*, π* are the same for every offset scale)."""
    base = TokenMDP.random(vocab, horizon, seed=seed, reward=reward, gamma=gamma)
    c = np.random.default_rng([seed, 104729]).normal(0.0, 1.0, size=(base.n_nodes, 1)) * offset_scale
    return TokenMDP(vocab, horizon, base.ref_logits + c, base.rewards, gamma=gamma)


def shiq_logit_error(logits: np.ndarray, env: TokenMDP, sol) -> float:
    """max over reachable (s, a) of |g(s,a) − ℓ_ref(s,a) − Q*(s,a)/β| (docs/math.md §5, check 2)."""
    err = np.abs(logits - env.ref_logits - sol.q / sol.beta)
    return float(err[env.reachable].max())


def policy_tv(logits: np.ndarray, sol, env: TokenMDP) -> float:
    """max over reachable nodes of TV(softmax(g), π*)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return float((0.5 * np.abs(p - sol.policy).sum(axis=-1))[env.reachable].max())


def steps_to(steps, errors, thresh):
    hit = np.nonzero(np.asarray(errors) < thresh)[0]
    return int(steps[hit[0]]) if hit.size else -1


# ---------------------------------------------------------------------- cells (sweep tasks)
def fixed_point_cell(*, alg: str, beta: float, offset_scale: float, gamma: float, vocab: int, horizon: int,
                     seed: int, steps: int) -> dict:
    """Train ``alg`` to convergence (full coverage, full-batch L-BFGS from g = ℓ_ref) and measure the
    distance of its logits to ℓ_ref + Q*/β, its policy to π* and its value read-out to V*."""
    from mdpsandbox.learners import train

    _torch_single_thread()
    env = offset_env(vocab, horizon, seed=seed, offset_scale=offset_scale, gamma=gamma, reward="dense")
    sol = solve(env, beta=beta)
    r = train(alg, env, beta=beta, optimizer="lbfgs", steps=steps, eval_every=steps, solution=sol, progress=False)
    g = r.logits
    v_read = beta * (np.log(np.exp(g - g.max(-1, keepdims=True)).sum(-1)) + g.max(-1) - env.lse_ref)
    return dict(logit_error=shiq_logit_error(g, env, sol), tv_max=policy_tv(g, sol, env),
                value_error=float(np.abs(v_read - sol.v)[env.reachable].max()), loss=float(r.final["loss"]),
                q_scale=float(np.abs(sol.q).max() / beta))


def naive_cell(*, beta: float, backup: str, vocab: int, horizon: int, seed: int, steps: int) -> dict:
    """L0 trained to its own fixed point (full coverage, L-BFGS): how far softmax(g) is from π*_β."""
    from mdpsandbox.learners import train

    _torch_single_thread()
    env = offset_env(vocab, horizon, seed=seed, offset_scale=0.0, reward="dense")
    sol = solve(env, beta=beta)
    r = train("naive", env, beta=beta, optimizer="lbfgs", steps=steps, eval_every=steps, solution=sol,
              progress=False, backup=backup)
    g = r.logits
    return dict(tv_max=policy_tv(g, sol, env), loss=float(r.final["loss"]),
                logit_error=shiq_logit_error(g, env, sol), kl_mean=float(r.final["kl_mean"]))


def budget_cell(*, alg: str, offset_scale: float, beta: float, vocab: int, horizon: int, seed: int, steps: int,
                lr: float) -> dict:
    """``alg`` from g = ℓ_ref with a fixed budget of full-batch Adam updates; policy error at the end."""
    from mdpsandbox.learners import train

    _torch_single_thread()
    env = offset_env(vocab, horizon, seed=seed, offset_scale=offset_scale, reward="dense")
    sol = solve(env, beta=beta)
    r = train(alg, env, beta=beta, optimizer="adam", lr=lr, steps=steps, eval_every=max(1, steps // 20),
              solution=sol, progress=False)
    s, tv = r.curve("tv_max")
    return dict(tv_max=policy_tv(r.logits, sol, env), kl_mean=float(r.final["kl_mean"]),
                loss0=float(r.history[0]["loss"]), curve=json.dumps([s.tolist(), tv.tolist()]))


def multistep_cell(*, alg: str, horizon: int, setting: str, optimizer: str, lr: float, steps: int,
                   batch: int, vocab: int, beta: float, offset_scale: float, eval_every: int) -> dict:
    """One run of the multi-step experiment: sparse terminal reward, reference offsets, g = ℓ_ref at
    start, the loss's own convention for the max logit error (as ``train`` records it).

    ``batch = 0``: full batch over every complete sequence (L2/L3 use all its steps). ``batch > 0``:
    minibatches from 8192 rollouts of a uniform-reference tree (seed 1) — ``batch`` sequences per ShiQ
    update, ``batch · H`` transitions per L2/L3 update (the same number of sampled (s, a) pairs)."""
    from mdpsandbox.learners import all_sequences, rollouts, train
    from mdpsandbox.learners.trainer import NonFiniteLossError

    _torch_single_thread()
    ref = "random" if batch == 0 else "uniform"
    env = TokenMDP.random(vocab, horizon, seed=0, reward="terminal", offset_scale=offset_scale, ref=ref)
    if batch == 0:
        data, bs = all_sequences(env), None
    else:
        data = rollouts(env, None, 8192, seed=1)
        pairs = np.unique((data.nodes * vocab + data.tokens)[data.mask])
        if pairs.size != env.n_nodes * vocab:
            raise RuntimeError(f"rollout pool covers {pairs.size} of {env.n_nodes * vocab} node-action pairs")
        bs = batch if alg == "shiq" else batch * horizon
    sol = solve(env, beta=beta)
    try:
        r = train(alg, env, beta=beta, data=data, steps=steps, lr=lr, optimizer=optimizer, eval_every=eval_every,
                  batch_size=bs, seed=0, solution=sol, progress=False)
    except NonFiniteLossError as exc:  # reported, not hidden
        return dict(diverged=True, final=float("inf"), to_loose=-1, to_tight=-1, curve="[[], []]", why=str(exc))
    s, e = r.curve("logit_error")
    return dict(diverged=False, final=float(e[-1]), to_loose=steps_to(s, e, 1e-1), to_tight=steps_to(s, e, 1e-3),
                curve=json.dumps([s.tolist(), e.tolist()]), why="")


def frontier_cell(*, alg: str, beta: float, steps: int, n_data: int) -> dict:
    """Exact reward, KL and objective J = E R − β KL of ``alg`` trained on finite data (200 episodes of
    π_ref for ShiQ/DRO, 200 Bradley–Terry pairs for DPO; Adam lr 0.05) or, for ``shiq_full``, ShiQ on
    full coverage with L-BFGS; next to V*_β."""
    from mdpsandbox.learners import preference_pairs, rollouts, train

    _torch_single_thread()
    env = TokenMDP.random(3, 3, seed=0, reward="terminal", offset_scale=10.0)
    sol = solve(env, beta=beta)
    if alg == "shiq_full":
        r = train("shiq", env, beta=beta, optimizer="lbfgs", steps=15, eval_every=15, solution=sol, progress=False)
    else:
        data = preference_pairs(env, n_data, seed=2) if alg == "dpo" else rollouts(env, n=n_data, seed=1)
        r = train(alg, env, beta=beta, data=data, steps=steps, lr=0.05, eval_every=steps, solution=sol,
                  progress=False)
    f = r.final
    return dict(kl=float(f["kl"]), reward=float(f["reward"]), objective=float(f["objective"]),
                value_star=float(f["value_star"]))


def exact_frontier(betas) -> tuple:
    """(KL, reward) of the exact optimum π*_β of the frontier env over ``betas`` (pushed mass, no sampling)."""
    from mdpsandbox import compare

    env = TokenMDP.random(3, 3, seed=0, reward="terminal", offset_scale=10.0)
    pts = []
    for b in betas:
        sol = solve(env, beta=b)
        m = compare(np.log(sol.policy), env, beta=b, convention="policy", solution=sol)
        pts.append((m["kl"], m["reward"]))
    pts = np.array(pts)
    return pts[:, 0], pts[:, 1]


# ---------------------------------------------------------------------- claims
@claim(id="shiq_fixed_point", title="L3 and ShiQ converge to g* = ℓ_ref + Q*/β for every β and logit-offset scale",
       statement="Minimising the L3 residual β(g−ℓ_ref)(s,a) − r − γβ(LSE g − LSE ℓ_ref)(s') or the multi-step ShiQ "
                 "loss over full coverage drives the logits to g* = ℓ_ref + Q*/β (so softmax g = π* and "
                 "β(LSE g − LSE ℓ_ref) = V*), whatever the per-state offsets of ℓ_ref (Clavier et al. 2025, ShiQ, "
                 "§3; reconstructed form of the final loss).",
       citation="Clavier et al. (2025) ShiQ: Bringing back Bellman to LLMs; docs/math.md §5", topic=TOPIC,
       assertions=("logits_at_fixed_point", "policy_is_optimal", "value_readout_exact"),
       sizes={"quick": dict(betas=(0.1, 1.0), offsets=(0.0, 10.0), gammas=(1.0, 0.9), horizon=3, steps=15),
              "full": dict(betas=(0.01, 0.1, 0.5, 1.0, 10.0), offsets=(0.0, 1.0, 10.0, 100.0),
                           gammas=(1.0, 0.99, 0.9, 0.5), horizon=4, steps=30)})
def shiq_fixed_point(ctx: Context, betas, offsets, gammas, horizon, steps) -> None:
    from mdpsandbox.sweeps import Sweep

    df = ok_rows(ctx.sweep("runs", Sweep(task=fixed_point_cell,
                                         axes={"alg": ["shiq_l3", "shiq"], "beta": list(betas),
                                               "offset_scale": list(offsets), "gamma": list(gammas)},
                                         fixed=dict(vocab=3, horizon=horizon, seed=0, steps=steps))))
    rel = (df["logit_error"] / np.maximum(df["q_scale"], 1.0)).max()
    ctx.check("logits_at_fixed_point", measured=rel, threshold=1e-6, op="<=",
              note="max over runs of max|g − ℓ_ref − Q*/β| / max(1, max|Q*|/β)")
    ctx.check("policy_is_optimal", measured=df["tv_max"].max(), threshold=1e-6, op="<=",
              note="max over runs and nodes of TV(softmax g, π*)")
    ctx.check("value_readout_exact", measured=df["value_error"].max(), threshold=1e-6, op="<=",
              note="max over runs and nodes of |β(LSE g − LSE ℓ_ref) − V*|")
    ctx.record("runs", len(df))
    for alg, sub in df.groupby("alg"):
        ctx.record(f"{alg}_max_logit_error", float(sub["logit_error"].max()))
    fig, ax = subplots(figsize=(6.5, 4))
    for i, (alg, sub) in enumerate(df.groupby("alg")):
        for j, (off, s2) in enumerate(sub.groupby("offset_scale")):
            m = s2.groupby("beta")["logit_error"].max()
            ax.semilogy(m.index, np.maximum(m.values, 1e-17), ["o-", "s--", "^:", "x-."][j % 4], color=f"C{i}",
                        label=f"{LABELS[alg]}, offsets σ={off:g}")
    ax.set_xscale("log")
    ax.set_xlabel("β")
    ax.set_ylabel("max |g − ℓ_ref − Q*/β| (worst γ)")
    ax.set_title("converged logits vs the exact fixed point")
    ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure("fixed_point", fig)


@claim(id="shiq_l0_fails", title="L0 (logits regressed as Q-values) converges, to the wrong policy",
       statement="The naive loss g(s,a) → r + γ max_a' g(s',a') (or its LSE backup) ignores π_ref and β: trained to "
                 "zero loss its softmax policy is not the KL-regularised optimum π* ∝ π_ref e^{Q*/β} (Clavier et "
                 "al. 2025, ShiQ, §3, the baseline the reparameterisation fixes).",
       citation="Clavier et al. (2025) ShiQ; docs/math.md §5 (L0)", topic=TOPIC, negative_control=True,
       assertions=("l0_reaches_its_own_fixed_point", "l0_policy_not_optimal"),
       sizes={"quick": dict(betas=(0.1, 1.0, 10.0), horizon=3, steps=15),
              "full": dict(betas=(0.01, 0.1, 0.5, 1.0, 10.0, 100.0), horizon=4, steps=30)})
def shiq_l0_fails(ctx: Context, betas, horizon, steps) -> None:
    from mdpsandbox.sweeps import Sweep

    df = ok_rows(ctx.sweep("runs", Sweep(task=naive_cell, axes={"beta": list(betas), "backup": ["max", "lse"]},
                                         fixed=dict(vocab=3, horizon=horizon, seed=0, steps=steps))))
    ctx.check("l0_reaches_its_own_fixed_point", measured=df["loss"].max(), threshold=1e-12, op="<=",
              note="max final L0 loss: the failure below is its fixed point's, not the optimiser's")
    ctx.check("l0_policy_not_optimal", measured=df["tv_max"].min(), threshold=0.05, op=">=",
              note="min over β and backups of max_s TV(softmax g_L0, π*_β)")
    for _, row in df.iterrows():
        ctx.record(f"tv_max_{row['backup']}_beta{row['beta']:g}", float(row["tv_max"]))
    fig, ax = subplots(figsize=(6, 4))
    for i, (bk, sub) in enumerate(df.groupby("backup")):
        ax.semilogx(sub["beta"], sub["tv_max"], "o-", color=f"C{i}", label=f"L0, {bk} backup: max TV to π*_β")
    ax.axhline(0.05, color="k", ls=":", lw=1, label="threshold 0.05")
    ax.set_xlabel("β")
    ax.set_ylabel("max_s TV(softmax g, π*_β)")
    ax.set_ylim(0, 1)
    ax.set_title("negative control: L0 at zero loss is not π*")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.figure("l0_policy_error", fig)


@claim(id="shiq_l2_offsets", title="L2 is hurt by per-state logit offsets; L3 is exactly offset-invariant",
       statement="Shifting by log π_ref (L2) leaves a residual of the order of the per-state offset "
                 "c(s) = LSE ℓ_ref(s) "
                 "at g = ℓ_ref even when r ≡ 0, so after a fixed budget of updates its policy error at the largest "
                 "offset scale is orders of magnitude above its error without offsets (not monotone in between: "
                 "measured) and above L3's; shifting by the logits ℓ_ref (L3) makes the trajectory of g − ℓ_ref "
                 "independent of "
                 "c(s) (Clavier et al. 2025, ShiQ, 'improved initialisation').",
       citation="Clavier et al. (2025) ShiQ; docs/math.md §5 (L2, L3)", topic=TOPIC,
       assertions=("l3_offset_invariant", "l2_hurt_by_offsets", "l2_worse_than_l3"),
       sizes={"quick": dict(offsets=(0.0, 3.0, 10.0), horizon=3, steps=200),
              "full": dict(offsets=(0.0, 1.0, 3.0, 10.0, 30.0), horizon=4, steps=1000)})
def shiq_l2_offsets(ctx: Context, offsets, horizon, steps) -> None:
    from mdpsandbox.sweeps import Sweep

    df = ok_rows(ctx.sweep("runs", Sweep(task=budget_cell, axes={"alg": ["shiq_l3", "shiq_l2"],
                                                                 "offset_scale": list(offsets)},
                                         fixed=dict(beta=0.5, vocab=3, horizon=horizon, seed=0, steps=steps,
                                                    lr=0.05))))
    l3 = df[df["alg"] == "shiq_l3"].set_index("offset_scale")["tv_max"]
    l2 = df[df["alg"] == "shiq_l2"].set_index("offset_scale")["tv_max"]
    top, zero = max(offsets), min(offsets)
    ctx.check("l3_offset_invariant", measured=float((l3 - l3[zero]).abs().max()), threshold=1e-9, op="<=",
              note=f"max over offset scales of |TV_L3(σ) − TV_L3({zero:g})| after {steps} Adam updates")
    ctx.check("l2_hurt_by_offsets", measured=float(l2[top] / max(l2[zero], 1e-300)), threshold=10.0, op=">=",
              note=f"TV_L2(σ={top:g}) / TV_L2(σ={zero:g}), max_s TV(softmax g, π*) after {steps} updates")
    ctx.check("l2_worse_than_l3", measured=float(l2[top] / max(l3[top], 1e-300)), threshold=10.0, op=">=",
              note=f"TV_L2 / TV_L3 at σ={top:g}")
    for alg, s in (("l3", l3), ("l2", l2)):
        for off, v in s.items():
            ctx.record(f"tv_{alg}_sigma{off:g}", float(v))
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for i, (alg, sub) in enumerate(df.groupby("alg")):
        axes[0].semilogy(sub["offset_scale"], sub["tv_max"], "o-", color=f"C{i}", label=LABELS[alg])
        for j, (_, row) in enumerate(sub.iterrows()):
            s, tv = json.loads(row["curve"])
            axes[1].semilogy(s, np.maximum(tv, 1e-17), color=f"C{i}", alpha=0.4 + 0.6 * j / max(len(sub) - 1, 1),
                             label=f"{alg}, σ={row['offset_scale']:g}")
    axes[0].set_xlabel("offset scale σ (c(s) ~ N(0, σ²))")
    axes[0].set_ylabel(f"max_s TV(softmax g, π*) after {steps} updates")
    axes[1].set_xlabel("Adam updates")
    axes[1].set_ylabel("max_s TV(softmax g, π*)")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle("same budget, same lr: L2's start is off by the offsets, L3's is not", fontsize=10)
    fig.tight_layout()
    ctx.figure("offsets", fig)


def _multistep_settings(horizon: int, budget_full: int, budget_sample: int, budget_adam: int):
    H = horizon
    base = dict(horizon=H, vocab=3, beta=0.5, offset_scale=10.0)
    return [
        dict(base, setting="adam-full", optimizer="adam", lr=0.05, steps=budget_adam, batch=0, eval_every=10),
        dict(base, setting="sgd-full", optimizer="sgd", lr=3.0, steps=budget_full, batch=0, eval_every=25),
        # control: ShiQ's loss sums H residuals per sequence while L2/L3 average over transitions, so at the same
        # lr ShiQ takes ~H-times larger steps; give the one-step losses lr·H
        dict(base, setting="sgd-full-lrH", optimizer="sgd", lr=3.0 * H, steps=budget_full, batch=0, eval_every=25),
        dict(base, setting="sgd-sample", optimizer="sgd", lr=3.0, steps=budget_sample, batch=32, eval_every=20),
        dict(base, setting="sgd-sample-lrH", optimizer="sgd", lr=3.0 * H, steps=budget_sample, batch=32,
             eval_every=20),
    ]


@claim(id="shiq_multistep", title="Multi-step ShiQ vs one-step L3 on a sparse reward: faster with SGD, not with Adam",
       statement="On a sparse terminal-reward tree the multi-step ShiQ loss Σ_t(Σ_{k≥t} γ^{k−t}δ_k)² reaches g* = "
                 "ℓ_ref + Q*/β in markedly fewer updates than one-step L3 (Clavier et al. 2025, ShiQ, multi-step "
                 "consistency). Measured: true with plain SGD — after the same number of updates ShiQ's max logit "
                 "error is ≥10× below L3's, full batch and sampled minibatches, also when L3 gets lr·H — but NOT "
                 "with full-batch Adam (both reach 1e-3 in comparable update counts); L2 at the same lr never "
                 "reaches 1e-3 because of the per-node offsets.",
       citation="Clavier et al. (2025) ShiQ: Bringing back Bellman to LLMs; docs/math.md §5", topic=TOPIC,
       assertions=("l2_never_reaches", "adam_no_marked_speedup", "sgd_full_shiq_reaches", "sgd_full_shiq_10x_lower",
                   "sgd_sample_shiq_10x_lower"),
       sizes={"quick": dict(horizon=3, budget_full=400, budget_sample=400, budget_adam=200),
              "full": dict(horizon=6, budget_full=6000, budget_sample=3000, budget_adam=400)})
def shiq_multistep(ctx: Context, horizon, budget_full, budget_sample, budget_adam) -> None:
    from mdpsandbox.sweeps import Sweep

    settings = _multistep_settings(horizon, budget_full, budget_sample, budget_adam)
    rows = []
    for cfg in settings:
        algs = ["shiq_l3", "shiq_l2"] if cfg["setting"].endswith("lrH") else ["shiq", "shiq_l3", "shiq_l2"]
        fixed = {k: v for k, v in cfg.items()}
        df = ok_rows(ctx.sweep(cfg["setting"].replace("-", "_"), Sweep(task=multistep_cell, axes={"alg": algs},
                                                                       fixed=fixed)))
        rows.append(df)
    import pandas as pd

    df = pd.concat(rows, ignore_index=True)
    t = {(r["setting"], r["alg"]): r for _, r in df.iterrows()}
    same_lr = df[(df["alg"] == "shiq_l2") & ~df["setting"].str.endswith("lrH")]
    ctx.check("l2_never_reaches", measured=float(same_lr["final"].min()), threshold=1e-3, op=">",
              note="min over the adam-full, sgd-full, sgd-sample settings of L2's final max logit error")
    a, b = t["adam-full", "shiq"]["to_tight"], t["adam-full", "shiq_l3"]["to_tight"]
    ratio = (b / a) if a > 0 and b > 0 else float("nan")
    ctx.check("adam_no_marked_speedup", measured=ratio, threshold=2.0, op="<",
              note="full-batch Adam: (L3 updates to 1e-3) / (ShiQ updates to 1e-3); NaN (fails) unless both reach it")
    ctx.check("sgd_full_shiq_reaches", measured=float(t["sgd-full", "shiq"]["final"]), threshold=1e-3, op="<",
              note=f"ShiQ's final error after {budget_full} full-batch SGD updates (lr 3)")
    for name, setting in (("sgd_full_shiq_10x_lower", "sgd-full"), ("sgd_sample_shiq_10x_lower", "sgd-sample")):
        l3 = min(t[setting, "shiq_l3"]["final"], t[setting + "-lrH", "shiq_l3"]["final"])
        ctx.check(name, measured=float(l3 / t[setting, "shiq"]["final"]), threshold=10.0, op=">=",
                  note=f"{setting}: min over L3 at lr 3 and 3·H of (L3 final error) / (ShiQ final error)")
    for (setting, alg), r in t.items():
        ctx.record(f"{setting}_{alg}_final", float(r["final"]))
        ctx.record(f"{setting}_{alg}_to_1e-3", int(r["to_tight"]))
    panels = [c["setting"] for c in settings if not c["setting"].endswith("lrH")]
    fig, axes = subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True)
    colors = {"shiq": "C0", "shiq_l3": "C1", "shiq_l2": "C2"}
    for (setting, alg), r in t.items():
        ax = axes[panels.index(setting.replace("-lrH", ""))]
        s, e = json.loads(r["curve"])
        if not s:
            continue
        lrh = setting.endswith("lrH")
        ax.semilogy(s, e, color=colors[alg], ls="--" if lrh else "-",
                    label=LABELS[alg].split(" (")[0] + (f", lr×{horizon}" if lrh else ""))
    for ax, name in zip(axes, panels):
        cfg = next(c for c in settings if c["setting"] == name)
        ax.axhline(1e-3, color="k", lw=0.8, ls=":")
        batch = "full batch" if cfg["batch"] == 0 else f"{cfg['batch']} sampled seq./update"
        ax.set_title(f"{name}: {cfg['optimizer']} lr {cfg['lr']:g}, {batch}", fontsize=9)
        ax.set_xlabel("updates")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("max |logit − exact fixed point|")
    fig.suptitle(f"sparse reward, V=3, depth {horizon}, β=0.5, offsets σ=10", fontsize=10)
    fig.tight_layout()
    ctx.figure("curves", fig)


@claim(id="shiq_reward_kl_frontier",
       title="No learned policy beats the exact reward–KL frontier; full-coverage ShiQ lies on it",
       statement="For every β, E_π R − β KL(π‖π_ref) ≤ V*_β(root) with equality only at π*_β, so the exact optima "
                 "trace the reward–KL frontier; ShiQ, DRO and DPO trained on finite data land on or below it and "
                 "ShiQ with full coverage lands on it (Clavier et al. 2025, ShiQ, reward-vs-KL comparison; "
                 "Rafailov et al. 2023 DPO; Richemond et al. 2024 DRO).",
       citation="Clavier et al. (2025) ShiQ; Rafailov et al. (2023) DPO; Richemond et al. (2024) DRO; "
                "docs/math.md §3, §5", topic=TOPIC,
       assertions=("no_policy_beats_optimum", "full_coverage_on_frontier"),
       sizes={"quick": dict(betas=(0.05, 0.2, 1.0), steps=100, n_data=200),
              "full": dict(betas=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), steps=200, n_data=200)})
def shiq_reward_kl_frontier(ctx: Context, betas, steps, n_data) -> None:
    from mdpsandbox.plots import plot_reward_kl
    from mdpsandbox.sweeps import Sweep

    df = ok_rows(ctx.sweep("runs", Sweep(task=frontier_cell, axes={"alg": ["shiq", "dro", "dpo", "shiq_full"],
                                                                   "beta": list(betas)},
                                         fixed=dict(steps=steps, n_data=n_data))))
    excess = df["objective"] - df["value_star"]
    ctx.check("no_policy_beats_optimum", measured=float(excess.max()), threshold=1e-9, op="<=",
              note="max over runs of J(π) − V*_β (exact, pushed mass)")
    full = df[df["alg"] == "shiq_full"]
    ctx.check("full_coverage_on_frontier", measured=float((full["value_star"] - full["objective"]).max()),
              threshold=1e-8, op="<=", note="max over β of V*_β − J(ShiQ, full coverage, L-BFGS)")
    for alg, sub in df.groupby("alg"):
        ctx.record(f"{alg}_mean_gap", float((sub["value_star"] - sub["objective"]).mean()))
    fk, fr = exact_frontier(np.geomspace(0.01, 20, 60))
    names = {"shiq": f"ShiQ ({n_data} episodes)", "dro": f"DRO ({n_data} episodes)", "dpo": f"DPO ({n_data} BT pairs)",
             "shiq_full": "ShiQ, full coverage"}
    pts = {names[a]: (df.loc[df["alg"] == a, "kl"].to_numpy(), df.loc[df["alg"] == a, "reward"].to_numpy())
           for a in ("shiq", "dro", "dpo", "shiq_full")}
    grid = ", ".join(f"{b:g}" for b in betas)
    fig = plot_reward_kl(pts, frontier=(fk, fr), title=f"reward vs KL over β ∈ {{{grid}}}")
    ctx.figure("frontier", fig)


@claim(id="shiq_multistep_depth",
       title="ShiQ's advantage over one-step L3 (plain SGD) grows with the depth of the tree",
       statement="A sparse final reward reaches every position in one multi-step ShiQ update, while one-step L3 "
                 "bootstraps it back one level per wave of updates (Clavier et al. 2025, ShiQ, multi-step "
                 "consistency): with full-batch plain SGD (lr 3) from g = ℓ_ref the ratio (L3 updates)/(ShiQ "
                 "updates) to a max logit error of 1e-3 is ≥ 2 at every depth and grows with the depth H.",
       citation="Clavier et al. (2025) ShiQ: Bringing back Bellman to LLMs; docs/math.md §5", topic=TOPIC,
       assertions=("shiq_faster_at_every_depth", "advantage_grows_with_depth"),
       sizes={"quick": dict(depths=(2, 3), budget=1000), "full": dict(depths=(2, 3, 4, 5), budget=6000)})
def shiq_multistep_depth(ctx: Context, depths, budget) -> None:
    from mdpsandbox.sweeps import Sweep

    df = ok_rows(ctx.sweep("runs", Sweep(task=multistep_cell,
                                         axes={"alg": ["shiq", "shiq_l3"], "horizon": list(depths)},
                                         fixed=dict(setting="sgd-full", optimizer="sgd", lr=3.0, steps=budget, batch=0,
                                                    vocab=3, beta=0.5, offset_scale=10.0, eval_every=25))))
    t = {(r["alg"], int(r["horizon"])): int(r["to_tight"]) for _, r in df.iterrows()}
    ratios, censored = {}, {}
    for h in depths:
        a, b = t["shiq", h], t["shiq_l3", h]
        # a run that never reaches 1e-3 counts as budget + 1 updates: a lower bound for L3, an upper one for ShiQ
        ratios[h] = (b if b > 0 else budget + 1) / (a if a > 0 else budget + 1)
        censored[h] = b <= 0
        ctx.record(f"H{h}_shiq_updates", a)
        ctx.record(f"H{h}_l3_updates", b)
        ctx.record(f"H{h}_ratio" + ("_lower_bound" if b <= 0 else ""), float(ratios[h]))
    ctx.check("shiq_faster_at_every_depth", measured=float(min(ratios.values())), threshold=2.0, op=">=",
              note="min over depths of (L3 updates to 1e-3)/(ShiQ updates to 1e-3); L3 censored at budget+1")
    exact = [h for h in depths if not censored[h] and t["shiq", h] > 0]
    grow = ratios[max(exact)] / ratios[min(exact)] if len(exact) >= 2 else float("nan")
    ctx.check("advantage_grows_with_depth", measured=float(grow), threshold=1.5, op=">=",
              note="ratio at the deepest depth where L3 reaches 1e-3 / ratio at the shallowest (NaN fails)")
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for i, (alg, sub) in enumerate(df.groupby("alg")):
        for j, (_, row) in enumerate(sub.sort_values("horizon").iterrows()):
            s, e = json.loads(row["curve"])
            axes[0].semilogy(s, np.maximum(e, 1e-17), color=f"C{i}", alpha=0.35 + 0.65 * j / max(len(sub) - 1, 1),
                             label=f"{alg}, H={int(row['horizon'])}")
    axes[0].axhline(1e-3, color="k", ls=":", lw=0.8)
    axes[0].set_xlabel("full-batch SGD updates (lr 3)")
    axes[0].set_ylabel("max |logit − exact fixed point|")
    axes[0].legend(fontsize=7)
    hs = list(depths)
    axes[1].plot(hs, [ratios[h] for h in hs], "o-", color="C2")
    for h in hs:
        if censored[h]:
            axes[1].annotate("≥ (L3 censored)", (h, ratios[h]), fontsize=7)
    axes[1].set_xlabel("depth H")
    axes[1].set_ylabel("(L3 updates) / (ShiQ updates) to 1e-3")
    axes[1].set_xticks(hs)
    fig.suptitle("sparse terminal reward, V=3, β=0.5, offsets σ=10", fontsize=10)
    fig.tight_layout()
    ctx.figure("depth", fig)
