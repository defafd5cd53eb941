"""Running claims: the :class:`Context` an experiment talks to, and :func:`run_claims`.

Each claim's result is stored atomically as ``DIR/<id>/result.json`` (checks, records, figures,
seconds, size, package version, fingerprint). A rerun reuses every finished result whose fingerprint
(id + size parameters + source of the claim's module) matches, so an interrupted run recomputes
nothing that had finished; sweeps run through :meth:`Context.sweep` also resume cell by cell.
An exception inside a claim is a failed claim (verdict ``"error"``, traceback stored); the run goes on.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .registry import OPS, Claim, ClaimDefinitionError

__all__ = ["Context", "run_claims", "check_out_dir", "atomic_write_text", "MARKER", "BACKENDS"]

MARKER = ".mdpsandbox-validate"
BACKENDS = ("serial", "process", "dask")


def _version() -> str:
    from .. import __version__

    return __version__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's files are 0600


def atomic_write_text(path: os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _scalar(value, name: str):
    """A JSON scalar from a Python/numpy scalar (bool, int, float, str); NaN/inf kept as floats."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _scalar(value.item(), name)
    raise ClaimDefinitionError(f"{name} must be a scalar (bool, int, float or str), got {type(value).__name__}")


def _json_default(o):
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def _dumps(obj) -> str:
    # NaN/inf are not valid JSON: store them as strings
    def fix(x):
        if isinstance(x, float) and not math.isfinite(x):
            return repr(x)
        if isinstance(x, dict):
            return {k: fix(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [fix(v) for v in x]
        return x

    return json.dumps(fix(json.loads(json.dumps(obj, default=_json_default))), indent=2, allow_nan=False) + "\n"


_CMP = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


class Context:
    """What a claim's experiment uses to report: ``check``, ``record``, ``figure`` and ``sweep``.

    Attributes: ``claim`` (the :class:`Claim`), ``size`` (``"quick"``/``"full"``), ``dir`` (the
    claim's output directory, for anything it wants to cache), ``backend``/``workers`` (for sweeps),
    ``progress``.
    """

    def __init__(self, claim: Claim, size: str, directory: os.PathLike, *, backend: str = "serial",
                 workers: Optional[int] = None, progress: bool = False, fingerprint: str = ""):
        self.claim = claim
        self.size = size
        self.dir = Path(directory)
        self.backend = backend
        self.workers = workers
        self.progress = progress
        self.fingerprint = fingerprint
        self.checks: List[dict] = []
        self.records: Dict[str, object] = {}
        self.figures: List[dict] = []

    def check(self, name: str, *, measured, threshold, op: str, note: str = "") -> bool:
        """Record the named assertion ``measured <op> threshold`` and return whether it holds.

        ``name`` must be one of the claim's declared assertions, each checked exactly once. A NaN
        measurement fails (it satisfies no comparison). Never raises on a failed comparison: the
        verdict is computed from the recorded checks.
        """
        if name not in self.claim.assertions:
            raise ClaimDefinitionError(f"claim {self.claim.id!r}: check {name!r} is not one of its declared "
                                       f"assertions {self.claim.assertions}")
        if any(c["name"] == name for c in self.checks):
            raise ClaimDefinitionError(f"claim {self.claim.id!r}: assertion {name!r} checked twice")
        if op not in OPS:
            raise ClaimDefinitionError(f"claim {self.claim.id!r}: op must be one of {OPS}, got {op!r}")
        m = _scalar(measured, f"measured value of {name!r}")
        t = _scalar(threshold, f"threshold of {name!r}")
        if isinstance(m, str) or isinstance(t, str):
            raise ClaimDefinitionError(f"claim {self.claim.id!r}: check {name!r} compares numbers, got {m!r}, {t!r}")
        m, t = float(m), float(t)
        passed = bool(_CMP[op](m, t)) if not (math.isnan(m) or math.isnan(t)) else False
        self.checks.append(dict(name=name, measured=m, threshold=t, op=op, passed=passed, note=str(note)))
        return passed

    def record(self, name: str, value) -> None:
        """A key number for the report table (scalar: bool, int, float or str)."""
        if not isinstance(name, str) or not name:
            raise ClaimDefinitionError(f"claim {self.claim.id!r}: record name must be a non-empty string")
        self.records[name] = _scalar(value, f"record {name!r}")

    def figure(self, name: str, fig, *, dpi: int = 110) -> Path:
        """Save ``fig`` as ``<dir>/<name>.png`` (atomically), close it and list it in the report."""
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ClaimDefinitionError(f"claim {self.claim.id!r}: figure name must be alphanumeric/_/-, got {name!r}")
        if any(f["name"] == name for f in self.figures):
            raise ClaimDefinitionError(f"claim {self.claim.id!r}: figure {name!r} saved twice")
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{name}.png"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".png", dir=self.dir)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=dpi, format="png")
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
            import matplotlib.pyplot as plt

            plt.close(fig)
        self.figures.append(dict(name=name, path=f"{self.claim.id}/{name}.png"))
        return path

    def sweep(self, name: str, sweep, **kwargs):
        """Run (or resume) ``sweep`` with :func:`mdpsandbox.sweeps.run` into this claim's directory
        (``<dir>/sweeps/<name>-<fingerprint>``, so a changed claim never reuses stale cells) with the
        run's backend and workers; returns its DataFrame. Keyword arguments go to ``run`` (default
        ``retry_failed=True``: cells stored as errors by an earlier attempt are recomputed, finished
        cells never are)."""
        from ..sweeps import run

        if not isinstance(name, str) or not name.isidentifier():
            raise ClaimDefinitionError(f"claim {self.claim.id!r}: sweep name must be an identifier, got {name!r}")
        out = self.dir / "sweeps" / f"{name}-{self.size}-{self.fingerprint[:12] or 'nofp'}"
        kwargs.setdefault("backend", self.backend)
        kwargs.setdefault("workers", self.workers)
        kwargs.setdefault("progress", self.progress)
        kwargs.setdefault("retry_failed", True)  # a claim rerun after an error retries its failed cells
        return run(sweep, out=str(out), **kwargs)


def _verdict(claim: Claim, ctx: Context, error: Optional[str]) -> tuple:
    if error is not None:
        return "error", error
    missing = [a for a in claim.assertions if not any(c["name"] == a for c in ctx.checks)]
    if missing:
        return "error", f"assertion(s) never checked: {', '.join(missing)}"
    if not ctx.figures:
        return "error", "the claim saved no figure (every claim shows its data: call ctx.figure)"
    return ("pass" if all(c["passed"] for c in ctx.checks) else "fail"), None


def check_out_dir(out: os.PathLike, *, fresh: bool = False) -> Path:
    """Validate (and with ``fresh`` empty) the output directory before any work.

    A directory that exists, is not empty and carries no ``.mdpsandbox-validate`` marker is refused
    (not ours to overwrite). A directory holding results of another mdpsandbox version is refused
    unless ``fresh`` (which deletes it first).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        marker = out / MARKER
        if not marker.exists():
            raise ValueError(f"out {str(out)!r} is not empty and was not written by 'mdpsandbox validate' "
                             "(no .mdpsandbox-validate marker); choose another --out")
        if fresh:
            shutil.rmtree(out)
        else:
            try:
                info = json.loads(marker.read_text())
            except (OSError, ValueError):
                info = {}
            theirs = info.get("mdpsandbox_version")
            if theirs != _version():
                raise ValueError(f"out {str(out)!r} holds results of mdpsandbox {theirs} (this is {_version()}); "
                                 "rerun with --fresh to discard them, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).exists():
        atomic_write_text(out / MARKER, json.dumps({"mdpsandbox_version": _version()}) + "\n")
    return out


def _load_result(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_claims(claims: List[Claim], *, size: str = "quick", out: os.PathLike = "validation-report",
               backend: str = "serial", workers: Optional[int] = None, fresh: bool = False,
               progress: bool = True, on_result: Optional[Callable[[dict, bool], None]] = None) -> List[dict]:
    """Run ``claims`` at ``size`` into ``out`` and return one result dict per claim (in order).

    Bad input raises ``ValueError`` before any claim runs: unknown size or backend, an output
    directory of another version (see :func:`check_out_dir`). Finished results whose fingerprint
    matches are reused (``result["reused"] = True``). ``on_result(result, reused)`` is called after
    each claim. ``KeyboardInterrupt`` stops the run (finished claims stay stored).
    """
    from tqdm.auto import tqdm

    if size not in ("quick", "full"):
        raise ValueError(f"size must be 'quick' or 'full', got {size!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    out = check_out_dir(out, fresh=fresh)
    results = []
    bar = tqdm(claims, desc=f"validate --{size}", unit="claim", disable=not (progress and sys.stderr.isatty()))
    for c in bar:
        bar.set_postfix_str(c.id)
        fp = c.fingerprint(size)
        cdir = out / c.id
        rpath = cdir / "result.json"
        old = _load_result(rpath) if rpath.exists() else None
        if old is not None and old.get("fingerprint") == fp and old.get("verdict") in ("pass", "fail") \
                and old.get("version") == _version():
            old["reused"] = True
            results.append(old)
            if on_result:
                on_result(old, True)
            continue
        cdir.mkdir(parents=True, exist_ok=True)
        ctx = Context(c, size, cdir, backend=backend, workers=workers, progress=progress, fingerprint=fp)
        params = c.params(size)
        t0 = time.perf_counter()
        error = None
        with warnings.catch_warnings(record=True) as caught:
            # warnings raised by the experiment (e.g. a negative control's expected failure) go into the
            # report, counted once per message, instead of scrolling past on the terminal
            warnings.simplefilter("always")
            try:
                c.func(ctx, **params)
            except KeyboardInterrupt:
                raise
            except Exception:  # a failed claim, reported with its traceback; the run goes on
                error = traceback.format_exc()
        seconds = time.perf_counter() - t0
        counts: Dict[str, int] = {}
        for w in caught:
            key = f"{w.category.__name__}: {str(w.message).strip()}"
            counts[key] = counts.get(key, 0) + 1
        warned = [dict(message=k, count=n) for k, n in list(counts.items())[:20]]
        verdict, why = _verdict(c, ctx, error)
        res = dict(id=c.id, title=c.title, topic=c.topic, statement=c.statement, citation=c.citation,
                   negative_control=c.negative_control, assertions=list(c.assertions), size=size, params=params,
                   verdict=verdict, error=why, checks=ctx.checks, records=ctx.records, figures=ctx.figures,
                   seconds=round(seconds, 3), fingerprint=fp, version=_version(), module=c.module, warnings=warned,
                   finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        atomic_write_text(rpath, _dumps(res))
        res = json.loads(rpath.read_text())
        res["reused"] = False
        results.append(res)
        if on_result:
            on_result(res, False)
    bar.close()
    return results
