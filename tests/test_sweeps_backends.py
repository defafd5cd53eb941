"""The same sweep table, bitwise, from the serial, process and dask backends (a real LocalCluster
with 2 worker processes, started once for the module)."""
import pandas as pd
import pytest

from mdpsandbox.sweeps import Sweep, linspace, logspace, run

distributed = pytest.importorskip("distributed")

SELF = Sweep(task="selftest", axes={"x": linspace(-1, 1, 7), "fail": ["none", "nan"]}, fixed={"n": 5})


@pytest.fixture(scope="module")
def cluster():
    import logging

    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                 silence_logs=logging.ERROR)
    yield c
    c.close()


def _strip(df):
    return df.drop(columns=["wall_s"])


def _solve_sweep():
    # gridworld has no n_states: give it through zipped only where the env has it
    return Sweep(task="solve", axes={"gamma": [0.5, 0.99], "beta": logspace(-2, 1, 3), "seed": range(3)},
                 zipped=[{"env": ["garnet", "chain"], "n_states": [12, 7]}])


@pytest.mark.parametrize("make", [_solve_sweep, lambda: SELF], ids=["solve_batched", "selftest_with_errors"])
def test_serial_process_and_dask_give_the_same_table_bitwise(tmp_path, cluster, make):
    sw = make()
    serial = run(sw, tmp_path / "serial", backend="serial", progress=False, chunk_size=4)
    proc = run(sw, tmp_path / "proc", backend="process", workers=2, progress=False, chunk_size=3)
    dsk = run(sw, tmp_path / "dask", backend="dask", scheduler=cluster.scheduler_address, progress=False, chunk_size=5)
    assert len(serial) == len(sw)
    pd.testing.assert_frame_equal(_strip(serial), _strip(proc), check_exact=True)
    pd.testing.assert_frame_equal(_strip(serial), _strip(dsk), check_exact=True)


def test_unreachable_scheduler_fails_fast_with_a_clear_message(tmp_path):
    import time

    t0 = time.monotonic()
    with pytest.raises(ValueError, match=r"cannot reach the dask scheduler at 'tcp://127.0.0.1:9' within 2"):
        run(SELF, tmp_path / "o", backend="dask", scheduler="tcp://127.0.0.1:9", timeout=2, progress=False)
    assert time.monotonic() - t0 < 20
    assert not (tmp_path / "o").exists()  # refused before anything was written
