"""numba's cache goes to a user cache directory when the install is read-only (issue 12 §4)."""
import os
import shutil
import subprocess
import sys

import mdpsandbox
from mdpsandbox._numba_cache import configure_numba_cache, package_writable, user_cache_dir


def test_read_only_install_uses_the_xdg_user_cache_dir(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    chosen = configure_numba_cache(str(tmp_path), environ=env, writable=lambda d: False)
    assert chosen == str(tmp_path / "xdg" / "mdpsandbox" / "numba")
    assert env["NUMBA_CACHE_DIR"] == chosen and os.path.isdir(chosen)


def test_read_only_install_without_xdg_uses_home_dot_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {}
    chosen = configure_numba_cache(str(tmp_path), environ=env, writable=lambda d: False)
    assert chosen == os.path.join(str(tmp_path), ".cache", "mdpsandbox", "numba") == user_cache_dir({})


def test_user_numba_cache_dir_is_never_overridden(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert configure_numba_cache(str(tmp_path), environ=env, writable=lambda d: False) == str(tmp_path / "mine")
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


def test_writable_install_keeps_numbas_default(tmp_path):
    env = {}
    assert configure_numba_cache(str(tmp_path), environ=env) is None
    assert "NUMBA_CACHE_DIR" not in env
    assert package_writable(str(tmp_path))


def test_package_writable_probes_every_directory(tmp_path, monkeypatch):
    """One unwritable sub-directory (its __pycache__ when present) makes the install read-only.
    Permissions are simulated (root may write through chmod)."""
    import builtins

    import mdpsandbox._numba_cache as c

    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "__pycache__").mkdir(parents=True)
    assert package_writable(str(tmp_path))
    real_open = builtins.open
    blocked = str(tmp_path / "b" / "__pycache__")

    def fake_open(path, *args, **kwargs):
        if str(path).startswith(blocked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(c, "open", fake_open, raising=False)
    assert not package_writable(str(tmp_path))
    assert not any(f.startswith(".mdpsandbox-write-test") for _r, _d, fs in os.walk(tmp_path) for f in fs)


def test_import_sets_numba_cache_dir_for_a_read_only_copy(tmp_path):
    """A copy of the package whose writability check fails: importing it points numba at the user cache
    and a cached kernel compiles and runs from there."""
    src = os.path.dirname(mdpsandbox.__file__)
    dst = tmp_path / "site" / "mdpsandbox"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import importlib.util, sys\n"
        # import the copy, not the development install (an editable install adds a meta-path finder)
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]\n"
        f"spec = importlib.util.spec_from_file_location('mdpsandbox._numba_cache', {str(dst / '_numba_cache.py')!r})\n"
        "c = importlib.util.module_from_spec(spec); spec.loader.exec_module(c)\n"
        "c.package_writable = lambda d: False\n"            # the copy behaves as a read-only install
        "sys.modules['mdpsandbox._numba_cache'] = c\n"
        "import mdpsandbox, os, numpy as np\n"
        "from mdpsandbox.solvers.distributional import monte_carlo_returns\n"
        "monte_carlo_returns(np.array([[1.0]]), np.array([1.0]), 0.5, 4)\n"
        "print(os.environ['NUMBA_CACHE_DIR'])\n"
        "print(mdpsandbox.__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT")}
    env["PYTHONPATH"] = str(tmp_path / "site")
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    cache_dir, where = out.stdout.split()
    assert cache_dir == str(tmp_path / "xdg" / "mdpsandbox" / "numba")
    assert where.startswith(str(dst))
    assert any(f.endswith((".nbi", ".nbc")) for _r, _d, fs in os.walk(cache_dir) for f in fs)
    assert not any(d == "__pycache__" and any(f.endswith(".nbi") for f in os.listdir(os.path.join(r, d)))
                   for r, ds, _f in os.walk(dst) for d in ds)
