"""Claim (Clavier et al. 2025, ShiQ; MATH.md §5): on a sparse-reward tree, the multi-step ShiQ loss
reaches the exact fixed point g* = ℓ_ref + Q*/β in markedly fewer updates than the one-step L3 loss
(a final reward reaches every position in one multi-step update; one-step needs ~H rounds of
bootstrapping), and L2 (shift by log π_ref instead of ℓ_ref) is off because of the per-node logit offsets.

Setup: V = 3, depth H = 6 (364 nodes, 729 sequences), reward only on complete sequences (sparse),
reference logits with per-node offsets (offset_scale = 10), β = 0.5, tabular logits starting at ℓ_ref,
the same learning rate for every loss within a setting. Measured: updates until the max logit error
(each loss in its own convention, over all reachable nodes) falls below 1e-3 (and, to compare speeds
where nothing gets there within the budget, below 1e-1), plus the final error. Settings:

  adam-full   full-batch Adam lr 0.05, every complete sequence once (L2/L3 use all its steps)
  sgd-full    full-batch plain SGD lr 3 on the same data (one-off lr scan: ShiQ diverges at 30 and
              oscillates at 10 — error 1.5 after 2000 updates; L3 is stable up to 30, diverges at 60)
  adam-sample minibatches from 8192 rollouts of π_ref (seed 1): 32 sequences per ShiQ update,
              32·6 = 192 transitions per L2/L3 update (same number of sampled (s, a) pairs); Adam lr 0.05
  sgd-sample  the same minibatches with plain SGD lr 3 (ShiQ diverged at lr 10)
  *-lrH       control rows: L2/L3 with lr·H (ShiQ's loss sums H residuals per sequence while L2/L3
              average over transitions, so at equal lr ShiQ takes ~H-times larger steps)
The sampled settings use ref="uniform" (+ the same offsets): with the seed-0 random reference the rarest
leaf has probability 6e-7, so no affordable rollout pool covers the tree and the max error over all
nodes could not go to 0; the script asserts the pool covers every node–action pair.
Note: L2/L3 here are residual-gradient losses (the gradient flows through LSE g(s')), not
semi-gradient TD, so information does not have to wait for target refreshes.

Recorded result (2 cores, ~2 min; updates to max logit error < 1e-1 / < 1e-3, final error):

  setting         ShiQ                     L3                        L2
  adam-full       120 / 200,  6.7e-05      60 / 160,   1.6e-03       >400 / >400,   18.5
  sgd-full        1400 / 3625, 7.5e-06     >6000 / >6000, 1.06       >6000 / >6000, 11.1
  sgd-full lr·6   (as above)               5250 / >6000, 6.6e-02     >6000 / >6000, 0.81
  adam-sample     >3000 / >3000, 0.52      >3000 / >3000, 0.83       >3000 / >3000, 14.8
  sgd-sample      2260 / >3000, 0.048      >3000 / >3000, 1.48       >3000 / >3000, 18.6
  sgd-sample lr·6 (as above)               >3000 / >3000, 0.53       >3000 / >3000, 8.0

Reading: the L2 part of the claim holds everywhere (never below 1e-3; its error stays at the offset
scale). The speed claim is NOT visible with Adam: full batch, ShiQ and L3 are comparable (200 vs 160;
both oscillate around 1e-3 afterwards) — Adam's per-parameter normalisation removes what separates
them; on sampled minibatches with Adam lr 0.05 both stall at a noise floor ~0.5–0.8 (a one-off run at
Adam lr 0.01 gave final errors ShiQ 0.28, L3 0.093 after 3000 updates: no ShiQ advantage either).
It IS visible with plain SGD: full batch, ShiQ reaches 1e-3 in 3625 updates while L3 is still at 1.06
after 6000 (and at 6.6e-2 even with a 6× larger lr, which cancels ShiQ's sum over the H positions;
a one-off L3 run at lr 30 reached 0.11 after 3000 updates, lr 60 diverged); on sampled minibatches
ShiQ ends 31× below L3 (11× below L3 at lr·6). With SGD the gap is larger than "~H times": L3 is
limited both by one-step propagation and by the tiny weight of the rewarded last-level pairs
(1/4374 of the transitions), while every ShiQ residual sees the final reward directly.

Run: python validation/shiq_multistep.py   (saves validation/figures/shiq_multistep.png; ~2 min)
"""
import os
import sys

