"""The ledger's schema as numbered versions, for both backends; fraud/store/migrate.py applies
them (never a PostgreSQL worker: fraud/store/version.py only checks).

Before versions existed, every worker ran the DDL below at start (`CREATE ... IF NOT EXISTS`,
`ADD COLUMN IF NOT EXISTS`); that history is now versions 1-4, each the schema change of one
release:

1. base: decisions, labels, experiments, per-user aggregates and their running sums, state; the
   triggers that keep the aggregates; the latency and maturity indexes. On SQLite it also
   upgrades a first-release file (per-arm tables dropped, three columns added).
2. shadow: the amount and the other model's score and decision on each decision.
3. counted: rows the writer counts itself; `decisions_count` only counts unmarked rows.
4. looks: the report page's history.
5. selective labels: each decision's exploration (`explored`, `propensity`), a label's
   `source`, the rows a bulk left `undecided` (user_stats, and arm_moments with the error
   rate's attempted = decisions + errors + undecided: its two triggers replaced), and the day's
   exploration budget (`exploration_budget`).

A ledger of an earlier release has no `schema_version` table: `legacy_version` recognises
which of these its schema already holds (steps are idempotent, so a partly recognised one is
safe), the migrator records them as "recognised" and applies the rest.

A new version is appended here, never edited once released. `compatible_from` is the oldest
schema version a release may know and still run on the result: an additive change (a column
with a default, a table, an index) keeps the previous value, so an undo to the previous
release runs on the newer schema; a change older code cannot live with (a dropped or renamed
column, a trigger that needs new columns filled) sets it to its own version. `locks` names
existing tables the step alters: PostgreSQL takes their ACCESS EXCLUSIVE locks first, under
`lock_timeout`, so a long transaction elsewhere makes the step fail fast, naming the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fraud.store import ddl
from fraud.store.backend import Conn
from fraud.store.dialect import Dialect


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Conn, Dialect], None]
    compatible_from: int = 1
    locks: tuple[str, ...] = ()


class MigrationError(RuntimeError):
    """A migration could not be applied (nothing of that version was kept); says why."""


@dataclass
class Outcome:
    """What one migrator run did."""

    where: str
    before: int  # the version found (a recognised earlier release counts as its version)
    after: int
    applied: list[int] = field(default_factory=list)
    recognised: int = 0  # an unversioned ledger of an earlier release: its version
    waited: float = 0.0  # seconds spent waiting for another migrator's lock

    def summary(self) -> str:
        found = (f"an unversioned ledger of an earlier release, recognised as version "
                 f"{self.recognised}" if self.recognised else f"schema version {self.before}")
        if not self.applied:
            return f"ledger {self.where}: {found}, nothing to apply"
        return (f"ledger {self.where}: {found} -> version {self.after} (applied "
                f"{', '.join(map(str, self.applied))})")


def _base(conn: Conn, d: Dialect) -> None:
    if d.name == "sqlite":  # the first release (SQLite only): per-arm counts replaced
        for statement in ddl.OBSOLETE:
            conn.execute(statement)
    d.script(conn, ddl.TABLES + ddl.MOMENTS_TABLE)
    for name, decl in ddl.FIRST_RELEASE_COLUMNS:
        d.add_column(conn, "decisions", name, decl)
    for name, table, event, condition, body in ddl.TRIGGERS:
        d.trigger(conn, name, table, event, "" if name == "decisions_count" else condition, body)
    d.script(conn, ddl.INDEXES)


def _shadow(conn: Conn, d: Dialect) -> None:
    for name, decl in ddl.SHADOW_COLUMNS:
        d.add_column(conn, "decisions", name, decl)


def _counted(conn: Conn, d: Dialect) -> None:
    d.add_column(conn, "decisions", *ddl.COUNTED_COLUMN)
    d.trigger(conn, *ddl.TRIGGERS[0])


def _looks(conn: Conn, d: Dialect) -> None:
    d.script(conn, ddl.LOOKS)


def _selective_labels(conn: Conn, d: Dialect) -> None:
    for name, decl in ddl.EXPLORATION_COLUMNS:
        d.add_column(conn, "decisions", name, decl)
    d.add_column(conn, "labels", *ddl.LABEL_SOURCE_COLUMN)
    d.add_column(conn, "user_stats", *ddl.UNDECIDED_COLUMN)
    d.add_column(conn, "arm_moments", *ddl.UNDECIDED_COLUMN)
    for trigger in ddl.TRIGGERS_V5:
        d.trigger(conn, *trigger)
    d.script(conn, ddl.EXPLORATION)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "base", _base, locks=("decisions",)),
    Migration(2, "shadow", _shadow, locks=("decisions",)),
    Migration(3, "counted", _counted, locks=("decisions",)),
    Migration(4, "looks", _looks),
    Migration(5, "selective labels", _selective_labels,
              locks=("decisions", "labels", "user_stats", "arm_moments")),
)
LATEST = MIGRATIONS[-1].version  # what this release's migrator brings a ledger to
REQUIRED = 5  # the oldest schema this release's workers run on (it writes `explored`, `source`)


def legacy_version(conn: Conn, d: Dialect) -> int:
    """The version an unversioned ledger already holds: 0 for an empty store or the first
    release's (version 1 upgrades it), else the last version whose changes are all there."""
    if not all(d.has_table(conn, t) for t in ("decisions", "user_stats", "arm_moments")):
        return 0
    columns = d.columns(conn, "decisions")
    if not {name for name, _ in ddl.FIRST_RELEASE_COLUMNS} <= columns:
        return 0
    steps = ({name for name, _ in ddl.SHADOW_COLUMNS} <= columns,
             ddl.COUNTED_COLUMN[0] in columns,
             d.has_table(conn, "looks"))
    version = 1
    for present in steps:
        if not present:
            break
        version += 1
    return version


