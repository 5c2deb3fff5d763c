"""Apply the ledger's schema migrations, apart from serving:

    python -m fraud.store.migrate [--ledger URL] [--target N] [--check]
        [--lock-timeout S] [--statement-timeout S] [--wait S]

Run it as a pre-deploy step or a Kubernetes Job, with a role that may change the schema,
before workers of a release that needs a newer schema start (they refuse an older one:
fraud/store/version.py). `--ledger` defaults to FRAUDSERVE_LEDGER, else the embedded default.
Two migrators at once are safe: one applies, the other waits for its lock and then finds
nothing to do. On PostgreSQL every step runs with `lock_timeout` and `statement_timeout`
(fraud/store/pg_migrate.py); on SQLite the migration is one transaction under the file's write
lock (a SQLite ledger also migrates itself when it opens: fraud/store/sqlite.py).

Settings, each a flag or an environment variable (seconds):
  FRAUDSERVE_MIGRATE_LOCK_TIMEOUT (5): how long a step may wait for a table lock; writers
      queue behind that wait, so keep it short and rerun if it fails.
  FRAUDSERVE_MIGRATE_STATEMENT_TIMEOUT (300): the longest one statement may run.
  FRAUDSERVE_MIGRATE_WAIT (600): how long to wait for another migrator.

With FRAUDSERVE_REQUIRE_SHARED_LEDGER=1 it refuses a SQLite ledger, as the service does
(fraud/store/guards.py). `--check` changes nothing: it prints the version and exits 1 if this
release cannot run on it. Exit status 0: the ledger is at the target (or compatible, with
--check); 1: it is not (the reason on stderr).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence

from fraud.store.backend import open_backend, redact, sqlite_path
from fraud.store.guards import SharedLedgerRequired, default_store, require_shared_ledger
from fraud.store.migrations import LATEST, MIGRATIONS, Migration, MigrationError, Outcome
from fraud.store.version import SchemaMismatch

DEFAULTS = {"lock_timeout": ("FRAUDSERVE_MIGRATE_LOCK_TIMEOUT", 5.0),
            "statement_timeout": ("FRAUDSERVE_MIGRATE_STATEMENT_TIMEOUT", 300.0),
            "wait": ("FRAUDSERVE_MIGRATE_WAIT", 600.0)}


def setting(name: str) -> float:
    """A migrator setting from its environment variable, else its default."""
    env, default = DEFAULTS[name]
    text = os.environ.get(env, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{env} must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"{env} must be positive, got {value}")
    return value


def is_postgres(store: str) -> bool:
    return re.match(r"postgres(ql)?(\+psycopg)?://", store) is not None


def migrate(store: str | os.PathLike[str], *, target: int | None = None,
            lock_timeout: float | None = None, statement_timeout: float | None = None,
            wait: float | None = None, migrations: Sequence[Migration] = MIGRATIONS) -> Outcome:
    """Bring the ledger at `store` (a path or URL) to `target` (default: the latest version);
    what was done. Raises MigrationError when a step cannot be applied."""
    text = os.fspath(store)
    wait = setting("wait") if wait is None else wait
    if is_postgres(text):
        from fraud.store.pg_migrate import migrate_postgres  # psycopg only when asked for

        return migrate_postgres(
            text, target=target, wait=wait, migrations=migrations,
            lock_timeout=setting("lock_timeout") if lock_timeout is None else lock_timeout,
            statement_timeout=(setting("statement_timeout") if statement_timeout is None
                               else statement_timeout))
    from fraud.store.sqlite import migrate_file

    return migrate_file(sqlite_path(text), target=target, wait=wait, migrations=migrations)


def check_only(store: str) -> str:
    """Whether this release's workers can open the ledger (raises SchemaMismatch if not)."""
    backend = open_backend(store, migrate=False)
    try:
        version = getattr(backend, "schema_version", "?")
    finally:
        backend.close()
    return f"ledger {backend.where}: schema version {version}; this release runs on it"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraud.store.migrate",
                                     description="Apply the ledger's schema migrations.")
    parser.add_argument("--ledger", default=None,
                        help="path or sqlite:/// or postgresql:// URL (default: "
                             "FRAUDSERVE_LEDGER, else the embedded default)")
    parser.add_argument("--target", type=int, default=None,
                        help=f"the version to reach (default: the latest, {LATEST})")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if this "
                        "release cannot run on the ledger's schema")
    for name in DEFAULTS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None,
                            help=f"seconds (default: {DEFAULTS[name][0]} or "
                                 f"{DEFAULTS[name][1]:g})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    store = args.ledger or default_store()
    try:
        require_shared_ledger(store)  # FRAUDSERVE_REQUIRE_SHARED_LEDGER=1: not a SQLite file
        if args.check:
            print(check_only(store))
            return 0
        outcome = migrate(store, target=args.target, lock_timeout=args.lock_timeout,
                          statement_timeout=args.statement_timeout, wait=args.wait)
    except (MigrationError, SchemaMismatch, SharedLedgerRequired, ValueError) as exc:
        print(f"fraud.store.migrate: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the store itself: unreachable, refused, permission
        print(f"fraud.store.migrate: ledger {redact(store)}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    if outcome.waited > 0.05:
        print(f"waited {outcome.waited:.1f}s for another migrator")
    print(outcome.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
