"""The ledger: decisions, labels, experiments and their history, on SQLite or PostgreSQL.

The Ledger (writer.py) with its mixins; the two backends (sqlite.py, postgres.py behind
backend.py); the schema as numbered versions (ddl.py's text, migrations.py's versions, applied
by `python -m fraud.store.migrate`, checked by workers in version.py); the PostgreSQL worker
role without DDL rights (worker_role.sql); start-up guards (guards.py).

May import stats (its aggregate types), schema and config; never experiment, api or bentoml.
"""
