r"""The block-vectorised token-tree kernel (mdpsandbox/solvers/_tree_fast.py; docs/math.md §4).

Identity checked: on every node of the tree the output satisfies the soft Bellman equations

    Q(s,a) = r(s,a) + γ V(s·a)        (V = 0 after EOS / at length H)
    V(s)   = λ log Σ_a π_ref(a|s)^c e^{Q(s,a)/λ},   π(a|s) = π_ref(a|s)^c e^{(Q(s,a) − V(s))/λ}

(c = 1, λ = β: KL control; c = 0, λ = τ: entropy control), against the same recursion run in
40-digit arithmetic (mpmath) over the tree, for β, τ from 1e-300 to 1e300, γ ∈ {0, .5, .9, .99, 1},
with and without EOS, several prompts, dense and terminal rewards, excluded actions (π_ref = 0);
and the fast kernel agrees with the general kernel (backups._tree_backward_kernel) to a few ulp.
"""
import os
import subprocess
import sys
import textwrap

import mpmath as mp
import numpy as np
import pytest

import mdpsandbox as ms
from mdpsandbox.solvers import backups
from mdpsandbox.solvers._tree_fast import tree_backward_fast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALES = [1e-300, 1e-8, 1e-3, 1.0, 1e3, 1e8, 1e300]
GAMMAS = [0.0, 0.5, 0.9, 0.99, 1.0]
RTOL = 1e-12
mp.mp.dps = 40


def _mp_tree(env, lam, c, ref=None):
    """Backward induction over the tree in 40 digits: returns float64 (q, v, policy), shapes (P, N, V).
    ``ref`` (P, N, V) is π_ref (default softmax of the env's logits); rows are normalised exactly."""
    Pn, N, V, H, ls = env.n_prompts, env.n_nodes, env.vocab_size, env.horizon, env.level_start
    lam_m, g = mp.mpf(lam), mp.mpf(env.gamma)
    q = np.zeros((Pn, N, V))
    v = np.zeros((Pn, N))
    pol = np.zeros((Pn, N, V))
    for p in range(Pn):
        vm = [mp.mpf(0)] * N
        for h in range(H - 1, -1, -1):
            for j in range(int(ls[h + 1] - ls[h])):
                i = int(ls[h]) + j
                if ref is None:
                    z = [mp.exp(mp.mpf(x)) for x in env._ref[p, i]]
                else:
                    z = [mp.mpf(x) for x in ref[p, i]]
                tot = mp.fsum(z)
                pr = [x / tot for x in z]
                qm = []
                for a in range(V):
                    x = mp.mpf(env._rew[p, i, a])
                    if h < H - 1 and a != env.eos:
                        x += g * vm[int(ls[h + 1]) + j * V + a]
                    qm.append(x)
                # weights π_ref^c (c ∈ {0, 1}) over the support; shifted by the max so that
                # 40 digits suffice for λ = 1e-300, log1p/expm1 so that they suffice for λ = 1e300
                wts = [(pr[a] if c == 1 else mp.mpf(1), a) for a in range(V) if c == 0 or pr[a] > 0]
                qmax = max(qm[a] for _, a in wts)
                # Σ weights: exactly 1 for KL (π_ref normalised: its 40-digit sum is off by ~1e-40, which
                # λ = 1e300 would amplify), |A| for entropy
                base = mp.mpf(1) if c == 1 else mp.mpf(len(wts))
                x = mp.fsum(w * mp.expm1((qm[a] - qmax) / lam_m) for w, a in wts) / base
                if x > -0.5:
                    L = mp.log(base) + mp.log1p(x)
                else:  # x ≈ −1 + π_ref(best): 1 + x would cancel (π_ref = e^-1000), the direct sum does not
                    L = mp.log(mp.fsum(w * mp.exp((qm[a] - qmax) / lam_m) for w, a in wts))
                vm[i] = qmax + lam_m * L
                for w, a in wts:
                    pol[p, i, a] = float(w * mp.exp((qm[a] - qmax) / lam_m - L))
                q[p, i] = [float(x) for x in qm]
                v[p, i] = float(vm[i])
    return q, v, pol


