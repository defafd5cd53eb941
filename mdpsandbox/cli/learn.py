"""``mdpsandbox learn ALGORITHM``: train a learner on a random token MDP and print its error curve
against the exact solution. Only ``run`` imports torch (``mdpsandbox --help`` stays fast)."""
from __future__ import annotations

import argparse
import json

# The registered algorithm names, listed here so that building the parser does not import torch;
# tests/test_cli.py checks this tuple against mdpsandbox.learners.trainer.algorithm_names().
ALGORITHMS: tuple = ('cd', 'db', 'dpo', 'dro', 'fm', 'kl_q', 'naive', 'pcl', 'qsharp', 'shiq', 'shiq_l2', 'shiq_l3',
                     'soft_q', 'subtb', 'tb', 'zvar')


def add_parser(sub) -> None:
    p = sub.add_parser(
        "learn",
        help="train a learner (ShiQ, KL-Q, soft-Q, PCL, DPO, DRO, ...) and print its error vs the exact solution",
        description=(
            "Train ALGORITHM on a random token MDP (full coverage data) and print, at each evaluation, the "
            "loss, the max logit error in the algorithm's convention, the policy TV / KL(pi||pi*) to the exact "
            "KL-regularised optimum and the root value error. Algorithms: " + ", ".join(ALGORITHMS)),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("algorithm", help="algorithm name (see the list above)")
    p.add_argument("--vocab", type=int, default=3, help="vocabulary size V")
    p.add_argument("--horizon", type=int, default=3, help="maximum length H")
    p.add_argument("--beta", type=float, default=0.5, help="KL coefficient beta > 0")
    p.add_argument("--steps", type=int, default=300, help="number of updates")
    p.add_argument("--model", default="tabular", choices=["tabular", "mlp", "transformer"], help="model")
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd", "lbfgs"], help="optimizer")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default per optimizer)")
    p.add_argument("--reward", default="terminal", choices=["terminal", "dense", "bernoulli"], help="reward kind")
    p.add_argument("--offset-scale", type=float, default=10.0, help="per-node offset of the reference logits")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate every N updates (default steps/20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tree and the model")
    p.add_argument("--plot", default=None, metavar="PNG", help="save the error curve to this PNG")
    p.add_argument("--json", action="store_true", help="print the history as JSON")


def run(args) -> int:
    from ..envs import TokenMDP
    from ..learners.trainer import get_algorithm, train

    get_algorithm(args.algorithm)  # clear error listing valid names before any work
    env = TokenMDP.random(args.vocab, args.horizon, reward=args.reward, seed=args.seed,
                          offset_scale=args.offset_scale)
    res = train(args.algorithm, env, beta=args.beta, model=args.model, steps=args.steps, lr=args.lr,
                optimizer=args.optimizer, seed=args.seed, eval_every=args.eval_every, progress=True)
    if args.plot:
        _plot(res, args.plot)
    if args.json:
        print(json.dumps([{k: v for k, v in h.items() if k != "worst"} for h in res.history]))
        return 0
    print(f"{env!r}  beta={args.beta}  algorithm={res.algorithm}  model={args.model}  "
          f"convention={res.convention}")
    print(f"{'step':>7} {'loss':>10} {'logit err':>10} {'TV mean':>10} {'TV max':>10} {'KL max':>10} {'V err':>10}")
    for h in res.history:
        print(f"{h['step']:>7d} {h['loss']:>10.3e} {h['logit_error']:>10.3e} {h['tv_mean']:>10.3e} "
              f"{h['tv_max']:>10.3e} {h['kl_max']:>10.3e} {h['value_error']:>10.3e}")
    w = res.final["worst"]
    print(f"worst entry: {w['where']} token {w['token']}: expected {w['expected']:.6g}, actual {w['actual']:.6g}")
    if args.plot:
        print(f"saved {args.plot}")
    return 0


def _plot(res, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("logit_error", "tv_max", "value_error"):
        s, v = res.curve(key)
        ax.semilogy(s, v + 1e-300, marker="o", ms=3, label=key)
    ax.set_xlabel("update")
    ax.set_ylabel("error vs exact solution")
    ax.set_title(f"{res.algorithm} (beta={res.beta})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
