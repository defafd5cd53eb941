"""The helpers behind the ShiQ claims (validation/shiq.py)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from mdpsandbox import solve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sq = importlib.import_module("validation.shiq")


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
def test_offset_env_changes_only_per_node_logit_offsets(gamma):
    a = sq.offset_env(3, 3, seed=0, offset_scale=0.0, gamma=gamma)
    b = sq.offset_env(3, 3, seed=0, offset_scale=10.0, gamma=gamma)
    d = b.ref_logits - a.ref_logits
    np.testing.assert_allclose(d, d[:, :1] * np.ones_like(d), rtol=0, atol=1e-12)  # constant per node
    assert np.abs(d[:, 0]).max() > 1.0
    np.testing.assert_array_equal(a.rewards, b.rewards)
    np.testing.assert_allclose(a.ref_policy, b.ref_policy, rtol=0, atol=1e-12)
    sa, sb = solve(a, beta=0.5), solve(b, beta=0.5)
    np.testing.assert_allclose(sa.q, sb.q, rtol=0, atol=1e-12)


@pytest.mark.parametrize("beta", [1e-3, 0.5, 1e3])
def test_exact_fixed_point_has_zero_error_and_optimal_policy(beta):
    env = sq.offset_env(3, 3, seed=1, offset_scale=10.0, gamma=0.9, reward="dense")
    sol = solve(env, beta=beta)
    g = env.ref_logits + sol.q / beta
    scale = max(1.0, np.abs(g).max())
    assert sq.shiq_logit_error(g, env, sol) <= 8 * np.finfo(float).eps * scale  # round-off of (ℓ + q/β) − ℓ − q/β
    assert sq.policy_tv(g, sol, env) < 1e-12
    assert sq.shiq_logit_error(g + 0.25, env, sol) == pytest.approx(0.25)


def test_steps_to_first_crossing():
    assert sq.steps_to(np.array([0, 10, 20]), np.array([1.0, 1e-4, 1e-2]), 1e-3) == 10
    assert sq.steps_to(np.array([0, 10]), np.array([1.0, 1.0]), 1e-3) == -1
