"""Learners reach the exact KL-regularised solution (docs/math.md §5, §9), fail where they should, and
refuse bad input."""
import numpy as np
import pytest
import torch

from mdpsandbox import TokenMDP, solve
from mdpsandbox.learners import (
    PrefixMLP, PrefixTransformer, TabularLogits, algorithm_names, all_sequences, behaviour_mixture, full_coverage,
    make_model, preference_pairs, reference_lm, rollouts, train, tree_from_lm,
)
from mdpsandbox.learners.trainer import NonFiniteLossError

torch.set_num_threads(1)
BETA = 0.5
FAST = dict(optimizer="lbfgs", steps=15, progress=False)


def _env(reward, seed=0):
    return TokenMDP.random(3, 3, seed=seed, offset_scale=10.0, reward=reward)


@pytest.fixture(scope="module", params=["terminal", "dense"])
def env(request):
    return _env(request.param)


def _fit(alg, env, **kw):
    r = train(alg, env, beta=BETA, eval_every=FAST["steps"], **{**FAST, **kw})
    return r


def test_shiq_fixed_point_is_ref_plus_q_over_beta(env):
    sol = solve(env, beta=BETA)
    for alg in ("shiq", "shiq_l3"):
        r = _fit(alg, env)
        assert np.max(np.abs(r.logits - env.ref_logits - sol.q / BETA)) < 1e-4
        # β(LSE g − LSE ℓ_ref) = V*
        lse = np.log(np.exp(r.logits - r.logits.max(1, keepdims=True)).sum(1)) + r.logits.max(1)
        assert np.max(np.abs(BETA * (lse - env.lse_ref) - sol.v)) < 1e-4


def test_l2_fixed_point_is_log_ref_plus_q_over_beta(env):
    sol = solve(env, beta=BETA)
    r = _fit("shiq_l2", env)
    assert np.max(np.abs(r.logits - env.log_ref_policy - sol.q / BETA)) < 1e-4


@pytest.mark.parametrize("alg", ["kl_q", "soft_q", "pcl", "dro"])
def test_value_and_consistency_learners_reach_pi_star(env, alg):
    r = _fit(alg, env)
    assert r.final["tv_max"] < 1e-4, r.final


def test_soft_q_with_lagged_target_network_reaches_q_star(env):
    r = train("soft_q", env, beta=BETA, steps=400, lr=0.05, target_update=5, eval_every=400, progress=False)
    assert r.final["tv_max"] < 1e-4 and r.final["logit_error"] < 1e-3


def test_dpo_reaches_tilted_reference_over_leaves():
    env = _env("terminal")
    beta = 1.0  # BT labels at temperature 1
    r = train("dpo", env, beta=beta, eval_every=15, **FAST)
    pi = np.exp(r.logits - r.logits.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)
    logp = env.leaf_log_probs(pi)
    target = env.leaf_log_probs() + env.leaf_returns() / beta
    target -= np.log(np.exp(target - target.max()).sum()) + target.max()
    assert np.max(np.abs(np.exp(logp) - np.exp(target))) < 1e-3


def test_naive_logits_as_q_does_not_reach_pi_star(env):
    r = _fit("naive", env)
    assert r.final["loss"] < 1e-8  # it converged — to the wrong fixed point
    assert r.final["tv_max"] > 0.05


def test_partial_coverage_pins_only_visited_pairs():
    env = _env("dense")
    data = rollouts(env, n=4, seed=0)  # a few episodes: most pairs unvisited
    r = train("shiq_l3", env, beta=BETA, data=data, eval_every=15, **FAST)
    tr = data.to_transitions()
    visited = tr.visited()[0]
    touched = np.zeros(env.n_nodes, bool)
    touched[tr.nodes] = True
    touched[tr.next_nodes[tr.next_nodes >= 0]] = True
    # the loss is ~0 on the data: every visited pair satisfies its own Bellman residual ...
    g, ref = r.logits, env.ref_logits
    lse = lambda x: np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1)) + x.max(-1)  # noqa: E731
    nxt = np.maximum(tr.next_nodes, 0)
    v_next = np.where(tr.done, 0.0, BETA * (lse(g[nxt]) - lse(ref[nxt])))
    res = BETA * (g[tr.nodes, tr.tokens] - ref[tr.nodes, tr.tokens]) - tr.rewards - v_next
    assert np.max(np.abs(res)) < 1e-6
    # ... nodes no data touches keep their initial logits exactly ...
    assert np.array_equal(g[~touched], ref[~touched])
    # ... and the unvisited pairs are not pinned to Q*: the solution is not the exact one
    sol = solve(env, beta=BETA)
    err = np.abs(g - ref - sol.q / BETA)
    assert err[~visited].max() > 1e-2


def test_offline_mixture_with_full_support_converges_like_full_coverage():
    env = _env("terminal")
    data = behaviour_mixture(env, ["ref", "uniform"], [0.5, 0.5], n=400, seed=1)
    assert data.visited()[0].all()
    r = train("shiq", env, beta=BETA, data=data, eval_every=15, **FAST)
    assert r.final["logit_error"] < 1e-4


