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
