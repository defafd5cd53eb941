"""solve_batch (a jitted stack of small MDPs) = solve on each MDP, for every regulariser and method."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import mdpsandbox as ms
from mdpsandbox.solvers import batch as _batch
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


# --- kernel pieces: the pivot-free elimination, the fast stochasticity pass, the per-task scratch ---


def _policy_matrix(draw_seed, n, gamma, kind):
    """I − γP_π for a random stochastic P_π: dense, sparse with absorbing (terminal) states, or every
    row into state 0 (column 0 far from dominant, where partial pivoting would swap rows)."""
    rng = np.random.default_rng(draw_seed)
    if kind == "funnel":
        Pp = np.zeros((n, n))
        Pp[:, 0] = 1.0
    else:
        Pp = rng.random((n, n)) ** (8 if kind == "sparse" else 1)
        if kind == "sparse":
            Pp[rng.random((n, n)) < 0.6] = 0.0
            Pp[np.arange(n), rng.integers(0, n, n)] += 1e-3
            for s in rng.choice(n, size=max(1, n // 4), replace=False):  # terminals: absorbing rows
                Pp[s] = 0.0
                Pp[s, s] = 1.0
        Pp /= Pp.sum(axis=1, keepdims=True)
    return np.eye(n) - gamma * Pp, rng.standard_normal(n) * 10.0


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 24), gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999999]),
       kind=st.sampled_from(["dense", "sparse", "funnel"]))
def test_pivot_free_elimination_solves_i_minus_gamma_p_pi_like_a_direct_solve(seed, n, gamma, kind):
    """(I − γP_π) y = x by elimination without pivoting = numpy's LAPACK solve (partial pivoting) to
    the conditioning bound ‖y‖ κ∞ ε-scale, κ∞ ≤ (1 + γ)/(1 − γ); and its residual is round-off."""
    M, x = _policy_matrix(seed, n, gamma, kind)
    ref = np.linalg.solve(M, x)
    y = x.copy()
    _batch._lu_solve_inplace(M.copy(), y)
    kappa = (1 + gamma) / (1 - gamma)
    scale = np.max(np.abs(ref)) + np.max(np.abs(x))
    assert np.max(np.abs(y - ref)) <= 64 * n * kappa * np.finfo(float).eps * scale
    assert np.max(np.abs(M @ y - x)) <= 64 * n * np.finfo(float).eps * scale


def _suspect_and_exact(P2, atol):
    """(suspect rows of the fast pass, code of the exact check); the threaded and serial fast passes agree."""
    n = _batch._count_suspect_rows(P2, atol, 2)
    assert _batch._count_suspect_rows(P2, atol, 1) == n          # any number of workers, same count
    assert _batch._count_suspect_rows(P2, atol, 7) == n
    assert _batch._count_suspect_rows_serial(P2, atol) == n
    return n, _batch._check_stochastic(P2, atol)[0]


@pytest.mark.parametrize("size", ["small", "large"])  # serial / threaded fast pass inside solve_batch
@pytest.mark.parametrize("bad", ["nan", "inf", "neg_inf", "negative", "subnormal_negative", "sum_high", "sum_low"])
def test_fast_stochastic_pass_flags_every_row_the_exact_check_refuses(bad, size):
    """Every row the exact serial check refuses is a suspect of the fast pass (so solve_batch refuses
    it, naming the same entry); rows off by less than the tolerance pass both."""
    rng = np.random.default_rng(7)
    Bn, Sn, An = (5, 6, 3) if size == "small" else (40, 40, 5)
    assert (Bn * Sn * An * Sn >= _batch._PARALLEL_CHECK_MIN) == (size == "large")
    P = rng.random((Bn, Sn, An, Sn))
    P /= P.sum(-1, keepdims=True)
    R = rng.random((Bn, Sn, An))
    atol = _batch.STOCHASTIC_ATOL * Sn
    assert _suspect_and_exact(P.reshape(-1, Sn), atol) == (0, 0)
    P[3, 2, 1, 4] = {"nan": np.nan, "inf": np.inf, "neg_inf": -np.inf, "negative": -0.01,
                     "subnormal_negative": -1e-320, "sum_high": P[3, 2, 1, 4] + 3 * atol,
                     "sum_low": P[3, 2, 1, 4] - 3 * atol}[bad]
    if bad == "negative":
        P[3, 2, 1, 5] += 0.01
    n_suspect, code = _suspect_and_exact(P.reshape(-1, Sn), atol)
    assert code != 0 and n_suspect == 1
    with pytest.raises(ValueError, match=r"P must be .*P\[3, 2, 1, :\]"):
        ms.solve_batch(P, R, 0.9)


def test_rows_off_by_less_than_the_tolerance_pass_the_fast_and_the_exact_check():
    """Rows summing to 1 ± atol/2 are stochastic for both checks (the fast pass's margin is round-off)."""
    rng = np.random.default_rng(8)
    Sn = 6
    P2 = rng.random((40, Sn))
    P2 /= P2.sum(-1, keepdims=True)
    atol = _batch.STOCHASTIC_ATOL * Sn
    P2[::2, 0] += atol / 2
    P2[1::2, 0] -= atol / 2
    assert _suspect_and_exact(P2, atol) == (0, 0)
    # off by just under the tolerance (inside the fast pass's round-off margin): a suspect for the
    # fast pass, so the exact check decides, and accepts it; solve_batch solves it
    P2[4, 0] += atol / 2 - 1e-14
    assert _suspect_and_exact(P2, atol) == (1, 0)
    P = P2[:36].reshape(1, 6, 6, Sn)
    R = np.zeros((1, 6, 6))
    assert ms.solve_batch(P, R, 0.5).converged.all()


@pytest.mark.parametrize("method", ["pi", "vi"])
def test_mdp_solved_alone_equals_it_solved_in_a_batch_of_several_prange_tasks(method):
    """Bitwise, for a batch spanning several prange tasks (the scratch arrays are reused per task)."""
    n = 2 * _batch._CHUNK + 5
    mdps = [ms.garnet(S, A, 3, gamma=0.9, seed=100 + i) for i in range(n)]
    P, R = np.stack([m.dense_P() for m in mdps]), np.stack([m.R for m in mdps])
    gammas = np.linspace(0.0, 0.99, n)
    full = ms.solve_batch(P, R, gammas, method=method)
    for b in (0, _batch._CHUNK - 1, _batch._CHUNK, n - 1):
        one = ms.solve_batch(P[b:b + 1], R[b:b + 1], gammas[b:b + 1], method=method)
        assert np.array_equal(one.v[0], full.v[b]) and np.array_equal(one.q[0], full.q[b])
        assert np.array_equal(one.policy[0], full.policy[b]) and one.iterations[0] == full.iterations[b]
        if method == "pi":  # exact V^π of the returned (optimal) policy: a direct solve
            idx = np.arange(S)
            act = np.argmax(full.policy[b], axis=1)
            vpi = np.linalg.solve(np.eye(S) - gammas[b] * P[b][idx, act], R[b][idx, act])
            assert np.max(np.abs(full.v[b] - vpi)) <= 1e-12 * (1 + np.max(np.abs(vpi))) / (1 - gammas[b])


@pytest.mark.parametrize("method", ["pi", "vi"])
def test_dynamically_scheduled_batch_solves_every_mdp_once_with_the_same_bits_for_any_thread_count(method):
    import numba

    rng = np.random.default_rng(3)
    B, S, A = 203, 5, 3                                    # 13 tasks of 16 MDPs, the last one short
    P = rng.random((B, S, A, S)) ** 4
    P /= P.sum(-1, keepdims=True)
    R = rng.random((B, S, A))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = ms.solve_batch(P, R, 0.9, method=method)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = ms.solve_batch(P, R, 0.9, method=method)
    finally:
        numba.set_num_threads(before)
    for f in ("q", "v", "policy", "residual", "iterations", "converged"):
        np.testing.assert_array_equal(getattr(one, f), getattr(many, f))
    for b in range(B):                                     # every MDP was solved, by exactly its own numbers
        alone = ms.solve_batch(P[b:b + 1], R[b:b + 1], 0.9, method=method)
        np.testing.assert_array_equal(alone.v[0], many.v[b])
