"""The A/B experiment's rules: its state, one look, decisions, guardrails and promotion, and
the watch that applies them every second in each API worker; exploration (exploration.py:
the draw and eligibility; budget.py: a worker's lease of the day's budget) and what a look
reads beyond the running sums (evidence.py: label rows, label rates, exploration; abstats.py:
the arms' and the experiment's blocks of /ab-stats).

May import stats, store, schema and config; never bentoml, HTTP or serving code.
"""