def _general(env, lam, c, ell, lse):
    """The general tree kernel of backups.py on the same inputs (q, v, policy)."""
    Pn, N, V = env._rew.shape
    q, v, pol = np.empty((Pn * N, V)), np.empty(Pn * N), np.empty((Pn * N, V))
    if c == 0.0:
        ell, lse = env._rew, v
    backups._tree_backward_kernel(env._rew.reshape(-1, V), np.ascontiguousarray(ell).reshape(-1, V),
                                  np.ascontiguousarray(lse).reshape(-1), env.level_start, N, float(env.gamma),
                                  -1 if env.eos is None else env.eos, float(lam), float(c), 1.0 - c, q, v, pol)
    return q.reshape(Pn, N, V), v.reshape(Pn, N), pol.reshape(Pn, N, V)


def _fast(env, lam, c, ell=None, lse=None, finite_ref=True, block=256, split=None):
    """The fast kernel (``split`` None: the default split level, all serial for these small trees;
    test_block_size_split_level_and_finite_hint_do_not_change_a_bit runs the parallel splits)."""
    ell = env._ref if ell is None else ell
    lse = env._lse_ref if lse is None else lse
    return tree_backward_fast(env._rew, ell, lse, env.level_start, env.gamma, env.eos, lam, c,
                              finite_ref=finite_ref, block=block, split=split)


def _close(got, want, scale_v):
    q, v, pol = got
    qe, ve, pe = want
    sc = np.maximum(1.0, np.abs(ve))
    np.testing.assert_array_less(np.abs(v - ve) / sc, RTOL * scale_v)
    np.testing.assert_array_less(np.abs(q - qe) / np.maximum(1.0, np.abs(qe)), RTOL * scale_v)
    np.testing.assert_array_less(np.abs(pol - pe), RTOL)


@pytest.fixture(scope="module", params=[(None, "dense"), (1, "terminal"), (None, "terminal"), (2, "dense")],
                ids=["dense", "eos-terminal", "terminal", "eos-dense"])
