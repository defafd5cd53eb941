"""kill -9 at any moment, then rerun: every cell exactly once, numbers identical to an uninterrupted
run, no partial file ever visible (a property test over kill moments and backends)."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdpsandbox.sweeps import Sweep, linspace, load, run
from mdpsandbox.sweeps.store import read_rows

SPEC = dict(task="selftest", axes={"x": linspace(0, 1, 40)}, fixed={"sleep": 0.01, "n": 3})

SCRIPT = """
import sys
import pandas, pyarrow.parquet  # imported before READY so that the kill moments fall inside the run
from mdpsandbox.sweeps import Sweep, linspace, run
from mdpsandbox.sweeps.store import _versions, _git_revision
_versions(), _git_revision()
if __name__ == "__main__":
    sw = Sweep(task="selftest", axes={"x": linspace(0, 1, 40)}, fixed={"sleep": 0.01, "n": 3})
    print("READY", flush=True)
    run(sw, sys.argv[1], backend=sys.argv[2], workers=2, chunk_size=2, progress=False)
    print("DONE", flush=True)
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    return run(Sweep(**SPEC), out, backend="serial", progress=False, chunk_size=7).drop(columns="wall_s")


def _no_partial_files(out):
    for f in (out / "chunks").glob("*"):
        if f.name.startswith("."):
            continue  # temp names are hidden and never read
        assert f.suffix in (".parquet", ".npz"), f
        pq.read_table(f)  # a complete Parquet file (footer present)


@settings(max_examples=5, deadline=None)
@given(delay=st.floats(0.0, 1.2), backend=st.sampled_from(["serial", "process"]), rerun=st.sampled_from(["serial", "process"]))
def test_kill_and_resume_gives_every_cell_once_with_identical_numbers(tmp_path_factory, reference, delay, backend, rerun):
    out = tmp_path_factory.mktemp("kill")
    script = out.parent / f"{out.name}_run.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(out), backend], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stdout.close()
    if (out / "manifest.json").exists():
        _no_partial_files(out)
    df = run(Sweep(**SPEC), out, backend=rerun, workers=2, progress=False, chunk_size=3)
    _no_partial_files(out)
    raw = read_rows(out, columns=["key", "attempt"]).to_pandas()
    assert not raw.duplicated(["key", "attempt"]).any(), "a cell was written twice"
    assert len(raw) == len(reference)
    pd.testing.assert_frame_equal(df.drop(columns="wall_s"), reference, check_exact=True)
    pd.testing.assert_frame_equal(load(out).drop(columns="wall_s"), reference, check_exact=True)
