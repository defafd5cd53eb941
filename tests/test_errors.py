"""Bad input raises ValueError naming the argument (DESIGN.md "Errors", issue 2), before any work;
extreme β and τ (1e-8 … 1e8) stay finite and match their limits."""
import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import mdpsandbox as ms
from mdpsandbox.envs import tree_bytes

S, A = 3, 2


def good_P():
    P = np.zeros((S, A, S))
    P[:, :, 0] = 0.5
    P[:, :, 1] = 0.5
    return P


def good_R():
    return np.arange(S * A, dtype=float).reshape(S, A) / 10


# ---------------------------------------------------------------------- TabularMDP
def _set(P, idx, row):
    P = P.copy()
    P[idx] = row
    return P


@pytest.mark.parametrize("mutate,match", [
    (lambda P: P * 1.1, "P must be stochastic"),
    (lambda P: _set(P, (0, 0), [-0.5, 1.0, 0.5]), "P must be non-negative"),
    (lambda P: np.where(np.arange(S * A * S).reshape(S, A, S) == 1, np.nan, P), "P must be finite"),
    (lambda P: P[:, :, :2], "P must have shape"),
])
def test_bad_transition_matrix_is_refused(mutate, match):
    with pytest.raises(ValueError, match=match):
        ms.TabularMDP(mutate(good_P()), good_R(), 0.9)


def test_negative_and_non_stochastic_sparse_P_are_refused():
    P2 = sp.csr_matrix(good_P().reshape(S * A, S))
    neg = P2.copy()
    neg.data[0] = -0.5
    neg.data[1] = 1.5
    with pytest.raises(ValueError, match="P must be non-negative"):
        ms.TabularMDP(neg, good_R(), 0.9)
    with pytest.raises(ValueError, match="P must be stochastic"):
        ms.TabularMDP(P2 * 0.5, good_R(), 0.9)
    with pytest.raises(ValueError, match="P"):
        ms.TabularMDP(sp.csr_matrix(np.ones((5, 3)) / 3), good_R(), 0.9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rewards_are_refused(bad):
    R = good_R()
    R[1, 1] = bad
    with pytest.raises(ValueError, match=r"R must be finite.*\(1, 1\)"):
        ms.TabularMDP(good_P(), R, 0.9)


@pytest.mark.parametrize("gamma", [-0.1, 1.0001, 2, np.nan, np.inf, "0.9", None, True])
def test_gamma_outside_unit_interval_is_refused(gamma):
    with pytest.raises(ValueError, match="gamma"):
        ms.TabularMDP(good_P(), good_R(), gamma)
    with pytest.raises(ValueError, match="gamma"):
        ms.TokenMDP.random(2, 2, gamma=gamma)


def test_gamma_one_without_reachable_termination_raises_instead_of_looping():
    mdp = ms.TabularMDP(good_P(), good_R(), 1.0)  # no terminal state: every policy is improper
    assert not mdp.has_proper_policies
    for method in ("auto", "vi", "pi"):
        with pytest.raises(ValueError, match="gamma = 1"):
            ms.solve(mdp, method=method)
        with pytest.raises(ValueError, match="gamma = 1"):
            ms.solve(mdp, temperature=0.1, method=method)
    with pytest.raises(ValueError, match="gamma = 1"):
        ms.evaluate(mdp, np.full((S, A), 0.5))
    # a terminal state that some policy can avoid forever is not enough
    P = good_P()
    P[:, 1] = np.eye(S)  # action 1 stays put
    P[0, 0] = [0, 0, 1]
    avoid = ms.TabularMDP(P, good_R(), 1.0, terminal=[2])
    with pytest.raises(ValueError, match="gamma = 1|gamma < 1"):  # the SSP path names the cycling policy
        ms.solve(avoid)
    # ... but a finite horizon makes it legal
    assert np.all(np.isfinite(ms.solve(mdp, horizon=4).v))
    with pytest.raises(ValueError, match="gamma"):
        ms.solve_batch(good_P()[None], good_R()[None], 1.0)


@pytest.mark.parametrize("kw,match", [
    (dict(R=np.zeros((S, A + 1))), "R must have shape"),
    (dict(terminal=np.zeros(S + 1, bool)), "terminal must have shape"),
    (dict(terminal=[S]), "terminal"),
    (dict(initial=np.ones(S + 1) / (S + 1)), "initial must have shape"),
    (dict(initial=np.array([0.5, 0.6, -0.1])), "initial must be non-negative"),
    (dict(initial=np.array([0.5, 0.6, 0.1])), "initial must sum to 1"),
    (dict(ref_policy=np.full((S, A), 0.7)), "ref_policy must sum to 1"),
    (dict(ref_policy=np.full((S, A + 1), 1 / (A + 1))), "ref_policy must have shape"),
])
def test_tabular_shapes_and_distributions_that_disagree_are_refused(kw, match):
    args = dict(P=good_P(), R=good_R(), gamma=0.9)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        ms.TabularMDP(**args)


# ---------------------------------------------------------------------- solve / evaluate
@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf, "1"])
@pytest.mark.parametrize("arg", ["beta", "temperature"])
def test_beta_or_temperature_not_positive_is_refused(arg, value):
    mdp = ms.TabularMDP(good_P(), good_R(), 0.9)
    kw = {arg: value}
    if arg == "beta":
        kw["ref_policy"] = np.full((S, A), 0.5)
    with pytest.raises(ValueError, match=arg):
        ms.solve(mdp, **kw)
    with pytest.raises(ValueError, match=arg):
        ms.evaluate(mdp, np.full((S, A), 0.5), **kw)
    env = ms.TokenMDP.random(2, 2)
    with pytest.raises(ValueError, match=arg):
        ms.solve(env, **{arg: value})
    with pytest.raises(ValueError, match=arg):
        ms.solve_batch(good_P()[None], good_R()[None], 0.9, **kw)


