"""The output directory of a sweep: a manifest and a Parquet dataset, one file per chunk.

Layout::

    DIR/manifest.json              spec, cell count, versions (mdpsandbox, numpy, numba, pandas,
                                   pyarrow, python), git revision when available — written atomically
    DIR/chunks/chunk-<id>.parquet  the rows of one chunk (written to a temp name, then os.replace)
    DIR/chunks/chunk-<id>.npz      optional per-chunk arrays (same way; written before the Parquet)
    DIR/.lock, DIR/.worklock, DIR/.run_id   the run protocol below

Crash safety. A chunk file appears complete or not at all (temp name + ``os.replace``). A rerun
must not race writers left over from a killed run (process-pool or Dask workers finishing their
chunk after the client died): each run writes a fresh run id under an exclusive ``flock`` of
``.worklock``; a worker writes a chunk only while holding a shared lock on ``.worklock`` *and*
seeing its own run id in ``.run_id``. So a stale writer either finishes before the new run scans
the directory, or sees a foreign run id and drops its chunk: every cell ends up exactly once.
``.lock`` (an exclusive POSIX lock for the whole run) refuses two concurrent runs into one directory.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["MANIFEST", "atomic_write", "prepare", "read_manifest", "RunLock", "begin_run", "write_chunk",
           "chunk_files", "scan", "read_rows", "load", "load_arrays"]

MANIFEST = "manifest.json"
CHUNKS = "chunks"
FORMAT = 1


def atomic_write(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory (fsync'ed when ``fsync``),
    then ``os.replace``: readers see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _git_revision() -> Optional[str]:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict:
    import numba
    import pandas
    import pyarrow

    from .. import __version__

    return {"mdpsandbox": __version__, "numpy": np.__version__, "numba": numba.__version__,
            "pandas": pandas.__version__, "pyarrow": pyarrow.__version__, "python": platform.python_version()}


def read_manifest(out) -> dict:
    """The manifest of a sweep directory (ValueError if there is none)."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{str(out)!r} is not a sweep directory (no {MANIFEST})")
    with open(path) as fh:
        return json.load(fh)


def check_writable(out) -> Path:
    """Create ``out`` if needed and check that files can be created in it (ValueError otherwise)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} exists and is not a directory")
    try:
        (out / CHUNKS).mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"out directory {str(out)!r} is not writable: {exc.strerror or exc}") from None
    return out


def prepare(out, spec: dict, n_cells: int) -> Path:
    """Check ``out`` is writable and holds this spec (or none yet: write the manifest). A different
    spec is refused with the list of fields that differ."""
    from .spec import spec_diff

    out = Path(out)
    path = out / MANIFEST
    if path.is_file():
        old = read_manifest(out)
        diff = spec_diff(old.get("spec", {}), spec)
        if diff:
            raise ValueError(f"out directory {str(out)!r} holds a different sweep; fields that differ: "
                             + "; ".join(diff) + ". Use another directory (or delete this one) to run the new spec")
        check_writable(out)
        return out
    check_writable(out)
    manifest = {"format": FORMAT, "spec": spec, "n_cells": int(n_cells), "versions": _versions(),
                "git_revision": _git_revision(), "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return out


class RunLock:
    """Exclusive lock of a sweep directory for the duration of one run (refuses a concurrent run)."""

    def __init__(self, out):
        self.path = Path(out) / ".lock"
        self.fh = None

    def __enter__(self):
        # a POSIX record lock (lockf), not flock: forked pool workers do not inherit it, so workers
        # orphaned by a killed run never keep the directory locked against the rerun
        self.fh = open(self.path, "a+")
        try:
            fcntl.lockf(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            raise ValueError(f"another sweep run is writing into {str(self.path.parent)!r}; wait for it to finish")
        return self

    def __exit__(self, *exc):
        fcntl.lockf(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _flock(path: Path, mode: int, timeout: float):
    fh = open(path, "a+")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fh, mode | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() > deadline:
                fh.close()
                raise TimeoutError(f"could not lock {path} within {timeout} s")
            time.sleep(0.01)


def begin_run(out, timeout: float = 120.0) -> str:
    """Start a run: under the exclusive work lock, publish a new run id and remove temp files
    (only writers holding the shared lock create them, so any left are from dead writers)."""
    out = Path(out)
    run_id = uuid.uuid4().hex
    fh = _flock(out / ".worklock", fcntl.LOCK_EX, timeout)
    try:
        atomic_write(out / ".run_id", run_id.encode())
        for p in (out / CHUNKS).glob(".*.tmp-*"):
            p.unlink(missing_ok=True)
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
    return run_id


def repeated(value, n: int):
    """A pyarrow array of ``n`` copies of the scalar ``value``, typed as ``pa.array([value] * n)``."""
    import pyarrow as pa

    return pa.array([value]).take(pa.array(np.zeros(n, dtype=np.int64))) if n else pa.array([])


def _column_array(values):
    """A pyarrow array of one column: numpy arrays as they are, a list whose entries are all the same
    str (or all None) as a repeated scalar (the same array as from the list, without per-row type
    inference), other lists inferred; values of mixed types as their repr strings."""
    import pyarrow as pa

    if isinstance(values, pa.Array):
        return values
    if isinstance(values, list) and values:
        v0 = values[0]
        if (v0 is None or type(v0) is str) and values.count(v0) == len(values):
            return pa.nulls(len(values)) if v0 is None else pa.repeat(pa.scalar(v0, type=pa.string()), len(values))
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else repr(v) for v in values], type=pa.string())


def _table_bytes(columns: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(columns)
    arrays = [_column_array(columns[n]) for n in names]
    sink = pa.BufferOutputStream()  # native buffer: no Python write call per page (io.BytesIO's were)
    # one small file per chunk: no dictionary pages (keys are unique hashes, parameters few-valued
    # but cheap) and no column statistics (nothing filters on them): about half the write time; the
    # key column (random hex, which snappy barely shrinks) is stored uncompressed
    pq.write_table(pa.Table.from_arrays(arrays, names=names), sink, use_dictionary=False, write_statistics=False,
                   compression={n: "none" if n == "key" else "snappy" for n in names})
    return sink.getvalue().to_pybytes()


def write_chunk(out, run_id: str, name: str, columns: dict, arrays: Optional[dict] = None,
                timeout: float = 120.0) -> bool:
    """Write one chunk's rows (``columns``: name -> list) and optional arrays (``"<key>/<name>"`` ->
    ndarray) if ``run_id`` is still the directory's current run. Returns whether it was written."""
    out = Path(out)
    data = _table_bytes(columns)
    side = None
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        side = buf.getvalue()
    fh = _flock(out / ".worklock", fcntl.LOCK_SH, timeout)
    try:
        current = (out / ".run_id").read_text().strip() if (out / ".run_id").exists() else ""
        if current != run_id:
            return False
        # no fsync per chunk: os.replace is atomic, so a killed process never leaves a partial file
        # (fsync only adds durability against power loss, at ~10–30 ms per chunk on a busy disk)
        if side is not None:
            atomic_write(out / CHUNKS / f"{name}.npz", side, fsync=False)
        atomic_write(out / CHUNKS / f"{name}.parquet", data, fsync=False)
        return True
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def chunk_files(out) -> list:
    """Complete chunk files, sorted by name."""
    return sorted(p for p in (Path(out) / CHUNKS).glob("chunk-*.parquet"))


