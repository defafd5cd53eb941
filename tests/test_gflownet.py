"""GFlowNet losses and training (docs/math.md §8): residuals vanish at the exact flows, SubTB contains DB and
TB, and tabular training reaches the exact log Z, log F and R/Z (TV computed by pushing mass)."""
import math

import numpy as np
import pytest
import torch

import mdpsandbox as m
from mdpsandbox.envs.dag import multiset_dag, random_log_reward, tree_dag
from mdpsandbox.learners.gflownet import (GFlowNetConfig, TabularGFlowNet, TreeModelGFlowNet, _Tables,
                                          db_residual, enumerate_trajectories, fm_residual, gflownet_loss,
                                          sample_trajectories, subtb_loss, subtb_residuals, tb_residual,
                                          train_gflownet, zvar_loss)
from mdpsandbox.learners.models import TabularLogits
from mdpsandbox.solvers.flows import flows, terminating_distribution, tv_distance


def _tree():
    env = m.TokenMDP.random(2, 3, seed=0)
    dag = tree_dag(env)
    return dag, random_log_reward(dag, seed=1)


def _exact_model(dag, fl):
    model = TabularGFlowNet(dag)
    with torch.no_grad():
        model.logits.copy_(torch.as_tensor(np.where(dag.valid, fl.log_pf, 0.0)))
        model.log_flow.copy_(torch.as_tensor(fl.log_flow))
        model.log_z_param.fill_(fl.log_z)
    return model


def _traj_terms(model, batch, tables):
    st = torch.as_tensor(batch.states)
    ac = torch.as_tensor(batch.actions)
    L = torch.as_tensor(batch.lengths)
    mask = ac >= 0
    s, a = st[:, :-1].clamp(min=0), ac.clamp(min=0)
    lpf = torch.where(mask, model.log_pf_table()[s, a], 0.0)
    lpb = torch.where(mask, tables.log_pb[s, a], 0.0)
    lr = tables.log_reward[torch.as_tensor(batch.objects)]
    logF = model.log_flow_table()[st.clamp(min=0)]
    logF = torch.where(torch.nn.functional.one_hot(L, st.shape[1]).bool(), lr[:, None], logF)
    return lpf, lpb, lr, logF, L, mask


@pytest.mark.parametrize("env_kind,kind", [("tree", "uniform"), ("dag", "uniform"), ("dag", "path_count")])
def test_all_residuals_vanish_at_the_exact_flows(env_kind, kind):
    if env_kind == "tree":
        dag, lr = _tree()
    else:
        dag = multiset_dag(3, 3)
        lr = random_log_reward(dag, seed=2)
    fl = flows(dag, lr, log_pb=kind)
    model = _exact_model(dag, fl)
    tables = _Tables(dag, fl.log_reward, fl.log_pb, torch.float64)
    batch = enumerate_trajectories(dag)
    with torch.no_grad():
        lpf, lpb, lrt, logF, L, mask = _traj_terms(model, batch, tables)
        assert tb_residual(model.log_z(), lpf.sum(1), lrt, lpb.sum(1)).abs().max() < 1e-12
        assert db_residual(logF[:, :-1], lpf, logF[:, 1:], lpb)[mask].abs().max() < 1e-12
        assert subtb_loss(logF, lpf, lpb, L, 0.9).max() < 1e-24
        assert zvar_loss(lpf.sum(1), lrt, lpb.sum(1)) < 1e-24
        # FM with the exact edge flows log F(s→s') = log F(s') + log P_B(s|s') at every s' ≠ s0
        model.logits.copy_(torch.as_tensor(np.where(dag.valid, fl.log_edge_flow, 0.0)))
        assert gflownet_loss(model, batch, "fm", tables) < 1e-24
        s = np.arange(1, dag.n_states)
        edge = model.log_edge_flow_table()
        inflow = edge[tables.parent_state[s], tables.parent_action[s]].masked_fill(~tables.parent_mask[s], -math.inf)
        assert fm_residual(inflow, edge[s, :-1], tables.stop_lr[s]).abs().max() < 1e-12


def test_subtb_contains_db_on_single_steps_and_tb_on_the_whole_path():
    dag = multiset_dag(2, 3)
    lr = random_log_reward(dag, seed=3)
    fl = flows(dag, lr)
    model = TabularGFlowNet(dag)
    with torch.no_grad():  # an arbitrary (non-optimal) model
        g = torch.Generator().manual_seed(0)
        model.logits.normal_(generator=g)
        model.log_flow.normal_(generator=g)
    tables = _Tables(dag, fl.log_reward, fl.log_pb, torch.float64)
    batch = enumerate_trajectories(dag)
    with torch.no_grad():
        lpf, lpb, lrt, logF, L, mask = _traj_terms(model, batch, tables)
        d = subtb_residuals(logF, lpf, lpb)
        db = db_residual(logF[:, :-1], lpf, logF[:, 1:], lpb)
        T = lpf.shape[1]
        for t in range(T):
            ok = mask[:, t]
            assert torch.allclose(d[ok, t, t + 1], db[ok, t], atol=1e-12)
        tb = tb_residual(logF[:, 0], lpf.sum(1), lrt, lpb.sum(1))  # TB with Z := F(s0)
        assert torch.allclose(d[torch.arange(len(L)), 0, L], tb, atol=1e-12)
        # λ-weighted mean written out pair by pair
        lam = 0.7
        loss = subtb_loss(logF, lpf, lpb, L, lam)
        for b in range(len(L)):
            n = int(L[b])
            w = [(lam ** (j - i), float(d[b, i, j]) ** 2) for i in range(n + 1) for j in range(i + 1, n + 1)]
            assert float(loss[b]) == pytest.approx(sum(a * c for a, c in w) / sum(a for a, _ in w), rel=1e-12)


