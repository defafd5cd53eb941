"""``run``: validate a sweep, plan its chunks, execute them on a backend, and resume.

Planning. The cells still to do (not stored yet, or failed with ``retry_failed=True``) are grouped
by the task's batcher key (cells one ``solve_batch`` call can take, sorted so that cells sharing
an env are adjacent) and cut into chunks. Without ``chunk_size`` the size is measured: probe
chunks run first in this process, their cells' own compute gives the per-cell cost, and the size
is set so that a chunk carries ≈ 0.2–0.5 s of work (at least ~4 chunks per worker when that keeps
chunks ≥ 0.2 s; batched chunks at least ``BATCH_MIN_CELLS`` cells; a number of chunks that is a
multiple of the worker count: see :func:`_chunk_size`). The fixed cost of a chunk — Parquet write,
lock, scheduling — is a few ms plus ~1 µs per row, so this keeps it at a few percent. Chunk composition never changes a
cell's numbers. Chunk file names hash their cells' keys and attempt, so a chunk is either stored
whole or redone.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

from . import store
from .backends import check_backend, default_workers, get_backend
from .keys import cell_key
from .spec import Sweep
from .tasks import get_task

__all__ = ["run", "status", "plan_cells", "TARGET_CHUNK_S"]

TARGET_CHUNK_S = (0.2, 0.3, 0.5)  # (min, target, max) seconds of work per chunk


def _as_sweep(sweep) -> Sweep:
    if isinstance(sweep, Sweep):
        return sweep
    if isinstance(sweep, (str, Path)):
        return Sweep.from_toml(sweep)
    if isinstance(sweep, dict):
        return Sweep.from_dict(sweep)
    raise ValueError(f"sweep must be a Sweep, a spec dict or a TOML path, got {type(sweep).__name__}")


def plan_cells(sweep: Sweep):
    """Validate the sweep against its task and list its cells: (task, [(index, key, params)])."""
    task = get_task(sweep.task)
    names = sweep.param_names
    values: dict = {n: [] for n in names}
    for n, v in sweep.axes.items():
        values[n] = list(dict.fromkeys(v))
    for g in sweep.zipped:
        for n, v in g.items():
            values[n] = list(dict.fromkeys(v))
    for n, v in sweep.fixed.items():
        values[n] = [v]
    task.validate(names, values)
    cells = []
    seen = {}
    for i, params in enumerate(sweep.cells()):
        k = cell_key(sweep.task, params, canonical=True)
        if k in seen:
            raise ValueError(f"cells {seen[k]} and {i} have identical parameters {params}: remove duplicate axis values")
        seen[k] = i
        cells.append((i, k, params))
    if not cells:
        raise ValueError("the grid is empty")
    return task, cells


def _chunk_name(items) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it[1]}:{it[2]};".encode())
    return f"chunk-{h.hexdigest()[:24]}"


def run(sweep: Union[Sweep, str, Path, dict], out, *, backend: str = "process", workers: Optional[int] = None,
        progress: bool = True, retry_failed: bool = False, chunk_size: Optional[int] = None,
        scheduler: Optional[str] = None, timeout: float = 30.0, retries: int = 1):
    """Run (or resume) ``sweep`` into the directory ``out`` and return :func:`load` of it.

    backend : ``"process"`` (default; ``workers`` processes, default = usable cores), ``"serial"``
        or ``"dask"`` (a LocalCluster with ``workers`` processes, or the scheduler at ``scheduler``;
        ``timeout`` seconds to connect, ``retries`` per chunk).
    retry_failed : rerun the cells whose stored row has ``status="error"`` (a new attempt; the
        table keeps the latest).
    chunk_size : cells per chunk (default: measured, ≈ 0.2–0.5 s of work per chunk).
    progress : a tqdm bar with cells/s and ETA.

    Bad input (unknown task or parameter, wrong types, an empty grid, a directory holding another
    spec, an unwritable directory, a missing dask install, an unreachable scheduler) raises
    ``ValueError`` before any cell runs. A failing cell (exception, NaN or non-scalar metric) is
    stored as a row with ``status="error"`` and the sweep continues.
    """
    sweep = _as_sweep(sweep)
    check_backend(backend, workers, scheduler)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be an int >= 1 or None, got {chunk_size!r}")
    task, cells = plan_cells(sweep)
    n_workers = workers or (default_workers() if backend != "serial" else 1)
    with contextlib.ExitStack() as stack:
        remote = None
        if backend == "dask" and scheduler is not None:  # reach the scheduler (or fail) before writing anything
            remote = stack.enter_context(get_backend(backend, workers=n_workers, scheduler=scheduler,
                                                     timeout=timeout, retries=retries))
        out = store.prepare(out, sweep.to_dict(), len(cells))
        _run_locked(task, sweep, out, cells, backend, n_workers, chunk_size, progress, retry_failed, remote,
                    scheduler=scheduler, timeout=timeout, retries=retries)
    return store.load(out)


def _run_locked(task, sweep, out, cells, backend, n_workers, chunk_size, progress, retry_failed, remote, **opts):
    from tqdm.auto import tqdm

    with store.RunLock(out):
        run_id = store.begin_run(out)
        latest = store.scan(out)
        todo = []
        for i, k, params in cells:
            if k not in latest:
                todo.append((i, k, 0, params))
            elif retry_failed and latest[k][1] == "error":
                todo.append((i, k, latest[k][0] + 1, params))
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), unit="cell", desc="sweep",
                   disable=not progress, dynamic_ncols=True, smoothing=0.1)
        try:
            if todo:
                _execute(task, sweep, out, run_id, todo, backend, n_workers, chunk_size, bar, remote, **opts)
        finally:
            bar.close()


def _groups(task, todo):
    """[(batched, cells)]: the batchable cells (sorted by batch key, then env, then grid index: few,
    large solve_batch calls — each parallel call has a fixed start-up cost — while the batcher's
    per-process env cache spares regenerating an env for the next batch key) and the others (grid order)."""
    b = task.batcher
    if b is None:
        return [(False, list(todo))]
    keyed = [(b.key(c[3]), c) for c in todo]
    batched = sorted(((repr(k), repr(b.env_key(c[3])), c[0], c) for k, c in keyed if k is not None),
                     key=lambda t: t[:3])
    out = []
    if batched:
        out.append((True, [(t[0], t[3]) for t in batched]))  # (batch key, cell): chunks know their groups
    rest = [c for k, c in keyed if k is None]
    if rest:
        out.append((False, rest))
    return out


def _payload(task, sweep, out, run_id, items, batched):
    groups = None
    if batched:  # items are (batch key, cell): pass the cells and the index lists of each key
        by: dict = {}
        for i, (k, _) in enumerate(items):
            by.setdefault(k, []).append(i)
        groups = list(by.values())
        items = [c for _, c in items]
    return {"out": str(out), "run_id": run_id, "task": sweep.task, "import_path": task.import_path,
            "name": _chunk_name(items), "batched": batched, "param_names": sweep.param_names, "cells": items,
            "groups": groups, "fixed": dict(sweep.fixed)}


def _execute(task, sweep, out, run_id, todo, backend, n_workers, chunk_size, bar, remote=None, **opts):
    groups = _groups(task, todo)
    if remote is None and backend != "serial" and chunk_size is not None and len(todo) <= chunk_size:
        backend = "serial"  # a single chunk: no pool to start
    with contextlib.nullcontext(remote) if remote is not None else get_backend(backend, workers=n_workers,
                                                                              **opts) as ex:
        payloads = []
        for batched, items in groups:
            size = chunk_size
            if size is None:
                # probe chunks in this process (after the pool's workers have started); the first also
                # pays imports / numba cache loading, so the smallest per-cell cost is kept
                # the per-cell cost is the cells' own compute (the probe's fixed cost per file —
                # Parquet write, lock — divided by a probe's few cells would overstate it many times)
                per = None
                for k in ((16, 64) if batched else (3,)):
                    k = min(len(items), k)
                    if k == 0:
                        break
                    probe, items = items[:k], items[k:]
                    res = ex.one(_payload(task, sweep, out, run_id, probe, batched))
                    bar.update(res["n"])
                    if batched:
                        per = min(per or np.inf, res["compute_s"] / res["n"])
                    else:
                        w = sorted(res["walls"][1:] or res["walls"])
                        per = w[len(w) // 2]
                size = _chunk_size(len(items), max(per or 1e-6, 1e-7), n_workers, BATCH_MIN_CELLS if batched else 1)
            for j in range(0, len(items), size):
                payloads.append(_payload(task, sweep, out, run_id, items[j:j + size], batched))
        if payloads:
            ex.all(payloads, lambda summary: bar.update(summary["n"]))


BATCH_MIN_CELLS = 4096  # a batched chunk holds at least this many cells (or ≈ 0.5 s of estimated work)


def _chunk_size(n: int, per: float, n_workers: int, min_cells: int = 1) -> int:
    """Cells per chunk for ``n`` cells of ``per`` seconds each on ``n_workers``: ≈ 0.2–0.5 s of work
    per chunk (``TARGET_CHUNK_S``), ~4 chunks per worker when that keeps chunks ≥ 0.2 s, at least
    ``min_cells`` cells unless that exceeds 0.5 s, and a number of chunks that is a multiple of the
    worker count (no worker idles through the last round): the nearest multiple below when the
    chunks stay ≤ 1 s, else the one above (chunks shorter than 0.2 s only when the sweep is short).

    Batched cells use ``min_cells = BATCH_MIN_CELLS``: their probe (a few fresh envs, a small
    solve_batch) overstates the per-cell cost of a full chunk (env draws shared through the cache,
    larger batches) by up to ~4×, while the fixed cost of a file is ~1–3 ms plus ~1 µs per row."""
    lo, _target, hi = TARGET_CHUNK_S
    if n <= 0:
        return 1
    size_lo, size_hi = max(1, math.ceil(lo / per)), max(1, math.floor(hi / per))
    want = max(1, math.ceil(n / (4 * n_workers)))
    size = min(max(want, size_lo, min_cells), size_hi)
    k = math.ceil(n / size)
    if n_workers > 1 and k % n_workers:
        down = max(n_workers, k // n_workers * n_workers)
        k = down if math.ceil(n / down) * per <= 2 * hi else math.ceil(k / n_workers) * n_workers
        k = min(n, k)
    # equal chunks (no short last one finishing alone), as few as the rounding allows
    size = math.ceil(n / k)
    return max(1, size)


def status(out) -> dict:
    """Done / failed / missing counts of a sweep directory, from the directory alone
    (manifest + chunk files): ``{"n_cells", "done", "failed", "missing", "chunks", "task"}``."""
    from .keys import cell_key as _key
    from .store import _spec_no_check

    man = store.read_manifest(out)
    sw = _spec_no_check(man["spec"])
    latest = store.scan(out)
    keys = [_key(sw.task, p) for p in sw.cells()]
    done = sum(1 for k in keys if k in latest and latest[k][1] == "ok")
    failed = sum(1 for k in keys if k in latest and latest[k][1] == "error")
    return {"task": sw.task, "n_cells": len(keys), "done": done, "failed": failed,
            "missing": len(keys) - done - failed, "chunks": len(store.chunk_files(out))}