def envs(request):
    eos, reward = request.param
    out = {}
    for g in GAMMAS:
        env = ms.TokenMDP.random(3, 4, reward=reward, seed=11, gamma=g, eos=eos, n_prompts=2,
                                 logit_scale=2.0, offset_scale=3.0)
        env.lse_ref
        out[g] = env
    return out


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("beta", SCALES)
def test_fast_kl_tree_satisfies_the_soft_bellman_equations_in_40_digits_and_equals_the_general_kernel(envs, beta,
                                                                                                         gamma):
    env = envs[gamma]
    fast = _fast(env, beta, 1.0)
    _close(fast, _mp_tree(env, beta, 1), 1.0)
    for a, b in zip(fast, _general(env, beta, 1.0, env._ref, env._lse_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("tau", SCALES)
def test_fast_entropy_tree_satisfies_the_soft_bellman_equations_in_40_digits_and_equals_the_general_kernel(envs, tau,
                                                                                                              gamma):
    env = envs[gamma]
    fast = _fast(env, tau, 0.0)
    _close(fast, _mp_tree(env, tau, 0), 1.0)
    for a, b in zip(fast, _general(env, tau, 0.0, env._ref, env._lse_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
@pytest.mark.parametrize("beta", SCALES)
def test_fast_kl_tree_with_excluded_actions_is_the_recursion_on_the_support(beta, gamma):
    """π_ref(a|s) = 0 on some actions (ref_policy override, logit −inf): the maximum, the spread test
    and the policy use the support only, and the excluded actions get π = 0 exactly."""
    env = ms.TokenMDP.random(4, 3, reward="dense", seed=5, gamma=gamma, eos=3, n_prompts=2)
    rng = np.random.default_rng(1)
    ref = rng.random(env._rew.shape)
    ref[rng.random(ref.shape) < 0.4] = 0.0
    ref[..., 0] += 0.1  # every row keeps support
    ref /= ref.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        ell = np.log(ref)
    lse = np.zeros(env._rew.shape[:2])
    fast = _fast(env, beta, 1.0, ell, lse, finite_ref=False)
    _close(fast, _mp_tree(env, beta, 1, ref), 1.0)
    assert np.all(fast[2][ref == 0] == 0.0)
    for a, b in zip(fast, _general(env, beta, 1.0, ell, lse)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    sol = ms.solve(env, beta=beta, ref_policy=ref)  # the front door takes the same path
    for a, b in zip((sol.q, sol.v, sol.policy), fast):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("V", [1, 2, 3, 4, 5, 8])
def test_fast_kernel_rows_of_every_width_equal_the_40_digit_recursion(V):
    """The four-accumulator row loops (V multiple of 4 or not) and V = 1 (π = π_ref = 1)."""
    env = ms.TokenMDP.random(V, 4 if V > 1 else 6, reward="dense", seed=V, gamma=0.9, logit_scale=3.0)
    env.lse_ref
    for beta in (1e-3, 0.7, 1e8):
        _close(_fast(env, beta, 1.0), _mp_tree(env, beta, 1), 1.0)


def test_block_size_split_level_and_finite_hint_do_not_change_a_bit():
    """Parallel tasks are the subtrees under the nodes of a split level, processed in blocks of
    nodes: the per-row arithmetic is the same for every split and block size (all-serial included);
    the finite-logit hint only skips a test."""
    env = ms.TokenMDP.random(5, 5, reward="terminal", seed=2, gamma=0.99, eos=4, n_prompts=3)
    env.lse_ref
    for lam, c in ((0.3, 1.0), (1e-300, 1.0), (1e300, 1.0), (0.3, 0.0)):
        ref = _fast(env, lam, c, split=env.horizon)  # all serial, level by level
        for block, finite, split in ((1, True, 0), (3, False, 1), (7, True, 2), (10_000, False, None), (2, True, 4)):
            for a, b in zip(ref, _fast(env, lam, c, finite_ref=finite, block=block, split=split)):
                np.testing.assert_array_equal(a, b)


def test_solve_uses_the_fast_kernel_for_pure_kl_and_entropy_only():
    env = ms.TokenMDP.random(4, 4, reward="dense", seed=3, eos=2)
    env.lse_ref
    for kw, lam, c in ((dict(beta=0.4), 0.4, 1.0), (dict(temperature=0.4), 0.4, 0.0)):
        sol = ms.solve(env, **kw)
        for a, b in zip((sol.q, sol.v, sol.policy), _fast(env, lam, c)):
            np.testing.assert_array_equal(a, env._user(b))


def test_fast_kernel_refuses_hard_control_and_entropy_plus_kl():
    env = ms.TokenMDP.random(3, 3, seed=0)
    env.lse_ref
    with pytest.raises(ValueError, match="lam"):
        _fast(env, 0.0, 1.0)
    with pytest.raises(ValueError, match="c in"):
        _fast(env, 1.0, 0.5)
    with pytest.raises(ValueError, match="block"):
        _fast(env, 1.0, 1.0, block=0)


def test_fast_kernel_gives_the_same_numbers_without_jit(tmp_path):
    """NUMBA_DISABLE_JIT=1 runs the kernel as Python (FMA as a·b + c there unless math.fma exists):
    the numbers agree to 1e-14 with the jitted kernel."""
    path = tmp_path / "fast_nojit.npz"
    script = textwrap.dedent(f"""
        import numpy as np
        import mdpsandbox as ms
        from mdpsandbox.solvers._tree_fast import tree_backward_fast
        from mdpsandbox.solvers.backups import NUMBA_DISABLED
        assert NUMBA_DISABLED
        env = ms.TokenMDP.random(3, 4, reward="dense", seed=4, gamma=0.9, eos=1, n_prompts=2)
        env.lse_ref
        out = {{}}
        for name, lam, c in (("kl", 0.3, 1.0), ("kl_huge", 1e300, 1.0), ("kl_tiny", 1e-300, 1.0), ("ent", 0.3, 0.0)):
            q, v, p = tree_backward_fast(env._rew, env._ref, env._lse_ref, env.level_start, env.gamma, env.eos,
                                         lam, c, finite_ref=False, block=4)
            out[name + "_q"], out[name + "_v"], out[name + "_p"] = q, v, p
        np.savez({str(path)!r}, **out)
    """)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=ROOT, timeout=300)
    nojit = dict(np.load(path))
    e = ms.TokenMDP.random(3, 4, reward="dense", seed=4, gamma=0.9, eos=1, n_prompts=2)
    e.lse_ref
    for name, lam, c in (("kl", 0.3, 1.0), ("kl_huge", 1e300, 1.0), ("kl_tiny", 1e-300, 1.0), ("ent", 0.3, 0.0)):
        for key, arr in zip("qvp", _fast(e, lam, c)):
            np.testing.assert_allclose(nojit[f"{name}_{key}"], arr, rtol=1e-14, atol=1e-15, err_msg=name)


def _equal(xs, ys):
    for a, b in zip(xs, ys):
        np.testing.assert_array_equal(a, b)


def _ptr(a):
    return a.__array_interface__["data"][0]


def test_a_dropped_solutions_memory_is_reused_and_a_kept_one_is_never_touched():
    """OutputPool: the next solve of the same env writes into the memory of a Solution nobody holds
    any more (every element overwritten: equal to a solve into fresh arrays); memory still viewed
    by anything — the Solution, or one array or view of it — is never handed out again."""
    env = ms.TokenMDP.random(4, 4, reward="dense", seed=8, eos=1)
    env.lse_ref
    s1 = ms.solve(env, beta=0.3)
    keep = [a.copy() for a in (s1.q, s1.v, s1.policy)]
    s2 = ms.solve(env, beta=7.0)  # s1 alive: fresh memory
    assert _ptr(s2.q) != _ptr(s1.q) and _ptr(s2.policy) != _ptr(s1.policy)
    _equal(keep, (s1.q, s1.v, s1.policy))  # (a helper: loop variables would keep arrays alive here)
    ptrs = {_ptr(s1.q), _ptr(s1.v), _ptr(s1.policy)}
    del s1
    assert env._tree_pool.n_free == 3
    s3 = ms.solve(env, beta=0.3)
    assert {_ptr(s3.q), _ptr(s3.v), _ptr(s3.policy)} == ptrs
    _equal((s3.q, s3.v, s3.policy), [env._user(b) for b in _fast(env, 0.3, 1.0)])
    row = s3.policy[2:3]  # a view keeps the policy's memory out of the pool
    del s3
    assert env._tree_pool.n_free == 2
    s4 = ms.solve(env, beta=0.3)
    assert _ptr(s4.policy) != _ptr(row) and _ptr(s4.policy) not in ptrs
    before = row.copy()
    ms.solve(env, temperature=0.5)
    np.testing.assert_array_equal(row, before)
    del row
    assert env._tree_pool.n_free >= 1


@pytest.mark.parametrize("beta", [1e-300, 1e-3, 0.1, 1.0])
def test_best_action_with_a_negligible_reference_probability_keeps_the_exact_value(beta):
    """Logit gaps of 1000 (π_ref ≈ e^-1000 on the action with the best Q): the exponents shifted by
    LSE ℓ all underflow, so the row is redone max-shifted (TINY_SUM) — V still matches 40 digits."""
    V, H = 3, 3
    N = sum(V**h for h in range(H))
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(N, V))
    logits[:, 1] -= 1000.0
    rew = rng.random((N, V))
    rew[:, 1] += 2.0
    env = ms.TokenMDP(V, H, logits, rew, gamma=0.9)
    env.lse_ref
    _close(_fast(env, beta, 1.0), _mp_tree(env, beta, 1), 1.0)
    sol = ms.solve(env, beta=beta)
    assert np.all(np.isfinite(sol.v)) and np.all(np.isfinite(sol.policy))


def test_fma_exp_is_within_one_ulp_of_the_40_digit_exponential():
    """_exp_fma(x) = e^x to ≤ 1 ulp for x ∈ [−708, 0] (and 0 below −708, as ``_exp_nonpos``)."""
    import numba

    from mdpsandbox.solvers._tree_fast import _exp_fma

    @numba.njit
    def apply(a, out):
        for k in range(a.shape[0]):
            out[k] = _exp_fma(a[k])

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-708, 0, 4000), rng.uniform(-1, 0, 4000), -rng.exponential(1e-5, 1000),
                        [0.0, -0.0, -708.0, -707.99, -1e-300, -5e-324]])
    got = np.empty_like(x)
    apply(x, got)
    want = np.array([float(mp.exp(mp.mpf(t))) for t in x])
    assert np.max(np.abs(got - want) / np.spacing(want)) <= 1.0
    below = np.array([-708.5, -1e4, -np.inf])
    out = np.empty_like(below)
    apply(below, out)
    assert np.all(out == 0.0)


