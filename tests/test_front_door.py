"""One training front door (issue 12 §3): `train_gflownet` and `train_qsharp` are thin wrappers of
`mdpsandbox.learners.train` — same seed, bitwise the same learned arrays; their bodies call `train` and
run no loop; every name of `algorithm_names()` trains through `train`."""
import ast
import inspect
import textwrap
import warnings

import numpy as np
import pytest
import torch

import mdpsandbox as m
from mdpsandbox.envs.dag import multiset_dag, random_log_reward, tree_dag
from mdpsandbox.learners import TrainResult, algorithm_names, train
from mdpsandbox.learners import gflownet as gf
from mdpsandbox.learners import qsharp as qs
from mdpsandbox.solvers.flows import flows


def _dag():
    dag = multiset_dag(3, 2)
    return dag, random_log_reward(dag, seed=0)


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_gflownet(front, res):
    """`front` (a TrainResult of the DAG door) and `res` (a GFlowNetResult) hold bitwise the same run."""
    assert isinstance(front, TrainResult) and isinstance(front.raw, gf.GFlowNetResult)
    raw = front.raw
    np.testing.assert_array_equal(front.learned["log_pf"], res.final_log_pf)
    assert front.learned["log_z"] == res.final_log_z
    for f in ("steps", "tv", "log_z", "losses", "final_log_pf"):
        np.testing.assert_array_equal(getattr(raw, f), getattr(res, f), err_msg=f)
    a, b = _params(raw.model), _params(res.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if "log_flow" in front.learned:
        with torch.no_grad():
            np.testing.assert_array_equal(front.learned["log_flow"], res.model.log_flow_table().numpy())


# ---------------------------------------------------------------------- GFlowNets on a DAG
@pytest.mark.parametrize("loss", gf.LOSSES)
def test_train_gflownet_equals_train_on_the_dag_bitwise(loss):
    """On-policy sampling (the seed matters): wrapper ≡ front door, and the exact side is flows(dag, log R)."""
    dag, lr = _dag()
    kw = dict(n_steps=25, batch_size=8, eval_every=10, seed=3, epsilon=0.2)
    res = gf.train_gflownet(dag, lr, loss=loss, **kw)
    front = train(loss, dag, log_reward=lr, steps=25, batch_size=8, eval_every=10, seed=3, epsilon=0.2,
                  progress=False)
    _assert_same_gflownet(front, res)
    exact = flows(dag, lr)
    assert front.exact["log_z"] == exact.log_z
    np.testing.assert_array_equal(front.exact["terminating"], exact.target)
    # the seed is the config's (train's default seed=0 would give another run)
    other = train(loss, dag, log_reward=lr, steps=25, batch_size=8, eval_every=10, epsilon=0.2, progress=False)
    assert not np.array_equal(other.raw.losses, res.losses)


def test_train_gflownet_options_reach_train_config_model_callback_floor():
    """config=, a GFlowNetModel as model=, callback=, log_reward_floor= and config fields as keywords all
    go through train(); a TokenMDP tree trains on its tree_dag view."""
    dag, lr = _dag()
    lr = lr.copy()
    lr[0] = -np.inf  # R(x) = 0: needs the explicit floor
    cfg = gf.GFlowNetConfig(loss="db", n_steps=12, batch_size=6, lr=0.1, eval_every=4, seed=5)
    runs = []
    for via_train in (False, True):
        model, calls = gf.TabularGFlowNet(dag), []
        cb = lambda step, mdl, calls=calls: calls.append((step, mdl))  # noqa: E731
        if via_train:
            out = train("db", dag, log_reward=lr, config=cfg, model=model, seed=cfg.seed, progress=False,
                        log_reward_floor=-20.0, callback=cb, temperature=1.5)
        else:
            out = gf.train_gflownet(dag, lr, cfg, model=model, log_reward_floor=-20.0, callback=cb, temperature=1.5)
        res = out.raw if via_train else out
        assert res.model is model and [c[0] for c in calls] == list(range(12)) and all(c[1] is model for c in calls)
        assert res.exact.log_reward[0] == -20.0
        runs.append(out)
    _assert_same_gflownet(runs[1], runs[0])

    env = m.TokenMDP.random(2, 2, seed=0)
    tlr = random_log_reward(tree_dag(env), seed=1)
    res = gf.train_gflownet(env, tlr, loss="tb", n_steps=10, batch_size=4, seed=2)
    _assert_same_gflownet(train("tb", tree_dag(env), log_reward=tlr, steps=10, batch_size=4, seed=2,
                                progress=False), res)


def test_train_gflownet_dtype_and_bad_options_raise_naming_them():
    dag, lr = _dag()
    r32 = train("tb", dag, log_reward=lr, steps=3, batch_size=4, dtype=torch.float32, progress=False)
    assert all(p.dtype == torch.float32 for p in r32.model.parameters())
    with pytest.raises(ValueError, match="temperatur"):
        gf.train_gflownet(dag, lr, temperatur=2.0)
    with pytest.raises(ValueError, match="config"):
        gf.train_gflownet(dag, lr, {"loss": "tb"})
    with pytest.raises(ValueError, match="loss"):
        gf.train_gflownet(dag, lr, loss="nope")
    with pytest.raises(ValueError, match="callback"):
        train("tb", dag, log_reward=lr, callback=3)
    with pytest.raises(ValueError, match="solution"):
        train("tb", dag, log_reward=lr, solution=object())
    with pytest.raises(ValueError, match="loss"):
        train("tb", dag, log_reward=lr, loss="db")
    with pytest.raises(ValueError, match="model"):
        train("tb", dag, log_reward=lr, model="mlp")
    with pytest.raises(ValueError, match="seed"):
        gf.train_gflownet(dag, lr, seed=-1)


# ---------------------------------------------------------------------- Q♯ (Algorithm 1 rounds, both heads)
@pytest.mark.parametrize("kind, atoms", [("bernoulli", None), ("histogram", np.array([0.0, 0.5, 1.0]))])
def test_train_qsharp_equals_train_with_rounds_bitwise(kind, atoms):
    """Two rounds of Algorithm 1 (Q♯ and CD on the same data): wrapper ≡ train("qsharp", rounds=2), and
    the exact side is solve(env, beta=β)."""
    env, beta = m.bernoulli_tree(2, 3, seed=1), 0.5
    res = qs.train_qsharp(env, beta, kind=kind, atoms=atoms, n_rounds=2, n_per_round=64, steps=30, seed=2)
    front = train("qsharp", env, beta=beta, head=kind, atoms=atoms, rounds=2, n_per_round=64, steps=30, lr=0.1,
                  seed=2, progress=False)
    assert isinstance(front, TrainResult) and isinstance(front.raw, qs.QSharpResult)
    raw = front.raw
    assert raw.qsharp.kind == res.qsharp.kind == kind
    np.testing.assert_array_equal(front.learned["q"], beta * res.qsharp.q_over_beta(beta))
    np.testing.assert_array_equal(front.learned["policy"], res.qsharp_policy)
    np.testing.assert_array_equal(raw.cd_policy, res.cd_policy)
    for f in ("prompts", "nodes", "tokens", "targets", "rounds"):
        np.testing.assert_array_equal(getattr(raw.data, f), getattr(res.data, f), err_msg=f)
    assert [h["qsharp"] for h in raw.history] == [h["qsharp"] for h in res.history]
    assert [h["cd"] for h in raw.history] == [h["cd"] for h in res.history]
    assert raw.optimal == res.optimal
    sol = m.solve(env, beta=beta)
    np.testing.assert_array_equal(front.exact["q"], sol.q)
    np.testing.assert_array_equal(front.exact["policy"], sol.policy)


def test_train_qsharp_auto_kind_and_bad_options_raise_naming_them():
    """kind="auto" with atoms on a tree whose rewards are not 0/1 is the histogram head of train()."""
    from mdpsandbox.solvers.return_laws import return_distribution

    env = m.TokenMDP.random(2, 2, seed=0)
    atoms = np.unique(return_distribution(env).edge_values)  # every reward-to-go is an atom
    res = qs.train_qsharp(env, 1.0, atoms=atoms, n_rounds=1, n_per_round=32, steps=5, seed=0)
    front = train("qsharp", env, beta=1.0, head="histogram", atoms=atoms, rounds=1, n_per_round=32, steps=5,
                  seed=0, progress=False)
    assert res.qsharp.kind == "histogram"
    np.testing.assert_array_equal(front.raw.qsharp_policy, res.qsharp_policy)
    with pytest.raises(ValueError, match="kind"):
        qs.train_qsharp(env, 1.0, kind="gaussian", atoms=atoms)
    with pytest.raises(ValueError, match="n_rounds"):
        qs.train_qsharp(env, 1.0, atoms=atoms, n_rounds=0)
    with pytest.raises(ValueError, match="optimizer"):
        train("qsharp", env, rounds=1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="dtype"):
        train("qsharp", env, rounds=1, dtype=torch.float32)
    with pytest.raises(ValueError, match="model"):
        train("qsharp", env, head="histogram", model="transformer")
    with pytest.raises(ValueError, match="atoms"):
        train("qsharp", m.bernoulli_tree(2, 2, seed=0), head="bernoulli", atoms=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="n_per_round"):
        train("qsharp", env, rounds=1, n_per_round=0)
    with pytest.raises(ValueError, match="seed"):
        qs.train_qsharp(env, 1.0, atoms=atoms, seed=1.5)


# ---------------------------------------------------------------------- the wrappers are thin (source level)
def _tree_of(fn) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(fn)))


