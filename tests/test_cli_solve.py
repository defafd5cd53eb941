"""`mdpsandbox solve`: works with no options, --json parses and matches the API, each env kind,
bad input exits 2 naming the argument, --help explains the command."""
import json

import numpy as np
import pytest

import mdpsandbox as ms
from mdpsandbox.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_solve_with_no_options_prints_root_value_policy_residual(capsys):
    code, out, err = run(capsys, "solve")
    assert code == 0 and err == ""
    sol = ms.solve(ms.TokenMDP.random(4, 6, seed=0), beta=0.1)  # the documented default
    assert "V* at root" in out and "residual" in out and "iterations" in out and "beta=0.1" in out
    assert f"{sol.v[0]:.10g}" in out


def test_solve_json_parses_and_equals_the_api(capsys):
    code, out, _ = run(capsys, "solve", "token", "--vocab", "3", "--horizon", "4", "--eos", "2", "--beta", "0.5",
                       "--seed", "3", "--json")
    assert code == 0
    d = json.loads(out)
    sol = ms.solve(ms.TokenMDP.random(3, 4, seed=3, eos=2), beta=0.5)
    assert np.isclose(d["value_root"], sol.v[0], rtol=1e-14, atol=0)
    assert np.allclose(d["policy_root"], sol.policy[0], atol=1e-15)
    assert d["method"] == "backward" and d["converged"] is True and d["beta"] == 0.5


@pytest.mark.parametrize("argv,build", [
    (["garnet", "--states", "20", "--actions", "3", "--gamma", "0.9"],
     lambda: (ms.garnet(20, 3, 5, gamma=0.9, seed=0), {})),
    (["garnet", "--states", "20", "--temperature", "0.2"],
     lambda: (ms.garnet(20, 4, 5, gamma=0.95, seed=0), dict(temperature=0.2))),
    (["gridworld", "--size", "4", "--beta", "0.3"],
     lambda: (ms.gridworld(4, 4, slip=0.1, gamma=0.95), "kl")),
    (["token", "--hard", "--vocab", "2", "--horizon", "3"],
     lambda: (ms.TokenMDP.random(2, 3, seed=0), {})),
])
def test_solve_json_for_each_environment_matches_solve(capsys, argv, build):
    code, out, _ = run(capsys, "solve", *argv, "--json")
    assert code == 0
    d = json.loads(out)
    env, kw = build()
    if kw == "kl":
        kw = dict(beta=0.3, ref_policy=np.full((env.n_states, env.n_actions), 1 / env.n_actions))
    sol = ms.solve(env, **kw)
    want = sol.v[0] if isinstance(env, ms.TokenMDP) else sol.value_initial
    assert np.isclose(d["value_root"], want, rtol=1e-8, atol=1e-8)
    assert d["residual"] >= 0 and d["iterations"] >= 1


@pytest.mark.parametrize("argv,name", [
    (["solve", "--beta", "-1"], "beta"),
    (["solve", "--temperature", "0"], "temperature"),
    (["solve", "--vocab", "0"], "vocab_size"),
    (["solve", "--horizon", "0"], "horizon"),
    (["solve", "garnet", "--gamma", "1.5"], "gamma"),
    (["solve", "token", "--eos", "9"], "eos"),
    (["solve", "--hard", "--beta", "0.1"], "--hard"),
    (["solve", "token", "--vocab", "60", "--horizon", "9"], "bytes"),
])
def test_bad_input_exits_2_naming_the_argument(capsys, argv, name):
    code, out, err = run(capsys, *argv)
    assert code == 2 and name in err and "error" in err and out == ""


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["solve", "--beta", "0.1", "--temperature", "0.1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["solve", "cartpole"])
    assert exc.value.code == 2


def test_help_text_lists_commands_and_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "solve" in out and "mdpsandbox solve" in out
    with pytest.raises(SystemExit) as exc:
        main(["solve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--beta", "--temperature", "--json", "--vocab", "--horizon", "--gamma", "token", "garnet", "gridworld"):
        assert opt in out
    assert main([]) == 0 and "usage" in capsys.readouterr().out
