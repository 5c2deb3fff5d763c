"""What a worker checks when it opens the ledger: that the schema is one this release runs on.

Older than `REQUIRED` (or unversioned): refuse, naming the version needed and the command that
applies it. Newer than this release knows: run if the newest version applied declares it
compatible (its `compatible_from` is at most this release's `LATEST`), which is what lets an
undo to the previous release keep running after a migration; refuse otherwise. A read only:
no DDL, no write lock.
"""

from __future__ import annotations

from fraud.store.backend import Conn
from fraud.store.dialect import Dialect
from fraud.store.migrations import LATEST, REQUIRED, current, legacy_version

MIGRATE_COMMAND = 'python -m fraud.store.migrate --ledger "$FRAUDSERVE_LEDGER"'


class SchemaMismatch(RuntimeError):
    """The ledger's schema is not one this release runs on; the message says what to do."""


def check(conn: Conn, d: Dialect, where: str, *, required: int = REQUIRED,
          known: int = LATEST) -> int:
    """The ledger's schema version, or SchemaMismatch saying why this release cannot use it."""
    found = current(conn, d)
    if found is None or found[0] == 0:
        legacy = legacy_version(conn, d)
        what = ("has no schema" if legacy == 0 and not d.has_table(conn, "decisions") else
                f"has the unversioned schema of an earlier release (version {legacy})")
        raise SchemaMismatch(f"the ledger at {where} {what}; this release needs schema version "
                             f"{required}: run `{MIGRATE_COMMAND}` (as a role that may change "
                             "the schema) before starting the workers")
    version, compatible_from = found
    if version < required:
        raise SchemaMismatch(f"the ledger at {where} is at schema version {version}; this "
                             f"release needs version {required}: run `{MIGRATE_COMMAND}` (as a "
                             "role that may change the schema) before starting the workers")
    if compatible_from > known:
        raise SchemaMismatch(f"the ledger at {where} is at schema version {version}, which "
                             f"needs a release that knows version {compatible_from} or later; "
                             f"this release knows versions up to {known}: deploy a newer "
                             "release")
    return version
