"""The A/B experiment's rules: its state, one look, decisions, guardrails and promotion, and
the watch that applies them every second in each API worker.

May import stats, store, schema and config; never bentoml, HTTP or serving code.
"""
