"""The README's performance table is the committed results file's, regenerated: any figure in
it can be traced to docs/bench/*.json (python -m loadtests.bench.table FILE prints it)."""

import re
from pathlib import Path

from loadtests.bench.results import load
from loadtests.bench.table import rebuild, render

ROOT = Path(__file__).resolve().parents[3]
BLOCK = re.compile(r"<!-- bench-table: (\S+) -->\n(.*?)\n<!-- /bench-table -->", re.S)


def test_readme_table_is_the_committed_results_file_regenerated() -> None:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    assert blocks, "README.md has no <!-- bench-table: docs/bench/X.json --> block"
    for path, text in blocks:
        results = load(ROOT / path)
        assert text.strip() == render(results).strip(), (
            f"README.md's table differs from `python -m loadtests.bench.table {path}`")
        assert rebuild(results) == results.summary  # the file's own table is its figures'
