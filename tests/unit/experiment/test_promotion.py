"""The promotion rule on constructed reports."""

from __future__ import annotations

from typing import Any

import pytest

from fraud.experiment.promotion import evidence, promotion_refusal


def report(split: str, pair: str | None = None, rolled_back: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"primary": {"verdict": split, "p_value": 0.01},
                           "experiment": {"rolled_back": rolled_back,
                                          "rollback_reason": "flag rate" if rolled_back else None}}
    if pair is not None:
        out["paired"] = {"verdict": pair, "test": {"p_value": 0.001}}
    return out


@pytest.mark.parametrize(("split", "pair", "allowed", "basis"), [
    ("challenger_better", None, True, "split"),
    ("collecting", "challenger_better", True, "paired"),
    ("no_difference", "challenger_better", True, "paired"),
    ("challenger_worse", "challenger_better", False, "paired"),  # customers disagree
    ("collecting", "collecting", False, "none"),
    ("collecting", None, False, "none"),
    ("challenger_better", "challenger_worse", True, "split"),
])
def test_rule(split: str, pair: str | None, allowed: bool, basis: str) -> None:
    refusal = promotion_refusal(report(split, pair))
    assert (refusal is None) == allowed, refusal
    assert evidence(report(split, pair)) == basis
    if not allowed:
        assert f"verdict is {split!r}" in refusal


def test_a_rolled_back_challenger_is_not_promoted() -> None:
    refusal = promotion_refusal(report("challenger_better", rolled_back=True))
    assert refusal is not None and "rolled back (flag rate)" in refusal
