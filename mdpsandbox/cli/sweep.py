"""``mdpsandbox sweep``: run a parameter grid from a TOML spec into a resumable Parquet directory,
and inspect it (status / show / plot). Building the parser imports nothing heavy."""
from __future__ import annotations

import argparse
import json

EXAMPLE_SPEC = """\
example spec (examples/sweeps/garnet_soft.toml):

  task = "solve"                          # solve | evaluate | distributional | train | selftest | "module:function"
  [fixed]
  env = "garnet"
  n_states = 20
  n_actions = 4
  [axes]
  gamma = [0.9, 0.99]
  temperature = { logspace = [-3, 1, 9] } # also { linspace = [a, b, n] }, { range = [start, stop] }
  seed = { range = [0, 20] }
  [[zipped]]                              # optional: axes varied together
  branching = [2, 5]
  reward_scale = [1.0, 2.0]
  [run]                                   # optional defaults of `sweep run`
  backend = "process"
"""

RUN_HELP = EXAMPLE_SPEC + """
Each cell is one call of the task; its row holds the parameters, the task's metrics, status ("ok" or
"error" with the message), wall_s and its attempt. Rerunning the same command resumes (completed
chunks are skipped; kill -9 at any moment is safe); a different spec into the same directory is refused.

examples:
  mdpsandbox sweep run examples/sweeps/garnet_soft.toml --out runs/garnet
  mdpsandbox sweep run spec.toml --out runs/x --backend dask --scheduler tcp://10.0.0.5:8786
  mdpsandbox sweep run spec.toml --out runs/x --retry-failed
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a parameter grid (exact solves, learners) into a resumable Parquet directory",
        description="Sweeps: declare a grid in TOML, run it (numba-batched exact solves, a process pool or "
                    "Dask), stop and resume without losing or duplicating a cell, then show and plot the table.\n\n"
                    + EXAMPLE_SPEC,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND")

    r = s.add_parser("run", help="run or resume SPEC.toml into --out DIR", description=RUN_HELP,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (TOML)")
    r.add_argument("--out", required=True, metavar="DIR", help="output directory (created; rerun = resume)")
    r.add_argument("--backend", choices=["serial", "process", "dask"], default=None,
                   help="where cells run (default: [run] backend of the spec, else process)")
    r.add_argument("--workers", type=int, default=None, help="worker processes (default: usable cores)")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask: join the scheduler at ADDRESS (tcp://HOST:PORT) instead of a LocalCluster")
    r.add_argument("--timeout", type=float, default=30.0, help="dask: seconds to reach the scheduler")
    r.add_argument("--chunk-size", type=int, default=None, help="cells per chunk (default: measured, 0.2-0.5 s of work)")
    r.add_argument("--retry-failed", action="store_true", help="rerun only the cells stored with status=error")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print the final status as JSON")

    st = s.add_parser("status", help="done / failed / missing cells of DIR (from the directory alone)",
                      description="Count the cells of a sweep directory: done (ok), failed (error rows) and "
                                  "missing (not run yet), from its manifest and chunk files only.\n\n"
                                  "example:\n  mdpsandbox sweep status runs/garnet",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_argument("dir", metavar="DIR")
    st.add_argument("--json", action="store_true", help="print JSON")

    sh = s.add_parser("show", help="print the results table of DIR",
                      description="Print the table of a sweep directory (one row per completed cell).\n\n"
                                  "examples:\n  mdpsandbox sweep show runs/garnet\n"
                                  "  mdpsandbox sweep show runs/garnet --columns gamma,temperature,value_initial",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    sh.add_argument("dir", metavar="DIR")
    sh.add_argument("--columns", default=None, help="comma-separated columns (default: parameters, metrics, status)")
    sh.add_argument("--max-rows", type=int, default=40, help="rows to print (0: all)")
    sh.add_argument("--json", action="store_true", help="print the rows as JSON records")

    pl = s.add_parser("plot", help="plot metric --y against axis --x (mean and 95%% band over the rest)",
                      description="Plot a metric of a sweep table against one axis: one line per --hue value, the "
                                  "mean over the other parameters (e.g. seeds) with a Student-t 95% band.\n\n"
                                  "example:\n  mdpsandbox sweep plot runs/garnet --x temperature --y value_initial "
                                  "--hue gamma --logx -o garnet.png",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    pl.add_argument("dir", metavar="DIR")
    pl.add_argument("--x", required=True, help="axis on the x axis")
    pl.add_argument("--y", required=True, help="metric on the y axis")
    pl.add_argument("--hue", default=None, help="one line per value of this column")
    pl.add_argument("--band", default="ci95", choices=["ci95", "sd", "minmax", "none"], help="band over the rest")
    pl.add_argument("--logx", action="store_true")
    pl.add_argument("--logy", action="store_true")
    pl.add_argument("-o", "--output", required=True, metavar="PNG", help="figure file")


def _print_status(st: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(st))
        return
    print(f"task {st['task']}: {st['n_cells']} cells — done {st['done']}, failed {st['failed']}, "
          f"missing {st['missing']} ({st['chunks']} chunk files)")


def run(args) -> int:
    cmd = getattr(args, "sweep_command", None)
    if cmd is None:
        raise ValueError("give a subcommand: run, status, show or plot (mdpsandbox sweep --help)")
    from .. import sweeps

    if cmd == "run":
        import tomllib

        sw = sweeps.Sweep.from_toml(args.spec)
        with open(args.spec, "rb") as fh:
            opts = tomllib.load(fh).get("run", {})
        unknown = set(opts) - {"backend", "workers", "chunk_size", "scheduler"}
        if unknown:
            raise ValueError(f"[run] table: unknown options {sorted(unknown)} (valid: backend, workers, chunk_size, "
                             "scheduler)")
        backend = args.backend or opts.get("backend", "process")
        sweeps.run(sw, args.out, backend=backend, workers=args.workers or opts.get("workers"),
                   scheduler=args.scheduler or opts.get("scheduler"), timeout=args.timeout,
                   chunk_size=args.chunk_size or opts.get("chunk_size"), retry_failed=args.retry_failed,
                   progress=not args.no_progress)
        st = sweeps.status(args.out)
        _print_status(st, args.json)
        return 0 if st["missing"] == 0 else 1
    if cmd == "status":
        _print_status(sweeps.status(args.dir), args.json)
        return 0
    df = sweeps.load(args.dir)
    if cmd == "show":
        if args.columns:
            cols = [c.strip() for c in args.columns.split(",") if c.strip()]
            bad = [c for c in cols if c not in df.columns]
            if bad:
                raise ValueError(f"--columns: unknown column(s) {bad}; columns: {list(df.columns)}")
        else:
            cols = [c for c in df.columns if c not in ("key", "attempt", "wall_s", "error")]
        view = df[cols]
        if args.json:
            recs = view.astype(object).where(view.notna(), None).to_dict(orient="records")
            print(json.dumps(recs, default=lambda o: o.item() if hasattr(o, "item") else str(o)))  # floats by repr
            return 0
        import pandas as pd

        n = None if args.max_rows == 0 else args.max_rows
        with pd.option_context("display.max_rows", n, "display.max_columns", None, "display.width", 200):
            print(view.to_string(max_rows=n))
        return 0
    # plot: the CLI picks a non-interactive backend itself (the library never does)
    import matplotlib

    matplotlib.use("Agg")
    from ..plots import plot_metric

    fig = plot_metric(df, args.x, args.y, hue=args.hue, band=None if args.band == "none" else args.band,
                      logx=args.logx, logy=args.logy, title=str(args.dir))
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")
    return 0
