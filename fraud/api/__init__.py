"""The HTTP edge: error shape, OpenAPI and contract, keys, middleware, rate limit, views.

May import serving, experiment, stats, store, schema and config; nothing below imports it.
"""
