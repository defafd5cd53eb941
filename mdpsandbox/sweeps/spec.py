"""The sweep specification: named product axes, zipped axes, fixed parameters and a task.

A :class:`Sweep` is declared once, from Python or from a TOML file (both give the same canonical
spec, :meth:`Sweep.to_dict`), and enumerates its cells in a fixed order: the product of the axes
in declaration order (the last axis varies fastest), then the zipped groups (each group varies
its axes together), each cell completed with the fixed parameters.

TOML layout (``Sweep.from_toml``)::

    task = "solve"                        # a registered task, or "module:function"
    [fixed]
    env = "garnet"
    n_states = 20
    [axes]
    gamma = [0.9, 0.99]                   # a list of scalars
    beta = { logspace = [-3, 1, 5] }      # 10**linspace(-3, 1, 5)
    tol = { linspace = [1e-9, 1e-6, 3] }
    seed = { range = [0, 10] }            # range(0, 10); also { range = 10 } or [start, stop, step]
    [[zipped]]                            # axes varied together (equal lengths)
    n_actions = [2, 4]
    branching = [2, 3]
"""
from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from .keys import SCALAR_TYPES, canonical_json, canonical_value

__all__ = ["Sweep", "logspace", "linspace", "spec_diff"]


def logspace(start: float, stop: float, num: int) -> list:
    """``num`` values ``10**x`` for x evenly spaced in [start, stop] (``numpy.logspace``), as floats."""
    _check_num(num, "logspace")
    return [float(x) for x in np.logspace(float(start), float(stop), int(num))]


def linspace(start: float, stop: float, num: int) -> list:
    """``num`` evenly spaced floats in [start, stop] (``numpy.linspace``)."""
    _check_num(num, "linspace")
    return [float(x) for x in np.linspace(float(start), float(stop), int(num))]


def _check_num(num, what):
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"{what}: num must be an int >= 1, got {num!r}")


_GENERATORS = {"logspace": logspace, "linspace": linspace}