def test_solves_of_one_env_from_several_threads_each_get_their_own_memory():
    """Concurrent solves share the env's OutputPool: every result equals the single-threaded one and
    no two live solutions share memory."""
    from concurrent.futures import ThreadPoolExecutor

    env = ms.TokenMDP.random(4, 5, reward="dense", seed=9, eos=3, n_prompts=2)
    betas = [0.05 * (k + 1) for k in range(16)]
    want = {b: ms.solve(env, beta=b) for b in betas[:4]}

    def job(b):
        sol = ms.solve(env, beta=b)
        return b, sol

    with ThreadPoolExecutor(4) as ex:
        sols = list(ex.map(job, betas))
    ptrs = [_ptr(s.q) for _, s in sols] + [_ptr(s.policy) for _, s in sols]
    assert len(set(ptrs)) == len(ptrs)
    for b, s in sols:
        if b in want:
            _equal((s.q, s.v, s.policy), (want[b].q, want[b].v, want[b].policy))


def test_pickles_and_copies_carry_the_mdp_not_the_recycled_output_memory():
    """A solved env pickles to about the size of a fresh one (the pool of dropped outputs stays behind),
    and its copy solves to the same numbers."""
    import copy
    import pickle

    env = ms.TokenMDP.random(6, 5, seed=0)
    fresh = len(pickle.dumps(env))
    sol = ms.solve(env, beta=0.5)
    want = sol.v.copy()
    del sol
    assert env._tree_pool is not None and env._tree_pool.n_free > 0
    # (a solve caches the per-node LSE of the logits, 8 bytes a node; one output array is 8·V bytes a node)
    assert len(pickle.dumps(env)) <= fresh + 16 * env.n_nodes
    for other in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        assert other._tree_pool is None
        np.testing.assert_array_equal(ms.solve(other, beta=0.5).v, want)


