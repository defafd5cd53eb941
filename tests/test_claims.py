"""The claim registry, runner, report and ``mdpsandbox validate`` on toy claim modules
(the real suite is run by CI with ``mdpsandbox validate --quick``, not here)."""
from __future__ import annotations

import base64
import json
import os
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mdpsandbox.claims import ClaimDefinitionError, Context, claim, discover, markdown_table, run_claims, select
from mdpsandbox.claims import registry as reg
from mdpsandbox.cli import main

SIZES = {"quick": dict(n=1), "full": dict(n=2)}

TOY = '''
import os
from pathlib import Path
import matplotlib.pyplot as plt
from mdpsandbox.claims import claim


def _count(name):
    d = os.environ.get("TOY_COUNTER_DIR")
    if d:
        with open(Path(d) / name, "a") as f:
            f.write("x")


@claim(id="toy_pass", title="A claim that holds", statement="1 < 2 (arithmetic)", citation="none",
       topic="toy", assertions=("one_below_two",), sizes={"quick": dict(n=1), "full": dict(n=2)})
def toy_pass(ctx, n):
    _count("toy_pass")
    import warnings
    for _ in range(3):
        warnings.warn("an expected warning", UserWarning)
    ctx.check("one_below_two", measured=1.0, threshold=2.0, op="<", note="trivial")
    ctx.record("n", n)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, n])
    ctx.figure("line", fig)


@claim(id="toy_broken", title="A deliberately broken experiment", statement="3.25 < 2 (false)", citation="none",
       topic="toy", assertions=("fine", "three_below_two"), sizes={"quick": dict(n=1), "full": dict(n=2)})
def toy_broken(ctx, n):
    _count("toy_broken")
    if os.environ.get("TOY_INTERRUPT") and Path(os.environ["TOY_INTERRUPT"]).exists():
        raise KeyboardInterrupt
    ctx.check("fine", measured=0.5, threshold=1.0, op="<=")
    ctx.check("three_below_two", measured=3.25, threshold=2.0, op="<", note="must fail")
    from matplotlib.figure import Figure  # a figure made without pyplot works too
    fig = Figure()
    fig.add_subplot().bar([0, 1], [3.25, 2.0])
    ctx.figure("bars", fig)
'''

TOY_ERR = '''
from mdpsandbox.claims import claim


@claim(id="toy_raises", title="raises", statement="an exception is a failed claim", citation="none",
       topic="toy", assertions=("never",), sizes={"quick": {}, "full": {}})
def toy_raises(ctx):
    raise RuntimeError("boom inside the experiment")


@claim(id="toy_unchecked", title="forgets a check", statement="a declared assertion left unchecked fails",
       citation="none", topic="toy", assertions=("checked", "forgotten"), sizes={"quick": {}, "full": {}})
def toy_unchecked(ctx):
    ctx.check("checked", measured=1, threshold=1, op="<=")


@claim(id="toy_nofigure", title="shows nothing", statement="a claim must save a figure", citation="none",
       topic="toy", assertions=("ok",), sizes={"quick": {}, "full": {}})
def toy_nofigure(ctx):
    ctx.check("ok", measured=1, threshold=1, op="<=")
'''


@pytest.fixture
def clean_registry():
    saved = dict(reg._REGISTRY)
    yield
    reg._REGISTRY.clear()
    reg._REGISTRY.update(saved)


@pytest.fixture
def toy(tmp_path, monkeypatch, clean_registry):
    d = tmp_path / "toyclaims"
    d.mkdir()
    (d / "toy.py").write_text(TOY)
    (d / "_helpers.py").write_text("raise RuntimeError('modules starting with _ are not claim modules')\n")
    counters = tmp_path / "counters"
    counters.mkdir()
    monkeypatch.setenv("TOY_COUNTER_DIR", str(counters))
    return d


def calls(toy_dir, name):
    p = toy_dir.parent / "counters" / name
    return len(p.read_text()) if p.exists() else 0


