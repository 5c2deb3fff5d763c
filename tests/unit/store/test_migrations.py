"""Schema versions on both backends: a fresh store and earlier releases' ledgers migrated, two
migrators at once, workers that refuse an older schema and run on a newer compatible one, and
the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ledger_support import EXP, counts, dec, raw, run_workers
from migration_support import (
    _migrator,
    _opener,
    earlier_ledger,
    future,
    incompatible,
    is_pg,
)

from fraud.store.migrate import migrate
from fraud.store.migrations import LATEST, MIGRATIONS, REQUIRED
from fraud.store.version import SchemaMismatch
from fraud.store.writer import Ledger


def versions(store: str) -> list[tuple[int, str, str]]:
    return [(int(v), name, how) for v, name, how in raw(
        store, "SELECT version, name, how FROM schema_version ORDER BY version")]


def columns(store: str) -> set[str]:
    if is_pg(store):
        return {r[0] for r in raw(store, "SELECT column_name FROM information_schema.columns"
                                         " WHERE table_name = 'decisions'")}
    return {r[1] for r in raw(store, "PRAGMA table_info(decisions)")}


def test_a_fresh_store_gets_every_version_once(bare_db: str) -> None:
    first = migrate(bare_db)
    assert (first.before, first.after, first.applied) == (0, LATEST, list(range(1, LATEST + 1)))
    again = migrate(bare_db)
    assert (again.before, again.after, again.applied) == (LATEST, LATEST, [])
    assert "nothing to apply" in again.summary()
    assert versions(bare_db) == [(1, "base", "applied"), (2, "shadow", "applied"),
                                 (3, "counted", "applied"), (4, "looks", "applied"),
                                 (5, "selective labels", "applied")]


@pytest.mark.parametrize("release", [4, 1], ids=["previous-release", "first-postgres-release"])
def test_an_earlier_release_ledger_is_recognised_and_upgraded(bare_db: str, release: int) -> None:
    earlier_ledger(bare_db, release)
    if is_pg(bare_db):  # a PostgreSQL worker refuses it, saying what to run
        with pytest.raises(SchemaMismatch, match=rf"unversioned schema of an earlier release "
                                                 rf"\(version {release}\).*needs schema version "
                                                 rf"{REQUIRED}.*python -m fraud.store.migrate"):
            Ledger(bare_db)
    else:
        with pytest.raises(SchemaMismatch, match="unversioned"):
            Ledger(bare_db, migrate=False)
    outcome = migrate(bare_db)
    assert (outcome.recognised, outcome.applied) == (release, list(range(release + 1, LATEST + 1)))
    assert [how for _, _, how in versions(bare_db)] == \
        ["recognised"] * release + ["applied"] * (LATEST - release)
    assert {"amount", "shadow_probability", "shadow_is_fraud", "counted"} <= columns(bare_db)
    with Ledger(bare_db) as led:
        # The earlier release's decisions and counts are kept; this release adds to them.
        assert led.lookup("old-3") is not None and led.get_label("old-1") is True
        before = led.aggregates(EXP)[0]
        assert counts(before["model_a"]) == (1, 2, 1, 0, 1, 1, 0, 0, 0)
        led.record([dec("new-1", user="ann", flagged=True), dec("new-2", user="cat")]).result()
        assert led.label("new-1", False) == "created"
        assert led.label("old-2", True) == "created"
        after = led.aggregates(EXP)
        assert counts(after[0]["model_a"]) == (2, 4, 2, 0, 3, 1, 1, 1, 0)
        assert counts(after[0]["model_a"]) == counts(led.aggregates(EXP, scan=True)[0]["model_a"])
        assert led.save_look(EXP, {"n": 1}, marks="m", min_gap_s=0, max_looks=10)


def test_two_migrators_at_once_one_waits_one_applies(bare_db: str) -> None:
    out = run_workers(2, lambda w, start, results: (_migrator, (bare_db, w, start, results)))
    (b1, a1, applied1, _), (b2, a2, applied2, waited2) = sorted(
        out.values(), key=lambda r: -len(r[2]))
    assert (b1, a1, applied1) == (0, LATEST + 1, list(range(1, LATEST + 2)))
    assert (b2, a2, applied2) == (LATEST + 1, LATEST + 1, [])  # found the work done
    assert waited2 > 0.2  # it waited for the lock while the other applied (a 1.5 s step)
    assert [v for v, _, _ in versions(bare_db)] == list(range(1, LATEST + 2))
    assert "reason" in columns(bare_db)


def test_workers_starting_together_on_a_fresh_sqlite_file_migrate_it_once(
        sqlite_db: Path) -> None:
    out = run_workers(3, lambda w, start, results: (_opener, (str(sqlite_db), w, start, results)))
    assert out == {0: LATEST, 1: LATEST, 2: LATEST}
    assert versions(str(sqlite_db)) == [(v, m.name, "applied") for v, m in
                                        enumerate(MIGRATIONS, start=1)]
    assert raw(str(sqlite_db), "SELECT COUNT(*) FROM decisions") == [(3,)]


def test_a_worker_refuses_an_older_schema_and_runs_on_a_newer_compatible_one(
        bare_db: str) -> None:
    migrate(bare_db, target=REQUIRED - 1)
    with pytest.raises(SchemaMismatch) as refused:
        Ledger(bare_db, migrate=False)
    message = str(refused.value)
    assert f"schema version {REQUIRED - 1}" in message and f"needs version {REQUIRED}" in message
    assert "python -m fraud.store.migrate" in message
    if is_pg(bare_db):
        assert "s3cret" not in message  # the URL without its password
        with pytest.raises(SchemaMismatch):
            Ledger(bare_db)  # a PostgreSQL worker never migrates
        migrate(bare_db)
    with Ledger(bare_db) as led:  # SQLite: the worker's own migration, under the same lock
        led.record(dec("a")).result()
    # A later release's additive migration: this release keeps running on it (an undo).
    assert migrate(bare_db, migrations=future()).applied == [LATEST + 1]
    with Ledger(bare_db) as led:
        assert led.backend.schema_version == LATEST + 1  # type: ignore[attr-defined]
        led.record(dec("b")).result()
        assert led.lookup("b") is not None
        assert counts(led.aggregates(EXP)[0]["model_a"])[:2] == (2, 2)
    # A later release's breaking change: refused, saying which release it needs.
    migrate(bare_db, migrations=incompatible())
    with pytest.raises(SchemaMismatch, match=rf"schema version {LATEST + 2}, which needs a "
                                             rf"release that knows version {LATEST + 2}"):
        Ledger(bare_db)
    assert [v for v, _, _ in versions(bare_db)][-1] == LATEST + 2  # never taken back


def test_the_command_line(bare_db: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fraud.store.migrate", "--ledger", bare_db,
                               *args], capture_output=True, text=True, timeout=120)

    done = run("--target", "2")
    assert done.returncode == 0 and "applied 1, 2" in done.stdout, done.stderr
    check = run("--check")
    assert check.returncode == 1 and f"needs version {REQUIRED}" in check.stderr
    done = run("--lock-timeout", "2", "--statement-timeout", "60")
    assert done.returncode == 0 and f"version 2 -> version {LATEST}" in done.stdout, done.stderr
    check = run("--check")
    assert check.returncode == 0 and f"schema version {LATEST}" in check.stdout
    if is_pg(bare_db):
        assert "s3cret" not in done.stdout + check.stdout
