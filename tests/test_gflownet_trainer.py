"""GFlowNet losses in the shared trainer on token trees (docs/math.md §8): with R(x) = π_ref(x) e^{R_seq(x)/β}
the GFlowNet fixed point is the KL-regularised optimum — P_F = π*_β and log Z = V*(root)/β — checked
against ``solve(env, beta)`` and brute-force enumeration of the complete sequences."""
import json

import numpy as np
import pytest
import torch

import mdpsandbox as ms
from mdpsandbox._math import log_softmax, logsumexp
from mdpsandbox.cli import main
from mdpsandbox.envs.dag import tree_dag
from mdpsandbox.learners import ALGORITHMS, PrefixMLP, TabularLogits, get_algorithm, train
from mdpsandbox.learners.gflownet import LOSSES, enumerate_trajectories, sample_trajectories

BETA = 0.5
GFN = ("tb", "db", "subtb", "fm", "zvar")


@pytest.fixture(scope="module")
def env():
    return ms.TokenMDP.random(3, 3, seed=4)


@pytest.fixture(scope="module")
def exact(env):
    return ms.solve(env, beta=BETA)


def _brute_force_log_z(env, beta):
    """log Σ_x π_ref(x) e^{R_seq(x)/β} over every complete sequence (independent of the solvers)."""
    return float(logsumexp(env.leaf_log_probs() + env.leaf_returns() / beta))


@pytest.fixture(scope="module")
def trained(env, exact):
    return {alg: train(alg, env, beta=BETA, steps=4, optimizer="lbfgs", eval_every=4, progress=False,
                       solution=exact) for alg in GFN}


def _model_log_z(alg, res):
    """log Z read off the trained parameters (ZVar has none: its reported estimate is mean ζ)."""
    with torch.no_grad():
        if alg == "tb":
            return float(res.model.gflownet.log_z_param)
        if alg in ("db", "subtb"):
            return float(res.model.all_values()[0, 0])  # log F(root)
        if alg == "fm":
            return float(logsumexp(res.logits[0]))       # total outflow of the root
    return res.final["log_z"]


def test_every_gflownet_loss_is_registered_with_its_alias():
    for loss in LOSSES:
        spec = get_algorithm(loss)
        assert spec.convention == "policy" and ALGORITHMS[f"gflownet-{loss}"] is spec


@pytest.mark.parametrize("alg", GFN)
def test_gflownet_forward_policy_equals_kl_optimal_policy(alg, env, exact, trained):
    res = trained[alg]
    pol = np.exp(log_softmax(res.logits, axis=-1))
    tv = 0.5 * np.abs(pol - exact.policy).sum(axis=-1)[env.reachable]
    assert tv.max() < 1e-3
    assert res.final["tv_max"] == pytest.approx(tv.max(), abs=1e-12)  # recorded by the shared compare()
    assert res.history[0]["tv_max"] > 0.05  # it started away from π*


@pytest.mark.parametrize("alg", GFN)
def test_gflownet_log_z_equals_v_star_root_over_beta(alg, env, exact, trained):
    res = trained[alg]
    v_over_beta = exact.v[0] / BETA
    assert v_over_beta == pytest.approx(_brute_force_log_z(env, BETA), abs=1e-10)  # the identity itself
    assert abs(_model_log_z(alg, res) - v_over_beta) < 1e-3
    assert res.final["log_z"] == pytest.approx(_model_log_z(alg, res), abs=1e-12)
    assert res.final["log_z_error"] < 1e-3


@pytest.mark.parametrize("alg", GFN)
def test_terminating_distribution_is_proportional_to_reward(alg, env, trained):
    res = trained[alg]
    p_f = np.exp(env.leaf_log_probs(np.exp(log_softmax(res.logits, axis=-1))))  # product along each path
    log_r = env.leaf_log_probs() + env.leaf_returns() / BETA
    target = np.exp(log_r - logsumexp(log_r))
    tv = 0.5 * np.abs(p_f - target).sum()
    assert tv < 1e-3
    assert res.final["tv_terminal"] == pytest.approx(tv, abs=1e-12)


