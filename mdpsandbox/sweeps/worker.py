"""Running one chunk of cells (in the client, a process-pool worker or a Dask worker) and writing
its rows. Imported by worker processes; keep it light (no torch)."""
from __future__ import annotations

import math
import numbers
import os
import time
import traceback

import numpy as np

from .keys import cell_seed
from .spec import RESERVED

__all__ = ["execute_chunk", "init_worker", "preload_worker", "check_metrics", "check_columns"]


def init_worker() -> None:
    """One numba thread per worker process (workers run in parallel; nested threads would
    oversubscribe the cores), and pyarrow's system allocator: with its default (mimalloc) the
    Parquet encode of a worker's large chunk took 10–30 ms instead of ~4 ms (measured, 5,000 rows),
    the largest part of a batched chunk's overhead."""
    import sys

    try:
        import pyarrow as pa

        if pa.default_memory_pool().backend_name != "system":
            pa.set_memory_pool(pa.system_memory_pool())
    except Exception:  # pragma: no cover - pyarrow missing or refusing: the default pool stays
        pass

    if "numba" not in sys.modules:
        # before numba's first import only: changing it afterwards makes numba's config reload refuse
        # ("cannot set NUMBA_NUM_THREADS ... once the threads have been launched")
        os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # pragma: no cover - numba's threading layer refused; threads stay as they are
        pass


def preload_worker() -> None:
    """Set up a worker process for chunks: :func:`init_worker`, the chunk runner's imports (the
    built-in tasks, numba kernels' modules, pyarrow.parquet) and one tiny Parquet encode, then
    ``gc.freeze()``: the imported module graph leaves the cyclic collector's generations, so a full
    collection falling inside a chunk no longer walks it (measured: 10–25 ms, in about half of the
    large batched chunks, the main part of their overhead)."""
    import gc

    init_worker()
    from . import store, tasks  # noqa: F401

    store._table_bytes({"x": [0.0], "s": ["a"], "i": [0]})
    gc.freeze()


def check_metrics(metrics, params: dict):
    """``(scalars, arrays)`` of a task's return value, or raise ValueError naming the bad metric.

    Scalars: bool, int, float (NaN is an error; ±inf is allowed, e.g. a bound at γ = 1), str.
    Arrays: the optional entry ``"arrays"`` = {name: ndarray}, stored in the chunk's ``.npz``."""
    if not isinstance(metrics, dict):
        raise ValueError(f"the task must return a dict of scalar metrics, got {type(metrics).__name__}")
    scalars, arrays = {}, {}
    for name, v in metrics.items():
        tv = type(v)
        if tv is float and type(name) is str and name.isidentifier():  # the common case first
            if v != v:
                raise ValueError(f"metric {name!r} is NaN")
            if name in params or name in RESERVED:
                raise ValueError(f"metric {name!r} clashes with a {'reserved column' if name in RESERVED else 'parameter'}")
            scalars[name] = v
            continue
        if (tv is int or tv is bool or tv is str) and name not in params and name not in RESERVED \
                and type(name) is str and name.isidentifier():
            scalars[name] = v
            continue
        if name == "arrays":
            if not isinstance(v, dict):
                raise ValueError("metric 'arrays' must be a dict name -> numpy array")
            for an, av in v.items():
                arrays[str(an)] = np.asarray(av)
            continue
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"metric names must be identifiers, got {name!r}")
        if name in RESERVED or name in params:
            raise ValueError(f"metric {name!r} clashes with a {'reserved column' if name in RESERVED else 'parameter'}")
        if isinstance(v, (bool, np.bool_)):
            scalars[name] = bool(v)
        elif isinstance(v, numbers.Integral):
            scalars[name] = int(v)
        elif isinstance(v, numbers.Real):
            x = float(v)
            if math.isnan(x):
                raise ValueError(f"metric {name!r} is NaN")
            scalars[name] = x
        elif isinstance(v, str):
            scalars[name] = v
        else:
            shape = getattr(v, "shape", None)
            what = f"{type(v).__name__} of shape {shape}" if shape is not None else f"{type(v).__name__} {v!r:.60}"
            raise ValueError(f"metric {name!r} is not a scalar (got {what}); return arrays under 'arrays'")
    return scalars, arrays


