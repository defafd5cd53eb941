"""``mdpsandbox distribution``: return laws of an MRP by DCFP / CDP / QDP / Monte Carlo, with the
sup-W1 distance between every pair of methods."""
from __future__ import annotations

import argparse
import time

import numpy as np

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "distribution",
        help="return distributions of an MRP by DCFP / CDP / QDP / Monte Carlo; prints sup-W1 errors",
        description=(
            "Policy evaluation of the return law of a Markov reward process (docs/math.md §7). garnet: a "
            "random MRP (--states, --branching); chain: the chain MDP under the uniform policy (MRP on "
            "state-action pairs); two-state: the worked example P=[[1/2,1/2],[1/4,3/4]], r=(1,0). Prints "
            "each method's time and the sup-W1 distance between every pair of methods, with the "
            "categorical bound ς/(2(1-γ)) for reference."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("env", nargs="?", default="garnet", choices=["garnet", "chain", "two-state"])
    p.add_argument("--method", nargs="+", default=["dcfp", "cdp", "qdp", "mc"], choices=["dcfp", "cdp", "qdp", "mc"],
                   help="methods to run (several allowed)")
    p.add_argument("--atoms", type=int, default=51, help="number of atoms m (quantiles for qdp)")
    p.add_argument("--gamma", type=float, default=0.9, help="discount in [0, 1)")
    p.add_argument("--samples", type=int, default=2000, help="Monte-Carlo samples per state")
    p.add_argument("--states", type=int, default=20, help="garnet / chain: number of states")
    p.add_argument("--branching", type=int, default=4, help="garnet: successors per state")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--plot", default=None, help="write a CDF figure of state 0 to this PNG path")


def _mrp(args):
    import scipy.sparse as sp

    from ..envs import chain, garnet
    from ..solvers.distributional import policy_mrp

    if args.env == "two-state":
        return np.array([[0.5, 0.5], [0.25, 0.75]]), np.array([1.0, 0.0])
    if args.env == "garnet":
        mdp = garnet(args.states, 1, args.branching, gamma=args.gamma, seed=args.seed)
        return sp.csr_matrix(mdp.P2), mdp.R[:, 0].copy()
    mdp = chain(args.states, gamma=args.gamma, slip=0.1)
    return policy_mrp(mdp, np.full((mdp.n_states, 2), 0.5))


def run(args) -> int:
    from ..solvers.distributional import (categorical_fixed_point, default_atoms, monte_carlo_returns, quantile_dp,
                                 sup_wasserstein1)

    if not 0.0 <= args.gamma < 1.0:
        raise ValueError(f"--gamma must lie in [0, 1), got {args.gamma}")
    if args.samples < 1:
        raise ValueError(f"--samples (n_samples) must be >= 1, got {args.samples}")
    P, r = _mrp(args)
    z = default_atoms(r, args.gamma, args.atoms)
    gap = z[1] - z[0]
    results, times = {}, {}
    for m in dict.fromkeys(args.method):
        t = time.perf_counter()
        if m in ("dcfp", "cdp"):
            results[m] = categorical_fixed_point(P, r, args.gamma, z, method=m)
        elif m == "qdp":
            results[m] = quantile_dp(P, r, args.gamma, args.atoms)
        else:
            results[m] = monte_carlo_returns(P, r, args.gamma, args.samples, seed=args.seed)
        times[m] = time.perf_counter() - t
    print(f"MRP {args.env}: n={r.size} states, gamma={args.gamma}, m={args.atoms} atoms on "
          f"[{z[0]:.4g}, {z[-1]:.4g}] (gap {gap:.4g}); categorical bound gap/(2(1-gamma)) = "
          f"{gap / (2 * (1 - args.gamma)):.4g}")
    for m, res in results.items():
        extra = f"  residual {res.residual:.2e}  iterations {res.iterations}" if hasattr(res, "residual") else \
            f"  {args.samples} samples/state"
        print(f"{m:5s} {times[m]:8.3f} s{extra}")
    names = list(results)
    if len(names) > 1:
        print("sup-W1 between methods:")
        print("       " + "".join(f"{b:>12s}" for b in names))
        for a in names:
            print(f"{a:6s} " + "".join(f"{sup_wasserstein1(results[a], results[b]):12.4e}" for b in names))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")  # the command writes a file; the library itself never picks a backend
        from ..plots import plot_return_cdfs

        truth = results.get("mc")
        est = {k: v[0] for k, v in results.items() if k != "mc"}
        fig = plot_return_cdfs(est, truth[0] if truth is not None else None, title=f"{args.env}: state 0")
        fig.savefig(args.plot, dpi=120)
        print(f"figure written to {args.plot}")
    return 0
