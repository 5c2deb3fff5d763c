"""RSS after rounds of load: does the serve tree's memory level off?

Round 1 is the service's own phases. Each further round repeats one round of the same load,
as `python -m loadtests.bench.memory` does: /predict closed loop, /predict open loop at 200
req/s (or the highest offered load), /predict_batch closed loop. After each round the tree's
RSS and PSS are read; growth that stops after round 1 is a high-water mark, growth that
repeats every round is a leak. The rounds' requests are counted (ok, failed) beside the
memory, not in the phases' table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from loadtests.bench.phase import Phase, Settings, run_phase
from loadtests.bench.proc import TreeMemory, tree_memory
from loadtests.run import Service

ROUND_LOAD = 200.0  # req/s offered in a round's open-loop phase, when the run offers it


def round_phases(config: str, s: Settings) -> list[Phase]:
    """One round of load: what each repeated round runs (not kept in the phases' table)."""
    load = ROUND_LOAD if ROUND_LOAD in s.loads else max(s.loads)
    return [Phase(config, "/predict", "closed", None, s.clients, 1, s.seconds),
            Phase(config, "/predict", "open", load, None, 1, s.seconds),
            Phase(config, "/predict_batch", "closed", None, s.batch_clients, s.batch_rows,
                  s.seconds)]


def round_record(n: int, memory: TreeMemory | None, phases: Sequence[Phase]
                 ) -> dict[str, float | None]:
    """What one round leaves in ServiceRun.rounds: its number, the tree's memory after it and
    its requests."""
    return {"round": n, "rss_mb": memory.rss_mb if memory else None,
            "pss_mb": memory.pss_mb if memory else None,
            "ok": sum(p.ok for p in phases), "failed": sum(p.failed for p in phases)}


def more_rounds(service: Service, pid: int | None, config: str, s: Settings,
                first: Sequence[Phase], bodies: dict[str, Sequence[bytes]],
                log: Callable[[str], None]) -> list[dict[str, float | None]]:
    """Round 1 (`first`, already run) and s.rounds - 1 more; the record after each."""
    records = [round_record(1, tree_memory(pid), first)]
    for n in range(2, s.rounds + 1):
        done = [run_phase(service, p, bodies[p.endpoint]) for p in round_phases(config, s)]
        records.append(round_record(n, tree_memory(pid), done))
    log("  RSS after rounds: " + " / ".join(
        "-" if r["rss_mb"] is None else f"{r['rss_mb']:,.0f} MB" for r in records)
        + f"; failed in rounds 2-{s.rounds}: {sum(r['failed'] or 0 for r in records[1:]):g}")
    return records
