"""Claim (Clavier et al. 2025, ShiQ; MATH.md §5): on a sparse-reward tree, the multi-step ShiQ loss
reaches the exact fixed point g* = ℓ_ref + Q*/β in markedly fewer updates than the one-step L3 loss,
and L2 (shift by log π_ref instead of ℓ_ref) starts far away because of the per-node logit offsets.

Setup: V = 3, depth H = 6 (364 nodes), reward only on complete sequences (sparse), reference logits
with per-node offsets (offset_scale = 10), β = 0.5. Same data for all (every complete sequence once;
L2/L3 use its steps), same optimiser (full-batch Adam, lr 0.05), tabular logits starting at ℓ_ref.
Measured: updates until the max logit error (in each loss's own convention) falls below 1e-3.

Recorded result (3000 updates): ShiQ 200, L3 160, L2 > 3000 (its error stays ~17: the offsets).
The L2 part of the claim holds; "multi-step needs markedly fewer updates" is NOT reproduced with
full-batch Adam on full coverage (Adam's per-parameter scaling already propagates the sparse reward;
the paper's setting is sampled, neural). Takes ~10 min on 2 loaded cores.

Run: python validation/shiq_multistep.py   (saves validation/figures/shiq_multistep.png)
"""
import os
import sys

import numpy as np

from mdpsandbox import TokenMDP, solve
from mdpsandbox.learners import all_sequences, train

THRESH = 1e-3


def steps_to(res, thresh=THRESH):
    s, e = res.curve("logit_error")
    hit = np.nonzero(e < thresh)[0]
    return int(s[hit[0]]) if hit.size else None


def main(steps=3000, eval_every=10):
    env = TokenMDP.random(3, 6, seed=0, reward="terminal", offset_scale=10.0)
    beta = 0.5
    sol = solve(env, beta=beta)
    data = all_sequences(env)
    results = {}
    for alg in ("shiq", "shiq_l3", "shiq_l2"):
        results[alg] = train(alg, env, beta=beta, data=data, steps=steps, lr=0.05, eval_every=eval_every,
                             solution=sol, progress=sys.stderr.isatty())
    print(f"{env!r}, beta={beta}, sparse terminal reward, Adam lr=0.05, full batch of {len(data)} sequences")
    print(f"{'loss':10s} {'start err':>10s} {'final err':>10s} {'updates to ' + format(THRESH, 'g'):>18s}")
    reached = {}
    for alg, r in results.items():
        reached[alg] = steps_to(r)
        print(f"{alg:10s} {r.history[0]['logit_error']:10.3e} {r.final['logit_error']:10.3e} "
              f"{str(reached[alg]) if reached[alg] is not None else '> ' + str(steps):>18s}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = {"shiq": "ShiQ (multi-step)", "shiq_l3": "L3 (one-step, shifted init)", "shiq_l2": "L2 (log π_ref shift)"}
    for alg, r in results.items():
        s, e = r.curve("logit_error")
        ax.semilogy(s, e, label=labels[alg])
    ax.axhline(THRESH, color="k", lw=0.8, ls=":")
    ax.set_xlabel("Adam updates (full batch)")
    ax.set_ylabel("max |logit − exact fixed point|")
    ax.set_title("sparse reward, V=3, depth 6, β=0.5")
    ax.legend()
    fig.tight_layout()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "shiq_multistep.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"saved {out}")

    # All three share the exact fixed point (tested in tests/test_learners.py); the *speed* claim is
    # reported, not asserted: with full-batch Adam on full coverage it was NOT reproduced
    # (recorded run, 3000 updates: ShiQ 200, L3 160, L2 > 3000 updates to 1e-3).
    ok = reached["shiq"] is not None and (reached["shiq_l3"] is None or reached["shiq"] < reached["shiq_l3"])
    print("claim (ShiQ needs fewer updates than L3):", "reproduced" if ok else "NOT reproduced in this setting")
    assert reached["shiq_l2"] is None or reached["shiq_l2"] > reached["shiq_l3"], "L2 should be slowest (offsets)"
    return reached


if __name__ == "__main__":
    main()