def _error_text(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}"
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        fr = tb[-1]
        msg += f" (at {os.path.basename(fr.filename)}:{fr.lineno} in {fr.name})"
    return msg


def _one(task, params, seed):
    t0 = time.perf_counter()
    try:
        scal, arr = check_metrics(task(params, seed), params)
        return scal, arr, "ok", None, time.perf_counter() - t0
    except Exception as exc:  # a failing cell is a row, not a crash
        return {}, {}, "error", _error_text(exc), time.perf_counter() - t0


def check_columns(cols, n: int, params) -> dict:
    """The metric columns of a batch (name -> array or list, ``n`` entries each) as arrays of one
    storable type, or raise ValueError: the vectorised :func:`check_metrics` (float64 without NaN,
    int64, bool, or str)."""
    if not isinstance(cols, dict):
        raise ValueError(f"a batcher must return a dict of metric columns, got {type(cols).__name__}")
    out = {}
    for name, v in cols.items():
        if not isinstance(name, str) or not name.isidentifier() or name == "arrays":
            raise ValueError(f"metric column names must be identifiers, got {name!r}")
        if name in RESERVED or name in params:
            raise ValueError(f"metric {name!r} clashes with a {'reserved column' if name in RESERVED else 'parameter'}")
        if isinstance(v, np.ndarray):
            if v.shape != (n,):
                raise ValueError(f"metric column {name!r} has shape {v.shape}, expected ({n},)")
            kind = v.dtype.kind
            if kind == "f":
                v = v.astype(np.float64, copy=False)
                if np.isnan(v).any():
                    raise ValueError(f"metric {name!r} is NaN")
            elif kind in "iu":
                v = v.astype(np.int64, copy=False)
            elif kind != "b":
                raise ValueError(f"metric column {name!r} has dtype {v.dtype} (float, int, bool or a list of str)")
            out[name] = v
        elif isinstance(v, list) and len(v) == n and n and (
                (type(v[0]) is str and v.count(v[0]) == n) or all(type(x) is str for x in v)):
            out[name] = v
        else:
            raise ValueError(f"metric column {name!r} must be an array of {n} numbers or a list of {n} str")
    return out


def _run_batch(task, cells, idx, results, params):
    """Run one batch group. Returns ``(columns, wall_per_cell)`` when the batcher gave checked
    columns (the fast path: no per-cell dicts), else fills ``results[i]`` with row tuples and
    returns None."""
    b = task.batcher
    try:
        if hasattr(b, "run_columns"):
            cols, wall = b.run_columns([c[3] for c in cells])
            return check_columns(cols, len(cells), params), float(wall)
        out = b.run([c[3] for c in cells])
        rows = []
        for c, m in zip(cells, out):
            w = m.pop("wall_s", 0.0)
            scal, arr = check_metrics(m, c[3])
            rows.append((scal, arr, "ok", None, w))
    except Exception:
        # one bad cell must not fail its neighbours: rerun each cell alone through the batcher
        # (a batch of one gives the same numbers: solve_batch solves each MDP independently)
        rows = []
        for c in cells:
            t1 = time.perf_counter()
            try:
                m = b.run([c[3]])[0]
                m.pop("wall_s", None)
                scal, arr = check_metrics(m, c[3])
                rows.append((scal, arr, "ok", None, time.perf_counter() - t1))
            except Exception as exc:
                rows.append(({}, {}, "error", _error_text(exc), time.perf_counter() - t1))
    for i, r in zip(idx, rows):
        results[i] = r
    return None


def _column_blocks(blocks, n):
    """Metric columns of a whole chunk (in cell order) from the per-group column blocks
    ``[(idx, columns, wall)]`` that together cover its ``n`` cells with the same metric names."""
    order = np.concatenate([np.asarray(idx, dtype=np.intp) for idx, _, _ in blocks])
    inv = None
    if not np.array_equal(order, np.arange(n)):  # the planner's groups are consecutive: usually no reorder
        inv = np.empty(n, dtype=np.intp)
        inv[order] = np.arange(n)
    cols = {}
    for name in blocks[0][1]:
        parts = [c[name] for _, c, _ in blocks]
        if isinstance(parts[0], list):
            flat = [x for p in parts for x in p]
            cols[name] = flat if inv is None else [flat[j] for j in inv]
        else:
            cols[name] = np.concatenate(parts) if inv is None else np.concatenate(parts)[inv]
    wall = np.concatenate([np.full(len(idx), w) for idx, _, w in blocks])
    return cols, (wall if inv is None else wall[inv])


