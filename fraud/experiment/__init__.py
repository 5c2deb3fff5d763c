"""The A/B experiment's rules: its state, one look, decisions, guardrails and promotion.

May import stats, store, schema and config; never bentoml, HTTP or serving code.
"""
