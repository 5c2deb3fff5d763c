"""The bench's table: every figure beside its same-run baseline, and issue 14's targets.

Targets are printed, never asserted (a shared machine's absolute figures are noise; the
ratio to the baseline measured beside it is the signal). Only figures measured in this run
appear: no published or remembered numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadtests.bench.baseline import RawModel
from loadtests.bench.phase import BATCH_METRIC, Phase, ServiceRun, Settings
from loadtests.bench.report_ledger import bulk_rows, postgres_rows, round_rows
from loadtests.bench.report_pairs import bulk_pair_rows, bulk_ratios, pair_rows, pairs_of
from loadtests.bench.rows import P99_LOADS, TARGETS, Rows, find, ratio
from loadtests.bench.rows import cpu as _cpu
from loadtests.bench.rows import latencies as _latencies
from loadtests.bench.rows import num as _num
from loadtests.bench.rows import times as _x

__all__ = ["DETAIL_COLUMNS", "DETAIL_NOTE", "P99_LOADS", "SERVICE_COLUMNS", "SUMMARY_COLUMNS",
           "TARGETS", "detail_rows", "find", "format_table", "markdown_table", "ratio",
           "service_rows", "summary_rows"]

SUMMARY_COLUMNS = ("figure", "measured", "baseline", "ratio", "target")
DETAIL_COLUMNS = ("phase", "ok", "failed", "req/s", "rows/s", "p50", "p95", "p99",
                  "send lag p99", "rows/call", "srv CPU ms/req", "api / router", "client CPU %",
                  "others CPU %", "RSS MB")
SERVICE_COLUMNS = ("service", "ready s", "RSS MB ready", "RSS MB end", "PSS MB ready",
                   "PSS MB end", "RSS MB by role, ready", "RSS MB by role, end",
                   "RSS MB after rounds")


def _peak_rows(t: Rows, phases: Sequence[Phase], s: Settings, on: str,
               variants: Sequence[str], shadow: str | None, judge: bool = True) -> None:
    """The single peak phases. With `judge` off (the run has pairs), their targets are read
    on the pairs (loadtests/bench/report_pairs.py) and these rows carry no verdict."""

    def verdict(met: bool | None) -> bool | None:
        return met if judge else None

    later = "" if judge else " (read on the pairs)"
    peak = find(phases, on, "/predict", "closed")
    noop = find(phases, on, "/noop", "closed")
    noop_rps = noop.throughput if noop else None
    noop_cpu = noop.server_cpu_ms_per_req if noop else None
    peak_t, cpu_t = TARGETS["peak_vs_noop"], TARGETS["cpu_vs_noop"]
    if peak:
        r = ratio(peak.throughput, noop_rps)
        t.add(f"/predict peak req/s ({s.clients} clients, closed loop), {on}",
              _num(peak.throughput), f"/noop {_num(noop_rps)}", r,
              f">= {peak_t}x /noop{later}", verdict(None if r is None else r >= peak_t))
        r = ratio(peak.server_cpu_ms_per_req, noop_cpu)
        t.add(f"server CPU ms per request at peak (API + router), {on}", _cpu(peak),
              f"/noop {_num(noop_cpu, 2)}", r, f"<= {cpu_t}x /noop{later}",
              verdict(None if r is None else r <= cpu_t))
    for variant in variants:
        v = find(phases, variant, "/predict", "closed")
        if v and peak:
            t.add(f"/predict peak req/s, {variant}", _num(v.throughput),
                  f"{on} {_num(peak.throughput)}", ratio(v.throughput, peak.throughput),
                  f"vs /noop: {_x(ratio(v.throughput, noop_rps))}")
            t.add(f"server CPU ms per request at peak, {variant}", _cpu(v),
                  f"{on} {_num(peak.server_cpu_ms_per_req, 2)}",
                  ratio(v.server_cpu_ms_per_req, peak.server_cpu_ms_per_req),
                  f"vs /noop: {_x(ratio(v.server_cpu_ms_per_req, noop_cpu))}")
    h = find(phases, shadow, "/predict", "closed")
    if h and peak:
        vs_noop = ratio(h.throughput, noop_rps)
        t.add(f"/predict peak req/s, {shadow} (both models score every row)",
              _num(h.throughput), f"shadow off {_num(peak.throughput)}",
              ratio(h.throughput, peak.throughput), f">= {peak_t}x /noop: {_x(vs_noop)}{later}",
              verdict(None if vs_noop is None else vs_noop >= peak_t))
        vs_noop = ratio(h.server_cpu_ms_per_req, noop_cpu)
        t.add(f"server CPU ms per request at peak, {shadow}", _cpu(h),
              f"shadow off {_num(peak.server_cpu_ms_per_req, 2)}",
              ratio(h.server_cpu_ms_per_req, peak.server_cpu_ms_per_req),
              f"<= {cpu_t}x /noop: {_x(vs_noop)}{later}",
              verdict(None if vs_noop is None else vs_noop <= cpu_t))


def _latency_rows(t: Rows, phases: Sequence[Phase], s: Settings, on: str,
                  variants: Sequence[str], shadow: str | None) -> None:
    limit = TARGETS["p99_ms"]

    def target(p: Phase, load: float) -> tuple[str, bool | None]:
        if load not in P99_LOADS:
            return "", None
        return f"p99 <= {limit:.0f} ms", p.p99 is not None and p.p99 <= limit

    for load in s.loads:
        p = find(phases, on, "/predict", "open", load)
        if not p:
            continue
        n = find(phases, on, "/noop", "open", load)
        t.add(f"/predict p50/p95/p99 ms at {load:g} req/s offered (open loop), {on}",
              _latencies(p), f"/noop p99 {_num(n.p99) if n else '-'}",
              ratio(p.p99, n.p99 if n else None), *target(p, load))
        for variant in variants:
            q = find(phases, variant, "/predict", "open", load)
            if q:
                t.add(f"/predict p50/p95/p99 ms at {load:g} req/s, {variant}", _latencies(q),
                      f"{on} p99 {_num(p.p99)}", ratio(q.p99, p.p99))
        h = find(phases, shadow, "/predict", "open", load)
        if h:
            t.add(f"/predict p50/p95/p99 ms at {load:g} req/s, {shadow}", _latencies(h),
                  f"shadow off p99 {_num(p.p99)}", ratio(h.p99, p.p99), *target(h, load))


def _service_rows(t: Rows, phases: Sequence[Phase], services: Sequence[ServiceRun]) -> None:
    ready = [f"{v.config} {v.ready_s:.1f}" for v in services if v.ready_s is not None]
    if ready:
        t.add("time to ready s (spawn to /readyz 200)", "; ".join(ready))
    for v in services:
        a, b = v.memory_ready, v.memory_end
        if not (a or b):
            continue
        peak = max((p.rss_peak_mb or 0.0 for p in phases if p.config == v.config), default=0)
        t.add(f"serve tree RSS MB: ready / end / peak in phases, {v.config}",
              f"{_num(a and a.rss_mb, 0)} / {_num(b and b.rss_mb, 0)} / {_num(peak or None, 0)}",
              f"PSS {_num(a and a.pss_mb, 0)} / {_num(b and b.pss_mb, 0)}",
              ratio(b and b.rss_mb, a and a.rss_mb))


def summary_rows(phases: Sequence[Phase], raw: RawModel | None, s: Settings, on: str,
                 off: str | None, shadow: str | None = None,
                 services: Sequence[ServiceRun] = (), before: str | None = None,
                 postgres: str | None = None) -> list[dict[str, str]]:
    """The one table: figure | measured | baseline (same run) | ratio | target. `before`
    and `off` are variants compared with `on` (coalescing off, adaptive batching); `postgres` is
    the default with its ledger on PostgreSQL (loadtests/bench/report_ledger.py)."""
    t = Rows()
    variants = [v for v in (before, off) if v]
    paired = pairs_of(phases, on) is not None
    _peak_rows(t, phases, s, on, variants, shadow, judge=not paired)
    pair_rows(t, phases, on, variants, shadow)
    _latency_rows(t, phases, s, on, variants, shadow)
    bulk = find(phases, on, "/predict_batch", "closed", clients=s.batch_clients)
    bulk_paired = bulk_ratios(phases, on)
    if bulk:
        r = ratio(bulk.rows_per_s, raw.rows_per_s if raw else None)
        target = f">= {TARGETS['batch_vs_raw']}x raw"
        t.add(f"/predict_batch rows/s ({s.batch_rows} rows, {s.batch_clients} clients)",
              _num(bulk.rows_per_s, 0),
              f"raw predict_proba {_num(raw.rows_per_s, 0) if raw else '-'} (1 core)", r,
              f"{target} (read on the pairs)" if bulk_paired else target,
              None if r is None or bulk_paired else r >= TARGETS["batch_vs_raw"])
    bulk_pair_rows(t, phases, on, s.batch_clients)
    if bulk and raw and raw.ledger_rows_per_s:
        t.add(f"/predict_batch rows/s vs the ledger alone ({s.batch_rows}-row requests "
              "committed in process, SQLite)", _num(bulk.rows_per_s, 0),
              f"ledger {_num(raw.ledger_rows_per_s, 0)}",
              ratio(bulk.rows_per_s, raw.ledger_rows_per_s))
    bulk_rows(t, phases, s, on)
    postgres_rows(t, phases, s, on, postgres)
    bulk_rows(t, phases, s, postgres)
    if raw:
        t.add("raw predict_proba, 1 row (ms): " + " / ".join(raw.one_row_ms),
              " / ".join(f"{v:.2f}" for v in raw.one_row_ms.values()), "in process")
    formed = [p for p in phases if p.endpoint == "/predict" and p.config == on
              and p.single]
    if formed:
        t.add(f"rows per router call, /predict {on} (peak; loads)",
              "; ".join(_num(p.batch_mean) for p in formed),
              ", ".join(f"{v} " + "; ".join(_num(p.batch_mean) for p in phases
                                           if p.endpoint == "/predict" and p.config == v
                                           and p.single)
                        for v in variants))
    _service_rows(t, phases, services)
    round_rows(t, services)
    noise = []
    for config in dict.fromkeys(p.config for p in phases):
        others = [p.others_cpu_pct for p in phases
                  if p.config == config and p.others_cpu_pct is not None]
        if others:
            noise.append(f"{config} {min(others):.0f}-{max(others):.0f}")
    if noise:
        t.add("others CPU % (the rest of the machine, all cores), min-max over phases",
              "; ".join(noise), "0 on a quiet machine")
    for config in dict.fromkeys(p.config for p in phases):
        cp = [p for p in phases if p.config == config and p.served]
        bad = [f"{p.endpoint} {p.mode} {p.offered or p.clients:g}: {p.failed}"
               for p in cp if p.failed]
        t.add(f"failed requests, {config}",
              str(sum(p.failed for p in cp)) + (f" ({'; '.join(bad)})" if bad else ""),
              f"of {sum(p.ok + p.failed for p in cp):,} in {len(cp)} phases", None,
              "0 in every phase", not bad)
    return t.rows


def detail_rows(phases: Sequence[Phase]) -> list[dict[str, str]]:
    return [{
        "phase": p.key, "ok": str(p.ok), "failed": str(p.failed),
        "req/s": _num(p.throughput), "rows/s": _num(p.rows_per_s, 0),
        "p50": _num(p.p50), "p95": _num(p.p95), "p99": _num(p.p99),
        "send lag p99": _num(p.send_lag_p99), "rows/call": _num(p.batch_mean),
        "srv CPU ms/req": _num(p.server_cpu_ms_per_req, 2),
        "api / router": f"{_num(p.api_cpu_ms_per_req, 2)} / {_num(p.router_cpu_ms_per_req, 2)}",
        "client CPU %": _num(p.client_cpu_pct, 0), "others CPU %": _num(p.others_cpu_pct, 0),
        "RSS MB": _num(p.rss_peak_mb, 0),
    } for p in phases]


def service_rows(services: Sequence[ServiceRun]) -> list[dict[str, str]]:
    out = []
    for v in services:
        a, b = v.memory_ready, v.memory_end
        out.append({
            "service": v.config, "ready s": _num(v.ready_s),
            "RSS MB ready": _num(a and a.rss_mb, 0), "RSS MB end": _num(b and b.rss_mb, 0),
            "PSS MB ready": _num(a and a.pss_mb, 0), "PSS MB end": _num(b and b.pss_mb, 0),
            "RSS MB by role, ready": a.role_text() if a else "-",
            "RSS MB by role, end": b.role_text() if b else "-",
            "RSS MB after rounds": " / ".join(_num(r.get("rss_mb"), 0) for r in v.rounds)
            or "-"})
    return out


def format_table(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    line = "  ".join(f"{c:<{widths[c]}}" for c in columns)
    out = [line, "  ".join("-" * widths[c] for c in columns)]
    out += ["  ".join(f"{r[c]:<{widths[c]}}" for c in columns) for r in rows]
    return "\n".join(out)


def markdown_table(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(r[c].replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(out)


DETAIL_NOTE = (f"per phase (ms; rows/call from {BATCH_METRIC}; CPU % of one core for the "
               "client, of all cores for others)")
