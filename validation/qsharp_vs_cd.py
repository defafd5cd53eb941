"""Claim: Q♯ tracks the exact reward–KL frontier of KL-regularised control; CD/VAS does not.

Zhou et al. (2025), "Q♯: Provably optimal distributional RL for LLM post-training" (MATH.md §6).
On random Bernoulli token trees (0/1 sequence rewards), for β on a grid, we train

* Q♯ — tabular Bernoulli head, maximum likelihood on Algorithm 1 data (roll in with the guided
  policy for h−1 steps, then π_ref; label every later (prefix, token) with its reward-to-go);
* CD/VAS — the same data, squared loss to the reward-to-go, guidance π_ref·exp(Q̂^{π_ref}/β);

and evaluate each guided policy *exactly* (mass pushed on the tree): E_π R, KL(π‖π_ref) and
J = E R − β KL, next to the exact optimum π* (backward induction) and the exact CD policy.

Asserted: (1) at every (tree, β), J(Q♯) is within 0.02 of J(π*); (2) J(Q♯) ≥ J(CD) − 0.005 at every
point and strictly larger on average; (3) the counterexample tree (paper Fig. 4) at β = 0.05: Q♯
reward > 0.9, exact CD reward 0.342 (it picks the 0.1 branch with probability e/(1+e)).

Run: ``python validation/qsharp_vs_cd.py`` (about two minutes on 2 cores); figure in
``validation/figures/qsharp_vs_cd.png``.
"""
from __future__ import annotations

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import mdpsandbox as m
from mdpsandbox.learners import qsharp as qs
from mdpsandbox.solvers.return_laws import cd_policy

BETAS = [0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
FRONTIER_BETAS = np.geomspace(0.01, 10.0, 60)
SEEDS = [0, 1, 2]
V, H, P_SUCCESS = 3, 3, 0.2


def run_tree(seed: int):
    env = m.bernoulli_tree(V, H, p_success=P_SUCCESS, seed=seed)
    frontier = [qs.policy_report(env, m.solve(env, beta=b).policy, b) for b in FRONTIER_BETAS]
    rows = []
    for beta in BETAS:
        res = qs.train_qsharp(env, beta, n_rounds=3, n_per_round=1000, steps=300, seed=seed)
        last = res.history[-1]
        rows.append({"beta": beta, "opt": res.optimal, "qsharp": last["qsharp"], "cd": last["cd"],
                     "cd_exact": qs.policy_report(env, cd_policy(env, beta), beta)})
    return env, frontier, rows


def main() -> int:
    os.makedirs(os.path.join(os.path.dirname(__file__), "figures"), exist_ok=True)
    fig, axes = plt.subplots(1, len(SEEDS) + 1, figsize=(4.2 * (len(SEEDS) + 1), 4))
    ok = True
    gaps_q, gaps_cd = [], []
    print(f"{'tree':>4} {'beta':>6} | {'J*':>7} {'J Q#':>7} {'J CD':>7} | {'R*':>6} {'R Q#':>6} {'R CD':>6} "
          f"{'R CDex':>6} | {'KL*':>6} {'KL Q#':>6} {'KL CD':>6}")
    for ax, seed in zip(axes, SEEDS):
        env, frontier, rows = run_tree(seed)
        ax.plot([f.kl for f in frontier], [f.reward for f in frontier], "k-", lw=1.2, label="exact frontier (π*)")
        ax.plot([r["qsharp"].kl for r in rows], [r["qsharp"].reward for r in rows], "o-", c="tab:blue", label="Q♯ (learned)")
        ax.plot([r["cd"].kl for r in rows], [r["cd"].reward for r in rows], "s--", c="tab:red", label="CD/VAS (learned)")
        ax.plot([r["cd_exact"].kl for r in rows], [r["cd_exact"].reward for r in rows], "x:", c="tab:orange",
                label="CD/VAS (exact Q^ref)")
        ax.set_title(f"Bernoulli tree V={V}, H={H}, seed {seed}")
        ax.set_xlabel("KL(π ‖ π_ref)")
        ax.set_ylabel("E_π R")
        for r in rows:
            o, q, c = r["opt"], r["qsharp"], r["cd"]
            print(f"{seed:>4} {r['beta']:>6.2f} | {o.objective:7.4f} {q.objective:7.4f} {c.objective:7.4f} | "
                  f"{o.reward:6.3f} {q.reward:6.3f} {c.reward:6.3f} {r['cd_exact'].reward:6.3f} | "
                  f"{o.kl:6.3f} {q.kl:6.3f} {c.kl:6.3f}")
            gaps_q.append(o.objective - q.objective)
            gaps_cd.append(o.objective - c.objective)
            if o.objective - q.objective > 0.02:
                print(f"  FAIL (1): J gap of Q♯ {o.objective - q.objective:.4f} > 0.02")
                ok = False
            if q.objective < c.objective - 0.005:
                print(f"  FAIL (2): J(Q♯) {q.objective:.4f} < J(CD) {c.objective:.4f} − 0.005")
                ok = False
    axes[0].legend(fontsize=7, loc="lower right")

    # the counterexample tree, β sweep
    env = m.qsharp_counterexample()
    ax = axes[-1]
    fr = [qs.policy_report(env, m.solve(env, beta=b).policy, b) for b in FRONTIER_BETAS]
    ax.plot([f.kl for f in fr], [f.reward for f in fr], "k-", lw=1.2, label="exact frontier")
    pts_q, pts_c = [], []
    for beta in BETAS:
        res = qs.train_qsharp(env, beta, atoms=np.linspace(0, 1, 11), n_rounds=2, n_per_round=256, steps=200)
        pts_q.append(res.history[-1]["qsharp"])
        pts_c.append(res.history[-1]["cd"])
    ax.plot([p.kl for p in pts_q], [p.reward for p in pts_q], "o-", c="tab:blue", label="Q♯")
    ax.plot([p.kl for p in pts_c], [p.reward for p in pts_c], "s--", c="tab:red", label="CD/VAS")
    ax.set_title("counterexample tree (Fig. 4)")
    ax.set_xlabel("KL(π ‖ π_ref)")
    ax.set_ylabel("E_π R")
    ax.legend(fontsize=7, loc="lower right")
    i05 = BETAS.index(0.05)
    cd_exact = qs.policy_report(env, cd_policy(env, 0.05), 0.05).reward
    print(f"counterexample β=0.05: reward Q♯ {pts_q[i05].reward:.4f}, CD learned {pts_c[i05].reward:.4f}, "
          f"CD exact {cd_exact:.4f} (= 0.1·e/(1+e) + 1/(1+e)·{0.05 * np.exp(20) / (0.05 * np.exp(20) + 0.95):.4f})")
    if not (pts_q[i05].reward > 0.9 and abs(cd_exact - 0.342) < 1e-3):
        print("  FAIL (3): counterexample numbers")
        ok = False
    mean_q, mean_cd = float(np.mean(gaps_q)), float(np.mean(gaps_cd))
    print(f"mean J gap to π*: Q♯ {mean_q:.5f}, CD {mean_cd:.5f}; max Q♯ gap {max(gaps_q):.5f}")
    if not mean_q < mean_cd:
        ok = False
    fig.tight_layout()
    path = os.path.join(os.path.dirname(__file__), "figures", "qsharp_vs_cd.png")
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")
    print("CLAIM HOLDS" if ok else "CLAIM FAILS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
