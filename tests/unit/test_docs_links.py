"""The manual's references hold: README.md and docs/*.md link only to files and headings that
exist, and every repository path or `python -m` module they quote is there.

Anchors follow GitHub's rule (lowercase; punctuation other than `-` and `_` removed; spaces to
`-`; a repeated heading gets `-1`, `-2`, ...). Quoted paths are the words of inline code
that start with a top-level folder of this repository (`fraud/x/y.py`, `tests/...py`), and
file paths with an extension in the prose; fenced code blocks are examples (placeholders such
as `docs/bench/X.json` are fine there), but a `python -m` module they run must exist.
`test_the_checks_can_fail` shows each check catching a broken reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FOLDERS = ("fraud", "tests", "loadtests", "simulations", "training", "gating", "deploy",
           "tools", "configs", "docs")
PACKAGES = ("fraud", "loadtests", "simulations", "training", "gating", "deploy")

FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s+(\S+)", re.M)
PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(FOLDERS)})/[\w./-]*)")
MODULE = re.compile(rf"python -m ((?:{'|'.join(PACKAGES)})(?:\.\w+)*)")
PLACEHOLDER = re.compile(r"[*<>{}$]|\.\.\.")


def split(text: str) -> tuple[str, list[str]]:
    """The page's prose (fenced blocks blanked, so line numbers stay) and its fenced blocks."""
    prose, fenced, inside = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            prose.append("")
        elif inside:
            fenced.append(line)
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), fenced


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs (numbered when repeated) and any
    explicit `id`/`name` attributes."""
    prose, _ = split(page.read_text())
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose.splitlines():
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    found.update(re.findall(r"""(?:id|name)=["']([^"']+)["']""", prose))
    return found


def without_code(prose: str) -> str:
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), prose)


def link_problems(page: Path) -> list[str]:
    prose, _ = split(page.read_text())
    text = without_code(prose)
    targets = LINK.findall(text) + REFERENCE_DEF.findall(text)
    problems = []
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            problems.append(f"{page.name}: link to a missing file: {target}")
            continue
        if anchor and where.suffix == ".md" and anchor not in anchors(where):
            problems.append(f"{page.name}: link to a missing heading: {target}")
    return problems


def quoted_paths(page: Path) -> list[str]:
    """Repository paths in inline code, and file paths (with an extension) in the prose."""
    prose, _ = split(page.read_text())
    tokens = [t for span in CODE_SPAN.finditer(prose) for t in span.group(2).split()]
    bare = [m.group(1).rstrip(".,;:") for m in PATH.finditer(without_code(prose))]
    tokens += [t for t in bare if re.search(r"\.\w+$", t)]
    return [m.group(1).rstrip(".,;:") for t in tokens if not PLACEHOLDER.search(t)
            for m in PATH.finditer(t)]


def modules(page: Path) -> list[str]:
    prose, fenced = split(page.read_text())
    spans = " ".join(" ".join(m.group(2).split()) for m in CODE_SPAN.finditer(prose))
    return MODULE.findall(spans) + MODULE.findall("\n".join(fenced))


def runnable(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_and_anchors_resolve(page: Path) -> None:
    assert link_problems(page) == []


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_quoted_repository_paths_exist(page: Path) -> None:
    missing = sorted({p for p in quoted_paths(page) if not (ROOT / p).exists()})
    assert missing == [], f"{page.name} quotes paths that do not exist"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_m_modules_exist(page: Path) -> None:
    missing = sorted({m for m in modules(page) if not runnable(m)})
    assert missing == [], f"{page.name} runs modules that do not exist"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """A broken link, a stale anchor, a stale path and a stale module are each caught."""
    (tmp_path / "other.md").write_text("# Other page\n\n## Kept (`heading`): yes\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Same\n\n## Same\n\n"
        "[ok](other.md#kept-heading-yes) [ok](#same-1) [ok](https://example.com/x#y)\n"
        "[gone](missing.md) [stale](other.md#kept) [stale](#nowhere)\n"
        "`fraud/experiment/live.py` and `fraud/ledger.py`, `python -m fraud.simulation`\n"
        "as fraud/simulation.py said; fraud/ is a folder\n"
        "```\npython -m loadtests.bench\n[not a link](missing-too.md)\n```\n")
    assert link_problems(page) == [
        "page.md: link to a missing file: missing.md",
        "page.md: link to a missing heading: other.md#kept",
        "page.md: link to a missing heading: #nowhere",
    ]
    assert [p for p in quoted_paths(page) if not (ROOT / p).exists()] == [
        "fraud/ledger.py", "fraud/simulation.py"]
    assert [m for m in modules(page) if not runnable(m)] == ["fraud.simulation"]
    assert slug("Explanations (`POST /explain`)") == "explanations-post-explain"
    assert slug('The cost of "a 200 means committed" and of PostgreSQL (2026-11-27)') == (
        "the-cost-of-a-200-means-committed-and-of-postgresql-2026-11-27")
