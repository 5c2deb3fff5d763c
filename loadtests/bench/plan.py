"""The bench's plan: which services it benches, in order, and what each one runs.

A `Step` is one service: its config name (the phases' label), a URL when it is benched as it
runs (`--url`), the environment it is started with, and its parts: /noop beside /predict (the
framework's floor), /predict_batch with `--batch-clients`, the heavy bulk phases (16 bulk
clients; bulk and single clients at once), the ledger (the SQLite file in the report
directory, or a PostgreSQL server the bench starts) and how many rounds of load it gets (the
RSS after each shows whether memory levels off).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

POSTGRES = "postgres"  # the config name of the service whose ledger is on PostgreSQL
DEFAULT = "default"  # the shipped configuration
ADAPTIVE = "adaptive batching"  # FRAUDSERVE_BATCHING=1: coalesced batches through `score`


@dataclass(frozen=True)
class Step:
    """One service of the run and the parts of the bench it gets."""

    config: str
    url: str | None = None             # benched as it runs (no start-up, no ledger chosen)
    env: dict[str, str] = field(default_factory=dict)
    noop: bool = False                 # /noop closed and open loop (the framework's floor)
    bulk: bool = False                 # /predict_batch closed loop, --batch-clients
    heavy: bool = False                # /predict_batch with --batch-clients-many; mixed phase
    ledger: str = "sqlite"             # "sqlite" (a fresh file) or "postgres" (a fresh server)
    rounds: int = 1                    # rounds of load; RSS recorded after each when > 1
    paired: bool = False               # alternating (/predict, /noop) pairs (report_pairs.py)

    @property
    def full(self) -> bool:
        return self.noop or self.bulk


def plan(args: argparse.Namespace, guard_env: dict[str, str]
         ) -> tuple[dict[str, str | None], list[Step]]:
    """The configs (on/before/off/shadow/postgres names) and the services to bench."""
    rounds = max(1, args.rounds)
    if args.url:
        configs: dict[str, str | None] = {"on": "as running", "off": None, "shadow": None}
        steps = [Step("as running", args.url, noop=True, bulk=True, heavy=True, rounds=rounds,
                      paired=True)]
        if args.url_off:
            configs["off"] = ADAPTIVE
            steps.append(Step(ADAPTIVE, args.url_off, paired=True))
        return configs, steps
    # "on" is the shipped default (coalesced batches to the router's score_bulk); "off" the
    # other design, adaptive batching (FRAUDSERVE_BATCHING=1); "before" the design before
    # coalescing (every request its own call, merged only by adaptive batching).
    configs = {"on": DEFAULT, "before": "coalescing off", "off": ADAPTIVE,
               "shadow": None if args.no_shadow else "shadow on"}
    steps = [Step(DEFAULT, env={"FRAUDSERVE_BATCHING": "0", **guard_env}, noop=True,
                  bulk=True, heavy=True, rounds=rounds, paired=True),
             Step("coalescing off", env={"FRAUDSERVE_BATCHING": "1", "FRAUDSERVE_COALESCE": "0",
                                         **guard_env}),
             Step(ADAPTIVE, env={"FRAUDSERVE_BATCHING": "1", **guard_env}, paired=True)]
    if not args.no_shadow:
        steps.append(Step("shadow on", env={"FRAUDSERVE_BATCHING": "0",
                                            "FRAUDSERVE_SHADOW": "1", **guard_env},
                          paired=True))
    if not args.no_postgres:  # the shipped default with its ledger on a PostgreSQL server
        configs["postgres"] = POSTGRES
        steps.append(Step(POSTGRES, env={"FRAUDSERVE_BATCHING": "0", **guard_env}, bulk=True,
                          heavy=True, ledger="postgres"))
    return configs, steps
