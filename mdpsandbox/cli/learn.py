"""``mdpsandbox learn ALGORITHM``: train a learner and print its error curve against the exact answer.
Token-tree learners train on a random token MDP; ``c51`` / ``qr`` / ``hl_gauss`` on a garnet MDP
under the uniform policy. Only ``run`` imports torch (``mdpsandbox --help`` stays fast)."""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys

# The registered algorithm names, listed here so that building the parser does not import torch;
# tests/test_cli.py checks this tuple against mdpsandbox.learners.trainer.algorithm_names().
ALGORITHMS: tuple = ('c51', 'cd', 'db', 'dpo', 'dro', 'fm', 'hl_gauss', 'kl_q', 'naive', 'pcl', 'qr', 'qsharp', 'shiq',
                     'shiq_l2', 'shiq_l3', 'soft_q', 'subtb', 'tb', 'zvar')
#: learners of return laws on tabular MDPs (the others train on token trees)
DISTRIBUTIONAL: tuple = ("c51", "qr", "hl_gauss", "ctd", "categorical_td", "quantile_td")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "learn",
        help="train a learner (ShiQ, KL-Q, soft-Q, PCL, DPO, DRO, GFlowNets, Q♯, C51, QR, ...) and print its "
             "error vs the exact solution",
        description=(
            "Train ALGORITHM and print, at each evaluation, its error against the exact answer. Token-tree "
            "learners (full coverage data on a random token MDP): the loss, the max logit error in the "
            "algorithm's convention, the policy TV / KL(pi||pi*) to the exact KL-regularised optimum and the "
            "root value error. qsharp uses the histogram head unless the rewards are 0/1 (--reward bernoulli). "
            "c51 / qr / hl_gauss: distributional TD on a garnet MDP under the uniform policy, with the sup-W1 "
            "distance to the exact fixed point next to the plug-in estimate from the same samples. "
            "Negative controls (naive, shiq_l2, cd) say so when they end far from the exact answer. "
            "Progress: a bar on a terminal, one log line per evaluation otherwise (stderr). "
            "Algorithms: " + ", ".join(ALGORITHMS)),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("algorithm", help="algorithm name (see the list above)")
    p.add_argument("--vocab", type=int, default=3, help="vocabulary size V (token trees)")
    p.add_argument("--horizon", type=int, default=3, help="maximum length H (token trees)")
    p.add_argument("--beta", type=float, default=0.5, help="KL coefficient beta > 0 (token trees)")
    p.add_argument("--steps", type=int, default=None,
                   help="number of updates (default: 50 L-BFGS / 500 Adam steps; TD iterations: 5000)")
    p.add_argument("--model", default="tabular", choices=["tabular", "mlp", "transformer"], help="model")
    p.add_argument("--optimizer", default="auto", choices=["auto", "adam", "sgd", "lbfgs"],
                   help="optimizer (auto: full-batch L-BFGS unless --lr is given)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default per optimizer)")
    p.add_argument("--reward", default="terminal", choices=["terminal", "dense", "bernoulli"], help="reward kind")
    p.add_argument("--offset-scale", type=float, default=10.0, help="per-node offset of the reference logits")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate every N updates (default steps/20)")
    p.add_argument("--states", type=int, default=8, help="garnet states (c51 / qr / hl_gauss)")
    p.add_argument("--gamma", type=float, default=0.9, help="discount of the garnet (c51 / qr / hl_gauss)")
    p.add_argument("--seed", type=int, default=0, help="seed of the environment and the model")
    p.add_argument("--plot", default=None, metavar="PNG", help="save the error curve to this PNG")
    p.add_argument("--json", action="store_true", help="print the history (and flags) as JSON")


_CLI_NAMES = {"beta": "--beta", "steps": "--steps", "lr": "--lr", "optimizer": "--optimizer", "model": "--model",
              "seed": "--seed", "eval_every": "--eval-every", "gamma": "--gamma", "n_iterations": "--steps"}


