"""Sweeps: spec, keys and seeds, built-in tasks against exact references, batching, store, errors."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mdpsandbox as ms
from mdpsandbox.sweeps import Sweep, cell_key, cell_seed, linspace, load, load_arrays, logspace, run, status
from mdpsandbox.sweeps.tasks.exact import SolveBatcher, garnet_arrays

SERIAL = dict(backend="serial", progress=False)


def _nowall(df):
    return df.drop(columns=["wall_s"])


# ---------------------------------------------------------------------- spec, keys, seeds
def test_toml_and_python_declare_the_same_spec(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text("""
task = "solve"
[fixed]
env = "garnet"
n_states = 6
[axes]
gamma = [0.9, 0.99]
beta = { logspace = [-3, 1, 5] }
tol = { linspace = [1e-9, 1e-6, 3] }
seed = { range = [0, 4] }
[[zipped]]
n_actions = [2, 3]
branching = [2, 3]
""")
    py = Sweep(task="solve", axes={"gamma": [0.9, 0.99], "beta": logspace(-3, 1, 5), "tol": linspace(1e-9, 1e-6, 3),
                                   "seed": range(4)},
               zipped=[{"n_actions": [2, 3], "branching": [2, 3]}], fixed={"env": "garnet", "n_states": 6})
    from_toml = Sweep.from_toml(toml)
    assert from_toml.to_dict() == py.to_dict()
    assert json.dumps(from_toml.to_dict()) == json.dumps(py.to_dict())
    assert len(py) == 2 * 5 * 3 * 4 * 2 == len(list(py.cells()))
    assert py.to_dict()["axes"]["beta"] == list(np.logspace(-3, 1, 5))


def test_grid_order_is_the_product_with_the_last_axis_fastest_then_zipped():
    sw = Sweep(task="selftest", axes={"x": [1.0, 2.0], "n": [1, 2]}, zipped=[{"sleep": [0.0, 0.5], "fail": ["none", "nan"]}])
    cells = list(sw.cells())
    assert [(c["x"], c["n"], c["sleep"], c["fail"]) for c in cells] == [
        (1.0, 1, 0.0, "none"), (1.0, 1, 0.5, "nan"), (1.0, 2, 0.0, "none"), (1.0, 2, 0.5, "nan"),
        (2.0, 1, 0.0, "none"), (2.0, 1, 0.5, "nan"), (2.0, 2, 0.0, "none"), (2.0, 2, 0.5, "nan")]


def test_cell_key_is_sha256_of_the_canonical_json():
    # written out by hand: sorted keys, compact separators, floats by repr
    text = b'{"params":{"beta":0.1,"env":"garnet","n":3},"task":"solve"}'
    assert cell_key("solve", {"n": 3, "env": "garnet", "beta": 0.1}) == hashlib.sha256(text).hexdigest()
    assert cell_key("solve", {"beta": np.float64(0.1)}) == cell_key("solve", {"beta": 1 / 10})
    assert cell_key("solve", {"beta": 0.1}) != cell_key("solve", {"beta": np.nextafter(0.1, 1)})
    assert cell_key("solve", {"beta": 0.1}) != cell_key("evaluate", {"beta": 0.1})


def test_cell_seed_is_the_seedsequence_of_the_key(tmp_path):
    df = run(Sweep(task="selftest", axes={"x": [0.5, 1.5, 2.5]}), tmp_path / "o", **SERIAL)
    for _, row in df.iterrows():
        word = np.random.SeedSequence(int(row.key, 16)).generate_state(1, np.uint64)[0]
        seed = int(word >> np.uint64(1))
        assert seed == cell_seed(row.key)
        assert row.u == np.random.default_rng(seed).random()
        assert row.y == row.x ** 2


def test_tables_do_not_depend_on_chunking(tmp_path):
    sw = Sweep(task="selftest", axes={"x": linspace(0, 1, 11), "n": [1, 3]})
    a = run(sw, tmp_path / "a", chunk_size=1, **SERIAL)
    b = run(sw, tmp_path / "b", chunk_size=7, **SERIAL)
    c = run(sw, tmp_path / "c", **SERIAL)
    pd.testing.assert_frame_equal(_nowall(a), _nowall(b))
    pd.testing.assert_frame_equal(_nowall(a), _nowall(c))
    assert list(a.cell) == list(range(22)) and len(set(a.key)) == 22
    assert len(list((tmp_path / "a" / "chunks").glob("chunk-*.parquet"))) == 22


# ---------------------------------------------------------------------- exact tasks vs references
def test_garnet_arrays_equal_the_garnet_generator():
    for S, A, b, seed in [(20, 4, 3, 0), (7, 2, 7, 5), (5, 3, 1, 11)]:
        P, R = garnet_arrays(S, A, b, seed, 2.0)
        g = ms.garnet(S, A, b, seed=seed, reward_scale=2.0)
        assert np.array_equal(P, g.dense_P()) and np.array_equal(R, g.R)


@pytest.mark.parametrize("reg", [{}, {"beta": 1e-8}, {"beta": 0.3}, {"beta": 1e8}, {"temperature": 1e-8},
                                 {"temperature": 0.3}, {"temperature": 1e8}])
def test_batched_solve_equals_per_cell_solve(reg):
    gammas = [0.0, 0.5, 0.9, 0.99]
    cells = [dict(env="garnet", n_states=8, n_actions=3, branching=3, gamma=g, seed=s, **reg)
             for g in gammas for s in range(3)]
    cells += [dict(env="chain", n_states=6, gamma=g, slip=0.2, **reg) for g in gammas]
    out = []
    b = SolveBatcher()
    assert len({b.key(c) for c in cells[:12]}) == 1  # one batch for the garnets
    out = b.run(cells[:12]) + b.run(cells[12:])
    for c, m in zip(cells, out):
        env = ms.garnet(8, 3, 3, gamma=c["gamma"], seed=c["seed"]) if c["env"] == "garnet" else \
            ms.chain(6, c["gamma"], slip=0.2)
        ref = np.full((env.n_states, env.n_actions), 1 / env.n_actions) if "beta" in reg else None
        sol = ms.solve(env, method="pi", ref_policy=ref, tol=1e-11, **reg)
        assert np.isfinite(m["value_initial"])
        assert abs(m["value_initial"] - sol.value_initial) <= m["bound"] + sol.bound + 1e-12 * (1 + abs(sol.value_initial))
        assert m["converged"]


@pytest.mark.parametrize("reg", [{}, {"beta": 10.0}, {"temperature": 0.1}])
def test_batched_numbers_do_not_depend_on_the_other_cells_of_the_batch(reg):
    b = SolveBatcher()
    cells = [dict(env="garnet", n_states=12, n_actions=4, gamma=0.99, seed=s, **reg) for s in range(5)]
    alone = [b.run([c])[0] for c in cells]
    together = b.run(cells)
    shuffled = b.run(cells[::-1])[::-1]
    for x, y, z in zip(alone, together, shuffled):
        x.pop("wall_s"), y.pop("wall_s"), z.pop("wall_s")
        assert x == y == z  # bitwise


def test_solve_task_error_ref_within_the_two_certified_bounds(tmp_path):
    sw = Sweep(task="solve", axes={"gamma": [0.5, 0.9, 0.99], "env": ["garnet", "gridworld", "bandit"]},
               fixed={"temperature": 0.1, "reference": True})
    df = run(sw, tmp_path / "o", **SERIAL)
    assert (df.status == "ok").all()
    assert (df.error_ref <= df.bound + df.ref_bound + 1e-12).all()
    g = df[(df.env == "gridworld") & (df.gamma == 0.9)].iloc[0]
    assert g.value_initial == pytest.approx(ms.solve(ms.gridworld(gamma=0.9), temperature=0.1).value_initial, abs=1e-8)
    # the sweep reports the method solve's "auto" rule chose for the cell (docs: solve's docstring)
    assert g.method_used == ms.solve(ms.gridworld(gamma=0.9), temperature=0.1).method
    assert df[df.env == "garnet"].method_used.eq("pi_batch").all()


def test_solve_task_on_token_trees_matches_the_closed_form(tmp_path):
    # V*(root) = β log Σ_x π_ref(x) e^{R(x)/β} for terminal rewards (docs/math.md §4)
    sw = Sweep(task="solve", axes={"beta": [1e-8, 0.1, 1.0, 1e8], "env": ["token", "bernoulli_tree"]},
               fixed={"vocab_size": 3, "horizon": 3, "seed": 4, "reference": True})
    df = run(sw, tmp_path / "o", **SERIAL)
    assert (df.status == "ok").all()
    for _, r in df.iterrows():
        env = ms.TokenMDP.random(3, 3, seed=4, reward="terminal" if r.env == "token" else "bernoulli")
        logp, R = env.leaf_log_probs(), env.leaf_returns()
        if r.beta >= 1:  # β log(1 + E[e^{R/β} − 1]): no cancellation at large β
            exact = r.beta * np.log1p(np.sum(np.exp(logp) * np.expm1(R / r.beta)))
        else:
            x = logp + R / r.beta
            exact = r.beta * (x.max() + np.log(np.exp(x - x.max()).sum()))
        assert r.value_initial == pytest.approx(exact, rel=1e-9, abs=1e-12)
        assert r.error_ref <= 1e-8


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
def test_evaluate_task_equals_the_linear_solve(tmp_path, gamma):
    sw = Sweep(task="evaluate", axes={"policy": ["uniform", "optimal", "random"], "seed": [0, 1]},
               fixed={"env": "garnet", "n_states": 6, "n_actions": 3, "gamma": gamma})
    df = run(sw, tmp_path / "o", **SERIAL)
    assert (df.status == "ok").all()
    for _, r in df[df.policy == "uniform"].iterrows():
        env = ms.garnet(6, 3, 3, gamma=gamma, seed=int(r.seed))
        Ppi = env.dense_P().mean(axis=1)
        v = np.linalg.solve(np.eye(6) - gamma * Ppi, env.R.mean(axis=1))
        assert r.value_initial == pytest.approx(env.initial @ v, abs=1e-10)
    assert (df.suboptimality >= -1e-9).all()
    assert df[df.policy == "optimal"].suboptimality.abs().max() <= 1e-9
    assert df.residual.max() <= 1e-9


def test_distributional_task_fixed_points_agree_with_their_references(tmp_path):
    sw = Sweep(task="distributional", axes={"method": ["dcfp", "cdp", "qdp"], "gamma": [0.5, 0.9]},
               fixed={"env": "garnet", "n_states": 5, "n_actions": 2, "n_atoms": 21, "n_quantiles": 8, "tol": 1e-8})
    df = run(sw, tmp_path / "o", **SERIAL)
    assert (df.status == "ok").all(), df.error.tolist()
    assert (df.w1_ref <= df.bound + 1e-10).all() and (df.w1_ref <= 1e-8).all()
    assert df[df.method != "qdp"].mean_error.max() <= 1e-8  # Π_C keeps the mean (atoms hold the returns)


def test_train_task_reports_the_learners_final_metrics(tmp_path):
    pytest.importorskip("torch")
    from mdpsandbox.learners import train

    sw = Sweep(task="train", axes={"seed": [0, 1]},
               fixed={"algorithm": "shiq", "vocab_size": 2, "horizon": 2, "beta": 0.5, "steps": 30})
    df = run(sw, tmp_path / "o", **SERIAL)
    assert (df.status == "ok").all(), df.error.tolist()
    res = train("shiq", ms.TokenMDP.random(2, 2, seed=0), beta=0.5, steps=30, seed=1, progress=False)
    row = df[df.seed == 1].iloc[0]
    assert row.logit_error == res.final["logit_error"] and row.final_step == res.final["step"]


# ---------------------------------------------------------------------- store, resume, errors
def test_failing_cells_become_error_rows_and_retry_reruns_only_them(tmp_path):
    sw = Sweep(task="selftest", axes={"fail": ["none", "raise", "nan", "array"], "x": [1.0, 2.0]})
    df = run(sw, tmp_path / "o", chunk_size=3, **SERIAL)
    assert len(df) == 8
    by = {f: d for f, d in df.groupby("fail")}
    assert (by["none"].status == "ok").all() and by["none"].error.isna().all()
    assert by["raise"].error.str.contains("ValueError: selftest asked to fail").all()
    assert by["nan"].error.str.contains("metric 'y' is NaN").all()
    assert by["array"].error.str.contains("metric 'y' is not a scalar").all()
    assert (df[df.status == "error"].y.isna()).all()
    assert status(tmp_path / "o") == {"task": "selftest", "n_cells": 8, "done": 2, "failed": 6, "missing": 0,
                                      "chunks": 3}
    again = run(sw, tmp_path / "o", retry_failed=True, chunk_size=3, **SERIAL)
    assert list(again.attempt) == [0, 0, 1, 1, 1, 1, 1, 1]
    pd.testing.assert_frame_equal(_nowall(again).drop(columns="attempt"), _nowall(df).drop(columns="attempt"))


def test_resume_after_losing_chunks_restores_the_identical_table(tmp_path):
    sw = Sweep(task="selftest", axes={"x": linspace(0, 1, 9)})
    full = run(sw, tmp_path / "o", chunk_size=2, **SERIAL)
    files = sorted((tmp_path / "o" / "chunks").glob("chunk-*.parquet"))
    files[1].unlink()
    files[3].unlink()
    st = status(tmp_path / "o")
    assert st["missing"] == 4 and st["done"] == 5
    assert len(load(tmp_path / "o")) == 5
    again = run(sw, tmp_path / "o", chunk_size=5, **SERIAL)
    pd.testing.assert_frame_equal(_nowall(again), _nowall(full))


def test_manifest_records_spec_and_versions(tmp_path):
    sw = Sweep(task="selftest", axes={"x": [1.0]})
    run(sw, tmp_path / "o", **SERIAL)
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["spec"] == sw.to_dict() and man["n_cells"] == 1
    assert set(man["versions"]) >= {"mdpsandbox", "numpy", "numba", "python", "pyarrow"}
    assert "git_revision" in man


def test_arrays_sidecar_holds_each_cells_arrays(tmp_path):
    df = run(Sweep(task="selftest", axes={"x": [1.0, 2.0]}, fixed={"n": 4, "with_arrays": True}), tmp_path / "o",
             **SERIAL)
    arr = load_arrays(tmp_path / "o")
    for _, r in df.iterrows():
        d = arr[r.key]["draws"]
        assert d.shape == (4,) and d[0] == r.u and d.mean() == r.n_draws_mean


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(task="no_such_task"), r"unknown task 'no_such_task'; registered tasks: .*solve"),
    (dict(task="solve", axes={"gama": [0.9]}), r"unknown parameter\(s\) \['gama'\]; valid: .*gamma"),
    (dict(task="solve", axes={"gamma": ["0.9"]}), r"parameter 'gamma' must be float"),
    (dict(task="solve", axes={"env": ["garnett"]}), r"parameter 'env' must be one of \['garnet'"),
    (dict(task="solve", axes={"gamma": [[0.9]]}), r"must be a scalar"),
    (dict(task="solve", axes={"gamma": [float("nan")]}), r"must be finite"),
    (dict(task="solve", axes={"gamma": []}), r"axis 'gamma' is empty"),
    (dict(task="solve", axes={"gamma": [0.9, "0.99"]}), r"axis 'gamma' mixes value types \['number', 'str'\]"),
    (dict(task="solve", axes={"gamma": 0.9}), r"axis 'gamma' must be a sequence"),
    (dict(task="solve", zipped=[{"gamma": [0.9, 0.99], "seed": [1]}]), r"equal lengths"),
    (dict(task="solve", axes={"gamma": [0.9]}, fixed={"gamma": 0.5}), r"'gamma' is given twice"),
    (dict(task="solve", axes={"gamma": [0.9, 0.9]}), r"identical parameters"),
    (dict(task="solve", axes={"vocab_size": [3]}), r"env 'garnet' has no parameter\(s\) \['vocab_size'\]"),
    (dict(task="solve", axes={"beta": [-1.0]}), r"'beta' must be > 0"),
    (dict(task="solve", axes={"status": [1]}), r"reserved"),
    (dict(task="train", fixed={"algorithm": "nope"}), r"unknown algorithm\(s\) \['nope'\]; registered: .*shiq"),
    (dict(task="os:nonexistent_fn"), r"module 'os' has no attribute"),
    (dict(task=lambda x: {}), r"module-level function"),
])
def test_bad_specs_are_refused_before_any_work(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run(Sweep(**kwargs), tmp_path / "o", **SERIAL)
    assert not (tmp_path / "o").exists()


def test_a_different_spec_in_the_same_directory_is_refused_naming_the_fields(tmp_path):
    run(Sweep(task="selftest", axes={"x": [1.0, 2.0]}), tmp_path / "o", **SERIAL)
    with pytest.raises(ValueError, match=r"holds a different sweep; fields that differ: axes.x: \[1.0, 2.0\] -> "
                                         r"\[1.0, 3.0\]; fixed.n: added 2"):
        run(Sweep(task="selftest", axes={"x": [1.0, 3.0]}, fixed={"n": 2}), tmp_path / "o", **SERIAL)


def test_int_and_float_values_are_different_specs(tmp_path):
    run(Sweep(task="selftest", axes={"n": [1, 2]}), tmp_path / "o", **SERIAL)
    with pytest.raises(ValueError, match=r"axes.x: added"):
        run(Sweep(task="selftest", axes={"n": [1, 2], "x": [1]}), tmp_path / "o", **SERIAL)
    from mdpsandbox.sweeps import spec_diff

    assert spec_diff({"axes": {"x": [1, 2]}}, {"axes": {"x": [1.0, 2]}}) == ["axes.x: [1, 2] -> [1.0, 2]"]


def test_unwritable_directory_and_bad_run_options_are_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    sw = Sweep(task="selftest", axes={"x": [1.0]})
    with pytest.raises(ValueError, match="not writable|not a directory"):
        run(sw, blocker / "sub", **SERIAL)
    with pytest.raises(ValueError, match="backend must be one of serial, process, dask"):
        run(sw, tmp_path / "o", backend="threads")
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        run(sw, tmp_path / "o", backend="process", workers=0)
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1"):
        run(sw, tmp_path / "o", chunk_size=0, **SERIAL)
    with pytest.raises(ValueError, match="scheduler is an option of backend='dask'"):
        run(sw, tmp_path / "o", scheduler="tcp://127.0.0.1:1", **SERIAL)


def test_dask_backend_without_distributed_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ValueError, match=r"pip install 'mdpsandbox\[dask\]'"):
        run(Sweep(task="selftest", axes={"x": [1.0]}), tmp_path / "o", backend="dask", progress=False)


def test_user_task_by_module_path_and_by_registered_name(tmp_path):
    from mdpsandbox.sweeps import TASKS, task

    sw = Sweep(task="mdpsandbox.sweeps.tasks.selftest:selftest_task", axes={"x": [3.0]})
    df = run(sw, tmp_path / "a", **SERIAL)
    assert df.y.tolist() == [9.0]
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['z'\]"):
        run(Sweep(task="mdpsandbox.sweeps.tasks.selftest:selftest_task", axes={"z": [3.0]}), tmp_path / "b", **SERIAL)
    # a registered name of a user function resolves to the same callable
    assert TASKS["selftest"].import_path == "mdpsandbox.sweeps.tasks.selftest:selftest_task"
    assert Sweep(task=TASKS["selftest"].fn).task == "selftest"


# ---------------------------------------------------------------------- batched chunks as columns
class _RowsOnly:
    """The solve batcher without ``run_columns``: chunks take the per-cell row path."""

    def __init__(self, inner):
        self.inner = inner

    def key(self, p):
        return self.inner.key(p)

    def env_key(self, p):
        return self.inner.env_key(p)

    def run(self, cells):
        return self.inner.run(cells)


def test_batched_chunk_written_from_columns_equals_the_per_cell_row_path(tmp_path, monkeypatch):
    from mdpsandbox.sweeps.tasks import get_task

    sw = Sweep(task="solve", axes={"gamma": [0.0, 0.5, 0.9, 0.99], "beta": [0.1, 10.0], "seed": range(4)},
               fixed={"env": "garnet", "n_states": 9, "n_actions": 3, "reference": True})
    cols = run(sw, tmp_path / "cols", chunk_size=13, **SERIAL)
    task = get_task("solve")
    monkeypatch.setattr(task, "batcher", _RowsOnly(task.batcher))
    rows = run(sw, tmp_path / "rows", chunk_size=13, **SERIAL)
    assert (cols.method_used == "pi_batch").all() and (cols.status == "ok").all()
    pd.testing.assert_frame_equal(_nowall(cols), _nowall(rows), check_exact=True)
    import pyarrow.parquet as pq

    f = sorted((tmp_path / "cols" / "chunks").glob("*.parquet"))[0]
    g = sorted((tmp_path / "rows" / "chunks").glob("*.parquet"))[0]
    assert pq.read_schema(f).equals(pq.read_schema(g))  # same column types from both paths


def test_batcher_rows_are_its_columns_row_by_row():
    b = SolveBatcher()
    cells = [dict(env="garnet", n_states=8, n_actions=3, gamma=g, seed=s, beta=0.5) for g in (0.5, 0.99)
             for s in range(3)]
    cols, wall = b.run_columns(cells)
    rows = b.run(cells)
    for i, r in enumerate(rows):
        assert r.pop("wall_s") > 0 and wall > 0  # timings of two calls
        assert r == {k: (v[i].item() if isinstance(v, np.ndarray) else v[i]) for k, v in cols.items()}
    assert cols["iterations"].dtype == np.int64 and cols["converged"].dtype == bool


@pytest.mark.parametrize("cols, match", [
    ({"v": np.array([1.0, np.nan])}, "metric 'v' is NaN"),
    ({"gamma": np.zeros(2)}, "metric 'gamma' clashes with a parameter"),
    ({"status": np.zeros(2)}, "metric 'status' clashes with a reserved column"),
    ({"v": np.zeros(3)}, r"metric column 'v' has shape \(3,\), expected \(2,\)"),
    ({"v": np.zeros(2, dtype=complex)}, "metric column 'v' has dtype complex128"),
    ({"v": ["a", 1]}, "metric column 'v' must be"),
    ({"not valid": np.zeros(2)}, "identifiers"),
])
def test_column_check_refuses_what_the_per_cell_check_refuses(cols, match):
    from mdpsandbox.sweeps.worker import check_columns, check_metrics

    with pytest.raises(ValueError, match=match):
        check_columns(cols, 2, {"gamma"})
    if not match.startswith("metric column"):  # the per-cell check refuses the same cells
        with pytest.raises(ValueError):
            for i in range(2):
                check_metrics({k: (v[i].item() if isinstance(v, np.ndarray) else v[i]) for k, v in cols.items()},
                              {"gamma": 0.9})


def test_batched_nan_cell_falls_back_to_per_cell_rows(tmp_path, monkeypatch):
    """A batch whose columns fail the check is rerun cell by cell: only the bad cell is an error row."""
    from mdpsandbox.sweeps.tasks import get_task

    task = get_task("solve")
    inner = task.batcher

    class _NanOnSeed1(_RowsOnly):
        def run_columns(self, cells):
            cols, wall = inner.run_columns(cells)
            cols["value_initial"] = np.where([c["seed"] == 1 for c in cells], np.nan, cols["value_initial"])
            return cols, wall

        def run(self, cells):
            out = inner.run(cells)
            for c, m in zip(cells, out):
                if c["seed"] == 1:
                    m["value_initial"] = float("nan")
            return out

    monkeypatch.setattr(task, "batcher", _NanOnSeed1(inner))
    sw = Sweep(task="solve", axes={"seed": range(4)}, fixed={"env": "garnet", "n_states": 6, "gamma": 0.9})
    df = run(sw, tmp_path / "o", chunk_size=4, **SERIAL)
    assert list(df.status) == ["ok", "error", "ok", "ok"]
    assert "NaN" in df.error[1]


@pytest.mark.parametrize("n, per, workers, min_cells", [(9920, 1e-4, 2, 4096), (9920, 2.5e-5, 2, 4096),
                                                         (397, 2e-3, 2, 1), (1997, 2e-3, 2, 1), (5, 1.0, 2, 1),
                                                         (10, 1e-3, 3, 1), (1, 1e-3, 4, 1), (1000, 1e-6, 1, 4096)])
def test_chunk_plan_covers_every_cell_in_a_multiple_of_the_worker_count(n, per, workers, min_cells):
    import math

    from mdpsandbox.sweeps.runner import TARGET_CHUNK_S, _chunk_size

    size = _chunk_size(n, per, workers, min_cells)
    k = math.ceil(n / size)
    assert size >= 1 and k * size >= n and (k - 1) * size < n
    assert k % workers == 0 or k == n  # fewer cells than workers: one chunk per cell
    assert n - (k - 1) * size >= size // 2 or k == 1  # no short last chunk finishing alone
    assert size * per <= 2 * TARGET_CHUNK_S[2] or size == 1


@pytest.mark.parametrize("value", [3, 2.5, "garnet", True, None])
def test_repeated_scalar_column_equals_the_inferred_list_column(value):
    import pyarrow as pa

    from mdpsandbox.sweeps.store import _column_array, repeated

    for n in (0, 1, 7):
        ref = pa.array([value] * n)
        assert repeated(value, n).equals(ref) and repeated(value, n).type == ref.type
        assert _column_array([value] * n).equals(ref) and _column_array([value] * n).type == ref.type


def test_interleaved_batch_groups_of_one_chunk_keep_cell_order(tmp_path, monkeypatch):
    """A chunk whose cells alternate between two batch keys (groups not consecutive): the column
    path puts every row back at its cell, as the per-cell row path does."""
    from mdpsandbox.sweeps import store
    from mdpsandbox.sweeps.runner import plan_cells
    from mdpsandbox.sweeps.tasks import get_task
    from mdpsandbox.sweeps.worker import execute_chunk

    sw = Sweep(task="solve", axes={"seed": range(3), "beta": [0.1, 10.0]},
               fixed={"env": "garnet", "n_states": 7, "gamma": 0.9})
    tables = []
    for name in ("cols", "rows"):
        if name == "rows":
            task = get_task("solve")
            monkeypatch.setattr(task, "batcher", _RowsOnly(task.batcher))
        task, cells = plan_cells(sw)
        out = store.prepare(tmp_path / name, sw.to_dict(), len(cells))
        rid = store.begin_run(out)
        payload = {"out": str(out), "run_id": rid, "task": "solve", "import_path": task.import_path,
                   "name": "chunk-x", "batched": True, "param_names": sw.param_names, "groups": None,
                   "cells": [(i, k, 0, p) for i, k, p in cells]}  # beta alternates: two interleaved groups
        assert execute_chunk(payload)["n"] == 6
        tables.append(_nowall(store.load(out)))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert list(tables[0].beta) == [0.1, 10.0] * 3
