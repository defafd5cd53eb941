"""Identities of the primitives inside the tree kernel: the vectorisable exp and stable log-sum-exp."""
import math

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mdpsandbox import logsumexp
from mdpsandbox.solvers.backups import _exp_nonpos


@numba.njit
def _exp_many(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _exp_nonpos(x[i])
    return out


def test_vectorised_exp_equals_libm_exp_within_two_ulp_on_nonpositive_inputs():
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.random(200_000) * 708.0, -rng.random(50_000) * 1e-3, [0.0, -1e-300, -708.0]])
    got, want = _exp_many(x), np.exp(x)
    ulp = np.spacing(want)
    assert np.all(np.abs(got - want) <= 2 * ulp), np.max(np.abs(got - want) / ulp)
    assert _exp_many(np.array([-709.0, -1e4, -np.inf])).tolist() == [0.0, 0.0, 0.0]  # underflow is 0, never NaN


@settings(deadline=None, max_examples=50)
@given(st.lists(st.floats(-1e300, 1e300), min_size=1, max_size=8), st.floats(-700, 700))
def test_logsumexp_is_shift_equivariant_and_never_nan(xs, c):
    x = np.array(xs)
    a = logsumexp(x)
    assert np.isfinite(a)
    if np.all(np.abs(x) < 1e200):
        assert math.isclose(logsumexp(x + c), a + c, rel_tol=1e-12, abs_tol=1e-9 * (1 + abs(a)))
    assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