def execute_chunk(payload: dict) -> dict:
    """Run the cells of one chunk and write them as one Parquet file (see :mod:`.store`).

    payload: out, run_id, task, import_path, name, batched, param_names, cells = list of
    (index, key, attempt, params); a cell's seed is derived from its key here, when the task takes it. Returns a summary (no rows: the client only tracks progress)."""
    from . import store
    from .tasks import get_task

    if payload.get("init_worker"):
        init_worker()
    t0 = time.perf_counter()
    task = get_task(payload["task"], payload.get("import_path", ""))
    cells = payload["cells"]
    n = len(cells)
    results = [None] * n
    blocks = []  # (index list, metric columns, wall per cell) of the batch groups run as columns
    if payload.get("batched") and task.batcher is not None:
        # cells of several batch groups may share a chunk: one batcher call per group
        groups = payload.get("groups")  # index lists of equal batch key, when the planner knows them
        if groups is None:
            by: dict = {}
            for i, c in enumerate(cells):
                by.setdefault(repr(task.batcher.key(c[3])), []).append(i)
            groups = list(by.values())
        params = set(payload["param_names"])
        for idx in groups:
            blk = _run_batch(task, [cells[i] for i in idx], idx, results, params)
            if blk is not None:
                blocks.append((idx, *blk))
    else:
        for i, c in enumerate(cells):
            seed = cell_seed(c[1]) if task.accepts_seed else None
            results[i] = _one(task, c[3], seed)
    cols: dict = {"cell": np.array([c[0] for c in cells], dtype=np.int64)}  # grid indices
    fixed = payload.get("fixed") or {}
    for name in payload["param_names"]:
        if name in fixed:  # the same value in every cell: one repeated scalar (as pa.array([v] * n) types it)
            cols[name] = store.repeated(fixed[name], n)
        else:
            cols[name] = [c[3][name] for c in cells]  # a cell's params hold every parameter
    if blocks and sum(len(b[0]) for b in blocks) == n and all(list(b[1]) == list(blocks[0][1]) for b in blocks):
        # every cell came from a column block with the same metrics: build the columns as arrays
        mcols, wall = _column_blocks(blocks, n)
        cols.update(mcols)
        cols["status"] = ["ok"] * n
        cols["error"] = [None] * n
        cols["wall_s"] = wall
        n_err, compute = 0, float(wall.sum())
        walls = wall.tolist() if n <= 64 else []
    else:
        for idx, bc, w in blocks:  # mixed chunk: the column blocks as rows
            names = list(bc)
            lists = [bc[k].tolist() if isinstance(bc[k], np.ndarray) else bc[k] for k in names]
            for i, vals in zip(idx, zip(*lists)):
                results[i] = (dict(zip(names, vals)), {}, "ok", None, w)
        metric_names = []
        seen = set()
        for r in results:
            for k in r[0]:
                if k not in seen:
                    seen.add(k)
                    metric_names.append(k)
        for name in metric_names:
            cols[name] = [r[0].get(name) for r in results]
        cols["status"] = [r[2] for r in results]
        cols["error"] = [r[3] for r in results]
        cols["wall_s"] = [float(r[4]) for r in results]
        n_err = sum(r[2] == "error" for r in results)
        compute = float(sum(r[4] for r in results))
        walls = [float(r[4]) for r in results] if n <= 64 else []
    cols["attempt"] = np.array([c[2] for c in cells], dtype=np.int64)  # attempts are ints
    cols["key"] = [c[1] for c in cells]
    arrays = {}
    for c, r in zip(cells, results):
        if r is not None:
            for an, av in r[1].items():
                arrays[f"{c[1]}/{an}"] = av
    t_write = time.perf_counter()
    written = store.write_chunk(payload["out"], payload["run_id"], payload["name"], cols, arrays or None)
    return {"name": payload["name"], "n": n, "n_error": n_err, "written": written,
            "wall_s": time.perf_counter() - t0, "compute_s": compute, "write_s": time.perf_counter() - t_write,
            "walls": walls}
