"""``mdpsandbox solve``: solve a token / garnet / gridworld MDP exactly and print V*, the policy at the
root, the residual and the iteration count (never imports torch)."""
from __future__ import annotations

import argparse
import json

import numpy as np


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "solve",
        help="solve a token / garnet / gridworld MDP exactly and print V*, the root policy, residual",
        description=(
            "Solve an MDP exactly. Prints V* at the root (token) or the initial states (tabular), the "
            "optimal policy there, the solver's residual and its iteration count. With no regulariser "
            "the problem is hard control; --temperature adds entropy; --beta adds KL to the reference "
            "policy (a token MDP's own reference; uniform for tabular MDPs). Default: a token MDP "
            "with V=4, H=6, random reference logits, terminal rewards, beta=0.1."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("env", nargs="?", default="token", choices=["token", "garnet", "gridworld"],
                   help="which environment to build")
    p.add_argument("--vocab", type=int, default=4, help="token: vocabulary size V")
    p.add_argument("--horizon", type=int, default=6, help="token: maximum length H")
    p.add_argument("--reward", default="terminal", choices=["terminal", "dense", "bernoulli"],
                   help="token: reward kind")
    p.add_argument("--ref", default="random", choices=["random", "uniform", "ngram"], help="token: reference LM")
    p.add_argument("--eos", type=int, default=None, help="token: EOS token index (none by default)")
    p.add_argument("--states", type=int, default=100, help="garnet: number of states")
    p.add_argument("--actions", type=int, default=4, help="garnet: number of actions")
    p.add_argument("--branching", type=int, default=5, help="garnet: successors per (s, a)")
    p.add_argument("--size", type=int, default=5, help="gridworld: side length")
    p.add_argument("--slip", type=float, default=0.1, help="gridworld: slip probability")
    p.add_argument("--gamma", type=float, default=None,
                   help="discount (default 1.0 for token, 0.95 for garnet/gridworld)")
    reg = p.add_mutually_exclusive_group()
    reg.add_argument("--beta", type=float, default=None,
                     help="KL coefficient beta > 0 (token default 0.1 when neither is given)")
    reg.add_argument("--temperature", type=float, default=None, help="entropy temperature tau > 0")
    p.add_argument("--hard", action="store_true", help="hard control (no regulariser)")
    p.add_argument("--method", default="auto", choices=["auto", "vi", "pi", "backward"], help="solver")
    p.add_argument("--tol", type=float, default=1e-9, help="certified tolerance of iterative solvers")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generator")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args) -> int:
    from ..envs import TokenMDP, garnet, gridworld
    from ..solvers import solve

    beta, temp = args.beta, args.temperature
    if args.hard and (beta is not None or temp is not None):
        raise ValueError("--hard cannot be combined with --beta or --temperature")
    if args.env == "token":
        gamma = 1.0 if args.gamma is None else args.gamma
        env = TokenMDP.random(args.vocab, args.horizon, reward=args.reward, ref=args.ref, seed=args.seed,
                              gamma=gamma, eos=args.eos)
        if beta is None and temp is None and not args.hard:
            beta = 0.1
        ref = None
    else:
        gamma = 0.95 if args.gamma is None else args.gamma
        if args.env == "garnet":
            env = garnet(args.states, args.actions, args.branching, gamma=gamma, seed=args.seed)
        else:
            env = gridworld(args.size, args.size, slip=args.slip, gamma=gamma, seed=args.seed)
        ref = np.full((env.n_states, env.n_actions), 1.0 / env.n_actions) if beta is not None else None
    sol = solve(env, beta=beta, temperature=temp, ref_policy=ref, method=args.method, tol=args.tol)
    if args.env == "token":
        root_v = float(sol.v[0])
        root_pi = sol.policy[0].tolist()
        where = "root"
    else:
        s0 = int(np.argmax(env.initial))
        root_v = float(sol.value_initial)
        root_pi = sol.policy[s0].tolist()
        where = f"initial distribution (policy at state {s0})"
    out = dict(env=repr(env), **sol.summary(), value_root=root_v, policy_root=root_pi)
    if args.json:
        print(json.dumps(out))
        return 0
    reg = f"beta={beta}" if beta is not None else (f"temperature={temp}" if temp is not None else "hard")
    print(f"{env!r}")
    print(f"regulariser      {reg}")
    print(f"method           {sol.method}  (iterations {sol.iterations}, converged {sol.converged})")
    print(f"V* at {where}: {_fmt(root_v)}")
    print("optimal policy   " + "  ".join(f"a{a}:{p:.4f}" for a, p in enumerate(root_pi)))
    print(f"residual         {sol.residual:.3e}   certified |V - V*| <= {sol.bound:.3e}")
    return 0


