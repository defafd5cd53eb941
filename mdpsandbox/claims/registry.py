"""The claim registry: the :func:`claim` decorator and discovery of claim modules.

A *claim* is a declared experiment: an id, a one-sentence statement (with its equation and paper),
a citation, named assertions (each checked exactly once by the experiment through
:meth:`Context.check`), and two sizes of keyword arguments — ``quick`` (CI) and ``full`` (the
paper-scale run). Claim modules are the files ``validation/<topic>.py`` of the repository (every
module whose name does not start with ``_``), imported as ``validation.<topic>`` with the
repository root on ``sys.path`` (and on ``PYTHONPATH``, so sweep worker processes can import the
tasks a claim module defines).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

__all__ = ["Claim", "ClaimDefinitionError", "SIZES", "claim", "registered", "discover", "default_claims_dir",
           "select", "markdown_table"]

SIZES = ("quick", "full")
_ID = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
OPS = ("<", "<=", ">", ">=")


class ClaimDefinitionError(ValueError):
    """A claim is declared wrongly (bad id, duplicate id, no assertions, unknown size, ...)."""


@dataclass(frozen=True)
class Claim:
    """One registered claim (see :func:`claim`)."""

    id: str
    title: str
    statement: str
    citation: str
    topic: str
    assertions: Tuple[str, ...]
    sizes: Mapping[str, Mapping[str, object]]
    negative_control: bool
    func: Callable = field(repr=False, compare=False)
    module: str = ""

    def params(self, size: str) -> dict:
        """The keyword arguments of the experiment at ``size`` (``"quick"`` or ``"full"``)."""
        if size not in self.sizes:
            raise ValueError(f"size must be one of {tuple(self.sizes)}, got {size!r}")
        return dict(self.sizes[size])

    def source_hash(self) -> str:
        """sha256 of the source file of the claim's module (part of the fingerprint)."""
        path = inspect.getsourcefile(self.func)
        data = Path(path).read_bytes() if path and os.path.exists(path) else inspect.getsource(self.func).encode()
        return hashlib.sha256(data).hexdigest()

    def fingerprint(self, size: str) -> str:
        """Stable hash of (id, size, size parameters, module source): a finished result with the same
        fingerprint is reused; anything else reruns."""
        import json

        blob = json.dumps({"id": self.id, "size": size, "params": self.params(size), "source": self.source_hash()},
                          sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


# id -> Claim; discovery scopes it to the package it imports
_REGISTRY: Dict[str, Claim] = {}


def _check_str(value, name, cid):
    if not isinstance(value, str) or not value.strip():
        raise ClaimDefinitionError(f"claim {cid!r}: {name} must be a non-empty string, got {value!r}")
    return value.strip()


def claim(*, id: str, title: str, statement: str, citation: str, topic: str, assertions: Iterable[str],
          sizes: Mapping[str, Mapping[str, object]], negative_control: bool = False) -> Callable:
    """Register ``func(ctx, **sizes[size])`` as a claim.

    id : unique snake_case id. title, statement (one sentence with the equation and the paper),
    citation, topic : non-empty strings. assertions : the names of the checks; the experiment must
    call ``ctx.check(name, ...)`` exactly once for each. sizes : ``{"quick": kwargs, "full": kwargs}``
    (both required, no other size). negative_control : True when the claim is "this method fails, and
    does" (its checks assert the failure).

    Raises :class:`ClaimDefinitionError` (a ``ValueError``) at decoration time for an id that is not
    snake_case or is already taken by another function, no assertions, duplicate assertion names,
    unknown or missing sizes, or size parameters the function does not accept.
    """
    if not isinstance(id, str) or not _ID.match(id):
        raise ClaimDefinitionError(f"claim id must be snake_case ([a-z][a-z0-9_]*), got {id!r}")
    title = _check_str(title, "title", id)
    statement = _check_str(statement, "statement", id)
    citation = _check_str(citation, "citation", id)
    topic = _check_str(topic, "topic", id)
    if isinstance(assertions, str):
        raise ClaimDefinitionError(f"claim {id!r}: assertions must be a tuple of names, got the string {assertions!r}")
    names = tuple(assertions)
    if not names:
        raise ClaimDefinitionError(f"claim {id!r} has no assertions: a claim must check at least one named assertion")
    for n in names:
        if not isinstance(n, str) or not _ID.match(n):
            raise ClaimDefinitionError(f"claim {id!r}: assertion names must be snake_case, got {n!r}")
    if len(set(names)) != len(names):
        raise ClaimDefinitionError(f"claim {id!r}: duplicate assertion names in {names}")
    if not isinstance(sizes, Mapping):
        raise ClaimDefinitionError(f"claim {id!r}: sizes must be a dict {{'quick': {{...}}, 'full': {{...}}}}")
    unknown = sorted(set(sizes) - set(SIZES))
    missing = [s for s in SIZES if s not in sizes]
    if unknown or missing:
        raise ClaimDefinitionError(f"claim {id!r}: sizes must be exactly {SIZES}; unknown {unknown}, missing {missing}")
    for s in SIZES:
        if not isinstance(sizes[s], Mapping):
            raise ClaimDefinitionError(f"claim {id!r}: sizes[{s!r}] must be a dict of keyword arguments")

    def deco(func: Callable) -> Callable:
        if not callable(func):
            raise ClaimDefinitionError(f"claim {id!r}: @claim decorates a function, got {func!r}")
        sig = inspect.signature(func)
        for s in SIZES:
            try:
                sig.bind(None, **sizes[s])
            except TypeError as exc:
                raise ClaimDefinitionError(
                    f"claim {id!r}: {func.__qualname__}(ctx, **sizes[{s!r}]) does not bind: {exc}") from None
        old = _REGISTRY.get(id)
        if old is not None and (old.module, old.func.__qualname__) != (func.__module__, func.__qualname__):
            raise ClaimDefinitionError(f"duplicate claim id {id!r}: already registered by "
                                       f"{old.module}.{old.func.__qualname__}")
        c = Claim(id, title, statement, citation, topic, names, {s: dict(sizes[s]) for s in SIZES},
                  bool(negative_control), func, func.__module__)
        _REGISTRY[id] = c  # re-import of the same module replaces its own entry
        func.claim = c
        return func

    return deco


def registered() -> List[Claim]:
    """Every claim registered so far, in registration order."""
    return list(_REGISTRY.values())


def default_claims_dir() -> Path:
    """``<repository root>/validation``, the repository root being the parent of the package."""
    return Path(__file__).resolve().parents[2] / "validation"


def _add_path(root: str) -> None:
    if root not in sys.path:
        sys.path.insert(0, root)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([root] + parts)


def discover(claims_dir: Optional[os.PathLike] = None) -> List[Claim]:
    """Import every claim module of ``claims_dir`` (default :func:`default_claims_dir`) and return its
    claims in (module name, definition) order.

    The directory is imported as a package named after it (``validation`` by default) with its parent
    on ``sys.path`` and ``PYTHONPATH``. A directory whose name is not a Python identifier, or that does
    not exist, is a ``ValueError``. An import error in a claim module propagates (a broken claim module
    is not silently skipped).
    """
    d = Path(claims_dir) if claims_dir is not None else default_claims_dir()
    if not d.is_dir():
        raise ValueError(f"claims_dir {str(d)!r} does not exist or is not a directory (expected the repository's "
                         "validation/ folder: run from a clone of mdpsandbox, or pass --claims-dir)")
    d = d.resolve()
    pkg = d.name
    if not pkg.isidentifier():
        raise ValueError(f"claims_dir name {pkg!r} must be a Python identifier (it is imported as a package)")
    topics = sorted(p.stem for p in d.glob("*.py") if not p.stem.startswith("_") and p.stem.isidentifier())
    _add_path(str(d.parent))
    prefix = pkg + "."
    old = sys.modules.get(pkg)
    if old is not None:
        old_paths = [str(Path(p).resolve()) for p in getattr(old, "__path__", None) or []]
        if old_paths != [str(d)]:  # another directory under the same package name: forget it and its claims
            for cid in [c.id for c in _REGISTRY.values() if c.module == pkg or c.module.startswith(prefix)]:
                del _REGISTRY[cid]
            for name in [m for m in sys.modules if m == pkg or m.startswith(prefix)]:
                del sys.modules[name]
            importlib.invalidate_caches()
    importlib.import_module(pkg)
    for t in topics:
        importlib.import_module(prefix + t)
    order = {t: i for i, t in enumerate(topics)}
    found = [c for c in _REGISTRY.values() if c.module.startswith(prefix)]
    found.sort(key=lambda c: order.get(c.module[len(prefix):], len(order)))
    return found


def select(claims: List[Claim], only: Optional[Iterable[str]] = None) -> List[Claim]:
    """The claims whose id is in ``only`` (all when None). Unknown ids: ``ValueError`` listing the valid ones."""
    if only is None:
        return list(claims)
    want = [s.strip() for s in only if s and s.strip()]
    if not want:
        raise ValueError("only must name at least one claim id")
    ids = {c.id for c in claims}
    bad = [w for w in want if w not in ids]
    if bad:
        raise ValueError(f"unknown claim id(s) {', '.join(bad)}; valid ids: {', '.join(c.id for c in claims)}")
    return [c for c in claims if c.id in set(want)]


def markdown_table(claims: List[Claim]) -> str:
    """The README "Theory claims" table: one row per claim (id, topic, title, negative control)."""
    rows = ["| claim | topic | what is checked |", "|---|---|---|"]
    for c in claims:
        title = c.title.replace("|", "\\|") + (" *(negative control)*" if c.negative_control else "")
        rows.append(f"| `{c.id}` | {c.topic} | {title} |")
    return "\n".join(rows) + "\n"