@pytest.mark.parametrize("ref,match", [
    (np.full((S, A), 0.7), "ref_policy must sum to 1"),
    (np.array([[1.5, -0.5]] * S), "ref_policy must be non-negative"),
    (np.full((S, A), np.nan), "ref_policy must be finite"),
    (np.full((S + 1, A), 0.5), "ref_policy must have shape"),
])
def test_reference_policy_that_is_not_a_distribution_is_refused(ref, match):
    mdp = ms.TabularMDP(good_P(), good_R(), 0.9)
    with pytest.raises(ValueError, match=match):
        ms.solve(mdp, beta=0.1, ref_policy=ref)
    if ref.shape == (S, A):
        with pytest.raises(ValueError, match="ref_policy"):
            ms.solve_batch(good_P()[None], good_R()[None], 0.9, beta=0.1, ref_policy=ref)
    env = ms.TokenMDP.random(2, 2)
    bad = np.full(env.shape, 0.7)
    with pytest.raises(ValueError, match="ref_policy must sum to 1"):
        ms.solve(env, beta=0.1, ref_policy=bad)
    with pytest.raises(ValueError, match="ref_policy must have shape"):
        ms.solve(env, beta=0.1, ref_policy=np.full((env.n_nodes + 1, 2), 0.5))


def test_solver_arguments_are_checked():
    mdp = ms.TabularMDP(good_P(), good_R(), 0.9)
    with pytest.raises(ValueError, match="method"):
        ms.solve(mdp, method="qlearning")
    with pytest.raises(ValueError, match="tol"):
        ms.solve(mdp, tol=0)
    with pytest.raises(ValueError, match="max_iter"):
        ms.solve(mdp, max_iter=0)
    with pytest.raises(ValueError, match="horizon"):
        ms.solve(mdp, horizon=0)
    with pytest.raises(ValueError, match="ref_policy"):
        ms.solve(mdp, beta=0.1)  # KL on a TabularMDP needs a reference
    with pytest.raises(ValueError, match="policy must sum to 1"):
        ms.evaluate(mdp, np.full((S, A), 0.7))
    with pytest.raises(ValueError, match="policy must have shape"):
        ms.evaluate(mdp, np.full((S, A + 1), 1 / 3))
    env = ms.TokenMDP.random(2, 2)
    with pytest.raises(ValueError, match="policy must have shape"):
        ms.evaluate(env, np.full((env.n_nodes, 3), 1 / 3))
    with pytest.raises(ValueError, match="env"):
        ms.solve("not an mdp")


