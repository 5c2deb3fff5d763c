"""The HTTP edge: error shape, OpenAPI and contract, keys, middleware, rate limit, views, and
the routes' work (scoring.py: predict, batch, explain; operations.py: the rest).

May import serving, report, experiment, stats, store, schema and config; nothing below
imports it.
"""
