"""``mdpsandbox sweep run/status/show/plot`` and the shipped example specs."""
import json
from pathlib import Path

import pytest

from mdpsandbox.cli import main
from mdpsandbox.sweeps import Sweep, load
from mdpsandbox.sweeps.runner import plan_cells

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "sweeps"


def test_example_specs_are_valid_sweeps():
    g = Sweep.from_toml(EXAMPLES / "garnet_soft.toml")
    assert g.task == "solve" and len(g) == 720
    s = Sweep.from_toml(EXAMPLES / "shiq_beta.toml")
    assert s.task == "train" and len(s) == 9
    for sw in (g, s):
        plan_cells(sw)  # validates every parameter against the task before any work


def test_cli_run_status_show_plot(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('task = "solve"\n[fixed]\nenv = "garnet"\nn_states = 6\n'
                    '[axes]\ngamma = [0.5, 0.9]\ntemperature = { logspace = [-2, 0, 3] }\nseed = { range = 2 }\n'
                    '[run]\nbackend = "serial"\n')
    out = tmp_path / "o"
    assert main(["sweep", "run", str(spec), "--out", str(out), "--no-progress", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["done"] == st["n_cells"] == 12 and st["missing"] == 0 and st["failed"] == 0
    assert main(["sweep", "status", str(out)]) == 0
    assert "12 cells — done 12, failed 0, missing 0" in capsys.readouterr().out
    assert main(["sweep", "show", str(out), "--json", "--columns", "gamma,temperature,seed,value_initial"]) == 0
    rows = json.loads(capsys.readouterr().out)
    df = load(out)
    assert [r["value_initial"] for r in rows] == df.value_initial.tolist()
    assert main(["sweep", "plot", str(out), "--x", "temperature", "--y", "value_initial", "--hue", "gamma",
                 "--logx", "-o", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").stat().st_size > 1000
    # a different spec into the same directory: exit code 2 and the differing field
    spec.write_text(spec.read_text().replace("[0.5, 0.9]", "[0.5, 0.95]"))
    assert main(["sweep", "run", str(spec), "--out", str(out), "--no-progress"]) == 2
    assert "axes.gamma: [0.5, 0.9] -> [0.5, 0.95]" in capsys.readouterr().err


def test_cli_help_explains_with_an_example_spec(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "run", "--help"])
    text = capsys.readouterr().out
    assert 'task = "solve"' in text and "logspace" in text and "--retry-failed" in text and "--scheduler" in text


def test_cli_bad_spec_file_is_a_clear_error(tmp_path, capsys):
    assert main(["sweep", "run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "solve"\n[axes]\nbeta = { geomspace = [1, 2, 3] }\n')
    assert main(["sweep", "run", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "unknown axis generator 'geomspace'" in capsys.readouterr().err
