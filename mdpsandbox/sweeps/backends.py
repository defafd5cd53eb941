"""Execution backends. Each runs chunk payloads (:func:`.worker.execute_chunk`) and calls
``on_done(summary)`` as chunks complete; workers write their own chunk files, so the client only
tracks progress. Every backend gives the same table bitwise (a cell's numbers depend only on its
parameters and key-derived seed).

* ``serial`` — in this process, in order.
* ``process`` — :class:`concurrent.futures.ProcessPoolExecutor`, one numba thread per worker
  (``fork``, or ``forkserver`` once this process runs numba threads: see :class:`Process`).
* ``dask`` — :mod:`dask.distributed`: a ``LocalCluster`` (``processes=True``, one thread per
  worker) by default, or an existing scheduler at ``scheduler=ADDRESS`` (workers must see the output
  directory, e.g. a shared file system). Chunks are submitted with keys and retries and collected
  with ``as_completed``.
"""
from __future__ import annotations

import atexit
import logging
import os
from typing import Callable, Optional

from .worker import execute_chunk, preload_worker

__all__ = ["BACKENDS", "Serial", "Process", "Dask", "get_backend", "check_backend", "default_workers"]

BACKENDS = ("serial", "process", "dask")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def check_backend(backend: str, workers: Optional[int], scheduler: Optional[str]) -> None:
    """Validate the backend options before any work (and that dask.distributed is importable)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an int >= 1 or None, got {workers!r}")
    if scheduler is not None and backend != "dask":
        raise ValueError(f"scheduler is an option of backend='dask' (got backend={backend!r})")
    if backend == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("backend='dask' needs dask.distributed, which is not installed: "
                             "pip install 'mdpsandbox[dask]' (or pip install 'dask[distributed]')") from None


class Serial:
    """Chunks run in this process, in order."""

    def __init__(self, workers=None, **_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def one(self, payload: dict) -> dict:
        """Run one chunk here, in the client (the probe chunks that measure the chunk size)."""
        return execute_chunk(payload)

    def all(self, payloads: list, on_done: Callable) -> None:
        for p in payloads:
            on_done(execute_chunk(p))


def _numba_threads_started() -> bool:
    try:
        import numba

        numba.threading_layer()
        return True
    except (ValueError, ImportError):
        return False


_POOLS: dict = {}


def _shutdown_pools() -> None:
    for ex in _POOLS.values():
        ex.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()


atexit.register(_shutdown_pools)


class Process(Serial):
    """A process pool, kept alive between runs of this process (workers keep their imports and
    numba's loaded kernels: many sweeps in one session pay the start-up once). ``fork`` while this
    process has not started numba's thread pool (fast, no ``__main__`` re-import); otherwise
    ``forkserver`` (forking a process whose OpenMP threads run is unsafe), which re-imports the main
    script: guard scripts with ``if __name__ == "__main__":``."""

    def __init__(self, workers: Optional[int] = None, **_):
        self.n = workers or default_workers()
        self.ex = None

    def __enter__(self):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        method = "forkserver" if _numba_threads_started() else "fork"
        for key in [k for k in _POOLS if k[0] == self.n]:
            ex = _POOLS[key]
            if getattr(ex, "_broken", False) or getattr(ex, "_shutdown_thread", False):
                _POOLS.pop(key).shutdown(wait=False, cancel_futures=True)
            else:
                self.ex = ex
                return self
        ctx = mp.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["mdpsandbox.sweeps.worker", "mdpsandbox.sweeps.tasks", "pyarrow.parquet"])
        self.ex = _POOLS[(self.n, method)] = ProcessPoolExecutor(max_workers=self.n, mp_context=ctx,
                                                                 initializer=preload_worker)
        # start every worker now, before this process runs any probe chunk (numba threads)
        list(self.ex.map(abs, range(self.n)))
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:  # an interrupted run: do not leave its queued chunks behind
            for key, ex in list(_POOLS.items()):
                if ex is self.ex:
                    _POOLS.pop(key)
            self.ex.shutdown(wait=False, cancel_futures=True)

    def all(self, payloads: list, on_done: Callable) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait

        # a bounded number of chunks in flight: a kill leaves little queued work behind
        pending = set()
        it = iter(payloads)
        for p in it:
            pending.add(self.ex.submit(execute_chunk, p))
            if len(pending) >= 2 * self.n:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                on_done(f.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(self.ex.submit(execute_chunk, nxt))


def _dask_chunk(payload: dict) -> dict:
    return execute_chunk({**payload, "init_worker": True})


_PREPARED = []


def _prepare_dask_worker() -> None:
    """Run on every dask worker when a run connects (once per worker process): one numba thread,
    the chunk runner's imports and one tiny Parquet encode (pyarrow's first write initialises
    codecs), then ``gc.freeze()`` (:func:`.worker.preload_worker`): ~0.3–1 s that would otherwise
    fall inside each worker's first chunk, one worker after the other."""
    if not _PREPARED:
        preload_worker()
        _PREPARED.append(True)


class Dask(Serial):
    """dask.distributed: a LocalCluster (``workers`` processes, one thread each) or ``scheduler``."""

    def __init__(self, workers: Optional[int] = None, scheduler: Optional[str] = None, timeout: float = 30.0,
                 retries: int = 1, **_):
        self.n, self.scheduler, self.timeout, self.retries = workers, scheduler, timeout, retries
        self.cluster = self.client = None

    def __enter__(self):
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout=f"{float(self.timeout)}s")
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"cannot reach the dask scheduler at {self.scheduler!r} within {self.timeout} s "
                                 f"({type(exc).__name__}: {exc}); is it running, and is the address "
                                 "tcp://HOST:PORT?") from None
        else:
            self.cluster = LocalCluster(n_workers=self.n or default_workers(), threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        try:
            self.client.run(_prepare_dask_worker)
        except Exception:  # pragma: no cover - a worker that cannot import us fails its chunks, with the reason
            pass
        return self

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def _submit(self, p):
        return self.client.submit(_dask_chunk, p, key=f"mdpsandbox-sweep-{p['run_id'][:8]}-{p['name']}",
                                  retries=self.retries, pure=False)

    def all(self, payloads: list, on_done: Callable) -> None:
        from distributed import as_completed

        for fut in as_completed([self._submit(p) for p in payloads]):
            on_done(fut.result())


_RUNNERS = {"serial": Serial, "process": Process, "dask": Dask}


def get_backend(backend: str, **options):
    """A context manager with ``one(payload) -> summary`` (in this process) and ``all(payloads, on_done)``."""
    return _RUNNERS[backend](**options)
