"""Sweeps: parameter grids of exact solves and learners, run fast, resumable, on one machine or Dask.

::

    from mdpsandbox.sweeps import Sweep, logspace, run, load
    sw = Sweep(task="solve", axes={"gamma": [0.9, 0.99], "beta": logspace(-3, 1, 5), "seed": range(10)},
               fixed={"env": "garnet", "n_states": 20, "n_actions": 4})
    df = run(sw, out="runs/garnet", backend="process")   # one row per cell; rerun = resume

Modules (one concept each): :mod:`.spec` (axes, zipped, fixed, TOML), :mod:`.keys` (stable keys
and seeds), :mod:`.tasks` (registry and built-in tasks, the numba batcher), :mod:`.runner`
(validation, chunking, resume), :mod:`.backends` (serial / process / dask), :mod:`.worker` (one
chunk), :mod:`.store` (manifest, Parquet chunks, crash-safe protocol, ``load``). Plot helpers for
results tables: :func:`mdpsandbox.plots.plot_metric`, :func:`~mdpsandbox.plots.plot_heatmap`,
:func:`~mdpsandbox.plots.plot_loglog`.
"""
from .keys import canonical_json, cell_key, cell_seed
from .spec import Sweep, linspace, logspace, spec_diff
from .tasks import TASKS, Param, Task, get_task, task, task_names
from .store import load, load_arrays, read_manifest
from .runner import run, status

__all__ = ["Sweep", "logspace", "linspace", "run", "load", "load_arrays", "status", "task", "task_names",
           "get_task", "Task", "Param", "TASKS", "cell_key", "cell_seed", "canonical_json", "read_manifest",
           "spec_diff"]
