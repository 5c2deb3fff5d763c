"""Pure statistics on per-user aggregates: ratio metrics, sequential tests, paired and split
comparisons.

May import schema and config only: no storage, no HTTP, no bentoml, no I/O.
"""
