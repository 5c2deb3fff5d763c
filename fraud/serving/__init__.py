"""The scoring path: coalescing, router-side scoring, fast predict, model lookup, readiness,
process policy and telemetry.

May import experiment, report, stats, store, schema and config (and bentoml); never api.
"""