def test_training_is_deterministic_for_a_seed():
    env = _env("dense")
    kw = dict(beta=BETA, model="mlp", steps=5, lr=0.01, progress=False, eval_every=5)
    a, b = train("shiq", env, seed=3, **kw), train("shiq", env, seed=3, **kw)
    np.testing.assert_array_equal(a.logits, b.logits)
    c = train("shiq", env, seed=4, **kw)
    assert not np.array_equal(a.logits, c.logits)


def test_tiny_transformer_reaches_pi_star():
    env = TokenMDP.random(2, 3, seed=2, offset_scale=10.0, reward="terminal")
    r = train("shiq", env, beta=BETA, model="transformer", optimizer="lbfgs", steps=10, eval_every=10, progress=False)
    assert r.final["tv_max"] < 0.02, r.final


def test_fine_tuning_a_reference_lm_literally():
    lm = reference_lm(2, 3, seed=0)
    env = tree_from_lm(lm, "terminal", seed=0)
    np.testing.assert_allclose(env.ref_logits, lm.all_logits()[0].detach().numpy())
    import copy
    student = copy.deepcopy(lm)
    r = train("shiq", env, beta=BETA, model=student, optimizer="lbfgs", steps=10, eval_every=10, progress=False)
    assert r.history[0]["loss"] > 0 and r.final["tv_max"] < 0.02


def test_models_agree_between_node_trajectory_and_whole_tree_views():
    env = TokenMDP.random(3, 4, seed=0, n_prompts=2)
    tr = env.sample(None, 6, seed=0)
    for m in (TabularLogits(env), PrefixMLP(3, 4, 2, seed=1), PrefixTransformer(3, 4, 2, seed=1)):
        A = m.all_logits()
        nodes = torch.as_tensor(tr.nodes).clamp(min=0)
        T = m.trajectory_logits(tr.nodes, tr.prompts)
        want = A[torch.as_tensor(tr.prompts)[:, None], nodes]
        mask = torch.as_tensor(tr.nodes >= 0)
        assert torch.allclose(T[mask], want[mask], atol=1e-10)


def test_history_records_errors_against_exact_solution():
    env = _env("dense")
    r = train("shiq_l3", env, beta=BETA, steps=20, eval_every=5, optimizer="adam", progress=False)
    assert [h["step"] for h in r.history] == [0, 5, 10, 15, 20]
    for k in ("logit_error", "tv_mean", "tv_max", "kl_mean", "kl_max", "value_error", "loss"):
        assert all(np.isfinite(h[k]) for h in r.history)
    assert r.history[-1]["logit_error"] < r.history[0]["logit_error"]
    assert r.logits.shape == (env.n_nodes, env.vocab_size)


