"""The workers-vs-gain table of `python -m loadtests.bench.workers`: medians per design, ratio."""

from __future__ import annotations

from typing import Any

from loadtests.bench.workers import DESIGNS, table


def row(workers: int, design: str, req_s: float, load: str = "peak",
        failed: int = 0) -> dict[str, Any]:
    return {"workers": workers, "design": design, "endpoint": "/predict", "load": load,
            "req_s": req_s, "p99_ms": 10.0, "cpu_ms": 2.0, "rows_per_call": 8.0,
            "failed": failed, "others_cpu_pct": 0.0}


def test_the_table_gives_medians_over_rounds_and_the_adaptive_to_default_ratio() -> None:
    rows = [row(2, "default", x) for x in (500.0, 600.0, 550.0)]
    rows += [row(2, "adaptive", x, failed=1) for x in (400.0, 440.0, 9_999.0)]
    rows += [row(4, "default", 800.0), row(4, "adaptive", 600.0)]
    lines = table(rows).splitlines()
    assert lines[2] == ("| 2 | /predict peak | 550.0 | 440.0 | 0.80x | 2.00 | 2.00 | 10.0 | 10.0 "
                        "| 3 |")
    assert lines[3].startswith("| 4 | /predict peak | 800.0 | 600.0 | 0.75x |")


def test_the_default_design_sets_nothing_and_adaptive_turns_batching_on() -> None:
    assert DESIGNS == {"default": {}, "adaptive": {"FRAUDSERVE_BATCHING": "1"}}
