"""The summary rows of issue 25's bench parts: the ledger on PostgreSQL beside the SQLite
default, the heavy bulk phases (more bulk clients; bulk and single clients at once) and the
serve tree's RSS after each round of load.

Each row appears only when the run measured its phases, so an older results file (without
them) renders the table it printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from loadtests.bench.phase import Phase, ServiceRun, Settings
from loadtests.bench.rows import P99_LOADS, TARGETS, Rows, cpu, find, latencies, num, ratio


def _failed(p: Phase) -> str:
    return f" ({p.failed} failed)" if p.failed else ""


def postgres_rows(t: Rows, phases: Sequence[Phase], s: Settings, on: str, pg: str | None
                  ) -> None:
    """The postgres service (the default with its ledger on PostgreSQL) against the SQLite
    default of the same run: peak, CPU at peak, latency at each load, bulk rows/s."""
    peak, pg_peak = find(phases, on, "/predict", "closed"), find(phases, pg, "/predict", "closed")
    if not (peak and pg_peak):
        return
    t.add(f"/predict peak req/s, {pg} (the ledger on PostgreSQL)", num(pg_peak.throughput),
          f"SQLite ({on}) {num(peak.throughput)}", ratio(pg_peak.throughput, peak.throughput))
    t.add(f"server CPU ms per request at peak, {pg}", cpu(pg_peak),
          f"SQLite {num(peak.server_cpu_ms_per_req, 2)}",
          ratio(pg_peak.server_cpu_ms_per_req, peak.server_cpu_ms_per_req))
    limit = TARGETS["p99_ms"]
    for load in s.loads:
        p, q = find(phases, on, "/predict", "open", load), find(phases, pg, "/predict", "open",
                                                                 load)
        if p and q:
            target = f"p99 <= {limit:.0f} ms" if load in P99_LOADS else ""
            t.add(f"/predict p50/p95/p99 ms at {load:g} req/s, {pg}", latencies(q),
                  f"SQLite p99 {num(p.p99)}", ratio(q.p99, p.p99), target,
                  None if not target else q.p99 is not None and q.p99 <= limit)
    bulk = find(phases, on, "/predict_batch", "closed", clients=s.batch_clients)
    pg_bulk = find(phases, pg, "/predict_batch", "closed", clients=s.batch_clients)
    if bulk and pg_bulk:
        t.add(f"/predict_batch rows/s ({s.batch_rows} rows, {s.batch_clients} clients), {pg}",
              num(pg_bulk.rows_per_s, 0) + _failed(pg_bulk), f"SQLite {num(bulk.rows_per_s, 0)}",
              ratio(pg_bulk.rows_per_s, bulk.rows_per_s))


def bulk_rows(t: Rows, phases: Sequence[Phase], s: Settings, config: str | None) -> None:
    """The heavy bulk phases of `config`: more /predict_batch clients, then bulk and single
    clients at once; 0 failed requests is their target (issue 25)."""
    bulk = find(phases, config, "/predict_batch", "closed", clients=s.batch_clients)
    heavy = next((p for p in phases if p is not bulk and p.config == config
                  and p.endpoint == "/predict_batch" and p.mode == "closed"), None)
    if heavy:
        t.add(f"/predict_batch rows/s ({s.batch_rows} rows, {heavy.clients} clients), {config}",
              num(heavy.rows_per_s, 0) + _failed(heavy),
              f"{bulk.clients} clients {num(bulk.rows_per_s, 0)}" if bulk else "",
              ratio(heavy.rows_per_s, bulk.rows_per_s if bulk else None),
              "0 failed", heavy.failed == 0)
    mb, ms = (find(phases, config, e, "mixed") for e in ("/predict_batch", "/predict"))
    if mb and ms:
        t.add(f"mixed, {config}: /predict_batch rows/s ({mb.clients} x {mb.rows_per_request} "
              f"rows) + /predict req/s ({ms.clients} clients) at once",
              f"{num(mb.rows_per_s, 0)} + {num(ms.throughput)}"
              + (f" ({mb.failed + ms.failed} failed)" if mb.failed + ms.failed else ""),
              f"p99 ms: bulk {num(mb.p99)}, single {num(ms.p99)}", None, "0 failed",
              mb.failed + ms.failed == 0)


def round_rows(t: Rows, services: Sequence[ServiceRun]) -> None:
    """The serve tree's RSS after each round of load, where the run repeated its load."""
    for v in services:
        if len(v.rounds) < 2:
            continue
        rss = [r.get("rss_mb") for r in v.rounds]
        steps = [None if a is None or b is None else b - a for a, b in pairwise(rss)]
        ready = v.memory_ready.rss_mb if v.memory_ready else None
        failed = int(sum(r.get("failed") or 0 for r in v.rounds[1:]))
        t.add(f"serve tree RSS MB after each of {len(rss)} rounds of load, {v.config}",
              " / ".join(num(x, 0) for x in rss),
              f"ready {num(ready, 0)}; between rounds "
              + ", ".join("-" if d is None else f"{d:+,.0f}" for d in steps),
              ratio(rss[-1], rss[0]), f"0 failed in rounds 2-{len(rss)}" + (
                  "" if not failed else f" ({failed} failed)"), failed == 0)
