"""solve_batch (a jitted stack of small MDPs) = solve on each MDP, for every regulariser and method."""
import numpy as np
import pytest

import mdpsandbox as ms
from mdpsandbox.testing import assert_policy_close, assert_values_close

B, S, A = 6, 7, 3


def stack(gamma=0.9, seed=0):
    mdps = [ms.garnet(S, A, 3, gamma=gamma, seed=seed + i) for i in range(B)]
    return mdps, np.stack([m.dense_P() for m in mdps]), np.stack([m.R for m in mdps])


def refs(seed=0):
    w = np.random.default_rng(seed).random((B, S, A)) + 0.1
    return w / w.sum(axis=2, keepdims=True)


@pytest.mark.parametrize("method", ["pi", "vi"])
@pytest.mark.parametrize("kind", ["hard", "entropy", "kl", "kl_shared_ref"])
def test_solve_batch_equals_solve_per_mdp(kind, method):
    gammas = np.linspace(0.5, 0.95, B)
    mdps = [ms.garnet(S, A, 3, gamma=g, seed=i) for i, g in enumerate(gammas)]
    P, R = np.stack([m.dense_P() for m in mdps]), np.stack([m.R for m in mdps])
    kw = {}
    if kind == "entropy":
        kw = dict(temperature=0.2)
    elif kind == "kl":
        kw = dict(beta=0.3, ref_policy=refs(1))
    elif kind == "kl_shared_ref":
        kw = dict(beta=0.3, ref_policy=refs(2)[0])
    tol = 1e-9
    batch = ms.solve_batch(P, R, gammas, method=method, tol=tol, **kw)
    assert batch.converged.all() and batch.v.shape == (B, S) and batch.q.shape == (B, S, A)
    for b, m in enumerate(mdps):
        kb = dict(kw)
        if "ref_policy" in kb and kb["ref_policy"].ndim == 3:
            kb["ref_policy"] = kb["ref_policy"][b]
        one = ms.solve(m, method="pi", **kb)
        assert_values_close(batch.v[b], one.v, atol=tol, rtol=0, env=m, name=f"V (MDP {b})")
        assert_values_close(batch.q[b], one.q, atol=tol, rtol=0, env=m, name=f"Q (MDP {b})")
        if kind == "hard":  # first argmax; random rewards have no ties
            assert np.array_equal(np.argmax(batch.policy[b], 1), np.argmax(one.q, 1))
        else:
            assert_policy_close(batch.policy[b], one.policy, atol=1e-7, env=m)


def test_solve_batch_scalar_gamma_and_entropy_plus_kl():
    mdps, P, R = stack(0.9, seed=10)
    ref = refs(3)
    batch = ms.solve_batch(P, R, 0.9, temperature=0.1, beta=0.2, ref_policy=ref)
    for b, m in enumerate(mdps):
        one = ms.solve(m, temperature=0.1, beta=0.2, ref_policy=ref[b])
        assert_values_close(batch.v[b], one.v, atol=1e-9, rtol=0, env=m)


def test_solve_batch_residual_is_the_bellman_residual_of_its_values():
    mdps, P, R = stack(0.95, seed=20)
    batch = ms.solve_batch(P, R, 0.95, method="vi", tol=1e-6)
    for b, m in enumerate(mdps):
        tv = np.max(m.R + m.gamma * np.einsum("sat,t->sa", P[b], batch.v[b]), axis=1)
        assert np.max(np.abs(tv - batch.v[b])) <= batch.residual[b] * m.gamma + 1e-12
        assert batch.residual[b] < 1e-6 * (1 - 0.95) / (2 * 0.95)


@pytest.mark.parametrize("kw", [dict(), dict(temperature=0.1), dict(beta=0.2), dict(temperature=0.1, beta=0.2)])
@pytest.mark.parametrize("method", ["pi", "vi"])
def test_solve_batch_result_of_an_mdp_does_not_depend_on_its_batch(kw, method):
    """Bitwise: MDP b solved alone = MDP b solved in a batch (a batch-wide stop floor broke this)."""
    mdps, P, R = stack(0.9, seed=30)
    ref = refs(5)
    ref[0, 0] = [0.999, 0.0005, 0.0005]  # one MDP with an extreme log π_ref
    ref /= ref.sum(-1, keepdims=True)
    if "beta" in kw:
        kw = dict(kw, ref_policy=ref)
    full = ms.solve_batch(P, R, 0.9, method=method, **kw)
    for b in (1, B - 1):
        kb = dict(kw)
        if "ref_policy" in kb:
            kb["ref_policy"] = ref[b:b + 1]
        one = ms.solve_batch(P[b:b + 1], R[b:b + 1], 0.9, method=method, **kb)
        assert np.array_equal(one.v[0], full.v[b]) and one.residual[0] == full.residual[b]
        assert one.iterations[0] == full.iterations[b]