def _toml_axis(name: str, value: Any) -> list:
    """An axis as written in TOML: a list, or a one-key table {logspace|linspace|range = ...}."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if len(value) != 1:
            raise ValueError(f"axis {name!r}: a table axis needs exactly one of logspace, linspace, range; "
                             f"got keys {sorted(value)}")
        (kind, args), = value.items()
        if kind == "range":
            args = [args] if isinstance(args, int) else args
            if not (isinstance(args, list) and 1 <= len(args) <= 3 and all(isinstance(a, int) for a in args)):
                raise ValueError(f"axis {name!r}: range takes 1–3 ints (stop | [start, stop] | [start, stop, step]), "
                                 f"got {args!r}")
            return list(range(*args))
        if kind in _GENERATORS:
            if not (isinstance(args, list) and len(args) == 3):
                raise ValueError(f"axis {name!r}: {kind} takes [start, stop, num], got {args!r}")
            return _GENERATORS[kind](*args)
        raise ValueError(f"axis {name!r}: unknown axis generator {kind!r} (valid: logspace, linspace, range)")
    raise ValueError(f"axis {name!r} must be a list or a table {{logspace|linspace|range = ...}}, got {value!r}")


def _axis_values(name: str, values: Any) -> tuple:
    if isinstance(values, (str, bytes)) or isinstance(values, Mapping) or not hasattr(values, "__iter__"):
        raise ValueError(f"axis {name!r} must be a sequence of values (list, tuple, range, logspace(...)), "
                         f"got {type(values).__name__} {values!r}")
    out = tuple(canonical_value(v, f"axis {name!r} value") for v in values)
    if not out:
        raise ValueError(f"axis {name!r} is empty: the grid would have no cells")
    kinds = {"bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else "str"
             for v in out if v is not None}
    if len(kinds) > 1:
        raise ValueError(f"axis {name!r} mixes value types {sorted(kinds)}: one column holds one type "
                         f"(numbers, bools or strings, plus None)")
    return out


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{where} names must be Python identifiers (they become keyword arguments), got {name!r}")
    if name in RESERVED:
        raise ValueError(f"{where} name {name!r} is reserved for the results table (reserved: {', '.join(RESERVED)})")
    return name


# column names the results table uses itself
RESERVED = ("cell", "key", "attempt", "status", "error", "wall_s", "cell_seed")


@dataclass(frozen=True)
class Sweep:
    r"""A grid of cells, each a call ``task(**params)`` returning scalar metrics.

    task : a registered task name (:func:`mdpsandbox.sweeps.task_names`), ``"module:function"``,
        or a module-level function (stored as ``"module:qualname"``; worker processes import it).
    axes : name -> values (list, tuple, ``range``, :func:`logspace`, :func:`linspace`); product axes.
    zipped : list of groups ``{name: values}``; the axes of a group vary together (equal lengths).
    fixed : name -> value, the same in every cell.

    Values are scalars (bool, int, float, str, None). Number of cells = Π len(axis) · Π len(group).
    """

    task: Union[str, Callable]
    axes: Mapping[str, Sequence] = field(default_factory=dict)
    zipped: Sequence[Mapping[str, Sequence]] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        from .tasks import task_ref

        object.__setattr__(self, "task", task_ref(self.task))
        if not isinstance(self.axes, Mapping):
            raise ValueError(f"axes must be a mapping name -> values, got {type(self.axes).__name__}")
        if not isinstance(self.fixed, Mapping):
            raise ValueError(f"fixed must be a mapping name -> value, got {type(self.fixed).__name__}")
        if isinstance(self.zipped, Mapping):
            raise ValueError("zipped must be a list of groups [{name: values, ...}, ...], got a single mapping")
        seen: dict[str, str] = {}

        def claim(name, where):
            _check_name(name, where)
            if name in seen:
                raise ValueError(f"parameter {name!r} is given twice (in {seen[name]} and in {where})")
            seen[name] = where

        axes = {}
        for name, values in self.axes.items():
            claim(name, "axes")
            axes[name] = _axis_values(name, values)
        groups = []
        for i, group in enumerate(self.zipped):
            if not isinstance(group, Mapping) or not group:
                raise ValueError(f"zipped[{i}] must be a non-empty mapping name -> values, got {group!r}")
            g = {}
            for name, values in group.items():
                claim(name, f"zipped[{i}]")
                g[name] = _axis_values(name, values)
            lengths = {n: len(v) for n, v in g.items()}
            if len(set(lengths.values())) != 1:
                raise ValueError(f"zipped[{i}] axes must have equal lengths, got {lengths}")
            groups.append(g)
        fixed = {}
        for name, value in self.fixed.items():
            claim(name, "fixed")
            fixed[name] = canonical_value(value, f"fixed {name!r}")
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "zipped", tuple(groups))
        object.__setattr__(self, "fixed", fixed)

    # ------------------------------------------------------------------ declaration
    @classmethod
    def from_dict(cls, d: Mapping) -> "Sweep":
        """From the canonical dict (:meth:`to_dict`) or a parsed TOML document (axes may use
        ``{logspace = [a, b, n]}``, ``{linspace = ...}``, ``{range = ...}``)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a sweep spec must be a mapping, got {type(d).__name__}")
        unknown = set(d) - {"task", "axes", "zipped", "fixed", "run"}
        if unknown:
            raise ValueError(f"unknown spec fields {sorted(unknown)} (valid: task, axes, zipped, fixed, run)")
        if "task" not in d:
            raise ValueError("the spec needs a task (a registered name or 'module:function')")
        axes = {n: _toml_axis(n, v) for n, v in dict(d.get("axes", {})).items()}
        zipped = [{n: _toml_axis(n, v) for n, v in dict(g).items()} for g in d.get("zipped", [])]
        return cls(task=d["task"], axes=axes, zipped=zipped, fixed=dict(d.get("fixed", {})))

    @classmethod
    def from_toml(cls, path) -> "Sweep":
        """Read a spec from a TOML file (layout in the module docstring). A ``[run]`` table, if
        present, holds run options for the CLI and is not part of the spec."""
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ValueError(f"spec file {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"spec file {str(path)!r} is not valid TOML: {exc}") from None
        return cls.from_dict(doc)

    def to_dict(self) -> dict:
        """The canonical spec (JSON-ready): task, axes (ordered), zipped, fixed."""
        return {"task": self.task, "axes": {n: list(v) for n, v in self.axes.items()},
                "zipped": [{n: list(v) for n, v in g.items()} for g in self.zipped],
                "fixed": dict(self.fixed)}

    # ------------------------------------------------------------------ cells
    @property
    def param_names(self) -> list:
        """Parameter names in column order: axes, zipped, fixed."""
        return [*self.axes, *(n for g in self.zipped for n in g), *self.fixed]

    @property
    def shape(self) -> tuple:
        return (*(len(v) for v in self.axes.values()), *(len(next(iter(g.values()))) for g in self.zipped))

    def __len__(self) -> int:
        return math.prod(self.shape)

    def cells(self) -> Iterator[dict]:
        """Every cell's parameters, in grid order (the product, last axis fastest)."""
        names = list(self.axes)
        factors = [list(self.axes[n]) for n in names]
        factors += [list(zip(*g.values())) for g in self.zipped]
        gnames = [list(g) for g in self.zipped]
        for combo in itertools.product(*factors):
            cell = dict(zip(names, combo[:len(names)]))
            for gn, values in zip(gnames, combo[len(names):]):
                cell.update(zip(gn, values))
            cell.update(self.fixed)
            yield cell


def spec_diff(old: Mapping, new: Mapping) -> list:
    """Human-readable differences between two canonical spec dicts (empty when equal; axis order counts)."""
    out = []
    if old.get("task") != new.get("task"):
        out.append(f"task: {old.get('task')!r} -> {new.get('task')!r}")
    for part in ("axes", "fixed"):
        a, b = old.get(part, {}), new.get(part, {})
        for n in sorted(set(a) | set(b)):
            if n not in b:
                out.append(f"{part}.{n}: removed (was {a[n]!r})")
            elif n not in a:
                out.append(f"{part}.{n}: added {b[n]!r}")
            elif canonical_json(a[n]) != canonical_json(b[n]):  # 1 and 1.0 are different cells (keys)
                out.append(f"{part}.{n}: {a[n]!r} -> {b[n]!r}")
        if not out and list(a) != list(b):
            out.append(f"{part} order: {list(a)} -> {list(b)}")
    if canonical_json(old.get("zipped", [])) != canonical_json(new.get("zipped", [])):
        out.append(f"zipped: {old.get('zipped')!r} -> {new.get('zipped')!r}")
    return out