@pytest.mark.parametrize("alg", ["db", "subtb"])
def test_db_subtb_log_flow_equals_log_ref_prefix_plus_v_star_over_beta(alg, env, exact, trained):
    # F(s) = Σ_{x below s} π_ref(x) e^{R(x)/β} = π_ref(s) e^{V*(s)/β}   (γ = 1)
    want = env.node_log_probs() + exact.v / BETA
    with torch.no_grad():
        got = trained[alg].model.all_values()[0].numpy()
    assert np.max(np.abs(got - want)[env.reachable]) < 1e-3
    assert trained[alg].final["log_flow_error"] < 1e-3


def test_fm_logits_equal_edge_log_flows(env, exact, trained):
    # log F(s→s·a) = log π_ref(s) + log π_ref(a|s) + Q*(s, a)/β
    want = env.node_log_probs()[:, None] + env.log_ref_policy + exact.q / BETA
    assert np.max(np.abs(trained["fm"].logits - want)[env.reachable]) < 1e-3


def test_trainer_tb_loss_equals_brute_force_trajectory_balance(env):
    # random logits and log Z; the loss the trainer optimises is mean_x (log Z + log P_F(x) − log R(x))²
    rng = np.random.default_rng(0)
    g = rng.normal(size=env.shape)
    model = TabularLogits(env, init=g)
    res = train("tb", env, beta=BETA, model=model, steps=1, optimizer="sgd", lr=1e-300, eval_every=1,
                progress=False)
    log_pf = env.leaf_log_probs(np.exp(log_softmax(g, axis=-1)))
    log_r = env.leaf_log_probs() + env.leaf_returns() / BETA
    log_z = 0.0  # TB's log Z starts at 0 (an SGD step of 1e-300 leaves it there)
    assert res.history[0]["loss"] == pytest.approx(np.mean((log_z + log_pf - log_r) ** 2), rel=1e-12)


def test_off_policy_sampled_trajectories_reach_the_same_fixed_point(env, exact):
    dag = tree_dag(env)
    uniform = np.where(dag.valid, 0.0, -np.inf)
    uniform -= logsumexp(uniform, axis=1)[:, None]
    data = sample_trajectories(dag, uniform, 400, seed=1, epsilon=0.5)  # the sampler is not P_F
    assert len(np.unique(data.objects)) == dag.n_objects
    res = train("tb", env, beta=BETA, data=data, steps=4, optimizer="lbfgs", eval_every=4, progress=False,
                solution=exact)
    assert res.final["tv_max"] < 1e-3 and res.final["log_z_error"] < 1e-3


def test_neural_model_instance_is_trained_in_place(env, exact):
    net = PrefixMLP(3, 3, hidden=16, seed=0, base_logits=env.log_ref_policy)
    res = train("tb", env, beta=BETA, model=net, steps=5, optimizer="lbfgs", eval_every=5, progress=False,
                solution=exact)
    assert res.model is net and hasattr(net, "gflownet")
    assert res.final["tv_max"] < 1e-3 < res.history[0]["tv_max"] and res.final["log_z_error"] < 1e-3


def test_bad_input_raises_naming_the_argument(env):
    kw = dict(beta=BETA, steps=1, progress=False)
    with pytest.raises(ValueError, match="gamma"):
        train("tb", ms.TokenMDP.random(2, 2, seed=0, gamma=0.9), **kw)
    with pytest.raises(ValueError, match="single prompt"):
        train("tb", ms.TokenMDP.random(2, 2, seed=0, n_prompts=2), **kw)
    with pytest.raises(ValueError, match="lam"):
        train("subtb", env, lam=0.0, **kw)
    with pytest.raises(ValueError, match="batch_size"):
        train("zvar", env, batch_size=1, **kw)
    with pytest.raises(ValueError, match="value_head"):
        train("db", env, model=TabularLogits(env), **kw)
    with pytest.raises(ValueError, match="beta"):
        train("fm", env, beta=0.0, steps=1, progress=False)
    other = ms.TokenMDP.random(2, 3, seed=0)
    with pytest.raises(ValueError, match="trajectories"):
        train("tb", env, data=enumerate_trajectories(tree_dag(other)), **kw)


