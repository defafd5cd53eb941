"""Identities of the pure losses (docs/math.md §5, §9) against exact DP solutions."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from mdpsandbox import TokenMDP, solve
from mdpsandbox.learners import all_sequences, full_coverage, preference_pairs
from mdpsandbox.learners import losses as L

torch.set_num_threads(1)
BETA = 0.7


def _env(reward="terminal", seed=0, gamma=1.0, eos=None):
    return TokenMDP.random(3, 3, seed=seed, offset_scale=10.0, reward=reward, gamma=gamma, eos=eos)


def _t(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def _transition_terms(env, g):
    """Per-transition tensors of full coverage for a logit table g (N, V)."""
    d = full_coverage(env)
    g, ref = _t(g), _t(env.ref_logits)
    nxt = np.maximum(d.next_nodes, 0)
    return dict(g_sa=g[d.nodes, d.tokens], g_next=g[nxt], ref_sa=ref[d.nodes, d.tokens], ref_next=ref[nxt],
                log_ref_sa=_t(env.log_ref_policy)[d.nodes, d.tokens], log_ref_next=_t(env.log_ref_policy)[nxt],
                reward=_t(d.rewards), done=torch.as_tensor(d.done))


def _path_terms(env, g, beta=BETA):
    p = all_sequences(env)
    g, ref = _t(g), _t(env.ref_logits)
    nodes = np.maximum(p.nodes, 0)
    mask = torch.as_tensor(p.mask)
    tok = torch.as_tensor(np.where(p.mask, p.tokens, -1))
    lr = L.log_ratio(g[nodes], ref[nodes], tok)
    v = torch.where(mask, L.shiq_v(g[nodes], ref[nodes], beta), torch.zeros((), dtype=torch.float64))
    return p, mask, tok, lr, v, g[nodes], ref[nodes]


@pytest.mark.parametrize("reward", ["terminal", "dense"])
@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_every_loss_is_zero_at_its_fixed_point(reward, gamma):
    env = _env(reward, gamma=gamma)
    sol = solve(env, beta=BETA)
    q = sol.q
    g_shiq = env.ref_logits + q / BETA
    g_l2 = env.log_ref_policy + q / BETA
    tt = _transition_terms(env, g_shiq)
    assert L.shiq_l3_loss(tt["g_sa"], tt["ref_sa"], tt["reward"], tt["g_next"], tt["ref_next"], tt["done"], gamma,
                          BETA) < 1e-20
    t2 = _transition_terms(env, g_l2)
    assert L.shiq_l2_loss(t2["g_sa"], t2["log_ref_sa"], t2["reward"], t2["g_next"], t2["done"], gamma, BETA) < 1e-20
    tq = _transition_terms(env, q)
    assert L.kl_q_loss(tq["g_sa"], tq["reward"], tq["g_next"], tq["log_ref_next"], tq["done"], gamma, BETA) < 1e-20
    assert L.soft_q_td_loss(tq["g_sa"], tq["reward"], tq["g_next"], tq["log_ref_next"], tq["done"], gamma,
                            BETA) < 1e-20
    # L0's own fixed point: the unregularised (hard) Q*
    th = _transition_terms(env, solve(env).q)
    assert L.naive_q_loss(th["g_sa"], th["reward"], th["g_next"], th["done"], gamma) < 1e-20
    # multi-step ShiQ and PCL on every complete sequence
    p, mask, tok, lr, v, _, _ = _path_terms(env, g_shiq)
    assert L.shiq_loss(lr, v, _t(p.rewards), mask, gamma, BETA) < 1e-20
    nodes = np.maximum(p.nodes, 0)
    vstar = torch.where(mask, _t(sol.v)[nodes], torch.zeros((), dtype=torch.float64))
    assert L.pcl_loss(lr, vstar, _t(p.rewards), mask, gamma, BETA) < 1e-20
    if gamma == 1.0:  # sequence-level losses: π* and V*(root)
        seq_lr = L.sequence_log_ratio(lr, mask)
        assert L.dro_loss(_t(p.returns), _t(np.full(len(p), sol.v[0])), seq_lr, BETA) < 1e-20
        # DPO: see test_dpo_fixed_point_is_pi_ref_tilted_by_reward


def test_dpo_fixed_point_is_pi_ref_tilted_by_reward():
    env = _env("terminal")
    beta = 1.0  # BT labels at temperature 1 ↔ DPO with β = 1
    sol = solve(env, beta=beta)
    pref = preference_pairs(env)
    lp_star = env.leaf_log_probs(sol.policy) - env.leaf_log_probs()
    p = all_sequences(env)
    idx = {tuple(r): i for i, r in enumerate(p.tokens.tolist())}
    lw = _t(lp_star[[idx[tuple(r)] for r in pref.chosen.tokens.tolist()]])
    ll = _t(lp_star[[idx[tuple(r)] for r in pref.rejected.tokens.tolist()]])
    assert abs(float(L.dpo_loss(lw, ll, beta, _t(pref.p_chosen)))) < 1e-12
    # and anywhere else it is positive
    assert float(L.dpo_loss(lw * 0, ll * 0, beta, _t(pref.p_chosen))) > 1e-3


def test_l3_residual_at_reference_logits_is_minus_reward():
    env = _env("dense")
    tt = _transition_terms(env, env.ref_logits)
    r = L.shiq_l3_residual(tt["g_sa"], tt["ref_sa"], tt["reward"], tt["g_next"], tt["ref_next"], tt["done"], 1.0,
                           BETA)
    np.testing.assert_allclose(r.numpy(), -tt["reward"].numpy(), atol=1e-12)
    # so L3 = Σ r² (sum over every node–action pair)
    assert abs(float((r**2).sum()) - float((tt["reward"] ** 2).sum())) < 1e-10


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_shiq_loss_at_reference_logits_is_sum_of_squared_reward_to_go(gamma):
    env = _env("dense", gamma=gamma)
    p, mask, tok, lr, v, _, _ = _path_terms(env, env.ref_logits)
    loss = float(L.shiq_loss(lr, v, _t(p.rewards), mask, gamma, BETA, reduction="sum"))
    # independent brute force: Σ_τ Σ_t (Σ_{k≥t} γ^{k−t} r_k)²
    want = 0.0
    for row, m in zip(p.rewards, p.mask):
        r = row[m]
        for t in range(len(r)):
            want += sum(gamma ** (k - t) * r[k] for k in range(t, len(r))) ** 2
    assert abs(loss - want) < 1e-9 * max(1.0, want)


def test_l2_residual_at_reference_logits_carries_the_offset():
    env = TokenMDP.random(3, 3, seed=1, offset_scale=10.0, reward="terminal")
    tt = _transition_terms(env, env.ref_logits)
    r = L.shiq_l2_residual(tt["g_sa"], tt["log_ref_sa"], tt["reward"], tt["g_next"], tt["done"], 1.0, BETA)
    d = full_coverage(env)
    lse_ref = env.lse_ref
    want = BETA * lse_ref[d.nodes] - d.rewards - BETA * np.where(d.done, 0.0, lse_ref[np.maximum(d.next_nodes, 0)])
    np.testing.assert_allclose(r.numpy(), want, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), gamma=st.sampled_from([1.0, 0.9, 0.5]), scale=st.floats(0.1, 20.0))
def test_shiq_multistep_residual_is_minus_discounted_sum_of_one_step_residuals(seed, gamma, scale):
    """Δ_t (V-form) = Q-form = −Σ_{k≥t} γ^{k−t} δ_k for any logits g (docs/math.md §5 checks 5)."""
    env = _env("dense", seed=seed % 50, gamma=gamma)
    g = np.random.default_rng(seed).normal(0, scale, size=env.ref_logits.shape)
    p, mask, tok, lr, v, gn, refn = _path_terms(env, g)
    delta_v = L.shiq_residuals(lr, v, _t(p.rewards), mask, gamma, BETA)
    q_taken = L.shiq_q(gn.gather(-1, tok.clamp(min=0)[..., None])[..., 0],
                       refn.gather(-1, tok.clamp(min=0)[..., None])[..., 0], BETA)
    v_next = torch.cat([v[:, 1:], torch.zeros(len(p), 1, dtype=torch.float64)], dim=1)
    delta_q = L.shiq_residuals_q_form(q_taken, v_next, _t(p.rewards), mask, gamma)
    np.testing.assert_allclose(delta_v.numpy(), delta_q.numpy(), atol=1e-9 * max(1, scale))
    # brute force from the one-step L3 residuals of the same transitions
    tr = p.to_transitions()
    G, R = _t(g), _t(env.ref_logits)
    nxt = np.maximum(tr.next_nodes, 0)
    one = L.shiq_l3_residual(G[tr.nodes, tr.tokens], R[tr.nodes, tr.tokens], _t(tr.rewards), G[nxt], R[nxt],
                             torch.as_tensor(tr.done), gamma, BETA).numpy()
    k = 0
    for i, m in enumerate(p.mask):
        T = int(m.sum())
        d = one[k:k + T]
        k += T
        for t in range(T):
            want = -sum(gamma ** (j - t) * d[j] for j in range(t, T))
            assert abs(float(delta_v[i, t]) - want) < 1e-8 * max(1, scale)


def test_shiq_residual_equals_pcl_consistency_on_suffixes():
    env = _env("dense", gamma=0.9)
    g = np.random.default_rng(3).normal(0, 2, size=env.ref_logits.shape)
    p, mask, tok, lr, v, _, _ = _path_terms(env, g)
    c = L.pcl_residuals(lr, v, _t(p.rewards), mask, 0.9, BETA)
    delta = L.shiq_residuals(lr, v, _t(p.rewards), mask, 0.9, BETA)
    length = mask.sum(1)
    for i in range(len(p)):
        for t in range(int(length[i])):
            assert abs(float(c[i, t, int(length[i]) - t - 1]) - float(delta[i, t])) < 1e-10


def test_shiq_bootstrap_on_truncated_rows_matches_full_rows():
    """A truncated row with v_end = v_g(s_{T+1}) has the same residuals as the full row plus the
    rest's contribution when g is at the fixed point (both 0)."""
    env = _env("dense")
    sol = solve(env, beta=BETA)
    g = env.ref_logits + sol.q / BETA
    p, mask, tok, lr, v, _, _ = _path_terms(env, g)
    cut = mask.clone()
    cut[:, 1:] = False
    v_end = v[:, 1]
    d = L.shiq_residuals(lr, v, _t(p.rewards), cut, 1.0, BETA, v_end)
    assert float(d.abs().max()) < 1e-10