import numpy as np
import torch

from mdpsandbox import TokenMDP, solve
from mdpsandbox.learners import all_sequences, rollouts, train
from mdpsandbox.learners.trainer import NonFiniteLossError

THRESH = 1e-3
LOOSE = 1e-1
ALGS = ("shiq", "shiq_l3", "shiq_l2")
LABELS = {"shiq": "ShiQ (multi-step)", "shiq_l3": "L3 (one-step, shifted init)", "shiq_l2": "L2 (log π_ref shift)"}
BETA = 0.5
H = 6


def steps_to(res, thresh=THRESH):
    s, e = res.curve("logit_error")
    hit = np.nonzero(e < thresh)[0]
    return int(s[hit[0]]) if hit.size else None


def _verdict(shiq, l3):
    """'markedly' = at least 2× fewer updates to 1e-3, or (neither reaching it) a 10× lower final error."""
    a, b = shiq["tight"], l3["tight"]
    if a is not None and b is not None:
        return ("ShiQ markedly faster" if 2 * a <= b else "L3 markedly faster" if 2 * b <= a else
                "comparable") + f" ({a} vs {b} updates)"
    if a is not None:
        return f"ShiQ faster (ShiQ {a} updates, L3 not within budget)"
    if b is not None:
        return f"L3 faster (L3 {b} updates, ShiQ not within budget)"
    ratio = l3["final"] / shiq["final"]
    return (f"neither reaches {THRESH:g}; final error L3/ShiQ = {ratio:.2g}"
            + (" (ShiQ markedly lower)" if ratio >= 10 else " (no marked ShiQ advantage)"))


def settings():
    env = TokenMDP.random(3, H, seed=0, reward="terminal", offset_scale=10.0)
    env_u = TokenMDP.random(3, H, seed=0, reward="terminal", offset_scale=10.0, ref="uniform")
    pool = rollouts(env_u, None, 8192, seed=1)
    pairs = np.unique((pool.nodes * 3 + pool.tokens)[pool.mask])
    assert pairs.size == env_u.n_nodes * 3, f"rollout pool covers {pairs.size} of {env_u.n_nodes * 3} pairs"
    B = 32
    full = all_sequences(env)
    return [
        dict(name="adam-full", env=env, data=full, optimizer="adam", lr=0.05, steps=400, eval_every=10, batch=None),
        dict(name="sgd-full", env=env, data=full, optimizer="sgd", lr=3.0, steps=6000, eval_every=25, batch=None),
        # control: ShiQ's loss sums H residuals per sequence while L2/L3 average over transitions, so at the
        # same lr ShiQ takes ~H-times larger steps; give the one-step losses lr·H (ShiQ's row is unchanged)
        dict(name="sgd-full-lrH", env=env, data=full, optimizer="sgd", lr=3.0 * H, steps=6000, eval_every=25,
             batch=None, algs=("shiq_l3", "shiq_l2"), overlay="sgd-full"),
        dict(name="adam-sample", env=env_u, data=pool, optimizer="adam", lr=0.05, steps=3000, eval_every=20, batch=B),
        dict(name="sgd-sample", env=env_u, data=pool, optimizer="sgd", lr=3.0, steps=3000, eval_every=20, batch=B),
        dict(name="sgd-sample-lrH", env=env_u, data=pool, optimizer="sgd", lr=3.0 * H, steps=3000, eval_every=20,
             batch=B, algs=("shiq_l3", "shiq_l2"), overlay="sgd-sample"),
    ]


def run_setting(cfg, progress):
    sol = solve(cfg["env"], beta=BETA)
    out = {}
    for alg in cfg.get("algs", ALGS):
        bs = None if cfg["batch"] is None else (cfg["batch"] if alg == "shiq" else cfg["batch"] * H)
        try:
            out[alg] = train(alg, cfg["env"], beta=BETA, data=cfg["data"], steps=cfg["steps"], lr=cfg["lr"],
                             optimizer=cfg["optimizer"], eval_every=cfg["eval_every"], batch_size=bs, seed=0,
                             solution=sol, progress=progress)
        except NonFiniteLossError as ex:  # reported, not hidden
            out[alg] = str(ex)
    return out