def test_branch_free_log_is_within_one_ulp_of_the_40_digit_logarithm():
    """_log_pos(x) = log x to ≤ 1 ulp on positive normal x: the sums the kernel takes the log of
    (Σ e^w in [1e-280, V], and ≥ 1 when max-shifted), near 1 (where log x → 0 and a relative
    error would show), at the reduction's boundaries √2/2, √2 and powers of two, and across the
    whole normal range."""
    import numba

    from mdpsandbox.solvers._tree_fast import _log_pos

    @numba.njit(error_model="numpy")
    def apply(a, out):
        for k in range(a.shape[0]):
            out[k] = _log_pos(a[k])

    rng = np.random.default_rng(3)
    r2 = np.sqrt(2.0)
    x = np.concatenate([10.0 ** rng.uniform(-307, 308, 3000), rng.uniform(1e-280, 64.0, 2000),
                        rng.uniform(0.5, 2.0, 2000), 1.0 + rng.uniform(-1e-3, 1e-3, 1000),
                        1.0 + np.ldexp(1.0, -np.arange(1, 53)), 1.0 - np.ldexp(1.0, -np.arange(1, 54)),
                        np.nextafter(r2, 0.0) * np.array([1.0, 0.5, 2.0, 4.0]), np.array([r2 / 2, r2, r2 * 1024]),
                        np.ldexp(1.0, np.arange(-1022, 1024, 7)), [1.0, 2.0, 0.5, 8.0, 1e-280, 2.2250738585072014e-308,
                                                                    1.7976931348623157e308]])
    got = np.empty_like(x)
    apply(x, got)
    want = np.array([float(mp.log(mp.mpf(t))) for t in x])
    assert got[x == 1.0][0] == 0.0
    nz = want != 0.0
    assert np.max(np.abs(got[nz] - want[nz]) / np.spacing(np.abs(want[nz]))) <= 1.0


