"""The numba kernels give the same numbers with NUMBA_DISABLE_JIT=1 (plain Python) as jitted.

One subprocess runs a fixed set of solves (tree kernel: hard / entropy / KL with EOS and several
prompts, β and τ from 1e-300 to 1e300; solve_batch: PI and VI, hard and KL) with the JIT disabled and writes them to a file;
this process recomputes them jitted and compares. A fast subset of the core tests is also run
under NUMBA_DISABLE_JIT=1.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMPUTE = textwrap.dedent(
    """
    import numpy as np
    import mdpsandbox as ms
    from mdpsandbox.solvers.backups import NUMBA_DISABLED

    def compute():
        out = {"jit_disabled": np.array(NUMBA_DISABLED)}
        env = ms.TokenMDP.random(3, 4, seed=3, eos=1, n_prompts=2, reward="dense")
        for name, kw in (("hard", {}), ("ent", dict(temperature=0.3)), ("kl", dict(beta=0.2)),
                         ("kl_huge", dict(beta=1e300)), ("kl_large", dict(beta=1e8)), ("kl_tiny", dict(beta=1e-300)),
                         ("ent_huge", dict(temperature=1e300))):
            sol = ms.solve(env, **kw)
            out[f"tree_{name}_v"], out[f"tree_{name}_pi"] = sol.v, sol.policy
        mdps = [ms.garnet(6, 3, 3, gamma=0.9, seed=i) for i in range(4)]
        P, R = np.stack([m.dense_P() for m in mdps]), np.stack([m.R for m in mdps])
        ref = np.full((6, 3), 1 / 3)
        for method in ("pi", "vi"):
            b = ms.solve_batch(P, R, 0.9, method=method)
            out[f"batch_{method}_hard_v"] = b.v
            b = ms.solve_batch(P, R, 0.9, beta=0.5, ref_policy=ref, method=method)
            out[f"batch_{method}_kl_v"], out[f"batch_{method}_kl_pi"] = b.v, b.policy
            for beta in (1e-300, 1e12, 1e300):  # both branches of the exact soft backup and the KL terms
                b = ms.solve_batch(P, R, 0.9, beta=beta, ref_policy=ref, method=method)
                out[f"batch_{method}_kl{beta:g}_v"], out[f"batch_{method}_kl{beta:g}_pi"] = b.v, b.policy
        return out
    """
)


def _env(disable: bool):
    env = dict(os.environ)
    env["NUMBA_DISABLE_JIT"] = "1" if disable else "0"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_tree_kernel_and_solve_batch_give_the_same_numbers_without_jit(tmp_path):
    path = tmp_path / "nojit.npz"
    script = COMPUTE + f"\nnp.savez({str(path)!r}, **compute())\n"
    subprocess.run([sys.executable, "-c", script], check=True, env=_env(True), cwd=ROOT, timeout=300)
    nojit = dict(np.load(path))
    assert bool(nojit.pop("jit_disabled"))
    ns = {}
    exec(COMPUTE, ns)
    jit = ns["compute"]()
    assert not bool(jit.pop("jit_disabled")), "this process should run the jitted kernels"
    assert set(jit) == set(nojit)
    for k in jit:
        np.testing.assert_allclose(nojit[k], jit[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_core_token_identities_pass_without_jit():
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_token.py",
         "-k", "closed_form or root_value or qsharp_identity or multi_prompt_solution"],
        env=_env(True), cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "failed" not in r.stdout


COMPUTE_DCFP = textwrap.dedent(
    """
    import numpy as np
    import scipy.sparse as sp
    import mdpsandbox as ms
    from mdpsandbox.solvers.backups import NUMBA_DISABLED
    from mdpsandbox.solvers.distributional import categorical_cdf_operator, categorical_fixed_point, default_atoms
    from mdpsandbox.solvers.distributional import _dcfp_fast as K
    from mdpsandbox.solvers.distributional.cdf_operator import _build_operator
    from mdpsandbox.solvers.distributional.projection import check_atoms

    def compute():
        out = {"jit_disabled": np.array(NUMBA_DISABLED)}
        mdp = ms.garnet(5, 1, 3, seed=7)
        P, r = np.ascontiguousarray(mdp.dense_P()[:, 0, :]), mdp.R[:, 0].copy()
        for g in (0.1, 0.9, 0.99):   # scatter-or-gather C, plain BiCGSTAB, coarse-corrected BiCGSTAB
            z = default_atoms(r, g, 9)
            out[f"C_{g}"], out[f"b_{g}"] = categorical_cdf_operator(r, g, z)
            for name, Pin in (("sparse", sp.csr_matrix(P)), ("dense", P)):
                fp = categorical_fixed_point(Pin, r, g, z, tol=1e-9)
                out[f"dcfp_{name}_{g}"], out[f"dcfp_{name}_{g}_its"] = fp.cdf, np.array(fp.iterations)
            fp = categorical_fixed_point(sp.csr_matrix(P), r, g, z, method="cdp", tol=1e-6)
            out[f"cdp_{g}"], out[f"cdp_{g}_its"] = fp.cdf, np.array(fp.iterations)
            op = _build_operator(r, g, *check_atoms(z))
            F = np.linspace(0.0, 1.0, 5 * 8).reshape(5, 8)
            for form in ("gather", "scatter"):
                out[f"apply_{form}_{g}"] = K.FastOperator(sp.csr_matrix(P), op, form=form).apply(F)
        return out
    """
)


def test_dcfp_and_cdp_kernels_give_the_same_numbers_without_jit(tmp_path):
    path = tmp_path / "nojit_dcfp.npz"
    script = COMPUTE_DCFP + f"\nnp.savez({str(path)!r}, **compute())\n"
    subprocess.run([sys.executable, "-c", script], check=True, env=_env(True), cwd=ROOT, timeout=300)
    nojit = dict(np.load(path))
    assert bool(nojit.pop("jit_disabled"))
    ns = {}
    exec(COMPUTE_DCFP, ns)
    jit = ns["compute"]()
    assert not bool(jit.pop("jit_disabled")), "this process should run the jitted kernels"
    assert set(jit) == set(nojit)
    for k in jit:
        np.testing.assert_allclose(nojit[k], jit[k], rtol=1e-12, atol=1e-12, err_msg=k)