def current(conn: Conn, d: Dialect) -> tuple[int, int] | None:
    """(version, compatible_from) of a versioned ledger; None if it has no version table."""
    if not d.has_table(conn, "schema_version"):
        return None
    version, compatible = conn.execute(
        "SELECT MAX(version), MAX(compatible_from) FROM schema_version").fetchone()
    return int(version or 0), int(compatible or 0)


def start(conn: Conn, d: Dialect, outcome: Outcome) -> int:
    """Inside the migration lock: the version table, and the version the ledger is at (an
    earlier release's recognised and recorded). Sets `outcome.before`."""
    d.script(conn, ddl.VERSION_TABLE)
    found = current(conn, d)
    if found is None or found[0] == 0:
        outcome.recognised = legacy_version(conn, d)
        for m in MIGRATIONS[:outcome.recognised]:
            record(conn, m, "recognised")
        outcome.before = outcome.recognised
    else:
        outcome.before = found[0]
    outcome.after = outcome.before
    return outcome.before


def todo(migrations: Sequence[Migration], version: int, target: int | None) -> list[Migration]:
    """The migrations after `version` up to `target` (default: all), in order."""
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise ValueError("migrations must be numbered 1, 2, 3, ... in order")
    return [m for m in migrations if version < m.version <= (target or len(migrations))]


def apply(conn: Conn, d: Dialect, m: Migration, outcome: Outcome) -> None:
    """One migration and its version row (the caller holds the transaction)."""
    m.apply(conn, d)
    record(conn, m, "applied")
    outcome.applied.append(m.version)
    outcome.after = m.version


def record(conn: Conn, m: Migration, how: str) -> None:
    conn.execute("INSERT INTO schema_version (version, name, compatible_from, how, applied_at)"
                 " VALUES (?, ?, ?, ?, ?)", (m.version, m.name, m.compatible_from, how,
                                             time.time()))
