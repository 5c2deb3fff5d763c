"""fraud.stats.labels: the row contract, the label rates by decision and label_bias."""

from __future__ import annotations

import json

import numpy as np
import pytest
from label_rows import ROWS, make, rows

from fraud.stats.cluster import user_codes
from fraud.stats.labels import (
    LABEL_FIELDS,
    ArmLabels,
    LabelUsers,
    arms_differ,
    arms_label_bias,
    label_bias,
    label_rates,
    report,
)


def test_the_contract_order_is_stable() -> None:
    """The ledger's SQL is written to this order: changing it breaks the ledger."""
    assert LABEL_FIELDS == (
        "n", "flagged", "explored", "labelled_declined", "labelled_approved", "fraud_approved",
        "fraud_explored_w", "explored_w", "fraud_declined_labelled", "other_flagged",
        "other_fraud_approved", "other_fraud_explored_w", "other_flagged_explored_w")


def test_from_rows_keeps_ids_and_aligns_columns() -> None:
    u = rows()
    assert u.users == 3 and list(u.ids) == list(user_codes(["u1", "u2", "u3"]))
    assert len(set(u.ids.tolist())) == 3 and u.ids.dtype == np.int64
    assert u.n.tolist() == [10, 6, 20] and u.fraud_explored_w.tolist() == [2, 0, 2]
    assert u.declined.tolist() == [2, 2, 1] and u.approved.tolist() == [8, 4, 19]
    assert u.fraud_w.tolist() == [3, 0, 4] and u.fraud_users == 2
    nulls = LabelUsers.from_rows([("x", 5, None, *([0] * 11))])
    assert nulls.flagged.tolist() == [0.0]
    assert LabelUsers.empty().users == 0


def test_label_rates_by_hand() -> None:
    out = label_rates(rows())
    assert out["declined"]["value"] == pytest.approx(3 / 5)
    assert out["approved"]["value"] == 1.0  # the maturity convention: all known
    assert out["approved_labelled"]["value"] == pytest.approx(5 / 31)
    assert out["gap"] == pytest.approx(0.4)
    assert (out["declined_decisions"], out["approved_decisions"]) == (5, 31)
    # the declined share over users: terms (lab - 0.6 decl) / 5 = (0.2, 0.16, -0.12)
    z = np.array([1 - 0.6 * 2, 2 - 0.6 * 2, 0 - 0.6 * 1]) / 5
    assert out["declined"]["std_error"] == pytest.approx(np.sqrt(3 / 2 * np.sum(z**2)))


def test_label_bias_cases() -> None:
    u = rows()
    assert label_bias(u, 0.1, exploring=False) is True
    assert label_bias(u, 0.5, exploring=False) is False  # 0.4 is within 0.5
    assert label_bias(u, 0.1, exploring=True) is False  # exploration: IPW, not label_bias
    nothing_declined = make(n=[5.0, 3.0])
    assert label_bias(nothing_declined, 0.1, exploring=False) is None
    all_reviewed = make(n=[5.0, 3.0], flagged=[1.0, 2.0], labelled_declined=[1.0, 2.0])
    assert label_bias(all_reviewed, 0.1, exploring=False) is False


def test_arms_label_bias_and_arms_differ() -> None:
    reviewed = make(n=[5.0, 3.0], flagged=[1.0, 2.0], labelled_declined=[1.0, 2.0])
    assert arms_label_bias(ArmLabels(rows(), reviewed), 0.1)
    assert not arms_label_bias(ArmLabels(reviewed, reviewed), 0.1)
    assert not arms_label_bias(ArmLabels(rows(), reviewed, exploring=True), 0.1)
    assert arms_differ(ArmLabels(rows(), reviewed), 0.1)  # 0.6 vs 1.0
    assert not arms_differ(ArmLabels(rows(), rows()), 0.1)  # both selected alike
    assert not arms_differ(ArmLabels(rows(), None), 0.1)
    assert ArmLabels(rows(), LabelUsers.empty()).arms().keys() == {"model_a"}


def test_report_is_json_clean() -> None:
    out = report(ArmLabels(rows(), make(n=[1.0])), 0.1)
    text = json.dumps(out, allow_nan=False)
    assert "NaN" not in text
    assert out["label_bias"] is True and out["per_arm"]["model_b"]["label_bias"] is None
    assert out["per_arm"]["model_a"]["fraud_declined_labelled"] == 1


def test_rows_match_the_documented_example() -> None:
    assert len(ROWS[0]) == 1 + len(LABEL_FIELDS)
