"""The numba kernels behind CDP and DCFP (mdpsandbox/solvers/distributional/_dcfp_fast.py, docs/math.md §7).

Every check is against an independent reference: the operator against the dense C^{(r)} written from
its definition and scipy's block product, BiCGSTAB against a plain-numpy BiCGSTAB with the same
preconditioner written from its formula, the certified bound against a sparse-LU solve, the band LU
against numpy's dense solve, CDP's iterates against F ← blockC (P F) + b with scipy.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mdpsandbox import garnet
from mdpsandbox.solvers.dp import ConvergenceWarning
from mdpsandbox.solvers.distributional import (
    categorical_cdf_operator, categorical_fixed_point, default_atoms, sup_wasserstein1,
)
from mdpsandbox.solvers.distributional import _dcfp_fast as K
from mdpsandbox.solvers.distributional import categorical as cat
from mdpsandbox.solvers.distributional._krylov import bicgstab_l1inf
from mdpsandbox.solvers.distributional.cdf_operator import _build_operator
from mdpsandbox.solvers.distributional.projection import check_atoms

GAMMAS = (0.0, 0.1, 0.5, 0.9, 0.99)


@st.composite
def mrps(draw, max_states=9, gammas=GAMMAS, max_atoms=30):
    """(P dense (n, n), r (n,), γ, atoms): random sparse rows, some states absorbing with reward 0
    (terminal-like), atoms evenly spaced on a range at least as wide as [min r, max r]/(1 − γ)."""
    n = draw(st.integers(1, max_states))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    P = np.zeros((n, n))
    absorbing = rng.random(n) < draw(st.sampled_from([0.0, 0.2, 0.5]))
    for x in range(n):
        if absorbing[x]:
            P[x, x] = 1.0
            continue
        k = int(rng.integers(1, n + 1))
        cols = rng.choice(n, size=k, replace=False)
        w = rng.random(k) + 1e-3
        P[x, cols] = w / w.sum()
    P /= P.sum(axis=1, keepdims=True)
    r = np.round(rng.uniform(-3.0, 3.0, n), draw(st.sampled_from([1, 3, 12])))  # repeated rewards too
    r[absorbing] = 0.0
    gamma = draw(st.sampled_from(gammas))
    m = draw(st.integers(2, max_atoms))
    lo, hi = r.min() / (1 - gamma), r.max() / (1 - gamma)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    span = hi - lo
    wide = draw(st.sampled_from([0.0, 0.0, 0.3, 2.0]))  # atoms wider than needed
    z = np.linspace(lo - wide * span * rng.random(), hi + wide * span * rng.random(), m)
    return P, r, gamma, z


def _dense_C_from_definition(r, gamma, z):
    """C^{(r)}_{ij} = g_i(r + γ z_j) − g_i(r + γ z_{j+1}), b_i = g_i(r + γ z_m), g_i(y) = clip((z_{i+1} − y)/ς, 0, 1)."""
    gap = (z[-1] - z[0]) / (z.size - 1)
    y = r[:, None] + gamma * z[None, :]                                  # (n, m)
    g = np.clip((z[None, 1:, None] - y[:, None, :]) / gap, 0.0, 1.0)     # (n, m−1 rows i, m targets j)
    return g[:, :, :-1] - g[:, :, 1:], g[:, :, -1]


def _garnet(n, branching, gamma, seed):
    mdp = garnet(n, 1, branching, gamma=gamma, seed=seed)
    return np.ascontiguousarray(mdp.dense_P()[:, 0, :]), mdp.R[:, 0].copy()


def _fast(P, r, gamma, z, form="auto", dense=False):
    zz, gap = check_atoms(z)
    op = _build_operator(r, gamma, zz, gap)
    Pin = np.ascontiguousarray(P) if dense else sp.csr_matrix(P)
    return K.FastOperator(Pin, op, form=form), op


@settings(max_examples=80, deadline=None)
@given(mrps(), st.sampled_from(["auto", "gather", "scatter"]), st.booleans(), st.integers(0, 2**31 - 1))
def test_fast_apply_equals_blockdiag_C_times_P_kron_I(mrp, form, dense, seed):
    P, r, gamma, z = mrp
    fo, op = _fast(P, r, gamma, z, form, dense)
    n, m1 = r.size, z.size - 1
    F = np.random.default_rng(seed).random((n, m1))
    C, _ = categorical_cdf_operator(r, gamma, z)
    ref = np.einsum("xij,xj->xi", C, P @ F)                  # dense C^{(r(x))} (P F)(x)
    scipy_ref = (op.blockC @ np.asarray(sp.csr_matrix(P) @ F).ravel()).reshape(n, m1)
    got = fo.apply(F)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-14)
    np.testing.assert_allclose(got, scipy_ref, rtol=0, atol=1e-14)
    if not dense:  # CSR rows are summed in scipy's order and the gather in CSR column order: bit-identical
        assert np.array_equal(got, scipy_ref)


@settings(max_examples=60, deadline=None)
@given(mrps())
def test_compact_C_and_b_match_their_definition(mrp):
    _, r, gamma, z = mrp
    C, b = categorical_cdf_operator(r, gamma, z)
    Cd, bd = _dense_C_from_definition(r, gamma, z)
    np.testing.assert_allclose(C, Cd, rtol=0, atol=1e-15)
    np.testing.assert_allclose(b, bd, rtol=0, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(mrps(), st.integers(0, 2**31 - 1))
def test_residual_is_b_minus_I_minus_M_F_and_its_l1inf_norm(mrp, seed):
    P, r, gamma, z = mrp
    fo, op = _fast(P, r, gamma, z)
    n, m1 = r.size, z.size - 1
    F = np.random.default_rng(seed).random((n, m1))
    C, b = categorical_cdf_operator(r, gamma, z)
    ref = b - (F - np.einsum("xij,xj->xi", C, P @ F))
    out, res = fo.residual(F)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-14)
    assert res == pytest.approx(np.abs(ref).sum(axis=1).max(), rel=1e-13, abs=1e-14)


@settings(max_examples=40, deadline=None)
@given(mrps(gammas=(0.5, 0.9, 0.99)), st.integers(1, 6))
def test_cdp_iterates_equal_the_scipy_block_product(mrp, steps):
    """CDP after k steps (max_iter = k) is F_k of F ← blockC (P F) + b computed with scipy."""
    P, r, gamma, z = mrp
    zz, gap = check_atoms(z)
    op = _build_operator(r, gamma, zz, gap)
    n, m1 = r.size, z.size - 1
    Ps = sp.csr_matrix(P)
    F = np.zeros(n * m1)
    for _ in range(steps):
        F = op.blockC @ np.asarray(Ps @ F.reshape(n, m1)).ravel() + op.bvec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fp = categorical_fixed_point(Ps, r, gamma, z, method="cdp", max_iter=steps, tol=1e-300)
    assert fp.iterations == steps
    fo, _ = _fast(P, r, gamma, z)
    Fk, k, d, conv = fo.cdp(np.zeros((n, m1)), 0.0, steps)
    assert k == steps
    np.testing.assert_allclose(Fk, F.reshape(n, m1), rtol=0, atol=1e-14)
    np.testing.assert_allclose(fp.cdf[:, :m1], np.clip(F.reshape(n, m1), 0, 1), rtol=0, atol=1e-9)


def _coarse_reference(P, r, gamma, z, mu):
    """B^{-1} v = v + 1⊗q, q = (I − Σ_x μ_x C^{(r(x))})^{-1} Σ_x μ_x v(x), from the dense C."""
    C, _ = categorical_cdf_operator(r, gamma, z)
    Ac = np.eye(z.size - 1) - np.einsum("x,xij->ij", mu, C)

    def Binv(v):
        return v + np.linalg.solve(Ac, mu @ v)[None, :]
    return Binv


def _numpy_bicgstab(A, Binv, b, iters):
    """Right-preconditioned BiCGSTAB (van der Vorst 1992), textbook recurrences, fixed iteration count."""
    x = np.zeros_like(b)
    r = b.copy()
    rhat = r.copy()
    p = np.zeros_like(b)
    v = np.zeros_like(b)
    rho = alpha = omega = 1.0
    for _ in range(iters):
        rho_new = np.sum(rhat * r)
        beta = (rho_new / rho) * (alpha / omega)
        p = r + beta * (p - omega * v)
        ph = Binv(p)
        v = A(ph)
        alpha = rho_new / np.sum(rhat * v)
        s = r - alpha * v
        sh = Binv(s)
        t = A(sh)
        omega = np.sum(t * s) / np.sum(t * t)
        x = x + alpha * ph + omega * sh
        r = s - omega * t
        rho = rho_new
    return x


@pytest.mark.parametrize("coarse", [False, True])
@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_numba_bicgstab_follows_the_textbook_recurrences(coarse, gamma):
    P, r = _garnet(12, 3, gamma, 4)
    z = default_atoms(r, gamma, 17)
    fo, _ = _fast(P, r, gamma, z)
    fo.setup_coarse()
    C, b = categorical_cdf_operator(r, gamma, z)

    def A(F):
        return F - np.einsum("xij,xj->xi", C, P @ F)
    Binv = _coarse_reference(P, r, gamma, z, fo.mu) if coarse else (lambda v: v)
    for iters in (1, 2, 4):
        x, its, status = fo.bicgstab(b, 0.0, iters, coarse=coarse)
        assert (its, status) == (iters, 1)
        ref = _numpy_bicgstab(A, Binv, b, iters)
        np.testing.assert_allclose(x, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    if not coarse:  # and the package's Python reference implementation agrees on its stop
        x, its, status = fo.bicgstab(b, 1e-6, 500)
        x2, its2, status2 = bicgstab_l1inf(lambda v: A(v.reshape(b.shape)).ravel(), b.ravel(), np.zeros(b.size),
                                           *b.shape, 1e-6, 500)
        assert status == status2 == 0 and abs(its - its2) <= 1
        # both residuals ≤ 1e-6 in ℓ∞,1, and ‖(I − M)^{-1}‖∞,1 ≤ 1/(1 − γ)
        diff = np.abs(x - x2.reshape(b.shape)).sum(axis=1).max()
        assert diff <= 2e-6 / (1 - gamma) * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(mrps(gammas=(0.5, 0.9, 0.99)))
def test_band_lu_of_the_coarse_operator_solves_it(mrp):
    P, r, gamma, z = mrp
    fo, op = _fast(P, r, gamma, z)
    mu = np.random.default_rng(0).random(r.size)
    mu /= mu.sum()
    A, lo, hi = K.coarse_band(op.c_rows, op.c_vals, op.u_index, mu)
    C, _ = categorical_cdf_operator(r, gamma, z)
    Ac = np.eye(z.size - 1) - np.einsum("x,xij->ij", mu, C)
    dense = np.zeros_like(Ac)                                # the band storage holds exactly I − C̄
    for i in range(Ac.shape[0]):
        for j in range(max(0, i - lo), min(Ac.shape[0], i + hi + 1)):
            dense[i, j] = A[i, lo + j - i]
    np.testing.assert_allclose(dense, Ac, rtol=0, atol=1e-15)
    K.band_lu(A, lo, hi)
    y = np.random.default_rng(1).random(z.size - 1)
    x = y.copy()
    K.band_solve(A, lo, hi, x)
    np.testing.assert_allclose(x, np.linalg.solve(Ac, y), rtol=1e-12, atol=1e-12)


def test_stationary_law_is_invariant_for_an_irreducible_chain():
    P, r = _garnet(50, 4, 0.9, 2)
    for Pin, dense in ((sp.csr_matrix(P), False), (P, True)):
        f = K.FastOperator(Pin, _build_operator(r, 0.9, *check_atoms(default_atoms(r, 0.9, 5))))
        mu = K.stationary(f.indptr, f.indices, f.data, dense, f.Pd, 10_000, 1e-13)
        assert mu.sum() == pytest.approx(1.0) and mu.min() >= 0
        np.testing.assert_allclose(mu @ P, mu, atol=1e-11)


@settings(max_examples=30, deadline=None)
@given(mrps(max_states=8, gammas=(0.5, 0.9, 0.99, 0.995), max_atoms=25), st.booleans(),
       st.sampled_from([None, 0.0, 2.0]))
def test_dcfp_certified_bound_bounds_sup_w1_to_the_splu_solution(mrp, dense, coarse_min):
    """sup_x W1(DCFP, η_C) ≤ bound, checked against the sparse-LU solution (itself within its own bound)."""
    P, r, gamma, z = mrp
    Pin = P if dense else sp.csr_matrix(P)
    old = cat._COARSE_MIN_GAMMA
    try:
        if coarse_min is not None:   # force the coarse correction on (0) or off (2)
            cat._COARSE_MIN_GAMMA = coarse_min
        fp = categorical_fixed_point(Pin, r, gamma, z, tol=1e-7)
    finally:
        cat._COARSE_MIN_GAMMA = old
    ref = categorical_fixed_point(sp.csr_matrix(P), r, gamma, z, solver="splu", tol=1e-7)
    assert fp.converged and fp.bound <= 1e-7
    scale = max(1.0, float(np.abs(z).max()))
    assert sup_wasserstein1(fp, ref) <= fp.bound + ref.bound + 1e-12 * scale


@pytest.mark.parametrize("gamma", [0.9, 0.99, 0.999])
def test_dcfp_dense_and_sparse_P_give_the_same_fixed_point(gamma):
    P, r = _garnet(40, 30, gamma, 3)   # dense enough to stay a dense array (≥ 25 % non-zeros)
    z = default_atoms(r, gamma, 41)
    a = categorical_fixed_point(np.asarray(P), r, gamma, z, tol=1e-9)
    b = categorical_fixed_point(sp.csr_matrix(P), r, gamma, z, tol=1e-9)
    assert a.converged and b.converged
    assert sup_wasserstein1(a, b) <= a.bound + b.bound
    c = categorical_fixed_point(np.asarray(P), r, gamma, z, method="cdp", tol=1e-9)
    assert sup_wasserstein1(a, c) <= a.bound + c.bound


def test_dcfp_keeps_x0_max_iter_and_warning_behaviour():
    P, r = _garnet(30, 4, 0.99, 5)
    P = sp.csr_matrix(P)
    z = default_atoms(r, 0.99, 51)
    fp = categorical_fixed_point(P, r, 0.99, z, tol=1e-9)
    x0 = fp.cdf[:, :-1].copy()
    again = categorical_fixed_point(P, r, 0.99, z, tol=1e-6, x0=x0)    # start at the answer: no iteration
    assert again.iterations == 0 and again.converged
    assert np.array_equal(x0, fp.cdf[:, :-1])                        # x0 not modified
    Ps, rs = _garnet(6, 3, 0.99, 6)
    with pytest.warns(ConvergenceWarning):   # one restart round cannot reach an impossible target
        bad = categorical_fixed_point(Ps, rs, 0.99, default_atoms(rs, 0.99, 9), tol=1e-300, max_iter=1)
    assert not bad.converged and bad.bound > 1e-300
    with pytest.warns(ConvergenceWarning):
        cdp = categorical_fixed_point(P, r, 0.99, z, method="cdp", tol=1e-9, max_iter=3)
    assert not cdp.converged and cdp.iterations == 3
    cdp0 = categorical_fixed_point(P, r, 0.99, z, method="cdp", tol=1e-6, x0=x0)
    assert cdp0.converged and cdp0.iterations <= 2
