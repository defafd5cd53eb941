"""The repository carries its own mathematics reference and points nowhere outside itself."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIP = {"mutants", ".git", "build", "dist", ".venv", "validation-report"}


def _files():
    for path in ROOT.rglob("*"):
        if path.suffix in {".py", ".md", ".toml", ".cfg", ".ipynb"} and not SKIP & set(path.relative_to(ROOT).parts):
            yield path


def test_nothing_points_outside_the_repository():
    pattern = re.compile(r"\bMATH\.md|\.\./shared|/work/shared")
    bad = [str(p.relative_to(ROOT)) for p in _files()
           if p.name != "test_docs.py" and pattern.search(p.read_text(encoding="utf-8", errors="replace"))]
    assert not bad, f"files pointing outside the repository: {bad}"


def test_every_cited_math_section_exists():
    math = (ROOT / "docs" / "math.md").read_text(encoding="utf-8")
    sections = {int(m) for m in re.findall(r"^## (\d+)\.", math, flags=re.M)}
    cited = set()
    for p in _files():
        for group in re.findall(r"docs/math\.md ((?:§\d+(?:[–-]\d+)?[,/ ]*(?:and )?)+)", p.read_text(encoding="utf-8", errors="replace")):
            for a, b in re.findall(r"§(\d+)(?:[–-](\d+))?", group):
                cited.update(range(int(a), int(b or a) + 1))
    assert cited and cited <= sections, f"cited sections missing from docs/math.md: {sorted(cited - sections)}"
