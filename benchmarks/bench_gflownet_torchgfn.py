"""TB and SubTB on the same binary-tree task, mdpsandbox vs the ``torchgfn`` package, side by side.

Task: a perfect binary tree of depth D (our TokenMDP V=2, H=D as a TreeDAG; torchgfn's
``PerfectBinaryTree(depth=D)``) — both number nodes breadth-first (level-major, first token most
significant), so node i is the same state in both and leaf j has the same reward
R = exp(N(0,1)) (seeded). Both use a tabular P_F, Adam with lr 0.05 (log Z / log F lr as noted),
on-policy batches of 16 trajectories, the same number of updates. We report wall time per 1,000
updates and the exact TV(p_F, R/Z) of each learned policy (mass pushed forward, no sampling).

torchgfn is NOT a dependency. It requires numpy<2 and would downgrade the shared environment, so
install it into a private directory and point ``TORCHGFN_PATH`` at it, e.g.::

    pip install --no-deps --target /tmp/torchgfn_site torchgfn tensordict einops dill pyvers \
        torch_geometric xxhash psutil linear-attention-transformer axial-positional-embedding \
        linformer local-attention product-key-memory colt5-attention hyper-connections torch-einops-utils
    TORCHGFN_PATH=/tmp/torchgfn_site python benchmarks/bench_gflownet_torchgfn.py

Without torchgfn the script runs our side only and says so.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

import mdpsandbox as m
from mdpsandbox.envs.dag import random_log_reward, tree_dag
from mdpsandbox.learners.gflownet import train_gflownet
from mdpsandbox.solvers.flows import flows, terminating_distribution, tv_distance


def _import_torchgfn():
    path = os.environ.get("TORCHGFN_PATH")
    if path:
        sys.path.insert(0, path)
    try:
        import gfn  # noqa: F401
        from gfn.estimators import DiscretePolicyEstimator, ScalarEstimator
        from gfn.gflownet import SubTBGFlowNet, TBGFlowNet
        from gfn.gym import PerfectBinaryTree
        from gfn.preprocessors import EnumPreprocessor
        from gfn.utils.modules import Tabular
    except Exception as exc:  # ImportError or a broken install
        return None, f"{type(exc).__name__}: {exc}"
    return dict(DiscretePolicyEstimator=DiscretePolicyEstimator, ScalarEstimator=ScalarEstimator,
                SubTBGFlowNet=SubTBGFlowNet, TBGFlowNet=TBGFlowNet, PerfectBinaryTree=PerfectBinaryTree,
                EnumPreprocessor=EnumPreprocessor, Tabular=Tabular), None


def run_ours(dag, lr, loss, n_updates, batch, seed):
    res = train_gflownet(dag, lr, loss=loss, n_steps=n_updates, batch_size=batch, lr=0.05, lr_log_z=0.5,
                         eval_every=n_updates, seed=seed)
    return res.wall_time, res.final_tv


def run_torchgfn(g, dag, lr, loss, n_updates, batch, seed):
    D = dag.depth
    R = torch.as_tensor(np.exp(lr), dtype=torch.float32)
    lb = 2**D - 1
    env = g["PerfectBinaryTree"](reward_fn=lambda x: R[x.reshape(-1) - lb], depth=D)
    torch.manual_seed(seed)
    pre = g["EnumPreprocessor"](env.get_states_indices)
    table = g["Tabular"](env.n_nodes, env.n_actions)
    pf = g["DiscretePolicyEstimator"](table, env.n_actions, preprocessor=pre)
    if loss == "tb":
        gfn = g["TBGFlowNet"](pf=pf, pb=None, constant_pb=True)
        groups = [{"params": gfn.pf_pb_parameters(), "lr": 0.05},
                  {"params": gfn.logz_parameters(), "lr": 0.5}]
    else:
        logF = g["ScalarEstimator"](g["Tabular"](env.n_nodes, 1), preprocessor=pre)
        gfn = g["SubTBGFlowNet"](pf=pf, pb=None, logF=logF, constant_pb=True, weighting="geometric_within",
                                 lamda=0.9)
        groups = [{"params": gfn.pf_pb_parameters(), "lr": 0.05},
                  {"params": gfn.logF_parameters(), "lr": 0.05}]
    opt = torch.optim.Adam(groups)
    t0 = time.perf_counter()
    for _ in range(n_updates):
        traj = gfn.sample_trajectories(env, n=batch, save_logprobs=True)
        opt.zero_grad()
        lo = gfn.loss(env, traj, recalculate_all_logprobs=False)
        lo.backward()
        opt.step()
    wall = time.perf_counter() - t0
    # exact TV: torchgfn's node i is our state i (same breadth-first order)
    logits = table.table.detach().to(torch.float64).numpy()
    lp = np.where(dag.valid, logits, -np.inf)
    lp = lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))
    lp = np.where(dag.valid, lp, -np.inf)
    return wall, tv_distance(terminating_distribution(dag, lp), flows(dag, lr).target)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--updates", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = m.TokenMDP.random(2, args.depth, seed=args.seed)
    dag = tree_dag(env)
    lr = random_log_reward(dag, seed=args.seed)
    g, err = _import_torchgfn()
    print(f"binary tree depth {args.depth} ({dag.n_objects} leaves), {args.updates} updates, batch {args.batch}")
    if g is None:
        print(f"torchgfn not available ({err}); running mdpsandbox only")
    print(f"{'loss':6s} {'impl':10s} {'s/1k updates':>13s} {'TV(p_F, R/Z)':>13s}")
    for loss in ("tb", "subtb"):
        w, tv = run_ours(dag, lr, loss, args.updates, args.batch, args.seed)
        print(f"{loss:6s} {'mdpsandbox':10s} {1000 * w / args.updates:13.3f} {tv:13.2e}")
        if g is not None:
            w2, tv2 = run_torchgfn(g, dag, lr, loss, args.updates, args.batch, args.seed)
            print(f"{loss:6s} {'torchgfn':10s} {1000 * w2 / args.updates:13.3f} {tv2:13.2e}   "
                  f"(speed ratio torchgfn/ours {w2 / w:.2f})")


if __name__ == "__main__":
    main()