def test_masked_lse_is_zero_at_terminals():
    g = _t([[1.0, 2.0], [3.0, 4.0]])
    out = L.masked_lse(g, torch.tensor([True, False]))
    assert float(out[0]) == 0.0 and abs(float(out[1]) - np.log(np.exp(3) + np.exp(4))) < 1e-12


def test_naive_backup_rejects_unknown_kind():
    with pytest.raises(ValueError, match="backup"):
        L.naive_q_residual(_t([0.0]), _t([0.0]), _t([[0.0, 1.0]]), torch.tensor([False]), 1.0, backup="mean")


def test_every_loss_family_is_one_module_reexported_from_learners_losses():
    import importlib

    from mdpsandbox.learners import distributional_td, gflownet, qsharp

    families = ("common", "value", "policy", "gflownet", "distributional", "qsharp")
    seen = set()
    for fam in families:
        mod = importlib.import_module(f"mdpsandbox.learners.losses.{fam}")
        for name in mod.__all__:
            assert getattr(L, name) is getattr(mod, name), (fam, name)
            assert getattr(mod, name).__module__ == mod.__name__, (fam, name)
            seen.add(name)
    assert seen == set(L.__all__)
    # the learner modules keep the names they had before the losses were grouped
    for name in ("fm_residual", "db_loss", "tb_residual", "subtb_loss", "zvar_loss", "check_lambda"):
        assert getattr(gflownet, name) is getattr(L, name)
    for name in ("categorical_td_target", "categorical_cross_entropy", "quantile_huber_loss", "hl_gauss_target"):
        assert getattr(distributional_td, name) is getattr(L, name)
    for name in ("bernoulli_nll", "histogram_nll", "cd_squared_loss", "histogram_targets"):
        assert getattr(qsharp, name) is getattr(L, name)
