"""The validation report: ``DIR/report.md``, a self-contained ``DIR/report.html`` (figures embedded
as base64 PNG) and the machine-readable ``DIR/results.json``."""
from __future__ import annotations

import base64
import html
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import List, Optional

from .runner import _dumps, atomic_write_text

__all__ = ["environment", "write_report", "summary_line", "key_numbers", "format_table"]

_OP_TEXT = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def _git_revision(root: Path) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    rev = out.stdout.strip()
    try:
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return rev + ("+dirty" if dirty else "")


def environment() -> dict:
    """Package versions (python, mdpsandbox, numpy, scipy, numba, matplotlib, pandas, torch if present),
    machine, CPU count, git revision of the repository when available."""
    from .. import __version__

    vers = {"python": platform.python_version(), "mdpsandbox": __version__}
    for pkg in ("numpy", "scipy", "numba", "matplotlib", "pandas", "torch", "dask"):
        try:
            vers[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {"versions": vers, "machine": f"{platform.system()} {platform.machine()} ({platform.processor() or '?'})",
            "cpus": os.cpu_count(), "git": _git_revision(Path(__file__).resolve().parents[2])}


def _fmt(x) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, str):
        try:
            return f"{float(x):.4g}"  # "nan"/"inf" stored as strings
        except ValueError:
            return x
    return str(x)


def key_numbers(res: dict, limit: int = 3) -> str:
    """'name measured op threshold' for the first few checks (failed ones first)."""
    checks = sorted(res.get("checks", []), key=lambda c: c["passed"])
    parts = [f"{c['name']} {_fmt(c['measured'])} {_OP_TEXT[c['op']]} {_fmt(c['threshold'])}"
             + ("" if c["passed"] else " ✗") for c in checks[:limit]]
    if len(checks) > limit:
        parts.append(f"+{len(checks) - limit} more")
    return "; ".join(parts)


def format_table(results: List[dict]) -> str:
    """A plain-text table (claim, verdict, key numbers, seconds) for the terminal."""
    rows = [("claim", "verdict", "seconds", "key numbers (measured op threshold)")]
    for r in results:
        v = r["verdict"].upper() + (" (cached)" if r.get("reused") else "")
        rows.append((r["id"], v, f"{r['seconds']:.1f}", key_numbers(r)))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:{w0}s}  {b:{w1}s}  {c:>7s}  {d}" for a, b, c, d in rows)


