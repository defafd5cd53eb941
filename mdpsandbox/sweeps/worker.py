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

__all__ = ["execute_chunk", "init_worker", "check_metrics"]


def init_worker() -> None:
    """One numba thread per worker process (workers run in parallel; nested threads would
    oversubscribe the cores)."""
    import sys

    if "numba" not in sys.modules:
        # before numba's first import only: changing it afterwards makes numba's config reload refuse
        # ("cannot set NUMBA_NUM_THREADS ... once the threads have been launched")
        os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # pragma: no cover - numba's threading layer refused; threads stay as they are
        pass


def check_metrics(metrics, params: dict):
    """``(scalars, arrays)`` of a task's return value, or raise ValueError naming the bad metric.

    Scalars: bool, int, float (NaN is an error; ±inf is allowed, e.g. a bound at γ = 1), str.
    Arrays: the optional entry ``"arrays"`` = {name: ndarray}, stored in the chunk's ``.npz``."""
    if not isinstance(metrics, dict):
        raise ValueError(f"the task must return a dict of scalar metrics, got {type(metrics).__name__}")
    scalars, arrays = {}, {}
    for name, v in metrics.items():
        tv = type(v)
        if tv is float:  # the common case first
            if v != v:
                raise ValueError(f"metric {name!r} is NaN")
            if name in params or name in RESERVED:
                raise ValueError(f"metric {name!r} clashes with a {'reserved column' if name in RESERVED else 'parameter'}")
            scalars[name] = v
            continue
        if (tv is int or tv is bool or tv is str) and name not in params and name not in RESERVED:
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


def _run_batch(task, cells, idx, results):
    try:
        out = task.batcher.run([c[3] for c in cells])
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
                m = task.batcher.run([c[3]])[0]
                m.pop("wall_s", None)
                scal, arr = check_metrics(m, c[3])
                rows.append((scal, arr, "ok", None, time.perf_counter() - t1))
            except Exception as exc:
                rows.append(({}, {}, "error", _error_text(exc), time.perf_counter() - t1))
    for i, r in zip(idx, rows):
        results[i] = r


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
    results = [None] * len(cells)
    if payload.get("batched") and task.batcher is not None:
        # cells of several batch groups may share a chunk: one batcher call per group
        groups = payload.get("groups")  # index lists of equal batch key, when the planner knows them
        if groups is None:
            by: dict = {}
            for i, c in enumerate(cells):
                by.setdefault(repr(task.batcher.key(c[3])), []).append(i)
            groups = list(by.values())
        for idx in groups:
            _run_batch(task, [cells[i] for i in idx], idx, results)
    else:
        for i, c in enumerate(cells):
            seed = cell_seed(c[1]) if task.accepts_seed else None
            results[i] = _one(task, c[3], seed)
    metric_names = []
    seen = set()
    for r in results:
        for k in r[0]:
            if k not in seen:
                seen.add(k)
                metric_names.append(k)
    cols: dict = {"cell": [c[0] for c in cells]}
    for n in payload["param_names"]:
        cols[n] = [c[3].get(n) for c in cells]
    for n in metric_names:
        cols[n] = [r[0].get(n) for r in results]
    cols["status"] = [r[2] for r in results]
    cols["error"] = [r[3] for r in results]
    cols["wall_s"] = [float(r[4]) for r in results]
    cols["attempt"] = [c[2] for c in cells]
    cols["key"] = [c[1] for c in cells]
    arrays = {}
    for c, r in zip(cells, results):
        for an, av in r[1].items():
            arrays[f"{c[1]}/{an}"] = av
    written = store.write_chunk(payload["out"], payload["run_id"], payload["name"], cols, arrays or None)
    n_err = sum(r[2] == "error" for r in results)
    return {"name": payload["name"], "n": len(cells), "n_error": n_err, "written": written,
            "wall_s": time.perf_counter() - t0, "compute_s": float(sum(r[4] for r in results)),
            "walls": [float(r[4]) for r in results] if len(results) <= 64 else []}