def _cli_message(msg: str) -> str:
    """A Python-call error message in the CLI's words: ``beta=...`` → ``--beta ...``, plus the help hint."""
    for py, cli in _CLI_NAMES.items():
        msg = re.sub(rf"\b{py}=", f"{cli} ", msg)
        msg = re.sub(rf"^{py} ", f"{cli} ", msg)
    return msg + " (see `mdpsandbox learn --help` for the options)"


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* sys.stderr (not the one at creation: it may be swapped or closed)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _setup_logging() -> None:
    """Off a terminal (logs, CI), one progress line per evaluation goes to stderr (the bar needs a tty)."""
    log = logging.getLogger("mdpsandbox.learners")
    if not sys.stderr.isatty() and not any(isinstance(h, _StderrHandler) for h in log.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)


def run(args) -> int:
    from ..learners.trainer import check_known, train

    try:
        check_known(args.algorithm)  # clear error listing valid names before any work
    except ValueError as exc:
        raise ValueError(_cli_message(str(exc))) from None
    _setup_logging()
    try:
        if args.algorithm in DISTRIBUTIONAL:
            return _run_distributional(args, train)
        return _run_token(args, train)
    except ValueError as exc:
        raise ValueError(_cli_message(str(exc))) from None


def _run_distributional(args, train) -> int:
    import numpy as np

    from ..envs import garnet

    for flag, val, default in (("--model", args.model, "tabular"), ("--optimizer", args.optimizer, "auto")):
        if val != default:
            raise ValueError(f"{flag} is not used by {args.algorithm} (a numpy TD learner on sampled next states)")
    mdp = garnet(args.states, 2, min(3, args.states), gamma=args.gamma, seed=args.seed)
    res = train(args.algorithm, mdp, policy=np.full((args.states, 2), 0.5), steps=args.steps, lr=args.lr,
                seed=args.seed, progress=True)
    out = {"algorithm": res.algorithm, "convention": res.convention, **res.final,
           "far_from_exact": res.far_from_exact, "notes": res.notes}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"garnet(S={args.states}, A=2, gamma={args.gamma}) uniform policy  algorithm={res.algorithm}  "
          f"convention={res.convention}")
    for k, v in res.final.items():
        print(f"  {k:>16}: {v:.6g}" if isinstance(v, float) else f"  {k:>16}: {v}")
    for note in res.notes:
        print(f"note: {note}")
    return 0


def _run_token(args, train) -> int:
    from ..envs import TokenMDP

    env = TokenMDP.random(args.vocab, args.horizon, reward=args.reward, seed=args.seed,
                          offset_scale=args.offset_scale)
    res = train(args.algorithm, env, beta=args.beta, model=args.model, steps=args.steps, lr=args.lr,
                optimizer=args.optimizer, seed=args.seed, eval_every=args.eval_every, progress=True)
    if args.plot:
        _plot(res, args.plot)
    if args.json:
        print(json.dumps([{k: v for k, v in h.items() if k != "worst"} for h in res.history]))
        if res.notes:
            print(json.dumps({"far_from_exact": res.far_from_exact, "negative_control": res.negative_control,
                              "notes": res.notes}), file=sys.stderr)
        return 0
    print(f"{env!r}  beta={args.beta}  algorithm={res.algorithm}  model={args.model}  "
          f"convention={res.convention}")
    print(f"{'step':>7} {'loss':>10} {'logit err':>10} {'TV mean':>10} {'TV max':>10} {'KL max':>10} {'V err':>10}")
    for h in res.history:
        print(f"{h['step']:>7d} {h['loss']:>10.3e} {h['logit_error']:>10.3e} {h['tv_mean']:>10.3e} "
              f"{h['tv_max']:>10.3e} {h['kl_max']:>10.3e} {h['value_error']:>10.3e}")
    w = res.final["worst"]
    print(f"worst entry: {w['where']} token {w['token']}: expected {w['expected']:.6g}, actual {w['actual']:.6g}")
    for note in res.notes:
        print(f"note: {note}")
    if args.plot:
        print(f"saved {args.plot}")
    return 0


def _plot(res, path: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for key in ("logit_error", "tv_max", "value_error"):
        s, v = res.curve(key)
        ax.semilogy(s, v + 1e-300, marker="o", ms=3, label=key)
    ax.set_xlabel("update")
    ax.set_ylabel("error vs exact solution")
    ax.set_title(f"{res.algorithm} (beta={res.beta})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