def summary_line(results: List[dict]) -> str:
    n = len(results)
    p = sum(r["verdict"] == "pass" for r in results)
    f = sum(r["verdict"] == "fail" for r in results)
    e = sum(r["verdict"] == "error" for r in results)
    return f"{p}/{n} claims pass, {f} fail, {e} errors"


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _markdown(results, meta) -> str:
    L = [f"# mdpsandbox validation report ({meta['size']})", "",
         f"{summary_line(results)} — total {meta['seconds']:.1f} s, written {meta['created']}", "",
         "Environment: " + ", ".join(f"{k} {v}" for k, v in meta["environment"]["versions"].items())
         + f"; {meta['environment']['machine']}, {meta['environment']['cpus']} CPUs"
         + (f"; git {meta['environment']['git']}" if meta["environment"].get("git") else ""), "",
         "| claim | verdict | key numbers (measured op threshold) | seconds |", "|---|---|---|---|"]
    for r in results:
        L.append(f"| [{r['id']}](#{r['id']}) | {r['verdict'].upper()} | {_md_escape(key_numbers(r))} | "
                 f"{r['seconds']:.1f} |")
    for r in results:
        L += ["", f"## {r['id']}", "", f"**{r['title']}**" + (" — *negative control*" if r["negative_control"]
                                                               else ""), "",
              f"Verdict: **{r['verdict'].upper()}** · size {r['size']} {json.dumps(r['params'])} · "
              f"{r['seconds']:.1f} s", "", f"Statement: {r['statement']}", "", f"Citation: {r['citation']}", ""]
        if r["checks"]:
            L += ["| assertion | measured | op | threshold | pass | note |", "|---|---|---|---|---|---|"]
            for c in r["checks"]:
                L.append(f"| {c['name']} | {_fmt(c['measured'])} | {_OP_TEXT[c['op']]} | {_fmt(c['threshold'])} | "
                         f"{'yes' if c['passed'] else '**NO**'} | {_md_escape(c.get('note', ''))} |")
            L.append("")
        if r["records"]:
            L.append("Records: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in r["records"].items()))
            L.append("")
        if r.get("warnings"):
            L.append("Warnings: " + "; ".join(_md_escape(f"{w['message']} (×{w['count']})") for w in r["warnings"]))
            L.append("")
        for f in r["figures"]:
            L += [f"![{r['id']}: {f['name']}]({f['path']})", ""]
        if r.get("error"):
            L += ["```", r["error"].rstrip(), "```", ""]
    return "\n".join(L) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%;
text-align:left;vertical-align:top}th{background:#f3f3f3}.pass{color:#176b2c;font-weight:bold}
.fail,.error{color:#b00020;font-weight:bold}img{max-width:100%;border:1px solid #eee}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:85%}section{margin-top:2em}"""


def _html(results, meta, out: Path) -> str:
    e = html.escape
    env = meta["environment"]
    H = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
         f"<title>mdpsandbox validation report ({e(meta['size'])})</title>", f"<style>{_CSS}</style>", "</head>",
         "<body>", f"<h1>mdpsandbox validation report ({e(meta['size'])})</h1>",
         f"<p>{e(summary_line(results))} — total {meta['seconds']:.1f} s, written {e(meta['created'])}</p>",
         "<p>Environment: " + e(", ".join(f"{k} {v}" for k, v in env["versions"].items()))
         + e(f"; {env['machine']}, {env['cpus']} CPUs") + (e(f"; git {env['git']}") if env.get("git") else "")
         + "</p>",
         "<table><thead><tr><th>claim</th><th>verdict</th><th>key numbers (measured op threshold)</th>"
         "<th>seconds</th></tr></thead><tbody>"]
    for r in results:
        H.append(f'<tr><td><a href="#{e(r["id"])}">{e(r["id"])}</a></td><td class="{e(r["verdict"])}">'
                 f'{e(r["verdict"].upper())}</td><td>{e(key_numbers(r))}</td><td>{r["seconds"]:.1f}</td></tr>')
    H.append("</tbody></table>")
    for r in results:
        H += [f'<section id="{e(r["id"])}">', f"<h2>{e(r['id'])}</h2>",
              f"<p><strong>{e(r['title'])}</strong>" + (" — <em>negative control</em>" if r["negative_control"]
                                                        else "") + "</p>",
              f'<p>Verdict: <span class="{e(r["verdict"])}">{e(r["verdict"].upper())}</span> · size '
              f"{e(r['size'])} <code>{e(json.dumps(r['params']))}</code> · {r['seconds']:.1f} s</p>",
              f"<p>Statement: {e(r['statement'])}</p>", f"<p>Citation: {e(r['citation'])}</p>"]
        if r["checks"]:
            H.append("<table><thead><tr><th>assertion</th><th>measured</th><th>op</th><th>threshold</th>"
                     "<th>pass</th><th>note</th></tr></thead><tbody>")
            for c in r["checks"]:
                cls = "pass" if c["passed"] else "fail"
                H.append(f"<tr><td>{e(c['name'])}</td><td>{e(_fmt(c['measured']))}</td>"
                         f"<td>{e(_OP_TEXT[c['op']])}</td><td>{e(_fmt(c['threshold']))}</td>"
                         f'<td class="{cls}">{"yes" if c["passed"] else "NO"}</td><td>{e(c.get("note", ""))}</td></tr>')
            H.append("</tbody></table>")
        if r["records"]:
            H.append("<p>Records: " + e(", ".join(f"{k} = {_fmt(v)}" for k, v in r["records"].items())) + "</p>")
        if r.get("warnings"):
            H.append("<p>Warnings:</p><ul>" + "".join(f"<li>{e(w['message'])} (×{w['count']})</li>"
                                                     for w in r["warnings"]) + "</ul>")
        for f in r["figures"]:
            p = out / f["path"]
            if p.exists():
                data = base64.b64encode(p.read_bytes()).decode("ascii")
                H.append(f'<figure><img alt="{e(r["id"])}: {e(f["name"])}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{e(f['name'])}</figcaption></figure>")
            else:
                H.append(f"<p class=\"error\">figure {e(f['path'])} is missing</p>")
        if r.get("error"):
            H.append(f"<pre>{e(r['error'])}</pre>")
        H.append("</section>")
    H += ["</body>", "</html>"]
    return "\n".join(H) + "\n"


def write_report(results: List[dict], out: os.PathLike, *, size: str, seconds: float,
                 command: Optional[str] = None) -> dict:
    """Write ``report.md``, ``report.html`` and ``results.json`` into ``out`` (atomically); return
    the results.json document."""
    out = Path(out)
    meta = dict(size=size, seconds=float(seconds), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                environment=environment(), command=command or " ".join(sys.argv))
    doc = dict(meta, summary=dict(n=len(results), passed=sum(r["verdict"] == "pass" for r in results),
                                  failed=sum(r["verdict"] == "fail" for r in results),
                                  errors=sum(r["verdict"] == "error" for r in results)),
               claims=[{k: v for k, v in r.items()} for r in results])
    atomic_write_text(out / "results.json", _dumps(doc))
    atomic_write_text(out / "report.md", _markdown(results, meta))
    atomic_write_text(out / "report.html", _html(results, meta, out))
    return doc