def _called_names(tree) -> set:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            out.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None)
    return out


@pytest.mark.parametrize("wrapper, engine", [(gf.train_gflownet, "_train_gflownet_engine"),
                                             (qs.train_qsharp, "_train_qsharp_engine")])
def test_public_wrappers_return_train_raw_and_run_no_loop(wrapper, engine):
    tree = _tree_of(wrapper)
    calls = _called_names(tree)
    assert "train" in calls and engine not in calls
    # the return value is `train(...).raw`
    rets = [n for n in ast.walk(tree) if isinstance(n, ast.Return)]
    assert len(rets) == 1 and isinstance(rets[0].value, ast.Attribute) and rets[0].value.attr == "raw"
    assert isinstance(rets[0].value.value, ast.Call) and rets[0].value.value.func.id == "train"
    # no optimiser loop: no for/while, no optimiser, no backward/step/fit
    assert not any(isinstance(n, (ast.For, ast.While, ast.AsyncFor, ast.comprehension)) for n in ast.walk(tree))
    assert not calls & {"backward", "step", "zero_grad", "Adam", "LBFGS", "SGD", "fit_head", "qsharp_rollouts",
                        "gflownet_loss", "sample_trajectories"}


@pytest.mark.parametrize("door, engine, wrapper", [(gf._dag_door, "_train_gflownet_engine", "train_gflownet"),
                                                   (qs._qsharp_door, "_train_qsharp_engine", "train_qsharp")])
