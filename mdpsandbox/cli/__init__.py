"""The ``mdpsandbox`` command: one module per subcommand.

Each module in ``_MODULES`` defines ``add_parser(subparsers)`` (cheap: argparse only, no torch,
no numba compilation) and ``run(args) -> int`` (imports what the command needs).
``mdpsandbox --help`` lists them and ``mdpsandbox <command> --help`` explains each.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional

DESCRIPTION = """\
mdpsandbox: ground truth for value-based RL on token and tabular MDPs.

Exact dynamic programming (hard, entropy-regularised, KL-regularised), and learners checked
against it. Every number printed is float64 and comes with its residual and iteration count.

examples:
  mdpsandbox solve                              # KL-regularised solve of a default token MDP
  mdpsandbox solve token --vocab 4 --horizon 5 --beta 0.1
  mdpsandbox solve garnet --states 200 --actions 4 --gamma 0.99 --json
  mdpsandbox learn shiq --vocab 3 --horizon 4 --beta 0.5
  mdpsandbox distribution garnet --gamma 0.9
  mdpsandbox sweep run examples/sweeps/garnet_soft.toml --out runs/g
  mdpsandbox validate --quick                   # the theory-claim suite and its report
"""

# Subcommand modules, in the order ``--help`` lists them.
_MODULES = ("solve", "learn", "distribution", "validate", "sweep")


def _module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdpsandbox", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"mdpsandbox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _MODULES:
        _module(name).add_parser(sub)
    return parser


def main(argv: Optional[list] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(_module(args.command).run(args) or 0)
    except ValueError as exc:  # bad input: one clear line, exit code 2 (like argparse)
        print(f"mdpsandbox {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