def test_streaming_copy_writes_exactly_its_range_at_every_alignment():
    """_copy_out(dst, k0, src, n, phase): dst[k0:k0+n] = src[:n] (the 64-byte lines as streaming
    stores, the rest as plain stores), nothing outside that range touched, for every start, length
    and alignment of dst (phase −1: plain stores only)."""
    import numba

    from mdpsandbox.solvers._tree_fast import _copy_out, _phase, _store_fence

    @numba.njit
    def copy(dst, k0, src, n, phase):
        _copy_out(dst, k0, src, n, phase)
        _store_fence()

    rng = np.random.default_rng(0)
    src = rng.random(80)
    buf = np.empty(200)
    for off in range(8):
        for k0 in (0, 1, 5, 8, 13):
            for n in (0, 1, 7, 8, 9, 16, 23, 64, 80):
                dst = buf[off:off + 100]
                dst[:] = np.nan
                ph = _phase(dst)
                assert 0 <= ph < 8 and (dst.__array_interface__["data"][0] + 8 * ph) % 64 == 0
                for phase in (ph, -1):
                    dst[:] = np.nan
                    copy(dst, k0, src, n, phase)
                    np.testing.assert_array_equal(dst[k0:k0 + n], src[:n])
                    assert np.all(np.isnan(dst[:k0])) and np.all(np.isnan(dst[k0 + n:]))


def test_output_alignment_does_not_change_a_bit():
    """The kernel writes Q and π with streaming stores on the 64-byte-aligned lines of the output and
    plain stores elsewhere: outputs at every 8-byte offset from a cache line (and prefilled with
    NaN: every element is overwritten) hold the same numbers as fresh arrays, for blocks whose
    edges start anywhere in a line (V = 3, 5) and on line boundaries (V = 8)."""
    for V, H in ((3, 5), (5, 4), (8, 4)):
        env = ms.TokenMDP.random(V, H, reward="dense", seed=V, eos=1, n_prompts=2)
        env.lse_ref
        Pn, N = env.n_prompts, env.n_nodes
        for lam, c in ((0.4, 1.0), (0.4, 0.0)):
            want = _fast(env, lam, c, block=7)
            for off in range(8):
                big = np.full(2 * Pn * N * V + 16, np.nan)
                q = big[off:off + Pn * N * V].reshape(Pn, N, V)
                pol = big[Pn * N * V + 8 + off:Pn * N * V + 8 + off + Pn * N * V].reshape(Pn, N, V)
                v = np.full((Pn, N), np.nan)
                got = tree_backward_fast(env._rew, env._ref, env._lse_ref, env.level_start, env.gamma, env.eos,
                                         lam, c, finite_ref=True, block=7, out=(q, v, pol))
                _equal(got, want)
                assert got[0] is q and got[2] is pol


def test_pool_hands_out_cache_line_aligned_memory():
    from mdpsandbox.solvers._tree_fast import OutputPool

    pool = OutputPool()
    for shape in ((1,), (3, 5), (2, 7, 9)):
        a = pool.empty(shape)
        assert a.shape == shape and a.flags.c_contiguous and a.__array_interface__["data"][0] % 64 == 0
        del a
        b = pool.empty(shape)  # recycled: still aligned
        assert b.__array_interface__["data"][0] % 64 == 0


def test_shared_task_counter_hands_out_every_task_exactly_once():
    """_next_task (the atomic work counter, used by parallel kernels that schedule dynamically):
    workers that take tasks until the counter passes their number run every task exactly once."""
    import numba

    from mdpsandbox.solvers._tree_fast import _next_task

    @numba.njit(parallel=True)
    def run(n_tasks, n_workers):
        counter = np.zeros(1, dtype=np.int64)
        hits = np.zeros(n_tasks, dtype=np.int64)
        for _w in numba.prange(n_workers):
            t = _next_task(counter)
            while t < n_tasks:
                hits[t] += 1
                t = _next_task(counter)
        return hits

    for n_tasks, n_workers in ((1, 2), (64, 2), (1000, 2), (7, 1), (0, 2)):
        np.testing.assert_array_equal(run(n_tasks, n_workers), np.ones(n_tasks, dtype=np.int64))