def test_solve_batch_shapes_are_checked():
    P, R = good_P()[None], good_R()[None]
    with pytest.raises(ValueError, match="P must have shape"):
        ms.solve_batch(P[0], R, 0.9)
    with pytest.raises(ValueError, match="R must have shape"):
        ms.solve_batch(P, R[:, :, :1], 0.9)
    with pytest.raises(ValueError, match="P must be stochastic"):
        ms.solve_batch(P * 2, R, 0.9)
    with pytest.raises(ValueError, match="P must be non-negative"):
        ms.solve_batch(-P, R, 0.9)
    with pytest.raises(ValueError, match="R must be finite"):
        ms.solve_batch(P, R * np.nan, 0.9)
    with pytest.raises(ValueError, match="gamma must be a float or have shape"):
        ms.solve_batch(P, R, np.array([0.9, 0.9]))
    with pytest.raises(ValueError, match="method"):
        ms.solve_batch(P, R, 0.9, method="backward")


# ---------------------------------------------------------------------- TokenMDP
@pytest.mark.parametrize("arg,value", [("vocab_size", 0), ("horizon", 0), ("vocab_size", 2.5), ("horizon", -1),
                                       ("n_prompts", 0)])
def test_vocab_size_horizon_prompts_below_one_are_refused(arg, value):
    kw = dict(vocab_size=2, horizon=2, n_prompts=1)
    kw[arg] = value
    with pytest.raises(ValueError, match=arg):
        ms.TokenMDP.random(kw["vocab_size"], kw["horizon"], n_prompts=kw["n_prompts"])
    with pytest.raises(ValueError, match=arg):
        ms.TokenMDP(kw["vocab_size"], kw["horizon"], np.zeros((3, 2)), np.zeros((3, 2)), n_prompts=kw["n_prompts"])