# ---------------------------------------------------------------------- bad input
def test_bad_input_is_refused_before_work():
    env = _env("terminal")
    with pytest.raises(ValueError, match="beta"):
        train("shiq", env, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        train("shiq", env, beta=-1.0)
    with pytest.raises(ValueError, match="valid algorithms: .*shiq"):
        train("shiqq", env, beta=1.0)
    with pytest.raises(ValueError, match="tabular, mlp, transformer"):
        train("shiq", env, beta=1.0, model="rnn")
    with pytest.raises(ValueError, match="steps"):
        train("shiq", env, beta=1.0, steps=0)
    with pytest.raises(ValueError, match="optimizer"):
        train("shiq", env, beta=1.0, optimizer="rmsprop")
    other = TokenMDP.random(4, 3, seed=0)
    with pytest.raises(ValueError, match="dataset was built for a tree"):
        train("shiq", env, beta=1.0, data=all_sequences(other))
    same_shape = TokenMDP.random(3, 3, seed=5, reward="dense")
    with pytest.raises(ValueError, match="another tree"):
        train("shiq_l3", env, beta=1.0, data=full_coverage(same_shape))
    with pytest.raises(ValueError, match="Preferences"):
        train("dpo", env, beta=1.0, data=full_coverage(env))
    with pytest.raises(ValueError, match="gamma == 1"):
        train("dpo", TokenMDP.random(2, 2, seed=0, gamma=0.9), beta=1.0)
    with pytest.raises(ValueError, match="model was built for a tree"):
        train("shiq", env, beta=1.0, model=PrefixMLP(2, 3))
    with pytest.raises(ValueError, match="value_head=True"):
        train("dro", env, beta=1.0, model=PrefixMLP(3, 3))


def test_nan_loss_stops_with_the_step_named():
    env = _env("dense")
    with pytest.raises(NonFiniteLossError, match="step"):
        train("naive", env, beta=1.0, optimizer="sgd", lr=1e30, steps=50, progress=False)


def test_registry_lists_the_learners():
    names = algorithm_names()
    for a in ("naive", "kl_q", "soft_q", "shiq_l2", "shiq_l3", "shiq", "pcl", "dpo", "dro"):
        assert a in names


# ---------------------------------------------------------------------- the training front door (issue 12 §3)
def test_default_shiq_reaches_tv_1e_4():
    """`train("shiq", env)` with every default (β = 1, full data, auto → full-batch L-BFGS) on a V = 3,
    H = 4 tree reaches policy TV ≤ 1e-4 (observed ~1e-8 in ≤ 5 steps)."""
    env = TokenMDP.random(3, 4, seed=0)
    r = train("shiq", env, progress=False)
    assert r.final["tv_max"] <= 1e-4
    assert r.beta == 1.0 and not r.far_from_exact and not r.negative_control
    assert r.steps_run <= 50


def test_learned_arrays_sit_next_to_their_exact_counterparts(env):
    sol = solve(env, beta=BETA)
    r = _fit("shiq", env)
    assert set(r.learned) >= {"q", "v", "policy"} and set(r.exact) >= {"q", "v", "policy"}
    np.testing.assert_array_equal(r.exact["q"], sol.q)
    # q read off the logits = β(g − ℓ_ref), v = β(LSE g − LSE ℓ_ref): the defining identities
    np.testing.assert_allclose(r.learned["q"], BETA * (r.logits - env.ref_logits), atol=1e-12)
    assert r.errors()["q"] < 1e-4 and r.errors()["v"] < 1e-4 and r.errors()["policy"] < 1e-4
    # a value head (PCL) is returned with the exact V* as its counterpart
    p = _fit("pcl", env)
    assert p.learned["value_head"].shape == sol.v.shape and p.errors()["value_head"] < 1e-4
    # convention "q": q = logits
    k = _fit("kl_q", env)
    np.testing.assert_array_equal(k.learned["q"], k.logits)


def test_negative_control_says_so_when_far_from_exact():
    from mdpsandbox.learners import NegativeControlWarning

    env = _env("dense")
    with pytest.warns(NegativeControlWarning, match="naive is a negative control"):
        r = _fit("naive", env)
    assert r.negative_control and r.far_from_exact and "negative control" in r.notes[-1]
    assert r.final["tv_max"] > 1e-3
    # a learner that converges raises no such flag
    ok = _fit("shiq", env)
    assert not ok.far_from_exact and not ok.negative_control


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.float16, "float64"])
def test_integer_or_non_float_dtype_is_a_clear_value_error(dtype):
    with pytest.raises(ValueError, match="dtype must be torch.float64 or torch.float32"):
        train("shiq", _env("terminal"), dtype=dtype, steps=1, progress=False)


def test_float32_training_still_reaches_pi_star():
    r = train("shiq", _env("terminal"), beta=BETA, dtype=torch.float32, steps=15, optimizer="lbfgs",
              progress=False)
    assert r.final["tv_max"] < 1e-3


def test_auto_optimizer_is_lbfgs_full_batch_and_adam_with_an_lr():
    env = _env("terminal")
    a = train("shiq_l3", env, beta=BETA, progress=False)
    assert a.steps_run <= 50 and a.final["tv_max"] < 1e-6
    b = train("shiq_l3", env, beta=BETA, lr=0.05, steps=3, eval_every=1, progress=False)
    assert [h["step"] for h in b.history] == [0, 1, 2, 3]  # Adam: every step runs


def test_progress_logs_one_line_per_evaluation(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="mdpsandbox.learners"):
        train("shiq_l3", _env("terminal"), beta=BETA, optimizer="lbfgs", steps=4, eval_every=2, progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "mdpsandbox.learners"]
    assert len(lines) == 2 and all("train shiq_l3 step" in ln and "tv_max" in ln for ln in lines)


def test_every_learner_family_goes_through_train():
    import mdpsandbox as ms
    from mdpsandbox.learners import DOORS, algorithm_names

    names = set(algorithm_names())
    assert {"c51", "qr", "hl_gauss", "qsharp", "tb", "db", "subtb", "fm", "zvar", "shiq", "pcl", "dpo"} <= names
    assert {"c51", "qr", "hl_gauss", "qsharp", "tb"} <= set(DOORS)
    # C51 on an (MDP, policy): learned law (S, A, m) next to the exact categorical fixed point
    mdp = ms.garnet(4, 2, 2, gamma=0.8, seed=0)
    pi = np.full((4, 2), 0.5)
    r = train("c51", mdp, policy=pi, atoms=21, steps=2000)
    assert r.learned["probs"].shape == r.exact["probs"].shape == (4, 2, 21)
    np.testing.assert_allclose(r.exact["mean"], ms.evaluate(mdp, pi).q, atol=1e-9)
    assert r.final["sup_w1"] <= 4 * r.final["plugin_sup_w1"] + 1e-3 * 5
    with pytest.raises(ValueError, match="policy="):
        train("c51", mdp)
    with pytest.raises(ValueError, match="not used by c51"):
        train("c51", mdp, policy=pi, optimizer="adam")
