"""Reward transfer (reconstructed estimators, docs/math.md §10): plug-in sequential = coupled, exactness
with the true expert, shaping harmless under Δτ / harmful under ΔP, linear classes, metrics, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mdpsandbox import TabularMDP, evaluate, garnet, gridworld, solve
from mdpsandbox.irl.identifiability import potential_shaping
from mdpsandbox.irl.transfer import (
    _linear_setup, _target_eqs, bc_policy, behaviour_cloning, coupled_linear, coupled_tabular, sequential_linear,
    sequential_tabular, shifted_problem, transfer_metrics, transfer_problem, transfer_task,
)

GAMMAS = [0.0, 0.5, 0.9, 0.99]
SHIFTS = [dict(epsilon=0.5), dict(delta_gamma=-0.3), dict(delta_tau=1.5), dict(epsilon=0.3, delta_gamma=-0.2,
                                                                                delta_tau=-0.2)]


def _noisy_policy(pi, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    p = pi * np.exp(scale * rng.normal(size=pi.shape))
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("terminal", [False, True])
def test_plugin_sequential_equals_coupled(gamma, terminal):
    base = gridworld(3, 3, slip=0.2, gamma=gamma) if terminal else garnet(8, 3, 3, gamma=gamma, seed=1)
    dg = -0.2 if gamma >= 0.5 else 0.3
    for i, shift in enumerate([dict(epsilon=0.4), dict(delta_gamma=dg, delta_tau=0.5)]):
        prob = shifted_problem(base, temperature=0.7, seed=i, **shift)
        # the exact expert and an imperfect estimate (as from finite data): the identity holds for any π̂_S
        for pi in (prob.source_solution().policy, _noisy_policy(prob.source_solution().policy, i)):
            a, b = sequential_tabular(prob, pi), coupled_tabular(prob, pi)
            assert b.converged
            np.testing.assert_allclose(b.q, a.q, atol=1e-10)
            np.testing.assert_allclose(b.reward, a.reward, atol=1e-10)
            np.testing.assert_allclose(b.policy, a.policy, atol=1e-10)
            assert b.target_residual < 1e-11


@pytest.mark.parametrize("shift", SHIFTS)
def test_sequential_with_exact_expert_recovers_target_optimum(shift):
    prob = shifted_problem(garnet(10, 3, 3, gamma=0.9, seed=2), temperature=1.0, seed=3, **shift)
    est = sequential_tabular(prob, prob.source_solution().policy)
    m = transfer_metrics(prob, est)
    assert m["tv"] < 1e-9 and m["q_error"] < 1e-8 and abs(m["regret_soft"]) < 1e-9
    # behaviour cloning is exact only without a shift
    assert transfer_metrics(prob, behaviour_cloning(prob, prob.source_solution().policy))["tv"] > 1e-3
    noshift = shifted_problem(garnet(10, 3, 3, gamma=0.9, seed=2), temperature=1.0)
    assert transfer_metrics(noshift, behaviour_cloning(noshift, noshift.source_solution().policy))["tv"] < 1e-12


def test_unnormalised_shaping_harmless_under_dtau_harmful_under_dP_and_dgamma():
    base = garnet(8, 3, 3, gamma=0.9, seed=4)
    phi = np.random.default_rng(0).normal(size=8) * 2
    base = TabularMDP(base.P, potential_shaping(base.R, base, 0.9, phi), 0.9)  # a reward far from normalised
    tv = {}
    for name, shift in [("dtau", dict(delta_tau=2.0)), ("dP", dict(epsilon=0.5)), ("dgamma", dict(delta_gamma=-0.4))]:
        prob = shifted_problem(base, temperature=0.5, normalize=False, seed=1, **shift)
        tv[name] = transfer_metrics(prob, sequential_tabular(prob, prob.source_solution().policy))["tv"]
    assert tv["dtau"] < 1e-9
    assert tv["dP"] > 0.01 and tv["dgamma"] > 0.01


def _anchor_free_features(S, A, anchor=0):
    """One-hot (s, a) features for a ≠ anchor: the class of anchor-normalised rewards (identified)."""
    cols = [(s, a) for s in range(S) for a in range(A) if a != anchor]
    phi = np.zeros((S, A, len(cols)))
    for j, (s, a) in enumerate(cols):
        phi[s, a, j] = 1.0
    return phi


@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_linear_estimators_with_tabular_classes_equal_plugin(gamma):
    prob = shifted_problem(garnet(6, 3, 3, gamma=gamma, seed=5), temperature=0.8, epsilon=0.5, seed=2)
    pi = _noisy_policy(prob.source_solution().policy, 1)
    tab = sequential_tabular(prob, pi)
    feats = _anchor_free_features(6, 3)
    lin = sequential_linear(prob, pi, feats)
    np.testing.assert_allclose(lin.reward, tab.reward, atol=1e-10)
    np.testing.assert_allclose(lin.q, tab.q, atol=1e-9)
    assert lin.source_residual < 1e-12
    # restricted Q_T given by one-hot features (the full class): LM reaches the same target fixed point
    q_full = np.eye(18).reshape(6, 3, 18)
    lin2 = sequential_linear(prob, pi, feats, q_features=q_full)
    np.testing.assert_allclose(lin2.q, tab.q, atol=1e-8)
    cpl = coupled_linear(prob, pi, feats)
    np.testing.assert_allclose(cpl.q, tab.q, atol=1e-8)


def test_coupled_differs_from_sequential_under_restricted_classes():
    prob = shifted_problem(garnet(10, 3, 3, gamma=0.9, seed=6), temperature=1.0, epsilon=0.5, seed=7)
    pi = prob.source_solution().policy
    rng = np.random.default_rng(0)
    feats = _anchor_free_features(10, 3)
    v_feats = np.column_stack([np.ones(10), rng.normal(size=(10, 3))])      # V_S not representable
    q_star = prob.target_solution().q
    q_feats = np.concatenate([q_star[..., None], rng.normal(size=(10, 3, 4))], axis=2)
    seq = sequential_linear(prob, pi, feats, value_features=v_feats, q_features=q_feats)
    cpl = coupled_linear(prob, pi, feats, value_features=v_feats, q_features=q_feats)
    assert seq.source_residual > 1e-3
    # coupled trades source residual for target residual: its source residual is larger, its joint
    # objective smaller
    assert cpl.source_residual >= seq.source_residual - 1e-12
    j = lambda e: e.source_residual ** 2 + e.target_residual ** 2  # noqa: E731
    assert j(cpl) <= j(seq) + 1e-12
    assert np.abs(cpl.q - seq.q).max() > 1e-6


def test_target_jacobian_matches_finite_differences():
    prob = shifted_problem(gridworld(3, 3, slip=0.2, gamma=0.9), temperature=0.5, epsilon=0.3, seed=1)
    S, A = 9, 4
    pi = prob.source_solution().policy
    rng = np.random.default_rng(2)
    L = _linear_setup(prob, pi, rng.normal(size=(S, A, 3)), None, rng.normal(size=(S, A, 5)), None)
    th, be = rng.normal(size=3), rng.normal(size=5)
    e, Jt, Jb = _target_eqs(prob, L, th, be)
    h = 1e-6
    for j in range(5):
        d = np.zeros(5)
        d[j] = h
        fd = (_target_eqs(prob, L, th, be + d)[0] - _target_eqs(prob, L, th, be - d)[0]) / (2 * h)
        np.testing.assert_allclose(Jb[:, j], fd, atol=1e-7)
    for j in range(3):
        d = np.zeros(3)
        d[j] = h
        fd = (_target_eqs(prob, L, th + d, be)[0] - _target_eqs(prob, L, th - d, be)[0]) / (2 * h)
        np.testing.assert_allclose(Jt[:, j], fd, atol=1e-7)


def test_metrics_against_exact_evaluation():
    prob = shifted_problem(garnet(8, 3, 3, gamma=0.9, seed=8), temperature=0.5, epsilon=0.5, seed=1)
    pi = _noisy_policy(prob.source_solution().policy, 3, scale=1.0)
    m = transfer_metrics(prob, behaviour_cloning(prob, pi))
    tgt = prob.target
    soft = solve(tgt, temperature=0.5, method="pi", tol=1e-12)
    hard = solve(tgt, method="pi")
    assert m["regret_soft"] == pytest.approx(soft.value_initial - evaluate(tgt, pi, temperature=0.5).value_initial,
                                             abs=1e-10)
    assert m["regret_unreg"] == pytest.approx(hard.value_initial - evaluate(tgt, pi).value_initial, abs=1e-10)
    assert m["regret_soft"] > 0 and m["regret_unreg"] > 0
    assert m["tv"] == pytest.approx(0.5 * np.abs(pi - soft.policy).sum(axis=1).max(), abs=1e-12)
    assert "q_error" not in m


def test_bc_policy_laplace_smoothing():
    counts = np.array([[3, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(bc_policy(counts), [[4 / 7, 2 / 7, 1 / 7], [1 / 3, 1 / 3, 1 / 3]])


def test_transfer_task_scalar_metrics_and_seeded():
    a = transfer_task(estimator="sequential", n_demos=50, horizon=20, epsilon=0.3, seed=1)
    b = transfer_task(estimator="sequential", n_demos=50, horizon=20, epsilon=0.3, seed=1)
    assert a == b and all(np.isscalar(v) for v in a.values())
    c = transfer_task(estimator="coupled", n_demos=50, horizon=20, epsilon=0.3, seed=1)
    assert c["q_error"] == pytest.approx(a["q_error"], abs=1e-9)
    exact = transfer_task(estimator="sequential", n_demos=0, epsilon=0.3)
    assert exact["tv"] < 1e-9 and a["tv"] > exact["tv"]


def test_bad_input_names_the_argument():
    base = garnet(6, 3, 3, gamma=0.9, seed=0)
    with pytest.raises(ValueError, match="temperature"):
        shifted_problem(base, temperature=0.0)
    with pytest.raises(ValueError, match="tau_source"):
        transfer_problem(base, base, tau_source=-1.0)
    with pytest.raises(ValueError, match="tau_target"):
        transfer_problem(base, base, tau_source=1.0, tau_target=0.0)
    with pytest.raises(ValueError, match="delta_tau"):
        shifted_problem(base, temperature=1.0, delta_tau=-1.0)
    with pytest.raises(ValueError, match="delta_gamma"):
        shifted_problem(base, delta_gamma=0.2)
    with pytest.raises(ValueError, match="gamma"):
        transfer_problem(base, TabularMDP(base.P, base.R, 1.5), tau_source=1.0)
    with pytest.raises(ValueError, match="epsilon"):
        shifted_problem(base, epsilon=1.5)
    with pytest.raises(ValueError, match="state and action spaces"):
        transfer_problem(base, garnet(7, 3, 3, seed=0), tau_source=1.0)
    with pytest.raises(ValueError, match="state and action spaces"):
        transfer_problem(base, garnet(6, 2, 2, seed=0), tau_source=1.0)
    prob = shifted_problem(base, epsilon=0.2)
    pi = prob.source_solution().policy
    with pytest.raises(ValueError, match="source_policy"):
        sequential_tabular(prob, np.eye(3)[np.zeros(6, int)])
    # full one-hot (s, a) rewards with tabular V_S: the shaping directions are unidentified
    with pytest.raises(ValueError, match="cannot identify"):
        sequential_linear(prob, pi, np.eye(18).reshape(6, 3, 18))
    with pytest.raises(ValueError, match="reward_features"):
        sequential_linear(prob, pi, np.ones((6, 2, 1)))
    with pytest.raises(ValueError, match="estimator"):
        transfer_task(estimator="maxent")


@pytest.mark.parametrize("tau", [1e-8, 1e-3, 1e3, 1e8])
def test_plugin_estimators_at_extreme_temperature(tau):
    # the exact expert as log-probabilities (its probabilities underflow at tiny τ)
    prob = shifted_problem(garnet(6, 3, 3, gamma=0.9, seed=3), temperature=tau, epsilon=0.5, seed=4)
    sol = prob.source_solution()
    log_pi = (sol.q - sol.v[:, None]) / tau
    a = sequential_tabular(prob, log_source_policy=log_pi)
    b = coupled_tabular(prob, log_source_policy=log_pi)
    for est in (a, b):
        assert np.all(np.isfinite(est.q)) and np.all(np.isfinite(est.policy))
    scale = 1.0 + tau * np.log(3) / (1 - 0.9)
    np.testing.assert_allclose(b.q, a.q, atol=1e-10 * scale)
    m = transfer_metrics(prob, a)
    assert m["q_error"] < 1e-8 * scale and abs(m["regret_soft"]) < 1e-8 * scale
    if tau <= 1e-3:
        with pytest.raises(ValueError, match="source_policy"):
            sequential_tabular(prob, sol.policy)


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 500), gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99]), log_tau=st.floats(-1, 1),
       eps=st.floats(0, 1), dtau=st.floats(-0.5, 2), anchor=st.sampled_from([0, 1, "state"]))
def test_plugin_sequential_equals_coupled_property(seed, gamma, log_tau, eps, dtau, anchor):
    tau = 10.0 ** log_tau
    dtau = max(dtau, -0.5 * tau)
    prob = shifted_problem(garnet(5, 3, 2, gamma=gamma, seed=seed), temperature=tau, epsilon=eps, delta_tau=dtau,
                           delta_gamma=-0.5 * gamma, seed=seed, anchor=anchor)
    pi = _noisy_policy(prob.source_solution().policy, seed)
    a, b = sequential_tabular(prob, pi), coupled_tabular(prob, pi)
    scale = 1.0 + np.abs(a.q).max()
    np.testing.assert_allclose(b.q, a.q, atol=1e-10 * scale)
    np.testing.assert_allclose(b.policy, a.policy, atol=1e-10 * max(1.0, scale / (tau + dtau)))