@pytest.mark.parametrize("field", ["ref_logits", "rewards"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_logits_or_rewards_are_refused(field, bad):
    arrays = dict(ref_logits=np.zeros((3, 2)), rewards=np.zeros((3, 2)))
    arrays[field][2, 1] = bad
    with pytest.raises(ValueError, match=rf"{field} must be finite.*\(2, 1\)"):
        ms.TokenMDP(2, 2, **arrays)


def test_token_shapes_that_disagree_are_refused():
    with pytest.raises(ValueError, match="ref_logits must have shape"):
        ms.TokenMDP(2, 2, np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="rewards must have shape"):
        ms.TokenMDP(2, 2, np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="ref_logits must have shape"):
        ms.TokenMDP(2, 2, np.zeros((3, 2)), np.zeros((3, 2)), n_prompts=2)
    with pytest.raises(ValueError, match="eos"):
        ms.TokenMDP(2, 2, np.zeros((3, 2)), np.zeros((3, 2)), eos=2)
    env = ms.TokenMDP.random(2, 3)
    with pytest.raises(ValueError, match="prefix"):
        env.index((0, 1, 1))
    with pytest.raises(ValueError, match="prefix"):
        env.index((2,))
    with pytest.raises(ValueError, match="node"):
        env.prefix(env.n_nodes)
    with pytest.raises(ValueError, match="horizon"):
        ms.solve(env, horizon=3)
    with pytest.raises(ValueError, match="reward"):
        ms.TokenMDP.random(2, 2, reward="sparse")
    with pytest.raises(ValueError, match="n"):
        env.sample(n=0)


def test_tree_too_large_is_refused_with_its_byte_count():
    V, H = 50, 10
    with pytest.raises(ValueError, match="bytes") as exc:
        ms.TokenMDP.random(V, H)
    assert isinstance(exc.value, ms.TreeTooLargeError)
    assert f"{tree_bytes(V, H, 1, 4):,}" in str(exc.value)
    with pytest.raises(ms.TreeTooLargeError, match=f"{tree_bytes(V, H, 1, 2):,} bytes"):
        ms.TokenMDP(V, H, np.zeros((1, 1)), np.zeros((1, 1)))  # refused before the shape check
    with pytest.raises(ms.TreeTooLargeError, match="bytes"):
        ms.target_string(40, [0] * 9)


# ---------------------------------------------------------------------- extreme regularisers
EXTREMES = [1e-8, 1e-4, 1.0, 1e4, 1e8]


@pytest.mark.parametrize("method", ["pi", "vi"])
@pytest.mark.parametrize("lam", EXTREMES)
def test_extreme_beta_and_temperature_stay_finite_and_match_limits_on_tabular(lam, method):
    mdp = ms.garnet(8, 3, 3, gamma=0.8, seed=0)
    w = np.random.default_rng(0).random((8, 3)) + 0.1
    ref = w / w.sum(1, keepdims=True)
    hard = ms.solve(mdp, method="pi")
    tol = max(1e-9, 2e-12 * lam)  # VI cannot certify below the float64 round-off of β·LSE(...) ~ λ·eps
    kl = ms.solve(mdp, beta=lam, ref_policy=ref, method=method, tol=tol)
    ent = ms.solve(mdp, temperature=lam, method=method, tol=tol)
    for sol in (kl, ent):
        assert np.all(np.isfinite(sol.v)) and np.all(np.isfinite(sol.q)) and np.all(np.isfinite(sol.policy))
        assert np.allclose(sol.policy.sum(1), 1.0)
    horizon = 1 / (1 - mdp.gamma)
    if lam <= 1e-4:  # → hard control
        assert np.allclose(kl.v, hard.v, atol=lam * horizon * np.max(-np.log(ref)) + 1e-7)
        assert np.allclose(ent.v, hard.v, atol=lam * horizon * math.log(3) + 1e-7)
    if lam >= 1e4:  # → π_ref / uniform
        v_ref = ms.evaluate(mdp, ref).v
        assert np.allclose(kl.policy, ref, atol=1e2 / lam) and np.allclose(kl.v, v_ref, atol=tol + 1e3 / lam)
        assert np.allclose(ent.policy, 1 / 3, atol=1e2 / lam)
        v_unif = ms.evaluate(mdp, np.full((8, 3), 1 / 3)).v + lam * math.log(3) * horizon
        assert np.allclose(ent.v, v_unif, rtol=1e-9, atol=1e-3)


@pytest.mark.parametrize("lam", EXTREMES)
def test_extreme_beta_and_temperature_stay_finite_and_match_limits_on_token_trees(lam):
    env = ms.TokenMDP.random(3, 4, seed=1, reward="dense", eos=2, offset_scale=5.0)
    kl = ms.solve(env, beta=lam)
    ent = ms.solve(env, temperature=lam)
    hard = ms.solve(env)
    for sol in (kl, ent):
        assert np.all(np.isfinite(sol.v)) and np.all(np.isfinite(sol.q)) and np.all(np.isfinite(sol.policy))
    ref = env.ref_policy
    if lam <= 1e-4:
        # → greedy on hard Q* (π_ref has full support here)
        assert np.allclose(kl.v, hard.v, atol=lam * 4 * np.max(-np.log(ref)) + 1e-9)
        assert np.allclose(ent.v, hard.v, atol=lam * 4 * math.log(3) + 1e-9)
        assert np.allclose(kl.policy, hard.policy, atol=1e-6)
    if lam >= 1e4:
        assert np.allclose(kl.policy, ref, atol=1e2 / lam)
        assert np.allclose(kl.v, ms.evaluate(env, ref).v, atol=1e-6 + 1e2 / lam)
        # entropy → ∞ with EOS: maximise sequence entropy = uniform over complete sequences
        free = ms.solve(env.with_rewards(np.zeros(env.shape)), temperature=1.0).policy
        assert np.allclose(np.exp(env.leaf_log_probs(free)), 1 / len(env.leaves()), atol=1e-12)
        assert np.allclose(ent.policy, free, atol=1e2 / lam)


@pytest.mark.parametrize("kw", [dict(beta=1e8), dict(temperature=1e8), dict(beta=1e-8), dict(temperature=1e-8)])
def test_default_solve_handles_extreme_regularisers_at_small_gamma(kw):
    """method='auto' must not pick a VI that cannot certify tol above round-off (it falls back to PI)."""
    mdp = ms.garnet(8, 3, 3, gamma=0.8, seed=0)
    if "beta" in kw:
        kw = dict(kw, ref_policy=np.full((8, 3), 1 / 3))
    sol = ms.solve(mdp, **kw)
    assert sol.converged and np.all(np.isfinite(sol.v)) and np.all(np.isfinite(sol.policy))


# ---------------------------------------------------------------------- messages that name the argument
def _P():
    return np.full((2, 2, 2), 0.5)


@pytest.mark.parametrize("bad, arg, words", [
    (lambda: ms.TabularMDP(_P() + 0j, np.zeros((2, 2)), 0.9), "P", "real"),
    (lambda: ms.TabularMDP(_P(), np.zeros((2, 2)) + 1j, 0.9), "R", "real"),
    (lambda: ms.TabularMDP(_P(), [["a", "b"], ["c", "d"]], 0.9), "R", "numeric"),
    (lambda: ms.TabularMDP("P", np.zeros((2, 2)), 0.9), "P", "numeric"),
    (lambda: ms.TabularMDP([[[1, 0], [1]], [[1, 0], [0, 1]]], np.zeros((2, 2)), 0.9), "P", "rectangular"),
    (lambda: ms.TabularMDP(_P(), [[0.0, 1.0], [2.0]], 0.9), "R", "rectangular"),
    (lambda: ms.TokenMDP.random(3, 3, logit_scale=float("nan")), "logit_scale", "finite"),
    (lambda: ms.TokenMDP.random(3, 3, logit_scale=-1), "logit_scale", ">= 0"),
    (lambda: ms.TokenMDP.random(3, 3, seed=-1), "seed", ">= 0"),
    (lambda: ms.TokenMDP.random(3, 3, seed=1.5), "seed", "integer"),
    (lambda: ms.garnet(4, 2, 2, seed=-3), "seed", ">= 0"),
    (lambda: ms.solve_batch(_P()[None], np.zeros((1, 2, 2)), 0.9, max_iter=0), "max_iter", ">= 1"),
    (lambda: ms.solve_batch(_P()[None], np.zeros((1, 2, 2)), 0.9, max_iter=-5), "max_iter", ">= 1"),
    (lambda: ms.solve_batch(_P()[None], np.zeros((1, 2, 2)), 0.9, max_iter=2.5), "max_iter", "integer"),
])
def test_bad_input_message_names_the_argument_and_condition(bad, arg, words):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning / numpy warning on the way
        with pytest.raises(ValueError) as e:
            bad()
    msg = str(e.value)
    assert msg.startswith(arg) and words in msg, msg


def test_messages_print_numbers_not_numpy_reprs():
    P = _P()
    P[0, 0] = [0.7, 0.7]
    msgs = []
    for bad in (lambda: ms.TabularMDP(P, np.zeros((2, 2)), 0.9),
                lambda: ms.TabularMDP(_P(), np.array([[np.nan, 0.0], [0.0, 0.0]]), 0.9),
                lambda: ms.solve(ms.garnet(3, 2, 2, seed=0), beta=np.float64(-1.0)),
                lambda: ms.TabularMDP(_P(), np.zeros((2, 2)), np.float64(1.5)),
                lambda: ms.solve_batch(P[None], np.zeros((1, 2, 2)), 0.9)):
        with pytest.raises(ValueError) as e:
            bad()
        msgs.append(str(e.value))
    for m in msgs:
        assert "np.float64" not in m and "np.int64" not in m, m
    assert "1.4" in msgs[0] and "nan" in msgs[1] and "-1.0" in msgs[2] and "1.5" in msgs[3]
