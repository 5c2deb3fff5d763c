"""The ledger: decisions, labels, experiments and their history, on SQLite or PostgreSQL.

May import stats (its aggregate types), schema and config; never experiment, api or bentoml.
"""
