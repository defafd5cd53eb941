"""Sweep tasks: the registry and the built-in tasks ``solve``, ``evaluate`` (exact, numba-batched
where eligible), ``distributional`` (DCFP / CDP / QDP) and ``train`` (any registered learner)."""
from .registry import TASKS, Param, Task, get_task, task, task_names, task_ref
from . import exact, distributional, learn  # noqa: E402,F401  (register the built-ins)

__all__ = ["TASKS", "Param", "Task", "get_task", "task", "task_names", "task_ref"]
