"""The documented PostgreSQL worker role (fraud/store/worker_role.sql), applied with psql as the
file says, on a real server: a ledger opened with it does everything a worker does, and it
cannot change the schema."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from ledger_support import EXP, IDENTITY, counts, dec, err, raw
from migration_support import future

import fraud.store
from fraud.store.migrate import migrate
from fraud.store.migrations import LATEST
from fraud.store.writer import Ledger

pytestmark = pytest.mark.postgres
ROLE_SQL = Path(fraud.store.__file__).parent / "worker_role.sql"
DDL = ("CREATE TABLE intruder (i INTEGER)",
       "ALTER TABLE decisions ADD COLUMN intruder INTEGER",
       "CREATE INDEX intruder ON decisions (ts)",
       "DROP TRIGGER decisions_count ON decisions",
       "CREATE OR REPLACE FUNCTION decisions_count() RETURNS trigger LANGUAGE plpgsql"
       " AS $$ BEGIN RETURN NULL; END $$",
       "TRUNCATE decisions",
       "DROP TABLE looks",
       "INSERT INTO schema_version VALUES (99, 'x', 1, 'applied', 0)")


def worker_role(postgres: Any, owner_url: str, tmp_path: Path) -> str:
    """The role made by worker_role.sql (a unique name: roles are per server); its URL."""
    role, password = f"fraudserve_worker_{uuid.uuid4().hex[:8]}", "worker-pw-1"
    script = tmp_path / "worker_role.sql"
    script.write_text(ROLE_SQL.read_text().replace("fraudserve_worker", role))
    subprocess.run([str(postgres.bin / "psql"), owner_url, "-v", "ON_ERROR_STOP=1", "-q",
                    "-v", f"worker_password={password}", "-f", str(script)],
                   check=True, capture_output=True, text=True, timeout=60)
    user = owner_url.split("//", 1)[1].split("@", 1)[0]
    return owner_url.replace(f"//{user}@", f"//{role}:{password}@", 1)


def test_a_ledger_opened_with_the_worker_role_works_and_cannot_run_ddl(
        postgres: Any, tmp_path: Path) -> None:
    import psycopg

    owner = postgres.create_database()
    migrate(owner, target=3)
    worker = worker_role(postgres, owner, tmp_path)
    migrate(owner)  # version 4 creates `looks` after the grants: default privileges cover it
    with Ledger(worker) as led:
        rec, _ = led.current_experiment(IDENTITY, "t0")
        assert rec.id == EXP
        led.record([dec("w1", flagged=True), dec("w2", ts=1.0)]).result()
        led.record_errors([err("u-w1")])
        assert led.label("w1", True) == "created"
        assert led.mature(100.0) == 1  # w2
        assert led.compare_and_set(rec.id, rec.version, {"n": 1})
        led.set_state("k", {"v": 1})
        assert led.save_look(rec.id, {"n": 1}, marks="m", min_gap_s=0, max_looks=10)
        assert led.probe()
        assert counts(led.aggregates(EXP)[0]["model_a"]) == (2, 2, 1, 1, 1, 1, 0, 0, 1)
        assert led.prune(50.0) == 1 and led.prune_looks(0.0) == 0
    with psycopg.connect(worker, autocommit=True) as conn:
        for statement in DDL:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        migrate(worker, migrations=future())  # nor can it run the migrator
    assert int(raw(owner, "SELECT MAX(version) FROM schema_version")[0][0]) == LATEST
    assert raw(owner, "SELECT COUNT(*) FROM decisions")[0][0] == 1
