"""Helpers of the migration tests: ledgers as earlier releases left them, migrations of a
future release, and a migrator process (a spawn target, importable by module name)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ledger_support import dec

from fraud.store.backend import Conn
from fraud.store.dialect import Dialect
from fraud.store.migrate import migrate
from fraud.store.migrations import LATEST, MIGRATIONS, Migration
from fraud.store.writer import Ledger

HERE = Path(__file__).parent


def is_pg(store: str) -> bool:
    return store.startswith("postgresql://")


def execute(store: str, statements: list[str]) -> None:
    """Run statements in one transaction with a plain connection (no ledger involved)."""
    if is_pg(store):
        import psycopg

        with psycopg.connect(store) as conn:
            for s in statements:
                conn.execute(s)
        return
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(store)
    with conn:
        for s in statements:
            conn.execute(s)
    conn.close()


def previous_release_statements(store: str) -> list[str]:
    """The DDL the previous release ran on a fresh store (captured from it, see the files)."""
    name = "previous_release_postgres.sql" if is_pg(store) else "previous_release_sqlite.sql"
    text = (HERE / name).read_text()
    out = []
    for chunk in text.split("\n-- ;;\n"):
        body = "\n".join(line for line in chunk.splitlines() if not line.startswith("-- "))
        if body.strip():
            out.append(body.strip())
    return out


# The same schema, taken back to version 1 (before shadow scoring, `counted` and looks), as the
# release that brought PostgreSQL left it: the columns and the table those versions added gone,
# `decisions_count` counting every row.
BACK_TO_VERSION_1 = {
    "sqlite": ["DROP TABLE looks", "DROP TRIGGER decisions_count",
               "ALTER TABLE decisions DROP COLUMN amount",
               "ALTER TABLE decisions DROP COLUMN shadow_probability",
               "ALTER TABLE decisions DROP COLUMN shadow_is_fraud",
               "ALTER TABLE decisions DROP COLUMN counted",
               "CREATE TRIGGER decisions_count AFTER INSERT ON decisions BEGIN {body} END"],
    "postgresql": ["DROP TABLE looks", "DROP TRIGGER decisions_count ON decisions",
                   "ALTER TABLE decisions DROP COLUMN amount, DROP COLUMN shadow_probability,"
                   " DROP COLUMN shadow_is_fraud, DROP COLUMN counted",
                   "CREATE TRIGGER decisions_count AFTER INSERT ON decisions"
                   " FOR EACH ROW EXECUTE FUNCTION decisions_count()"],
}
OLD_ROWS = [("old-1", 1.0, "ann", "model_a", "fraud_a:old", 0.9, 1, 3.0, "predict", 1, 0),
            ("old-2", 2.0, "ann", "model_a", "fraud_a:old", 0.1, 0, 4.0, "predict", 1, 0),
            ("old-3", 3.0, "bob", "model_b", "fraud_b:old", 0.2, 0, 5.0, "batch", 1, 0)]
INSERT_OLD = ("INSERT INTO decisions (request_id, ts, user_id, arm, model_tag, probability,"
              " is_fraud, latency_ms, source, experiment_id, period) VALUES ({})")


def earlier_ledger(store: str, version: int) -> None:
    """An unversioned ledger as an earlier release left it (version 4: the previous release,
    1: the first with PostgreSQL), with three decisions counted by its trigger, one labelled."""
    from fraud.store.ddl import ON_DECISION

    statements = previous_release_statements(store)
    if version == 1:
        dialect = "postgresql" if is_pg(store) else "sqlite"
        statements += [s.format(body=ON_DECISION) for s in BACK_TO_VERSION_1[dialect]]
    rows = [INSERT_OLD.format(", ".join(_literal(v) for v in row)) for row in OLD_ROWS]
    execute(store, [*statements, *rows, "INSERT INTO labels (request_id, is_fraud, ts)"
                                        " VALUES ('old-1', 1, 10.0)"])


def _literal(v: Any) -> str:
    return f"'{v}'" if isinstance(v, str) else repr(v)


def _add_note(conn: Conn, d: Dialect) -> None:
    d.add_column(conn, "decisions", "note", "TEXT")


def _slow_add_reason(conn: Conn, d: Dialect) -> None:
    time.sleep(1.5)  # long enough that a second migrator arrives while this one holds the lock
    d.add_column(conn, "decisions", "reason", "TEXT")


def future(*, compatible_from: int = 1, slow: bool = False) -> tuple[Migration, ...]:
    """This release's migrations and one of a later release: a nullable column on decisions
    (additive: `compatible_from` 1 keeps this release running on it)."""
    step = _slow_add_reason if slow else _add_note
    return (*MIGRATIONS, Migration(LATEST + 1, "future", step, compatible_from=compatible_from,
                                   locks=("decisions",)))


def incompatible() -> tuple[Migration, ...]:
    """Two later versions, the second one older releases cannot run on."""
    return (*future(), Migration(LATEST + 2, "breaking", lambda c, d: None,
                                 compatible_from=LATEST + 2))


def _migrator(store: str, worker: int, start: Any, results: Any) -> None:
    start.wait(30)
    outcome = migrate(store, migrations=future(slow=True), wait=60.0)
    results.put((worker, (outcome.before, outcome.after, outcome.applied, outcome.waited)))


def _opener(store: str, worker: int, start: Any, results: Any) -> None:
    """A worker process starting on the store (as `make serve`'s workers do on a fresh file)."""
    start.wait(30)
    with Ledger(store) as led:
        led.record(dec(f"w{worker}")).result()
        results.put((worker, led.backend.schema_version))  # type: ignore[attr-defined]
