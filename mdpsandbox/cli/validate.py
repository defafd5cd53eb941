"""``mdpsandbox validate``: run the theory claims of ``validation/`` and write the report."""
from __future__ import annotations

import argparse

HELP = "run the theory-claim suite (validation/) and write a Markdown/HTML/JSON report"

EPILOG = """\
examples:
  mdpsandbox validate --quick                    # every claim at CI size (the README's main job)
  mdpsandbox validate --list                     # the registered claims
  mdpsandbox validate --list --markdown          # the README "Theory claims" table
  mdpsandbox validate --only vi_certificate,soft_value_bound --full
  mdpsandbox validate --full --backend process --out full-report

A rerun into the same --out reuses every finished claim whose code and size are unchanged (resume
after an interruption); --fresh discards the directory first. Exit status 1 if any claim fails.
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("validate", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="size", action="store_const", const="quick", help="CI size (default)")
    g.add_argument("--full", dest="size", action="store_const", const="full", help="paper-scale runs")
    g.add_argument("--size", dest="size", help="size by name (quick or full)")
    p.add_argument("--only", metavar="ID,...", help="comma-separated claim ids to run")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--markdown", action="store_true", help="with --list: print the README claims table")
    p.add_argument("--out", default="validation-report", metavar="DIR",
                   help="output directory (default: validation-report)")
    p.add_argument("--backend", default="serial", help="sweep backend: serial, process or dask (default serial)")
    p.add_argument("--workers", type=int, default=None, help="sweep workers (process/dask backends)")
    p.add_argument("--fresh", action="store_true", help="discard the output directory's previous results")
    p.add_argument("--json", action="store_true", help="print results.json (or the list) as JSON")
    p.add_argument("--claims-dir", default=None, metavar="DIR",
                   help="directory of claim modules (default: the repository's validation/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(size=None)


def run(args) -> int:
    import json
    import sys
    import time

    from ..claims import BACKENDS, SIZES, discover, format_table, markdown_table, run_claims, select, \
        summary_line, write_report
    from ..claims.report import _fmt
    from ..claims.runner import check_out_dir

    size = args.size or "quick"
    if size not in SIZES:
        raise ValueError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    if args.backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.markdown and not args.list:
        raise ValueError("--markdown is only used with --list")
    claims = discover(args.claims_dir)
    only = args.only.split(",") if args.only is not None else None
    chosen = select(claims, only)
    if args.list:
        if args.markdown:
            print(markdown_table(chosen), end="")
        elif args.json:
            print(json.dumps([dict(id=c.id, title=c.title, topic=c.topic, statement=c.statement,
                                   citation=c.citation, assertions=list(c.assertions),
                                   negative_control=c.negative_control, sizes=c.sizes) for c in chosen],
                             indent=2, default=repr))
        else:
            w = max((len(c.id) for c in chosen), default=5)
            for c in chosen:
                print(f"{c.id:{w}s}  {c.topic:15s}  {c.title}" + ("  [negative control]" if c.negative_control else ""))
            print(f"{len(chosen)} claims")
        return 0
    if not chosen:
        raise ValueError(f"no claims found in {args.claims_dir or 'validation/'}")
    check_out_dir(args.out, fresh=args.fresh)  # bad output directory: before any work

    import matplotlib

    matplotlib.use("Agg")  # the command writes PNG files; the library itself never picks a backend

    def show(res, reused):
        if not args.json and not (sys.stderr.isatty() and not args.no_progress):
            tag = " (cached)" if reused else ""
            print(f"  {res['id']}: {res['verdict'].upper()}{tag} {res['seconds']:.1f} s", file=sys.stderr)

    t0 = time.perf_counter()
    try:
        results = run_claims(chosen, size=size, out=args.out, backend=args.backend, workers=args.workers,
                             fresh=False, progress=not args.no_progress, on_result=show)
    except KeyboardInterrupt:
        print(f"interrupted: the finished claims are stored in {args.out}; rerun the same command to resume "
              "(nothing finished is recomputed)", file=sys.stderr)
        return 130
    doc = write_report(results, args.out, size=size, seconds=time.perf_counter() - t0)
    import os

    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_table(results))
        print(summary_line(results))
        for r in results:
            if r["verdict"] != "pass":
                bad = [c for c in r["checks"] if not c["passed"]]
                if bad:
                    why = "; ".join(f"{c['name']}: measured {_fmt(c['measured'])} {c['op']} {_fmt(c['threshold'])} "
                                    "is false" for c in bad)
                else:
                    lines = (r.get("error") or "").strip().splitlines()
                    why = lines[-1] if lines else "error"
                print(f"FAILED {r['id']}: {why}")
        print(f"report: {os.path.join(args.out, 'report.html')} (also report.md, results.json)")
    return 0 if all(r["verdict"] == "pass" for r in results) else 1
