"""The summary rows read on alternating pairs: /predict against /noop, seconds apart.

This VM's speed drifts by +-20% within minutes (in-process predict_proba on one row took 6.2,
7.3 and 13.2 ms in three runs of the same code), and a service's single /predict and /noop
peak phases are a minute apart. So a service with pairs (`--pairs`, default 6) also runs that
many (/predict closed loop, /noop closed loop) pairs back to back, `--pair-seconds` each (5), and
each pair gives two ratios of figures taken seconds apart: req/s (/predict over /noop) and
server CPU per request. The targets on /noop are read on the pairs' median; a variant (adaptive
batching, shadow on) is compared with the default through its own pairs (its median ratio over
the default's), so neither service's drift enters the other's figure. The single phases stay
in the table beside them, without a verdict.

After each pair comes a /predict open loop at the top load (200 req/s), as long: its p99s'
median compares the default with a variant at that load. One 15 s p99 per service swung
21-33 ms between fresh services of the same code (a scratch run, docs/performance.md), more
than the two designs differ; the single phase keeps the p99 <= 50 ms target.

The bulk target (/predict_batch >= 0.6x raw predict_proba rows/s) is read the same way: the
default runs that many (/predict_batch closed loop, in-process predict_proba) pairs, and the
target is read on the median of their ratios. The raw baseline of the run's ends moved
26-38k rows/s between runs on this VM, and a bulk phase minutes from it cannot tell 0.5x from
0.6x.

An older results file has no "paired" phases: its table renders as it printed.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.bench.phase import PAIRED, PAIRED_OPEN, RAW, Phase
from loadtests.bench.rows import TARGETS, Rows, num

__all__ = ["PAIRED", "Pairs", "bulk_pair_rows", "bulk_ratios", "pair_rows", "pairs_of", "spread",
           "tail_rows"]


@dataclass(frozen=True)
class Pairs:
    """One service's pairs: per pair the req/s and the CPU-per-request ratios."""

    speed: list[float]       # /predict req/s over /noop req/s
    cpu: list[float]         # /predict server CPU per request over /noop's
    predict_rps: list[float]
    seconds: float
    tails: list[float]       # /predict p99 ms of the open loops between pairs
    load: float | None = None  # their offered req/s

    @property
    def speed_median(self) -> float:
        return statistics.median(self.speed)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None


def _of(phases: Sequence[Phase], config: str | None, endpoint: str,
        mode: str = PAIRED) -> list[Phase]:
    """The service's phases of one kind in a pair, in run order."""
    return [p for p in phases if (p.config, p.endpoint, p.mode) == (config, endpoint, mode)]


def pairs_of(phases: Sequence[Phase], config: str | None) -> Pairs | None:
    """The service's pairs, in run order (a /predict phase, then its /noop phase); None when
    it ran none (or none had both figures)."""
    predict, noop = _of(phases, config, "/predict"), _of(phases, config, "/noop")
    speed, cpu, rps = [], [], []
    for p, q in zip(predict, noop, strict=False):
        if p.throughput and q.throughput:
            speed.append(p.throughput / q.throughput)
            rps.append(p.throughput)
            if p.server_cpu_ms_per_req and q.server_cpu_ms_per_req:
                cpu.append(p.server_cpu_ms_per_req / q.server_cpu_ms_per_req)
    if not speed:
        return None
    opened = _of(phases, config, "/predict", PAIRED_OPEN)
    tails = [p.p99 for p in opened if p.p99 is not None and not p.failed]
    return Pairs(speed, cpu, rps, predict[0].seconds, tails,
                 opened[0].offered if opened else None)


def spread(values: Sequence[float]) -> str:
    """'0.93x (0.88-0.97)': the median and the range."""
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def _described(pairs: Pairs) -> str:
    return f"median of {len(pairs.speed)} alternating pairs, {pairs.seconds:g} s each"


