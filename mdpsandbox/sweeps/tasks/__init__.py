"""Sweep tasks: the registry and the built-in tasks ``solve``, ``evaluate`` (exact, numba-batched
where eligible), ``distributional`` (DCFP / CDP / QDP), ``train`` (any registered learner) and
``selftest`` (known answers, for checking backends and the store)."""
from .registry import TASKS, Param, Task, get_task, task, task_names, task_ref
from . import exact, distributional, learn, selftest  # noqa: E402,F401  (register the built-ins)

__all__ = ["TASKS", "Param", "Task", "get_task", "task", "task_names", "task_ref"]
