"""Several committed bench runs side by side (`python -m loadtests.bench.spread`)."""

from __future__ import annotations

from pathlib import Path

from loadtests.bench.results import load
from loadtests.bench.spread import _met, _ratio, render, spread_rows

ROOT = Path(__file__).resolve().parents[3]
RUN = ROOT / "docs" / "bench" / "2026-11-27-2core.json"


def test_ratios_and_targets_are_read_from_the_table_cells() -> None:
    assert _ratio("0.90x") == 0.9 and _ratio("-") is None and _ratio("1.2x /noop") is None
    assert _met("0 in every phase ok") is True
    assert _met(">= 0.85x /noop MISSED") is False
    assert _met("") is None and _met("vs /noop: 0.60x") is None


def test_one_row_per_figure_with_each_runs_value_and_the_spread() -> None:
    run = load(RUN)
    rows = spread_rows([run, run])
    peak = next(r for r in rows if r["figure"].startswith("/predict peak req/s (50 clients"))
    assert peak["run 1"] == peak["run 2"] == "778.3 (0.90x)"
    assert peak["ratio min-max"] == "0.90-0.90x" and peak["target met"] == "2 of 2"
    text = render([run, run], [RUN, RUN])
    assert text.startswith(f"- run 1: `{RUN}`, commit afe1ac0c52")
    assert "| figure | run 1 | run 2 | ratio min-max | target met |" in text
