r"""Distributional edge cases (docs/math.md §7): projection input validation, per-sample discounts in
the categorical TD target, the Monte-Carlo work budget at γ → 1, and categorical evaluation with
terminal states at every γ (mean of the state–action law = evaluate(...).q)."""
import numpy as np
import pytest

import mdpsandbox as ms
from mdpsandbox.learners.losses.distributional import categorical_td_target
from mdpsandbox.solvers.distributional import (categorical_policy_evaluation, categorical_projection,
                                               monte_carlo_returns)

Z = np.linspace(0.0, 4.0, 5)


@pytest.mark.parametrize("probs, words", [
    (np.array([1.2, -0.2]), "non-negative"),
    (np.array([0.3, 0.3]), "sum to 1"),
    (np.array([[0.5, 0.5], [0.9, 0.3]]), "sum to 1"),
])
def test_projection_refuses_negative_or_unnormalised_weights_unless_signed(probs, words):
    ys = np.array([1.3, 2.0])
    with pytest.raises(ValueError, match=words):
        categorical_projection(Z, ys, probs)
    p = categorical_projection(Z, ys, probs, signed=True)  # explicit: a linear map of the weights
    np.testing.assert_allclose(p.sum(-1), probs.sum(-1), atol=1e-12)
    np.testing.assert_allclose(p @ Z, probs @ ys, atol=1e-12)  # mean-preserving inside the range


def test_projection_empty_values_and_shape_mismatch_have_clear_messages():
    with pytest.raises(ValueError, match="at least one Dirac"):
        categorical_projection(Z, np.zeros(0))
    with pytest.raises(ValueError, match="broadcastable"):
        categorical_projection(Z, np.zeros((2, 3)), np.full((2, 2), 0.5))


@pytest.mark.parametrize("B", [3, 5])  # B = m = 5 is where broadcasting (B,) along the atoms went unnoticed
def test_categorical_td_target_with_per_sample_discount_equals_one_sample_at_a_time(B):
    rng = np.random.default_rng(0)
    r = rng.uniform(0, 1, B)
    nxt = rng.dirichlet(np.ones(5), size=B)
    g = np.array([0.0, 0.5, 0.9, 0.99, 0.3][:B])
    out = categorical_td_target(Z, r, g, nxt)
    for b in range(B):
        want = categorical_td_target(Z, r[b:b + 1], float(g[b]), nxt[b:b + 1])[0]
        np.testing.assert_allclose(out[b], want, atol=1e-15)
        np.testing.assert_allclose(out[b] @ Z, r[b] + g[b] * (nxt[b] @ Z), atol=1e-12)  # inside the range
    with pytest.raises(ValueError, match="gamma"):
        categorical_td_target(Z, r, np.ones(B + 1) * 0.5, nxt)


def test_monte_carlo_refuses_beyond_work_budget_stating_horizon_and_work():
    P = np.array([[0.5, 0.5], [0.25, 0.75]])
    r = np.array([1.0, 0.0])
    with pytest.raises(ValueError, match=r"truncation horizon T = [\d,]+ steps.*simulated transitions") as e:
        monte_carlo_returns(P, r, 0.9999999, 100)
    assert "max_steps=None" in str(e.value)
    # within the budget it runs; an explicit budget applies too
    assert monte_carlo_returns(P, r, 0.9, 10, seed=0).shape == (2, 10)
    with pytest.raises(ValueError, match="max_steps"):
        monte_carlo_returns(P, r, 0.9, 10, seed=0, max_steps=100)
    assert monte_carlo_returns(P, r, 0.99, 2, seed=0, max_steps=None).shape == (2, 2)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("sparse", [False, True])
def test_categorical_evaluation_with_terminals_has_mean_equal_to_evaluate(gamma, sparse):
    mdp = ms.garnet(8, 3, 3, gamma=max(gamma, 0.01), seed=1, sparse=sparse).replace(gamma=gamma, terminal=[6, 7])
    pi = np.random.default_rng(2).dirichlet(np.ones(3), size=8)
    out = categorical_policy_evaluation(mdp, pi, 201)
    ev = ms.evaluate(mdp, pi)
    z = out.atoms
    np.testing.assert_allclose(out.state_action.probs @ z, ev.q, atol=1e-8)
    np.testing.assert_allclose(out.state.probs @ z, ev.v, atol=1e-8)
    # terminal states carry the Dirac at 0
    zero = np.argmin(np.abs(z))
    if abs(z[zero]) < 1e-12:
        np.testing.assert_allclose(out.state.probs[[6, 7], zero], 1.0, atol=1e-9)
