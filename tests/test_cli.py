"""The ``mdpsandbox`` command as a package: one module per subcommand, --help without torch."""
import subprocess
import sys

from mdpsandbox.cli import _MODULES, build_parser, main


def test_learn_parser_lists_exactly_the_registered_algorithms():
    from mdpsandbox.cli.learn import ALGORITHMS
    from mdpsandbox.learners.trainer import algorithm_names

    assert tuple(sorted(ALGORITHMS)) == tuple(sorted(algorithm_names()))


def test_help_and_parser_do_not_import_torch():
    code = ("import sys, mdpsandbox.cli as c; c.build_parser(); "
            "assert 'torch' not in sys.modules, 'building the parser imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    for name in _MODULES:
        try:
            parser.parse_args([name, "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: mdpsandbox " + name)


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
