"""The learners' losses at extreme β and at γ < 1 (docs/math.md §5, §12): every log-sum-exp entry
point of `learners.losses` stays finite and exact to the float64 resolution of its inputs at
β ∈ {1e-8, 1e-3, 1, 1e3, 1e8}, γ ∈ {0, 0.5, 0.9, 0.99}; ShiQ on truncated paths at γ < 1."""
import numpy as np
import pytest
import torch

from mdpsandbox import TokenMDP, solve
from mdpsandbox.learners import all_sequences, full_coverage
from mdpsandbox.learners import losses as L

torch.set_num_threads(1)
EPS = np.finfo(np.float64).eps
BETAS = [1e-8, 1e-3, 1.0, 1e3, 1e8]
GAMMAS = [0.0, 0.5, 0.9, 0.99]


def _t(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def _env(gamma, seed=0):
    return TokenMDP.random(3, 3, seed=seed, offset_scale=10.0, reward="dense", gamma=gamma)


def _tol(env, q, beta):
    # residuals are computed from g = ℓ + Q*/β held in float64: their resolution is ε(β|g| + |Q|)
    g = np.abs(env.ref_logits).max() + np.abs(q).max() / beta
    return 1e-11 * (1 + np.abs(q).max()) + 256 * EPS * beta * g


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_one_step_losses_vanish_at_their_fixed_points_at_extreme_beta(beta, gamma):
    env = _env(gamma)
    q = solve(env, beta=beta).q
    d = full_coverage(env)
    nxt = np.maximum(d.next_nodes, 0)
    done = torch.as_tensor(d.done)
    ref, logref = _t(env.ref_logits), _t(env.log_ref_policy)
    rew = _t(d.rewards)
    tol = _tol(env, q, beta)
    g = _t(env.ref_logits + q / beta)            # L3 / ShiQ fixed point ℓ_ref + Q*/β
    r3 = L.shiq_l3_residual(g[d.nodes, d.tokens], ref[d.nodes, d.tokens], rew, g[nxt], ref[nxt], done, gamma, beta)
    g2 = _t(env.log_ref_policy + q / beta)       # L2 fixed point log π_ref + Q*/β
    r2 = L.shiq_l2_residual(g2[d.nodes, d.tokens], logref[d.nodes, d.tokens], rew, g2[nxt], done, gamma, beta)
    qt = _t(q)                                   # KL-Q fixed point Q*
    r1 = L.kl_q_residual(qt[d.nodes, d.tokens], rew, qt[nxt], logref[nxt], done, gamma, beta)
    for name, r in (("L3", r3), ("L2", r2), ("KL-Q", r1)):
        assert torch.isfinite(r).all(), name
        assert float(r.abs().max()) <= tol, (name, float(r.abs().max()), tol)
    # the value read-outs equal V* (β(LSE g − LSE ℓ_ref), β LSE g2, β LSE(log π_ref + Q/β))
    v = solve(env, beta=beta).v
    for vv in (L.shiq_v(g, ref, beta), beta * torch.logsumexp(g2, dim=-1), L.kl_value(qt, logref, beta)):
        assert float((vv - _t(v)).abs().max()) <= tol


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_shiq_multistep_vanishes_at_fixed_point_on_full_and_truncated_paths(beta, gamma):
    env = _env(gamma, seed=1)
    sol = solve(env, beta=beta)
    g = _t(env.ref_logits + sol.q / beta)
    ref = _t(env.ref_logits)
    p = all_sequences(env)
    nodes = np.maximum(p.nodes, 0)
    mask = torch.as_tensor(p.mask)
    tok = torch.as_tensor(np.where(p.mask, p.tokens, -1))
    lr = L.log_ratio(g[nodes], ref[nodes], tok)
    v = torch.where(mask, L.shiq_v(g[nodes], ref[nodes], beta), torch.zeros((), dtype=torch.float64))
    rew = _t(p.rewards)
    tol = _tol(env, sol.q, beta) * p.mask.shape[1]
    full = L.shiq_residuals(lr, v, rew, mask, gamma, beta)
    assert torch.isfinite(full).all() and float(full.abs().max()) <= tol
    for cut_at in (1, 2):                         # truncate after cut_at steps, bootstrap with v_g(s_cut)
        cut = mask.clone()
        cut[:, cut_at:] = False
        d = L.shiq_residuals(lr, v, rew, cut, gamma, beta, v[:, cut_at])
        assert float(d.abs().max()) <= tol
        # V-form = Q-form on the truncated rows (the bootstrap value enters as v_g(s_{k+1}))
        q_taken = L.shiq_q(g[nodes].gather(-1, tok.clamp(min=0)[..., None])[..., 0], ref[nodes].gather(
            -1, tok.clamp(min=0)[..., None])[..., 0], beta)
        v_next = torch.cat([v[:, 1:], torch.zeros(len(p), 1, dtype=torch.float64)], dim=1)
        dq = L.shiq_residuals_q_form(q_taken, v_next, rew, cut, gamma)
        assert float((dq - d).abs().max()) <= tol


@pytest.mark.parametrize("beta", BETAS)
def test_pcl_consistency_vanishes_at_extreme_beta(beta):
    env = _env(1.0, seed=2)
    sol = solve(env, beta=beta)
    # PCL reads log π* = log π_ref + (Q* − V*)/β (formed stably: π* itself underflows at small β)
    logpi = env.log_ref_policy + (sol.q - sol.v[..., None]) / beta
    g = _t(logpi)
    ref = _t(env.ref_logits)
    p = all_sequences(env)
    nodes = np.maximum(p.nodes, 0)
    mask = torch.as_tensor(p.mask)
    tok = torch.as_tensor(np.where(p.mask, p.tokens, -1))
    lr = L.log_ratio(g[nodes], ref[nodes], tok)
    vstar = torch.where(mask, _t(sol.v)[nodes], torch.zeros((), dtype=torch.float64))
    res = L.pcl_residuals(lr, vstar, _t(p.rewards), mask, 1.0, beta)
    assert torch.isfinite(res).all()
    # log π* is stored with absolute error ~ε·|log π*|; β times that bounds the PCL residual
    lp = np.abs(logpi).max()
    tol = 1e-10 * (1 + np.abs(sol.v).max()) + 256 * EPS * beta * (lp + np.abs(env.ref_logits).max()) * 3
    assert float(res.abs().max()) <= tol