def test_zvar_is_the_batch_variance_of_log_partition_estimates():
    a, r, b = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    zeta = r + b - a
    assert float(zvar_loss(a, r, b)) == pytest.approx(float(zeta.var(unbiased=False)), rel=1e-12)


def test_tb_tabular_tree_reaches_log_z_and_target():
    dag, lr = _tree()
    res = train_gflownet(dag, lr, loss="tb", sampling="enumerate", n_steps=300, lr=0.1, eval_every=100)
    assert abs(res.final_log_z - math.log(np.exp(lr).sum())) < 1e-3
    assert res.final_tv < 1e-3
    # the reported TV is the exact push-forward of the learned policy
    assert res.final_tv == pytest.approx(tv_distance(terminating_distribution(dag, res.final_log_pf),
                                                     res.exact.target), abs=1e-12)


@pytest.mark.parametrize("loss", ["db", "subtb"])
def test_db_and_subtb_learn_the_exact_log_flows(loss):
    dag, lr = _tree()
    res = train_gflownet(dag, lr, loss=loss, sampling="enumerate", eval_every=500,
                         lr={"db": 0.05, "subtb": 0.1}[loss], n_steps={"db": 800, "subtb": 400}[loss])
    learned = res.model.log_flow_table().detach().numpy()
    assert np.max(np.abs(learned - res.exact.log_flow)) < 1e-3
    assert res.final_tv < 1e-3


def test_fm_on_the_dag_recovers_z_and_target_only():
    dag = multiset_dag(3, 3)
    lr = random_log_reward(dag, seed=4)
    res = train_gflownet(dag, lr, loss="fm", sampling="enumerate", n_steps=400, lr=0.1, eval_every=100)
    assert abs(res.final_log_z - math.log(np.exp(lr).sum())) < 1e-3     # F(s0) = Z
    assert res.final_tv < 1e-3                                            # p = R/Z


def test_zvar_learns_target_without_a_z_parameter():
    dag = multiset_dag(2, 3)
    lr = random_log_reward(dag, seed=5)
    res = train_gflownet(dag, lr, loss="zvar", sampling="enumerate", n_steps=400, lr=0.1, eval_every=100)
    assert res.final_tv < 1e-3
    assert abs(res.final_log_z - res.exact.log_z) < 1e-3


def test_sampler_frequencies_match_the_exact_push_of_the_sampler():
    dag = multiset_dag(2, 3)
    rng = np.random.default_rng(0)
    lp = np.where(dag.valid, rng.normal(size=dag.valid.shape), -np.inf)
    lp -= np.log(np.exp(lp).sum(axis=1, keepdims=True))
    eps, temp = 0.3, 2.0
    mix = (1 - eps) * np.exp(lp / temp) / np.exp(lp / temp).sum(1, keepdims=True) + eps * dag.valid / dag.valid.sum(1, keepdims=True)
    exact = terminating_distribution(dag, np.log(np.where(dag.valid, mix, 1.0)) + np.where(dag.valid, 0, -np.inf))
    tr = sample_trajectories(dag, lp, 40_000, seed=1, epsilon=eps, temperature=temp)
    freq = np.bincount(tr.objects, minlength=dag.n_objects) / 40_000
    assert np.max(np.abs(freq - exact)) < 4 * np.sqrt(0.25 / 40_000)
    assert not np.allclose(tr.log_p_sampler, 0.0)


def test_off_policy_exploration_still_converges_to_r_over_z():
    dag, lr = _tree()
    res = train_gflownet(dag, lr, loss="tb", sampling="on_policy", epsilon=0.3, temperature=2.0,
                         batch_size=32, n_steps=400, lr=0.1, seed=0, eval_every=100)
    assert res.final_tv < 2e-2
    assert abs(res.final_log_z - res.exact.log_z) < 2e-2


def test_tree_model_from_learners_framework_trains_with_tb():
    env = m.TokenMDP.random(2, 3, seed=0)
    dag = tree_dag(env)
    lr = random_log_reward(dag, seed=1)
    model = TreeModelGFlowNet(TabularLogits(env, init="zero", value_head=True), dag)
    res = train_gflownet(dag, lr, loss="tb", model=model, sampling="enumerate", n_steps=300, lr=0.1,
                         eval_every=100)
    assert res.final_tv < 1e-3


def test_bad_input_raises_naming_the_argument():
    dag, lr = _tree()
    for lam in (0.0, -1.0):
        with pytest.raises(ValueError, match="lam"):
            train_gflownet(dag, lr, loss="subtb", lam=lam, n_steps=1)
        with pytest.raises(ValueError, match="lam"):
            subtb_loss(torch.zeros(1, 2), torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, dtype=torch.long), lam)
    with pytest.raises(ValueError, match="loss"):
        train_gflownet(dag, lr, loss="nope", n_steps=1)
    with pytest.raises(ValueError, match="epsilon"):
        sample_trajectories(dag, flows(dag, lr).log_pf, 4, epsilon=1.5)
    with pytest.raises(ValueError, match="temperature"):
        sample_trajectories(dag, flows(dag, lr).log_pf, 4, temperature=0.0)
    bad = lr.copy()
    bad[0] = -np.inf  # R(x) = 0
    with pytest.raises(ValueError, match="log_reward_floor"):
        train_gflownet(dag, bad, n_steps=1)
    res = train_gflownet(dag, bad, n_steps=1, log_reward_floor=-30.0)
    assert res.exact.log_reward[0] == -30.0
