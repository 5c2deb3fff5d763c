"""The /report flood benchmark's table rows (loadtests/bench/report_load.py; its figures are
printed, never asserted: docs/security.md has a run)."""

from __future__ import annotations

from collections import Counter

from loadtests.bench.load import LoadResult
from loadtests.bench.report_load import Flood, main, row


def test_a_row_has_the_percentiles_and_what_the_flood_got() -> None:
    result = LoadResult(latencies=[0.010] * 98 + [0.100, 0.200], ok=100)
    line, p99 = row("as configured, flood", result,
                    Flood(statuses=Counter({429: 900, 200: 100}), seconds=10.0))
    assert line.startswith("| as configured, flood | 10.0 / ")
    assert "| 100 | 0 | 200: 100, 429: 900 (100/s) |" in line
    assert p99 is not None and 0.1 <= p99 <= 0.2
    quiet, _ = row("quiet", result, None)
    assert quiet.endswith("| 100 | 0 | - |")


def test_help() -> None:
    import pytest

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
