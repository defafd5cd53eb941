"""The task registry: a task is a function ``f(**params) -> dict`` of scalar metrics.

Registered by name with :func:`task`; built-in tasks also declare a parameter schema (types and
choices, checked before any work) and may provide a *batcher* that runs many cells in one call
(the numba-batched exact solves). Any module-level function can also be named ``"module:function"``.
"""
from __future__ import annotations

import importlib
import inspect
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

__all__ = ["Param", "Task", "task", "task_ref", "get_task", "task_names", "TASKS"]


@dataclass(frozen=True)
class Param:
    """One parameter of a built-in task: accepted ``types`` (a tuple; ``float`` also accepts ints),
    optional ``choices``, whether ``None`` is allowed, and a one-line ``doc``."""

    types: tuple
    doc: str = ""
    choices: Optional[tuple] = None
    optional: bool = False

    def check(self, name: str, value: Any, where: str) -> None:
        if value is None:
            if self.optional:
                return
            raise ValueError(f"{where}: parameter {name!r} may not be None ({self.doc})")
        ok = False
        for t in self.types:
            if t is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
                ok = True
            elif t is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
                ok = True
            elif t is bool and isinstance(value, bool):
                ok = True
            elif t is str and isinstance(value, str):
                ok = True
        if not ok:
            tn = " or ".join(t.__name__ for t in self.types) + (" or None" if self.optional else "")
            raise ValueError(f"{where}: parameter {name!r} must be {tn}, got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where}: parameter {name!r} must be one of {list(self.choices)}, got {value!r}")


@dataclass
class Task:
    """A registered task. ``params``: schema (None: taken from the function's signature);
    ``batcher``: optional object with ``key(params) -> hashable | None`` (None: not batchable) and
    ``run(list_of_params) -> list_of_metric_dicts``; ``check``: optional per-parameter-set validator
    ``check(names, values_by_name)`` raising ValueError."""

    name: str
    fn: Callable
    params: Optional[Mapping[str, Param]] = None
    batcher: Any = None
    check: Optional[Callable] = None
    metrics: tuple = ()
    import_path: str = ""
    accepts_seed: bool = field(default=False)

    def __post_init__(self):
        sig = inspect.signature(self.fn)
        self.accepts_seed = "cell_seed" in sig.parameters or any(
            p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        if not self.import_path:
            self.import_path = f"{self.fn.__module__}:{self.fn.__qualname__}"

    def validate(self, names: list, values: Mapping[str, list]) -> None:
        """Check parameter names and every distinct value before any work (ValueError listing the
        valid choices)."""
        where = f"task {self.name!r}"
        if self.params is not None:
            unknown = [n for n in names if n not in self.params]
            if unknown:
                raise ValueError(f"{where}: unknown parameter(s) {unknown}; valid: {sorted(self.params)}")
            for n in names:
                for v in values[n]:
                    self.params[n].check(n, v, where)
        else:
            sig = inspect.signature(self.fn)
            ps = {n: p for n, p in sig.parameters.items() if n != "cell_seed"}
            var_kw = any(p.kind is p.VAR_KEYWORD for p in ps.values())
            named = [n for n, p in ps.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            if not var_kw:
                unknown = [n for n in names if n not in named]
                if unknown:
                    raise ValueError(f"{where}: unknown parameter(s) {unknown}; valid: {named}")
            missing = [n for n in named if ps[n].default is inspect.Parameter.empty and n not in names]
            if missing:
                raise ValueError(f"{where}: required parameter(s) {missing} are not given by axes, zipped or fixed")
            for n in names:
                ann = ps[n].annotation if n in ps else inspect.Parameter.empty
                if ann in (int, float, str, bool, "int", "float", "str", "bool"):
                    t = {"int": int, "float": float, "str": str, "bool": bool}.get(ann, ann)
                    for v in values[n]:
                        Param((t,)).check(n, v, where)
        if self.check is not None:
            self.check(names, values)

    def __call__(self, params: Mapping[str, Any], cell_seed: int) -> dict:
        if self.accepts_seed:
            return self.fn(**params, cell_seed=cell_seed)
        return self.fn(**params)


TASKS: dict[str, Task] = {}


def task(name: Optional[str] = None, *, params: Optional[Mapping[str, Param]] = None, batcher: Any = None,
         check: Optional[Callable] = None, metrics: tuple = (), overwrite: bool = False):
    """Decorator: register ``fn`` as the task ``name`` (default: the function's name).

    The function is called with the cell's parameters as keywords (plus ``cell_seed`` when its
    signature accepts it) and returns a dict of scalar metrics (bool, int, float, str). It must be
    a module-level function of an importable module: worker processes import it by
    ``module:qualname``."""

    def deco(fn):
        n = name or fn.__name__
        if not isinstance(n, str) or not n:
            raise ValueError(f"task name must be a non-empty str, got {n!r}")
        _check_importable(fn)
        if n in TASKS and not overwrite and TASKS[n].fn is not fn:
            old = TASKS[n]
            if old.import_path != f"{fn.__module__}:{fn.__qualname__}":
                raise ValueError(f"task {n!r} is already registered (by {old.import_path}); pass overwrite=True")
        TASKS[n] = Task(n, fn, params, batcher, check, tuple(metrics))
        return fn

    return deco


def _check_importable(fn) -> str:
    if not callable(fn):
        raise ValueError(f"task must be a registered name, 'module:function' or a function, got {fn!r}")
    qual = getattr(fn, "__qualname__", "")
    mod = getattr(fn, "__module__", None)
    if not mod or "<locals>" in qual or "<lambda>" in qual or mod == "__main__":
        raise ValueError(f"task function {qual or fn!r} must be a module-level function of an importable module "
                         f"(worker processes import it as 'module:qualname'); got module {mod!r}, name {qual!r}")
    return f"{mod}:{qual}"


def task_names() -> list:
    """Registered task names."""
    return sorted(TASKS)


def task_ref(t) -> str:
    """The string stored in a spec for task ``t`` (a name, ``"module:function"`` or a function)."""
    if isinstance(t, str):
        if ":" in t:
            return t
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r}; registered tasks: {', '.join(task_names())} "
                             "(or give 'module:function')")
        return t
    path = _check_importable(t)
    for n, tk in TASKS.items():
        if tk.fn is t:
            return n
    return path


def get_task(ref: str, import_path: str = "") -> Task:
    """Resolve a spec's task string (importing ``import_path`` first when a user-registered name is
    not known in this process, e.g. in a worker)."""
    if ref in TASKS:
        return TASKS[ref]
    if import_path and ":" in import_path:
        _import(import_path)
        if ref in TASKS:
            return TASKS[ref]
    if ":" not in ref:
        raise ValueError(f"unknown task {ref!r}; registered tasks: {', '.join(task_names())} "
                         "(or give 'module:function')")
    fn = _import(ref)
    for tk in TASKS.values():
        if tk.fn is fn:
            return tk
    return Task(ref, fn, import_path=ref)


def _import(path: str):
    mod, _, qual = path.partition(":")
    try:
        obj = importlib.import_module(mod)
    except ImportError as exc:
        raise ValueError(f"task {path!r}: cannot import module {mod!r} ({exc})") from None
    for part in qual.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"task {path!r}: module {mod!r} has no attribute {qual!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"task {path!r} is not callable")
    return obj