def test_doors_run_the_engines_not_the_wrappers(door, engine, wrapper):
    calls = _called_names(_tree_of(door))
    assert engine in calls and wrapper not in calls and "train" not in calls


# ---------------------------------------------------------------------- every registered name trains through train
def _env_for(name):
    from mdpsandbox.learners.trainer import ALGORITHMS, DOORS

    if name in ("c51", "qr", "hl_gauss"):
        P = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
        return (P, np.array([0.0, 1.0, 0.5]), 0.5), {"steps": 20}
    if name in DOORS and name not in ALGORITHMS:  # pragma: no cover - every other door has a token-tree spec
        raise AssertionError(name)
    if name in ("qsharp", "cd"):
        return m.bernoulli_tree(2, 2, seed=0), {"steps": 2}
    spec = ALGORITHMS[name]
    env = m.TokenMDP.random(2, 2, seed=0) if spec.sequence_level else m.TokenMDP.random(2, 2, gamma=0.9, seed=0)
    return env, {"steps": 2}


def test_every_algorithm_name_trains_through_train():
    names = algorithm_names()
    assert {"tb", "db", "subtb", "fm", "zvar", "qsharp", "cd", "c51", "qr", "hl_gauss", "shiq"} <= set(names)
    dag, lr = _dag()
    for name in names:
        env, kw = _env_for(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = train(name, env, progress=False, **kw)
        assert isinstance(res, TrainResult) and res.learned and res.history, name
        assert set(res.learned) & set(res.exact), name
        if name in gf.LOSSES:  # the same name also runs on a DAG (its own loop)
            res = train(name, dag, log_reward=lr, steps=2, batch_size=4, progress=False)
            assert isinstance(res.raw, gf.GFlowNetResult), name
