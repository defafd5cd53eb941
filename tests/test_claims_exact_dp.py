"""The helpers behind the exact-DP claims (validation/exact_dp.py) checked against brute force."""
from __future__ import annotations

import importlib
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from mdpsandbox import evaluate, garnet, solve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ed = importlib.import_module("validation.exact_dp")


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("seed", [0, 1])
def test_restricted_to_support_optimum_equals_brute_force_over_supported_policies(gamma, seed):
    S, A = 4, 3
    env = garnet(S, A, 2, gamma=gamma, seed=seed)
    ref = ed.ref_with_holes(S, A, seed)
    best = np.full(S, -np.inf)
    for acts in itertools.product(*[np.flatnonzero(ref[s] > 0) for s in range(S)]):
        pol = np.zeros((S, A))
        pol[np.arange(S), acts] = 1.0
        best = np.maximum(best, evaluate(env, pol).v)  # deterministic policies suffice for the hard optimum
    np.testing.assert_allclose(solve(ed.restricted_to_support(env, ref), method="pi").v, best, rtol=0, atol=1e-10)


def test_ref_with_holes_is_a_policy_with_one_zero_per_state():
    ref = ed.ref_with_holes(50, 4, 3)
    np.testing.assert_allclose(ref.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert np.all((ref == 0).sum(axis=1) == 1) and np.all(ref >= 0)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_span_stop_is_off_by_a_near_constant_shift(gamma):
    # span(TV − V) < δ puts V* − TV in [γ/(1−γ) min(TV − V), γ/(1−γ) max(TV − V)]: the error of the
    # span-stopped V has span < γδ/(1−γ) = ε even when its size is orders of magnitude larger
    eps = 1e-3
    env = garnet(30, 4, 3, gamma=gamma, seed=0)
    vstar = solve(env, method="pi").v
    v, k = ed.span_stop_vi(env, eps)
    err = vstar - v
    assert err.max() - err.min() < eps
    assert k >= 1


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_vi_cell_certificate_and_soft_cell_bound(gamma):
    m = ed.vi_cell(gamma=gamma, seed=0, n_states=20, n_actions=3, branching=2, eps=1e-3)
    assert m["cert_ratio"] < 1.0 and m["cert_bound_ratio"] < 1.0
    s = ed.soft_cell(gamma=gamma, tau=0.3, seed=0, n_states=20, n_actions=3, branching=2)
    assert s["gap_min"] >= -1e-9 and s["bound_ratio"] <= 1.0
