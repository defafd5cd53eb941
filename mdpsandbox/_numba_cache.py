"""Where numba keeps its compiled-kernel cache (``@numba.njit(cache=True)``).

numba writes its cache next to the sources (``__pycache__``) by default. For a read-only install
(a system site-packages, a container image, a shared environment) that directory cannot be
written, so :func:`configure_numba_cache` — called by ``import mdpsandbox`` before numba is
imported — points ``NUMBA_CACHE_DIR`` at a per-user cache directory instead:
``$XDG_CACHE_HOME/mdpsandbox/numba`` (default ``~/.cache/mdpsandbox/numba``). A
``NUMBA_CACHE_DIR`` set by the user is always kept, and a writable install keeps numba's default.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, MutableMapping, Optional

__all__ = ["configure_numba_cache", "user_cache_dir", "package_writable"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_cache_dir(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """``$XDG_CACHE_HOME/mdpsandbox/numba``, or ``~/.cache/mdpsandbox/numba`` when XDG_CACHE_HOME is unset."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mdpsandbox", "numba")


def package_writable(package_dir: str = _PACKAGE_DIR) -> bool:
    """True when numba can write its in-tree cache: every directory of the package (and an existing
    ``__pycache__`` in it) is writable. A file is created and removed to check (``os.access`` says
    yes to root even on a read-only mount)."""
    for root, dirs, _files in os.walk(package_dir):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        target = os.path.join(root, "__pycache__")
        target = target if os.path.isdir(target) else root
        probe = os.path.join(target, f".mdpsandbox-write-test-{os.getpid()}")
        try:
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError:
            return False
    return True


def configure_numba_cache(package_dir: str = _PACKAGE_DIR, environ: Optional[MutableMapping[str, str]] = None,
                          writable: Optional[Callable[[str], bool]] = None) -> Optional[str]:
    """Choose numba's cache directory; returns the directory set, or None when numba's default is kept.

    * ``NUMBA_CACHE_DIR`` already set (non-empty) by the user: kept, returned unchanged;
    * the package directory is writable: nothing is changed (None; numba caches in ``__pycache__``);
    * otherwise: ``NUMBA_CACHE_DIR`` = :func:`user_cache_dir` (created if possible) and, if numba is
      already imported, its live config is updated too.
    """
    env = os.environ if environ is None else environ
    if env.get("NUMBA_CACHE_DIR"):
        return env["NUMBA_CACHE_DIR"]
    if (writable or package_writable)(package_dir):
        return None
    path = user_cache_dir(env)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # pragma: no cover - an unwritable home: numba then warns and skips caching
        pass
    env["NUMBA_CACHE_DIR"] = path
    if environ is None and "numba" in sys.modules:
        from numba.core import config

        config.CACHE_DIR = path
    return path
