"""The summary table's building blocks: number formats, finding a phase, the rows being built.

Shared by loadtests/bench/report.py (the table) and loadtests/bench/report_ledger.py (the
ledger, bulk and memory-rounds rows).
"""

from __future__ import annotations

from collections.abc import Sequence

from loadtests.bench.phase import Phase

# Issue 25's targets. A results file stores the targets of its run, and its table is rebuilt
# with those (loadtests/bench/table.py), so an older run keeps issue 14's (0.85x, 1.2x, 0.8x).
TARGETS: dict[str, float] = {
    "peak_vs_noop": 0.9,   # /predict peak >= 0.9x /noop peak (closed loop, same run)
    "cpu_vs_noop": 1.15,   # server CPU per /predict request <= 1.15x /noop's, at peak
    "p99_ms": 50.0,        # p99 at each of P99_LOADS req/s offered (open loop)
    "batch_vs_raw": 0.6,   # /predict_batch rows/s >= 0.6x raw in-process predict_proba
    "failed": 0,           # failed requests, in every phase
}
P99_LOADS = (100.0, 200.0)


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def times(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def latencies(p: Phase) -> str:
    """p50 / p95 / p99 of the successful requests, and how many failed (if any)."""
    text = f"{num(p.p50)} / {num(p.p95)} / {num(p.p99)}"
    return text + (f" ({p.failed} failed)" if p.failed else "")


def cpu(p: Phase) -> str:
    return (f"{num(p.server_cpu_ms_per_req, 2)} ({num(p.api_cpu_ms_per_req, 2)} + "
            f"{num(p.router_cpu_ms_per_req, 2)})")


def find(phases: Sequence[Phase], config: str | None, endpoint: str, mode: str,
         offered: float | None = None, clients: int | None = None) -> Phase | None:
    """The first phase of `config` on `endpoint` in `mode`: at `offered` req/s (open loop),
    with `clients` clients when given (closed loop, mixed)."""
    for p in phases:
        if (p.config, p.endpoint, p.mode) == (config, endpoint, mode) and (
                p.offered == offered if mode == "open" else clients in (None, p.clients)):
            return p
    return None


class Rows:
    """Summary rows being built: figure | measured | baseline | ratio | target."""

    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []

    def add(self, figure: str, value: str, baseline: str = "", r: float | None = None,
            target: str = "", met: bool | None = None) -> None:
        self.rows.append({"figure": figure, "measured": value, "baseline": baseline,
                          "ratio": times(r),
                          "target": target + ("" if met is None else
                                              (" ok" if met else " MISSED"))})