def read_rows(out, columns=None):
    """All stored rows (every attempt) as one pyarrow Table (schemas unified; missing → null)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = chunk_files(out)
    if not files:
        return None
    tables = [pq.read_table(f, columns=columns) for f in files]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a metric with clashing types across chunks
        import pandas as pd

        return pa.Table.from_pandas(pd.concat([t.to_pandas() for t in tables], ignore_index=True),
                                    preserve_index=False)


def scan(out) -> dict:
    """key -> (attempt, status) of the latest attempt of every stored cell."""
    t = read_rows(out, columns=["key", "attempt", "status"])
    latest: dict = {}
    if t is None:
        return latest
    for k, a, s in zip(t.column("key").to_pylist(), t.column("attempt").to_pylist(), t.column("status").to_pylist()):
        if k not in latest or a > latest[k][0]:
            latest[k] = (a, s)
    return latest


def load(out, *, all_attempts: bool = False):
    """The results table of a sweep directory: one row per completed cell (its latest attempt),
    in grid order. Columns: ``cell`` (grid index), the parameters (spec order), the metrics
    (sorted), ``status`` ("ok"/"error"), ``error`` (message or None), ``wall_s``, ``attempt``,
    ``key``. Cells not run yet are absent (see :func:`mdpsandbox.sweeps.status`)."""
    import pandas as pd

    man = read_manifest(out)
    sweep = _spec_no_check(man["spec"])
    params = sweep.param_names
    t = read_rows(out)
    tail = ["status", "error", "wall_s", "attempt", "key"]
    if t is None:
        return pd.DataFrame(columns=["cell", *params, *tail])
    df = t.to_pandas()
    df = df.sort_values(["cell", "attempt"], kind="stable")
    if not all_attempts:
        df = df.drop_duplicates("key", keep="last")
    metrics = sorted(c for c in df.columns if c not in set(params) | set(tail) | {"cell"})
    df = df[["cell", *params, *metrics, *tail]].reset_index(drop=True)
    return df


def _spec_no_check(spec: dict):
    """A Sweep from a stored spec without resolving its task (loading needs no task import)."""
    from .spec import Sweep

    class _Loose(Sweep):
        def __post_init__(self):  # keep the stored canonical values as they are
            object.__setattr__(self, "axes", {n: tuple(v) for n, v in self.axes.items()})
            object.__setattr__(self, "zipped", tuple({n: tuple(v) for n, v in g.items()} for g in self.zipped))
            object.__setattr__(self, "fixed", dict(self.fixed))

    return _Loose(task=spec["task"], axes=spec.get("axes", {}), zipped=spec.get("zipped", []),
                  fixed=spec.get("fixed", {}))


def load_arrays(out) -> dict:
    """Per-cell arrays from the ``.npz`` sidecars: key -> {name: ndarray}."""
    res: dict = {}
    for f in sorted((Path(out) / CHUNKS).glob("chunk-*.npz")):
        with np.load(f) as z:
            for k in z.files:
                key, _, name = k.partition("/")
                res.setdefault(key, {})[name] = z[k]
    return res