def test_learn_tb_cli_prints_summary(capsys):
    rc = main(["learn", "tb", "--vocab", "2", "--horizon", "3", "--steps", "6", "--optimizer", "lbfgs",
               "--eval-every", "3"])
    out = capsys.readouterr().out
    assert rc == 0 and "algorithm=tb" in out and "convention=policy" in out and "TV max" in out
    rc = main(["learn", "gflownet-subtb", "--vocab", "2", "--horizon", "2", "--steps", "6", "--optimizer", "lbfgs",
               "--eval-every", "3", "--json"])
    hist = json.loads(capsys.readouterr().out)
    assert rc == 0 and [h["step"] for h in hist] == [0, 3, 6]
    assert hist[-1]["tv_max"] < 1e-3 and hist[-1]["log_z_error"] < 1e-3


def test_train_front_door_runs_gflownets_on_a_dag():
    """`train("tb" | "db", dag, log_reward=...)` = train_gflownet, with log P_F, log Z, p_F next to the exact flows."""
    from mdpsandbox.envs.dag import multiset_dag, random_log_reward
    from mdpsandbox.solvers.flows import flows, tv_distance

    dag = multiset_dag(3, 2)
    lr = random_log_reward(dag, seed=0)
    exact = flows(dag, lr)
    for loss in ("tb", "db"):
        res = train(loss, dag, log_reward=lr, steps=300, sampling="enumerate", progress=False)
        assert res.exact["log_z"] == pytest.approx(exact.log_z, abs=1e-12)
        np.testing.assert_allclose(res.exact["terminating"], exact.target, atol=1e-15)
        errs = res.errors()
        assert errs["log_z"] < 1e-3 and errs["terminating"] < 1e-3, errs
        assert res.final["tv"] == pytest.approx(tv_distance(res.learned["terminating"], exact.target), abs=1e-12)
    assert "log_flow" in res.learned
    with pytest.raises(ValueError, match="log_reward"):
        train("tb", dag, steps=1)
    with pytest.raises(ValueError, match="unknown options"):
        train("tb", dag, log_reward=lr, steps=1, temperatur=2.0)


def test_zvar_log_z_history_is_finite_from_step_zero():
    """ZVar's log Z read-out (batch mean of log R + log P_B − log P_F) exists at every recorded step,
    step 0 included (it was NaN there), and equals that mean on the enumerated set for the initial model."""
    import numpy as np
    from mdpsandbox.envs.dag import multiset_dag, random_log_reward
    from mdpsandbox.learners.gflownet import train_gflownet

    dag = multiset_dag(3, 2)
    lr = random_log_reward(dag, seed=0)
    res = train_gflownet(dag, lr, loss="zvar", n_steps=5, eval_every=1, batch_size=8, seed=0, progress=False)
    assert np.all(np.isfinite(res.log_z)), res.log_z
    full = train_gflownet(dag, lr, loss="zvar", n_steps=1, eval_every=1, sampling="enumerate", seed=0,
                          progress=False)
    # initial tabular model: uniform P_F over valid actions; ZVar's estimate on all trajectories
    from mdpsandbox.learners.gflownet import enumerate_trajectories
    tr = enumerate_trajectories(dag)
    logpf0 = np.where(dag.valid, -np.log(dag.valid.sum(1, keepdims=True)), 0.0)
    ex = full.exact
    per = []
    for k in range(len(tr.objects)):
        st, ac = tr.states[k, :-1], tr.actions[k]
        m = ac >= 0
        per.append(lr[tr.objects[k]] + np.sum(ex.log_pb[st[m], ac[m]]) - np.sum(logpf0[st[m], ac[m]]))
    np.testing.assert_allclose(full.log_z[0], np.mean(per), rtol=1e-12)
