"""Simulations of the experiment through fraud/'s own code (not shipped in the bento).

`python -m simulations.ab`, `.paired`, `.drift`: the tables docs/statistics.md and
docs/explain-and-drift.md quote; `.labels` and `.calibration`: selective labels, exploration
and the promotion rule, docs/selective-labels.md.
"""
