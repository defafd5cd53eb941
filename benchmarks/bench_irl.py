"""MCE IRL: soft solves to ‖∇‖ < 1e-8 (Newton / L-BFGS vs plain gradient ascent), and wall time vs the
``imitation`` package's MCE IRL on the same finite-horizon problem, with both answers' distance to the
exact solution.

(A) Three problems (a well-conditioned garnet, the classic 6×6 gridworld with one-hot state features,
a garnet with features of mixed scale), τ = 1; the expert is the exact soft-optimal policy of θ*
(population statistics). Count of soft solves until ‖μ_E − μ(π_θ)‖∞ = τ‖∇ℓ‖∞ < 1e-8. Baseline: plain
gradient ascent with the best constant step 1/λ_max(−∇²ℓ(θ*)) (generous: it needs the Hessian at the
answer), capped at --cap iterations. The Hessian's condition number (on its range) is printed.

(B) imitation 1.0.1 (``imitation.algorithms.mce_irl.MCEIRL``; finite horizon, state-only reward on
observation features, Adam lr 0.01 — its defaults, linear reward net) vs ``mdpsandbox.irl.mce_irl`` on a
garnet S = 50, A = 4, H = 30, d = 8 state features. imitation stops at its occupancy error linf_eps; we
run to ‖∇‖ < 1e-10. Both final rewards are judged by one exact yardstick: the soft-optimal policy of the
learned reward (imitation's own ``mce_partition_fh`` for its answer), its exact discounted occupancy error
‖Σ_t γ^t(ρ_t − ρ_t^E)‖∞ and policy TV to the expert (max over visited (t, s)). At γ < 1 imitation computes
the model policy undiscounted (its discounted path), so its answer is wrong by construction.

imitation is NOT a dependency; install it privately (offline wheels were reachable here)::

    pip install --no-deps --target /tmp/imitation_pkgs imitation stable-baselines3 seals
    IMITATION_PATH=/tmp/imitation_pkgs python benchmarks/bench_irl.py

Without it, part (B) runs our side only and says so.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

import mdpsandbox as ms
from _timing import median_time
from mdpsandbox.irl import finite_horizon_occupancy, mce_hessian, mce_irl, state_features, unidentified_directions


def _cases():
    """(name, mdp, features, θ*): a well-conditioned garnet, the classic gridworld with one-hot state
    features, and a garnet whose features span two decades of scale (ill-conditioned)."""
    rng = np.random.default_rng(0)
    g = ms.garnet(30, 4, 4, gamma=0.9, seed=3)
    yield "garnet30 g=0.9 d=6", g, rng.normal(size=(30, 4, 6)), rng.normal(size=6)
    gw = ms.gridworld(6, 6, slip=0.1, gamma=0.95)
    yield "grid6x6 g=0.95 one-hot s", gw, state_features(36, 4), rng.normal(size=36) * 0.5
    g = ms.garnet(30, 4, 4, gamma=0.99, seed=3)
    scale = np.array([1, 1, 1, 0.1, 0.1, 0.01])
    yield "garnet30 g=0.99 scaled d=6", g, rng.normal(size=(30, 4, 6)) * scale, rng.normal(size=6)


def part_a(cap: int) -> None:
    print("(A) soft solves to ||grad||_inf < 1e-8 (tau = 1); gradient ascent: step 1/lambda_max(-Hessian at theta*)")
    print(f"{'problem':>27} {'cond':>8} {'method':>9} {'solves':>8} {'|theta-theta*|':>15} {'wall s':>8}"
          "  null structural/data")
    for name, base, phi, theta in _cases():
        mdp_true = ms.TabularMDP(base.P, phi @ theta, base.gamma, terminal=base.terminal, initial=base.initial)
        expert = ms.solve(mdp_true, temperature=1.0, tol=1e-13, method="pi").policy
        ev = np.linalg.eigvalsh(-mce_hessian(theta, base, phi, 1.0))
        lam = float(ev.max())
        cond = lam / float(ev[ev > 1e-9 * lam].min())
        null = unidentified_directions(base, phi)  # θ-independent (structural)
        counts = {}
        for method in ("newton", "lbfgs", "gradient"):
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = mce_irl(base, phi, expert_policy=expert, method=method, tol=1e-8,
                              max_iter=cap if method == "gradient" else 1000,
                              step_size=1.0 / lam if method == "gradient" else None)
            wall = time.perf_counter() - t
            counts[method] = (res.n_solves, res.converged)
            # distance to θ* modulo the directions the data leave unidentified (res.nullspace: the
            # structural ones, e.g. a terminal state's reward, and those only actions the expert
            # essentially never takes would pin — Hessian eigenvalue < 1e-14 λ_max)
            err = res.theta - theta
            err = err - res.nullspace @ (res.nullspace.T @ err)
            flag = "" if res.converged else f"  (hit cap; fe_error {res.fe_error:.1e})"
            print(f"{name:>27} {cond:>8.0f} {method:>9} {res.n_solves:>8} {np.max(np.abs(err)):>15.2e} "
                  f"{wall:>8.2f}  null {null.shape[1]}/{res.nullspace.shape[1]}{flag}")
        g = counts["gradient"]
        for m in ("newton", "lbfgs"):
            print(f"{'':>27} gradient/{m}: {'>= ' if not g[1] else ''}{g[0] / counts[m][0]:.0f}x the solves")


def _import_imitation():
    path = os.environ.get("IMITATION_PATH")
    if path:
        sys.path.insert(0, path)
    try:
        import torch

        torch.set_num_threads(1)
        from imitation.algorithms import mce_irl as imce
        from imitation.rewards import reward_nets
        from seals import base_envs
        return imce, reward_nets, base_envs, torch
    except Exception as exc:  # pragma: no cover - depends on the private install
        print(f"   imitation not importable ({type(exc).__name__}: {exc}); set IMITATION_PATH")
        return None


def _timed(fn, repeats: int = 5):
    """(result, median wall time of ``repeats`` calls) — ours is fast enough to repeat; imitation runs once."""
    out = fn()
    return out, median_time(fn, repeats)


def _judge(mdp, pol, expert, H, rho_E):
    """Exact discounted occupancy error and max policy TV over expert-visited (t, s)."""
    rho = finite_horizon_occupancy(mdp, pol, H)
    disc = mdp.gamma ** np.arange(H)
    occ = float(np.max(np.abs(disc @ (rho - rho_E))))
    vis = rho_E > 0
    tv = float(np.max((0.5 * np.abs(pol - expert).sum(axis=-1))[vis]))
    return occ, tv


def part_b(linf_eps: float, max_iter: int) -> None:
    S, A, H, d = 50, 4, 30, 8
    print(f"\n(B) vs imitation MCEIRL (garnet S={S}, A={A}, H={H}, d={d} state features, tau=1)")
    lib = _import_imitation()
    for gamma in (1.0, 0.9):
        rng = np.random.default_rng(1)
        base = ms.garnet(S, A, 5, gamma=gamma, seed=5)
        obs = rng.normal(size=(S, d))
        theta = rng.normal(size=d) * 0.5
        phi = np.repeat(obs[:, None, :], A, axis=1)
        mdp_true = ms.TabularMDP(base.P, phi @ theta, gamma, initial=base.initial)
        expert = ms.solve(mdp_true, temperature=1.0, horizon=H).policy  # (H, S, A)
        rho_E = finite_horizon_occupancy(base, expert, H)
        ours, t_ours = _timed(lambda: mce_irl(base, phi, expert_policy=expert, horizon=H, method="newton", tol=1e-10))
        occ_o, tv_o = _judge(base, ours.policy, expert, H, rho_E)
        print(f" gamma={gamma}: ours (newton)   {t_ours:8.3f} s  solves {ours.n_solves:5d}  occupancy err "
              f"{occ_o:.1e}  policy TV {tv_o:.1e}  |theta-theta*| {np.max(np.abs(ours.theta - theta)):.1e}")
        ours_l, t_ours_l = _timed(lambda: mce_irl(base, phi, expert_policy=expert, horizon=H, method="lbfgs",
                                                  tol=1e-10))
        occ_l, tv_l = _judge(base, ours_l.policy, expert, H, rho_E)
        print(f"            ours (lbfgs)    {t_ours_l:8.3f} s  solves {ours_l.n_solves:5d}  occupancy err "
              f"{occ_l:.1e}  policy TV {tv_l:.1e}")
        ours_c, t_ours_c = _timed(lambda: mce_irl(base, phi, expert_policy=expert, horizon=H, method="lbfgs",
                                                  tol=linf_eps))
        occ_c, tv_c = _judge(base, ours_c.policy, expert, H, rho_E)
        print(f"            ours (lbfgs, tol={linf_eps:g}) {t_ours_c:6.3f} s  solves {ours_c.n_solves:5d}  occupancy "
              f"err {occ_c:.1e}  policy TV {tv_c:.1e}")
        if lib is None:
            continue
        imce, reward_nets, base_envs, torch = lib
        env = base_envs.TabularModelPOMDP(transition_matrix=base.dense_P(), observation_matrix=obs,
                                          reward_matrix=np.zeros(S), horizon=H, initial_state_dist=base.initial)
        _, om_E = imce.mce_occupancy_measures(env, pi=expert, discount=gamma)
        torch.manual_seed(0)
        net = reward_nets.BasicRewardNet(env.observation_space, env.action_space, hid_sizes=[],
                                         use_action=False, use_done=False, use_next_state=False)
        net = net.double()
        algo = imce.MCEIRL(om_E, env, net, rng=np.random.default_rng(0), discount=gamma, linf_eps=linf_eps,
                           grad_l2_eps=0.0, log_interval=None)
        t = time.perf_counter()
        algo.train(max_iter=max_iter)
        t_im = time.perf_counter() - t
        with torch.no_grad():
            r_im = net(torch.as_tensor(obs), None, None, None).numpy()
        _, _, pi_im = imce.mce_partition_fh(env, reward=r_im, discount=gamma)
        occ_i, tv_i = _judge(base, pi_im, expert, H, rho_E)
        print(f"            imitation       {t_im:8.3f} s  (stop: its linf_eps={linf_eps:g} or {max_iter} iters)"
              f"  occupancy err {occ_i:.1e}  policy TV {tv_i:.1e}")
        print(f"            wall time imitation / ours: {t_im / t_ours:.0f}x (newton, to 1e-10), "
              f"{t_im / t_ours_l:.0f}x (lbfgs, to 1e-10), {t_im / t_ours_c:.0f}x (lbfgs, to its error level)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap", type=int, default=100000, help="iteration cap of plain gradient ascent")
    ap.add_argument("--linf-eps", type=float, default=1e-3, help="imitation's occupancy stopping error")
    ap.add_argument("--max-iter", type=int, default=5000, help="imitation's iteration cap")
    args = ap.parse_args()
    part_a(args.cap)
    part_b(args.linf_eps, args.max_iter)


if __name__ == "__main__":
    main()