def validate(capsys, *argv):
    rc = main(["validate", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------------- registry
def _decl(cid="toy_x", **kw):
    args = dict(id=cid, title="t", statement="s", citation="c", topic="toy", assertions=("a",), sizes=SIZES)
    args.update(kw)
    return claim(**args)


def test_registry_rejects_duplicate_ids(clean_registry):
    def f(ctx, n):
        pass

    def g(ctx, n):
        pass

    _decl("toy_dup")(f)
    _decl("toy_dup")(f)  # the same function again (a re-import) replaces its own entry
    with pytest.raises(ClaimDefinitionError, match="duplicate claim id 'toy_dup'"):
        _decl("toy_dup")(g)


@pytest.mark.parametrize("kw, match", [
    (dict(assertions=()), "has no assertions"),
    (dict(assertions="a"), "tuple of names"),
    (dict(assertions=("a", "a")), "duplicate assertion"),
    (dict(cid="NotSnake"), "snake_case"),
    (dict(cid="bad-id"), "snake_case"),
    (dict(sizes={"quick": dict(n=1)}), "missing \\['full'\\]"),
    (dict(sizes={**SIZES, "huge": dict(n=3)}), "unknown \\['huge'\\]"),
    (dict(sizes={"quick": dict(n=1), "full": dict(m=2)}), "does not bind"),
    (dict(statement=""), "statement must be a non-empty string"),
])
def test_registry_rejects_bad_declarations(clean_registry, kw, match):
    cid = kw.pop("cid", "toy_bad")
    with pytest.raises(ClaimDefinitionError, match=match):
        _decl(cid, **kw)(lambda ctx, n: None)


def test_context_checks_each_declared_assertion_once(tmp_path, clean_registry):
    c = _decl("toy_ctx", assertions=("a", "b"))(lambda ctx, n: None).claim
    ctx = Context(c, "quick", tmp_path)
    assert ctx.check("a", measured=1.0, threshold=2.0, op="<") is True
    with pytest.raises(ClaimDefinitionError, match="checked twice"):
        ctx.check("a", measured=1.0, threshold=2.0, op="<")
    with pytest.raises(ClaimDefinitionError, match="not one of its declared"):
        ctx.check("zzz", measured=1.0, threshold=2.0, op="<")
    with pytest.raises(ClaimDefinitionError, match="op must be one of"):
        ctx.check("b", measured=1.0, threshold=2.0, op="==")
    assert ctx.check("b", measured=float("nan"), threshold=2.0, op="<") is False  # NaN never passes
    assert [x["passed"] for x in ctx.checks] == [True, False]


@pytest.mark.parametrize("measured, op, threshold, expected", [
    (1.0, "<", 1.0, False), (1.0, "<=", 1.0, True), (1.0, ">", 1.0, False), (1.0, ">=", 1.0, True),
    (0.5, "<", 1.0, True), (2.0, ">", 1.0, True), (float("inf"), "<=", 1.0, False)])
def test_check_comparison_directions(tmp_path, clean_registry, measured, op, threshold, expected):
    c = _decl("toy_ops")(lambda ctx, n: None).claim
    assert Context(c, "quick", tmp_path).check("a", measured=measured, threshold=threshold, op=op) is expected


def test_discovery_skips_underscore_modules_and_selects(toy):
    claims = discover(toy)
    assert [c.id for c in claims] == ["toy_pass", "toy_broken"]
    assert [c.id for c in select(claims, ["toy_broken"])] == ["toy_broken"]
    with pytest.raises(ValueError, match="unknown claim id\\(s\\) nope; valid ids: toy_pass, toy_broken"):
        select(claims, ["nope"])
    assert str(toy.parent) in os.environ["PYTHONPATH"].split(os.pathsep)  # for sweep worker processes


def test_discovery_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        discover(tmp_path / "nowhere")


def test_markdown_table_lists_every_claim(toy):
    table = markdown_table(discover(toy))
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    assert rows == ["| `toy_pass` | toy | A claim that holds |", "| `toy_broken` | toy | A deliberately broken experiment |"]


# ---------------------------------------------------------------------- the command
def test_broken_experiment_exits_1_and_report_names_the_failed_assertion(toy, tmp_path, capsys):
    out = tmp_path / "rep"
    rc, stdout, _ = validate(capsys, "--claims-dir", str(toy), "--out", str(out))
    assert rc == 1
    assert "FAILED toy_broken: three_below_two: measured 3.25 < 2 is false" in stdout
    assert re.search(r"toy_pass\s+PASS", stdout) and re.search(r"toy_broken\s+FAIL", stdout)
    assert f"report: {out / 'report.html'}" in stdout
    md = (out / "report.md").read_text()
    assert "| three_below_two | 3.25 | < | 2 | **NO** | must fail |" in md
    doc = json.loads((out / "results.json").read_text())
    by = {c["id"]: c for c in doc["claims"]}
    assert by["toy_pass"]["verdict"] == "pass" and by["toy_broken"]["verdict"] == "fail"
    bad = [c for c in by["toy_broken"]["checks"] if not c["passed"]]
    assert bad == [dict(name="three_below_two", measured=3.25, threshold=2.0, op="<", passed=False, note="must fail")]
    assert doc["summary"] == dict(n=2, passed=1, failed=1, errors=0)
    for pkg in ("python", "numpy", "scipy", "numba", "mdpsandbox"):
        assert pkg in doc["environment"]["versions"]
    stored = json.loads((out / "toy_pass" / "result.json").read_text())
    for key in ("checks", "records", "figures", "seconds", "size", "version", "fingerprint"):
        assert key in stored
    assert stored["records"] == {"n": 1} and stored["size"] == "quick"
    assert stored["warnings"] == [dict(message="UserWarning: an expected warning", count=3)]
    assert "Warnings: UserWarning: an expected warning (×3)" in md


class _Collector(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.imgs, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def test_html_report_parses_and_embeds_every_figure(toy, tmp_path, capsys):
    out = tmp_path / "rep"
    validate(capsys, "--claims-dir", str(toy), "--out", str(out))
    text = (out / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    p = _Collector()
    p.feed(text)
    p.close()
    assert p.errors == [] and p.stack == []
    doc = json.loads((out / "results.json").read_text())
    figs = [f for c in doc["claims"] for f in c["figures"]]
    assert [f["path"] for f in figs] == ["toy_pass/line.png", "toy_broken/bars.png"]
    for f in figs:
        assert (out / f["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # referenced file exists
    assert len(p.imgs) == len(figs)
    for img in p.imgs:  # self-contained: data URIs, no file references
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "![toy_pass: line](toy_pass/line.png)" in md


def test_only_and_list(toy, tmp_path, capsys):
    rc, stdout, _ = validate(capsys, "--claims-dir", str(toy), "--list")
    assert rc == 0 and "toy_pass" in stdout and "toy_broken" in stdout and "2 claims" in stdout
    rc, stdout, _ = validate(capsys, "--claims-dir", str(toy), "--list", "--markdown")
    assert stdout == markdown_table(discover(toy))
    rc, stdout, _ = validate(capsys, "--claims-dir", str(toy), "--list", "--json")
    assert [c["id"] for c in json.loads(stdout)] == ["toy_pass", "toy_broken"]
    out = tmp_path / "rep"
    rc, stdout, _ = validate(capsys, "--claims-dir", str(toy), "--out", str(out), "--only", "toy_pass")
    assert rc == 0 and calls(toy, "toy_broken") == 0 and calls(toy, "toy_pass") == 1
    assert [c["id"] for c in json.loads((out / "results.json").read_text())["claims"]] == ["toy_pass"]
    rc, stdout, _ = validate(capsys, "--claims-dir", str(toy), "--out", str(tmp_path / "j"), "--json",
                             "--only", "toy_pass")
    assert json.loads(stdout)["summary"]["passed"] == 1


def test_interrupt_and_rerun_recomputes_nothing_finished(toy, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    flag = tmp_path / "interrupt"
    flag.touch()
    monkeypatch.setenv("TOY_INTERRUPT", str(flag))
    claims = discover(toy)
    with pytest.raises(KeyboardInterrupt):
        run_claims(claims, out=out, progress=False)
    assert (out / "toy_pass" / "result.json").exists() and not (out / "toy_broken" / "result.json").exists()
    flag.unlink()
    res = run_claims(discover(toy), out=out, progress=False)
    assert [r["reused"] for r in res] == [True, False]
    assert (calls(toy, "toy_pass"), calls(toy, "toy_broken")) == (1, 2)
    res = run_claims(discover(toy), out=out, progress=False)  # everything finished: nothing recomputed
    assert [r["reused"] for r in res] == [True, True] and [r["verdict"] for r in res] == ["pass", "fail"]
    assert (calls(toy, "toy_pass"), calls(toy, "toy_broken")) == (1, 2)
    run_claims(discover(toy), out=out, size="full", progress=False)  # another size: other parameters, rerun
    assert (calls(toy, "toy_pass"), calls(toy, "toy_broken")) == (2, 3)


def test_changed_claim_source_is_recomputed(toy, tmp_path):
    out = tmp_path / "rep"
    run_claims(discover(toy), out=out, progress=False)
    fp = json.loads((out / "toy_pass" / "result.json").read_text())["fingerprint"]
    (toy / "toy.py").write_text(TOY + "\n# edited\n")
    for name in [m for m in list(__import__("sys").modules) if m.startswith("toyclaims")]:
        del __import__("sys").modules[name]
    res = run_claims(discover(toy), out=out, progress=False)
    assert [r["reused"] for r in res] == [False, False]
    assert json.loads((out / "toy_pass" / "result.json").read_text())["fingerprint"] != fp


def test_exception_or_unchecked_assertion_is_a_failed_claim_and_the_run_goes_on(toy, tmp_path, capsys):
    (toy / "toy_err.py").write_text(TOY_ERR)
    out = tmp_path / "rep"
    rc, stdout, _ = validate(capsys, "--claims-dir", str(toy), "--out", str(out))
    assert rc == 1
    doc = json.loads((out / "results.json").read_text())
    by = {c["id"]: c for c in doc["claims"]}
    assert set(by) == {"toy_pass", "toy_broken", "toy_raises", "toy_unchecked", "toy_nofigure"}  # the run went on
    assert by["toy_raises"]["verdict"] == "error"
    assert "RuntimeError: boom inside the experiment" in by["toy_raises"]["error"]
    assert "Traceback" in by["toy_raises"]["error"]
    assert by["toy_unchecked"]["verdict"] == "error"
    assert "never checked: forgotten" in by["toy_unchecked"]["error"]
    assert by["toy_nofigure"]["verdict"] == "error" and "saved no figure" in by["toy_nofigure"]["error"]
    assert "FAILED toy_raises: RuntimeError: boom inside the experiment" in stdout
    assert "boom inside the experiment" in (out / "report.md").read_text()


# ---------------------------------------------------------------------- bad input, before any work
def test_unknown_id_lists_valid_ones(toy, tmp_path, capsys):
    rc, _, err = validate(capsys, "--claims-dir", str(toy), "--out", str(tmp_path / "r"), "--only", "toy_pass,nope")
    assert rc == 2 and "unknown claim id(s) nope; valid ids: toy_pass, toy_broken" in err
    assert calls(toy, "toy_pass") == 0 and not (tmp_path / "r").exists()


def test_unknown_size_and_backend(toy, tmp_path, capsys):
    rc, _, err = validate(capsys, "--claims-dir", str(toy), "--out", str(tmp_path / "r"), "--size", "huge")
    assert rc == 2 and "--size must be one of quick, full, got 'huge'" in err
    rc, _, err = validate(capsys, "--claims-dir", str(toy), "--out", str(tmp_path / "r"), "--backend", "gpu")
    assert rc == 2 and "--backend must be one of serial, process, dask" in err
    with pytest.raises(ValueError, match="size must be 'quick' or 'full'"):
        run_claims(discover(toy), size="medium", out=tmp_path / "r2", progress=False)
    assert calls(toy, "toy_pass") == 0 and not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


def test_out_dir_of_another_version_needs_fresh(toy, tmp_path, capsys):
    out = tmp_path / "rep"
    validate(capsys, "--claims-dir", str(toy), "--out", str(out), "--only", "toy_pass")
    (out / ".mdpsandbox-validate").write_text(json.dumps({"mdpsandbox_version": "0.0.1"}))
    rc, _, err = validate(capsys, "--claims-dir", str(toy), "--out", str(out), "--only", "toy_pass")
    assert rc == 2 and "holds results of mdpsandbox 0.0.1" in err and "--fresh" in err
    assert calls(toy, "toy_pass") == 1
    rc, _, _ = validate(capsys, "--claims-dir", str(toy), "--out", str(out), "--only", "toy_pass", "--fresh")
    assert rc == 0 and calls(toy, "toy_pass") == 2  # discarded, recomputed


def test_foreign_out_dir_is_refused(toy, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    rc, _, err = validate(capsys, "--claims-dir", str(toy), "--out", str(out), "--fresh")
    assert rc == 2 and "was not written by 'mdpsandbox validate'" in err
    assert (out / "thesis.tex").read_text() == "precious" and calls(toy, "toy_pass") == 0


def test_missing_claims_dir(tmp_path, capsys):
    rc, _, err = validate(capsys, "--claims-dir", str(tmp_path / "absent"), "--list")
    assert rc == 2 and "does not exist" in err


# ---------------------------------------------------------------------- the real registry
def test_repository_registry_is_well_formed():
    claims = discover()
    ids = [c.id for c in claims]
    assert len(ids) == len(set(ids))
    for c in claims:
        assert c.module.startswith("validation."), c.id
        assert set(c.sizes) == {"quick", "full"}


def _readme_table(text):
    m = re.search(r"^#+\s*Theory claims\b[^\n]*$(.*?)(?=^#+\s|\Z)", text, flags=re.M | re.S)
    if not m:
        return None
    rows = re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*([^|]*?)\s*\|\s*(.*?)\s*\|\s*$", m.group(1), flags=re.M)
    return [(cid, topic, title) for cid, topic, title in rows]


def test_readme_table_parser_reads_the_generated_table(toy):
    table = markdown_table(discover(toy))
    text = f"# x\n\n## Theory claims (`validation/`)\n\nintro\n\n{table}\n## Next section\n| `not_this` | a | b |\n"
    assert _readme_table(text) == [("toy_pass", "toy", "A claim that holds"),
                                   ("toy_broken", "toy", "A deliberately broken experiment")]


def test_readme_claims_table_matches_the_registry():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    rows = _readme_table(readme.read_text(encoding="utf-8"))
    if not rows:
        pytest.skip("README has no 'Theory claims' table yet (paste `mdpsandbox validate --list --markdown`)")
    expected = _readme_table("## Theory claims\n" + markdown_table(discover()))
    assert rows == expected, "README's Theory claims table is stale: regenerate with `mdpsandbox validate --list --markdown`"


TOY_SWEEP = '''
import os
from pathlib import Path
from mdpsandbox.claims import claim


def square_cell(*, x, tag):
    with open(Path(os.environ["TOY_COUNTER_DIR"]) / "cells", "a") as f:
        f.write("x")
    return dict(y=float(x) ** 2)


@claim(id="toy_sweep", title="a claim whose experiment is a sweep", statement="x² ≥ 0", citation="none",
       topic="toy", assertions=("nonnegative",), sizes={"quick": dict(n=4), "full": dict(n=6)})
def toy_sweep(ctx, n):
    from mdpsandbox.sweeps import Sweep

    df = ctx.sweep("grid", Sweep(task=square_cell, axes={"x": list(range(n))}, fixed={"tag": "t"}))
    if os.environ.get("TOY_INTERRUPT") and Path(os.environ["TOY_INTERRUPT"]).exists():
        raise KeyboardInterrupt  # after the sweep finished, before the claim did
    ctx.check("nonnegative", measured=float(df["y"].min()), threshold=0.0, op=">=")
    ctx.record("cells", len(df))
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot(df["x"], df["y"], "o")
    ctx.figure("squares", fig)
'''


def test_sweep_cells_of_an_interrupted_claim_are_not_recomputed(tmp_path, monkeypatch, clean_registry):
    d = tmp_path / "toysweeps"
    d.mkdir()
    (d / "toy_sweep.py").write_text(TOY_SWEEP)
    counters = tmp_path / "counters"
    counters.mkdir()
    monkeypatch.setenv("TOY_COUNTER_DIR", str(counters))
    flag = tmp_path / "interrupt"
    flag.touch()
    monkeypatch.setenv("TOY_INTERRUPT", str(flag))
    out = tmp_path / "rep"
    with pytest.raises(KeyboardInterrupt):
        run_claims(discover(d), out=out, progress=False)
    assert len((counters / "cells").read_text()) == 4
    assert list((out / "toy_sweep" / "sweeps").iterdir())  # the sweep lives in the claim's directory
    flag.unlink()
    res = run_claims(discover(d), out=out, progress=False)
    assert res[0]["verdict"] == "pass" and res[0]["records"] == {"cells": 4}
    assert len((counters / "cells").read_text()) == 4  # every cell reused
    run_claims(discover(d), out=out, size="full", progress=False)  # a different grid: its own sweep directory
    assert len((counters / "cells").read_text()) == 10


def test_ctrl_c_keeps_finished_claims_and_says_how_to_resume(toy, tmp_path, monkeypatch, capsys):
    flag = tmp_path / "interrupt"
    flag.touch()
    monkeypatch.setenv("TOY_INTERRUPT", str(flag))
    out = tmp_path / "rep"
    rc, _, err = validate(capsys, "--claims-dir", str(toy), "--out", str(out))
    assert rc == 130 and "rerun the same command to resume" in err
    assert (out / "toy_pass" / "result.json").exists()
    flag.unlink()
    rc, stdout, _ = validate(capsys, "--claims-dir", str(toy), "--out", str(out))
    assert rc == 1 and re.search(r"toy_pass\s+PASS \(cached\)", stdout)
    assert calls(toy, "toy_pass") == 1


TOY_FLAKY = '''
import os
from pathlib import Path
from mdpsandbox.claims import claim


def flaky_cell(*, x):
    if Path(os.environ["TOY_BREAK"]).exists():
        raise RuntimeError("cell broken")
    return dict(y=float(x))


@claim(id="toy_flaky", title="a sweep whose cells fail once", statement="failed cells are retried",
       citation="none", topic="toy", assertions=("all_ok",), sizes={"quick": {}, "full": {}})
def toy_flaky(ctx):
    from mdpsandbox.sweeps import Sweep
    import matplotlib.pyplot as plt

    df = ctx.sweep("grid", Sweep(task=flaky_cell, axes={"x": [1, 2]}))
    if (df["status"] != "ok").any():
        raise RuntimeError("a cell failed: " + str(df["error"].iloc[0]))
    ctx.check("all_ok", measured=len(df), threshold=2, op=">=")
    fig, ax = plt.subplots()
    ctx.figure("empty", fig)
'''


def test_rerun_after_a_failed_cell_retries_it(tmp_path, monkeypatch, clean_registry):
    d = tmp_path / "toyflaky"
    d.mkdir()
    (d / "toy_flaky.py").write_text(TOY_FLAKY)
    brk = tmp_path / "break"
    brk.touch()
    monkeypatch.setenv("TOY_BREAK", str(brk))
    out = tmp_path / "rep"
    res = run_claims(discover(d), out=out, progress=False)
    assert res[0]["verdict"] == "error" and "cell broken" in res[0]["error"]
    brk.unlink()
    res = run_claims(discover(d), out=out, progress=False)
    assert res[0]["verdict"] == "pass" and not res[0]["reused"]


def test_report_files_get_ordinary_permissions(toy, tmp_path, capsys):
    out = tmp_path / "rep"
    validate(capsys, "--claims-dir", str(toy), "--out", str(out), "--only", "toy_pass")
    mask = os.umask(0)
    os.umask(mask)
    for p in ("report.html", "report.md", "results.json", "toy_pass/result.json", "toy_pass/line.png"):
        assert (out / p).stat().st_mode & 0o777 == 0o666 & ~mask, p