def pair_rows(t: Rows, phases: Sequence[Phase], on: str, variants: Sequence[str],
              shadow: str | None) -> None:
    """The rows read on pairs; none when the default ran none."""
    base = pairs_of(phases, on)
    if base is None:
        return
    peak_t, cpu_t = TARGETS["peak_vs_noop"], TARGETS["cpu_vs_noop"]
    t.add(f"/predict peak / /noop peak, {_described(base)}, {on}", spread(base.speed),
          f"/predict {num(statistics.median(base.predict_rps))} req/s", base.speed_median,
          f">= {peak_t}x", base.speed_median >= peak_t)
    if base.cpu:
        t.add(f"server CPU per request / /noop's, {_described(base)}, {on}", spread(base.cpu),
              "", base.cpu_median, f"<= {cpu_t}x", (base.cpu_median or 0) <= cpu_t)
    for variant in variants:
        v = pairs_of(phases, variant)
        if v is None:
            continue
        r = v.speed_median / base.speed_median
        t.add(f"/predict peak / /noop peak, {_described(v)}, {variant}", spread(v.speed),
              f"{on} {base.speed_median:.2f}x", r,
              f"{on} >= {variant}: {on}/{variant} {1 / r:.2f}x", r <= 1.0)
        tail_rows(t, base, v, on, variant)
    h = pairs_of(phases, shadow)
    if h is not None:
        r = h.speed_median / base.speed_median
        t.add(f"/predict peak / /noop peak, {_described(h)}, {shadow}", spread(h.speed),
              f"shadow off {base.speed_median:.2f}x", r, "within 10% of shadow off",
              r >= 0.9)
        if h.cpu and base.cpu_median:
            t.add(f"server CPU per request / /noop's, {_described(h)}, {shadow}",
                  spread(h.cpu), f"shadow off {base.cpu_median:.2f}x",
                  (h.cpu_median or 0) / base.cpu_median)


def tail_rows(t: Rows, base: Pairs, v: Pairs, on: str, variant: str) -> None:
    """The default's and a variant's p99 at the top load, each the median of its open loops
    between pairs: the default must be no slower (its median p99 <= the variant's)."""
    if not base.tails or not v.tails:
        return
    mine, theirs = statistics.median(base.tails), statistics.median(v.tails)
    t.add(f"/predict p99 ms at {base.load:g} req/s, median of {len(base.tails)} open loops "
          f"between pairs ({base.seconds:g} s each), {on}",
          f"{mine:.1f} ({min(base.tails):.1f}-{max(base.tails):.1f})",
          f"{variant} {theirs:.1f} ({min(v.tails):.1f}-{max(v.tails):.1f})",
          mine / theirs if theirs else None, f"{on} <= {variant}", mine <= theirs)


def bulk_ratios(phases: Sequence[Phase], config: str | None) -> list[float]:
    """Per bulk pair, /predict_batch rows/s over in-process predict_proba's, in run order."""
    bulk, raw = _of(phases, config, "/predict_batch"), _of(phases, config, RAW)
    return [b.throughput / r.throughput for b, r in zip(bulk, raw, strict=False)
            if b.throughput and r.throughput and not b.failed]


def bulk_pair_rows(t: Rows, phases: Sequence[Phase], on: str, clients: int) -> None:
    """The bulk target on the pairs' median; no row when the default ran no bulk pairs."""
    ratios = bulk_ratios(phases, on)
    if not ratios:
        return
    target = TARGETS["batch_vs_raw"]
    seconds = next(p.seconds for p in phases if p.mode == PAIRED and p.endpoint == RAW)
    rows = [p.rows_per_s for p in _of(phases, on, "/predict_batch")]
    t.add(f"/predict_batch rows/s / raw predict_proba rows/s, median of {len(ratios)} "
          f"alternating pairs, {seconds:g} s each ({clients} clients), {on}", spread(ratios),
          f"/predict_batch {num(statistics.median(rows))} rows/s",
          statistics.median(ratios), f">= {target}x", statistics.median(ratios) >= target)
