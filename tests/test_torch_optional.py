"""The exact core works without torch; the learners say which extra to install (issue 12 §4)."""
import os
import subprocess
import sys
import textwrap

import pytest

_BLOCK_TORCH = textwrap.dedent('''
    import sys

    class _NoTorch:
        """A meta-path finder that makes `import torch` fail as if torch were not installed."""
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoTorch())
''')

_EXACT_CORE = textwrap.dedent('''
    import numpy as np
    import mdpsandbox as ms
    from mdpsandbox.solvers.distributional import categorical_fixed_point, default_atoms
    from mdpsandbox.solvers.flows import flows, tv_distance
    from mdpsandbox.envs.dag import multiset_dag, random_log_reward
    from mdpsandbox.testing import assert_logits_match_q, assert_values_close

    mdp = ms.garnet(6, 2, 2, gamma=0.9, seed=0)
    sol = ms.solve(mdp)
    ev = ms.evaluate(mdp, sol.policy)
    assert_values_close(ev.v, sol.v, atol=1e-8)
    from mdpsandbox.solvers.distributional import policy_mrp
    P, r = policy_mrp(mdp, sol.policy)
    fp = categorical_fixed_point(P, r, 0.9, default_atoms(r, 0.9, 21))
    assert abs(fp.mean.reshape(6, 2)[np.arange(6), sol.policy.argmax(1)] - sol.v).max() < 1e-6
    env = ms.TokenMDP.random(3, 3, seed=0)
    tree = ms.solve(env, beta=0.5)
    assert_logits_match_q(env.ref_logits + tree.q / 0.5, env, 0.5, atol=1e-9)
    dag = multiset_dag(3, 2)
    fl = flows(dag, random_log_reward(dag, seed=0))
    assert fl.log_z == fl.log_z
    assert "torch" not in sys.modules
    try:
        import mdpsandbox.learners
    except ImportError as exc:
        print("LEARNERS:", type(exc).__name__, exc)
    else:
        raise AssertionError("mdpsandbox.learners imported without torch")
''')


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_exact_core_runs_without_torch_and_learners_name_the_extra():
    out = _run(_BLOCK_TORCH + _EXACT_CORE)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("LEARNERS:")]
    assert line, out.stdout
    assert "ModuleNotFoundError" in line[0]
    assert 'pip install "mdpsandbox[torch]"' in line[0]


def test_blocking_finder_really_blocks_torch():
    # the negative control of the test above: with the finder, `import torch` fails
    out = _run(_BLOCK_TORCH + "import torch\n")
    assert out.returncode != 0 and "blocked by the test" in out.stderr


@pytest.mark.parametrize("module", ["mdpsandbox.cli.solve", "mdpsandbox.cli.distribution"])
def test_non_training_cli_commands_import_without_torch(module):
    out = _run(_BLOCK_TORCH + f"import {module}\nimport sys\nassert 'torch' not in sys.modules\n")
    assert out.returncode == 0, out.stderr[-2000:]