def main():
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    progress = sys.stderr.isatty()
    table = {}
    curves = {}
    print(f"V=3, H={H}, beta={BETA}, sparse terminal reward, offset_scale=10; updates to reach max logit error")
    print(f"{'setting':14s} {'loss':8s} {'start err':>10s} {'final err':>10s} {'to 1e-1':>8s} {'to 1e-3':>8s}")
    for cfg in settings():
        res = run_setting(cfg, progress)
        curves[cfg["name"]] = (cfg, res)
        for alg, r in res.items():
            if isinstance(r, str):
                table[cfg["name"], alg] = dict(final=np.nan, loose=None, tight=None, diverged=True)
                print(f"{cfg['name']:14s} {alg:8s} diverged: {r}")
                continue
            t = dict(start=r.history[0]["logit_error"], final=r.final["logit_error"], loose=steps_to(r, LOOSE),
                     tight=steps_to(r, THRESH), steps=cfg["steps"], diverged=False)
            table[cfg["name"], alg] = t
            fmt = lambda v: str(v) if v is not None else f">{cfg['steps']}"  # noqa: E731
            print(f"{cfg['name']:14s} {alg:8s} {t['start']:10.3e} {t['final']:10.3e} {fmt(t['loose']):>8s} "
                  f"{fmt(t['tight']):>8s}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k, (cfg, _) in curves.items() if "overlay" not in cfg]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True)
    colors = {alg: f"C{i}" for i, alg in enumerate(ALGS)}
    for name, (cfg, res) in curves.items():
        ax = axes[panels.index(cfg.get("overlay", name))]
        for alg, r in res.items():
            if isinstance(r, str):
                continue
            s, e = r.curve("logit_error")
            if "overlay" in cfg:
                ax.semilogy(s, e, color=colors[alg], ls="--", label=f"{LABELS[alg].split(' (')[0]}, lr×{H}")
            else:
                ax.semilogy(s, e, color=colors[alg], label=LABELS[alg])
        if "overlay" in cfg:
            continue
        ax.axhline(THRESH, color="k", lw=0.8, ls=":")
        batch = "full batch" if cfg["batch"] is None else f"{cfg['batch']} sampled seq./update"
        ax.set_title(f"{name}: {cfg['optimizer']} lr {cfg['lr']:g}, {batch}", fontsize=9)
        ax.set_xlabel("updates")
    for ax in axes:
        ax.legend(fontsize=7)
    axes[0].set_ylabel("max |logit − exact fixed point|")
    fig.suptitle("sparse reward, V=3, depth 6, β=0.5", fontsize=10)
    fig.tight_layout()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "shiq_multistep.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"saved {out}")

    # Assert only what the recorded runs support (see the docstring):
    # (1) L2 never reaches 1e-3 in any setting: its fixed point is log π_ref + Q*/β, off by the offsets.
    for (name, alg), t in table.items():
        if alg == "shiq_l2":
            assert t["tight"] is None, f"{name}: L2 unexpectedly reached {THRESH:g}"
    # (2) full-batch Adam: both reach 1e-3 within 400 updates (no speed-up of ShiQ over L3 asserted).
    assert table["adam-full", "shiq"]["tight"] is not None and table["adam-full", "shiq_l3"]["tight"] is not None
    # (3) plain SGD, full batch: ShiQ reaches 1e-3; L3 does not within the same budget, neither at the
    #     same lr nor at lr·H.
    assert table["sgd-full", "shiq"]["tight"] is not None, "sgd-full: ShiQ did not reach 1e-3"
    for name in ("sgd-full", "sgd-full-lrH"):
        assert table[name, "shiq_l3"]["tight"] is None, f"{name}: L3 reached 1e-3 (claim contradicted)"
    # (4) plain SGD on sampled minibatches: ShiQ's final error is ≥ 10× below L3's (same lr and lr·H).
    for name in ("sgd-sample", "sgd-sample-lrH"):
        t3 = table[name, "shiq_l3"]
        assert t3["diverged"] or table["sgd-sample", "shiq"]["final"] * 10 < t3["final"], name
    verdict = {name: _verdict(table[name, "shiq"], table[name, "shiq_l3"])
               for name in ("adam-full", "sgd-full", "adam-sample", "sgd-sample")}
    print("claim (ShiQ needs markedly fewer updates than L3):")
    for name, v in verdict.items():
        print(f"  {name:12s} {v}")
    return table


if __name__ == "__main__":
    main()
