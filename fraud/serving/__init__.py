"""The scoring path: coalescing, the router (scoring by arm, explainers, drift windows) and the
calls to it, fast predict, model lookup, readiness, the served card, process policy and
telemetry.

May import experiment, report, stats, store, schema and config (and bentoml); never api.
"""
