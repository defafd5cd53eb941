"""`mdpsandbox learn`: prints an error curve that ends at the exact solution; bad names are refused."""
import json

from mdpsandbox.cli import main


def test_learn_prints_error_curve_reaching_exact_solution(capsys, tmp_path):
    png = tmp_path / "curve.png"
    rc = main(["learn", "shiq_l3", "--vocab", "2", "--horizon", "3", "--steps", "10", "--optimizer", "lbfgs",
               "--eval-every", "5", "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0 and "logit err" in out and "worst entry: prefix" in out
    assert png.exists() and png.stat().st_size > 1000


def test_learn_json_history_matches_steps(capsys):
    rc = main(["learn", "kl_q", "--vocab", "2", "--horizon", "2", "--steps", "6", "--optimizer", "lbfgs",
               "--eval-every", "3", "--json"])
    hist = json.loads(capsys.readouterr().out)
    assert rc == 0 and [h["step"] for h in hist] == [0, 3, 6]
    assert hist[-1]["tv_max"] < 1e-6


def test_learn_unknown_algorithm_lists_valid_ones(capsys):
    rc = main(["learn", "nope", "--steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "valid algorithms" in err and "shiq" in err


def test_learn_bad_beta_is_refused(capsys):
    rc = main(["learn", "shiq", "--beta", "-1", "--steps", "1"])
    assert rc == 2 and "beta" in capsys.readouterr().err


def test_learn_qsharp_works_with_its_defaults(capsys):
    # the default random tree has non-0/1 rewards: the histogram head is chosen (no Python-call advice)
    rc = main(["learn", "qsharp", "--vocab", "2", "--horizon", "2", "--steps", "5"])
    out = capsys.readouterr().out
    assert rc == 0 and "algorithm=qsharp" in out and "TV max" in out


def test_learn_c51_prints_error_next_to_plugin(capsys):
    rc = main(["learn", "c51", "--states", "4", "--gamma", "0.8", "--steps", "1500", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["algorithm"] == "c51" and out["sup_w1"] < 4 * out["plugin_sup_w1"] + 0.01


def test_learn_errors_name_cli_options_not_python_calls(capsys):
    rc = main(["learn", "c51", "--optimizer", "adam", "--steps", "10"])
    err = capsys.readouterr().err
    assert rc == 2 and "--optimizer" in err and "learn --help" in err and "train(" not in err


def test_learn_negative_control_says_so(capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["learn", "naive", "--vocab", "2", "--horizon", "2", "--steps", "5"])
    out = capsys.readouterr().out
    assert rc == 0 and "note: naive is a negative control" in out


def test_learn_shows_progress_in_logs_and_keeps_stdout_json(capsys):
    rc = main(["learn", "shiq_l3", "--vocab", "2", "--horizon", "2", "--steps", "4", "--optimizer", "lbfgs",
               "--eval-every", "2", "--json"])
    cap = capsys.readouterr()
    assert rc == 0 and [h["step"] for h in json.loads(cap.out)] == [0, 2, 4]
    lines = [ln for ln in cap.err.splitlines() if "train shiq_l3 step" in ln]
    assert len(lines) == 2 and "step 4/4" in lines[-1]
