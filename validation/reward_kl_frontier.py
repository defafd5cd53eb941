"""Claim (MATH.md §5 baselines; ShiQ paper's reward-vs-KL comparison): for every β the exact optimum
π*_β traces the reward–KL frontier of the token MDP — no policy can beat it: E_π R − β KL(π‖π_ref)
≤ V*_β(root). ShiQ, DPO and DRO trained on *finite* data land on or below that frontier; with full
coverage they land on it.

Setup: V = 3, H = 3 token tree, random terminal rewards, reference logits with per-node offsets,
γ = 1; β ∈ {0.05, 0.1, 0.2, 0.5, 1, 2}. Finite data: 200 episodes of π_ref (ShiQ, DRO) and 200
Bradley–Terry preference pairs of π_ref samples (DPO); tabular logits starting at ℓ_ref,
full-batch Adam (lr 0.05, 200 updates). Reward and KL of each learned policy are exact
(mass pushed through the tree, no sampling).

Run: python validation/reward_kl_frontier.py   (saves validation/figures/reward_kl_frontier.png)
"""
import os
import sys

import numpy as np

from mdpsandbox import TokenMDP, compare, solve
from mdpsandbox.learners import preference_pairs, rollouts, train

BETAS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def frontier(env, betas):
    pts = []
    for b in betas:
        sol = solve(env, beta=b)
        m = compare(np.log(sol.policy), env, beta=b, convention="policy", solution=sol)
        pts.append((m["kl"], m["reward"]))
    return np.array(pts)


def main(steps=200):
    env = TokenMDP.random(3, 3, seed=0, reward="terminal", offset_scale=10.0)
    data = rollouts(env, n=200, seed=1)
    prefs = preference_pairs(env, 200, seed=2)
    exact = frontier(env, np.geomspace(0.01, 20, 60))
    rows = []
    for b in BETAS:
        sol = solve(env, beta=b)
        for alg, d in (("shiq", data), ("dro", data), ("dpo", prefs)):
            r = train(alg, env, beta=b, data=d, steps=steps, lr=0.05, eval_every=steps, solution=sol,
                      progress=sys.stderr.isatty())
            f = r.final
            rows.append((alg, b, f["kl"], f["reward"], f["objective"], f["value_star"]))
        full = train("shiq", env, beta=b, optimizer="lbfgs", steps=15, eval_every=15, solution=sol, progress=False)
        rows.append(("shiq_full", b, full.final["kl"], full.final["reward"], full.final["objective"],
                     full.final["value_star"]))
    print(f"{env!r}; finite data: {len(data)} episodes of pi_ref, {len(prefs)} BT pairs")
    print(f"{'algorithm':10s} {'beta':>6s} {'KL':>9s} {'reward':>9s} {'J=R-bKL':>9s} {'V*':>9s} {'gap':>9s}")
    for alg, b, kl, rew, obj, vs in rows:
        print(f"{alg:10s} {b:6.2f} {kl:9.4f} {rew:9.4f} {obj:9.4f} {vs:9.4f} {vs - obj:9.2e}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(exact[:, 0], exact[:, 1], "k-", lw=1.5, label="exact optimum π*_β (frontier)")
    style = {"shiq": ("o", "ShiQ (200 episodes)"), "dro": ("s", "DRO (200 episodes)"),
             "dpo": ("^", "DPO (200 BT pairs)"), "shiq_full": ("x", "ShiQ, full coverage")}
    for alg, (mk, lab) in style.items():
        pts = np.array([(kl, rew) for a, b, kl, rew, *_ in rows if a == alg])
        ax.plot(pts[:, 0], pts[:, 1], mk, ms=6, label=lab, alpha=0.8)
    ax.set_xlabel("KL(π ‖ π_ref) of the sequence")
    ax.set_ylabel("expected reward E_π R")
    ax.set_title("reward vs KL over β ∈ {0.05 … 2}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "reward_kl_frontier.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"saved {out}")

    for alg, b, kl, rew, obj, vs in rows:
        assert obj <= vs + 1e-9, f"{alg} at beta={b} beats the exact optimum: impossible"
        if alg == "shiq_full":
            assert vs - obj < 1e-8, f"full-coverage ShiQ at beta={b} is off the frontier by {vs - obj}"
    return rows


if __name__ == "__main__":
    main()
