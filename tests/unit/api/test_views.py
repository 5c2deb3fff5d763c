"""GET /ab-stats: the public view drops the salt and thresholds, the admin view keeps all."""

from __future__ import annotations

import copy

from fraud.api.views import ab_stats_view

REPORT = {
    "model_a": {"total_predictions": 10, "threshold": 0.735, "model_tag": "fraud_rf:a"},
    "model_b": {"total_predictions": 12, "threshold": 0.48, "model_tag": "fraud_hgb:b"},
    "sample_ratio": {"p_value": 0.4},
    "experiment": {"id": 3, "salt": "fraudserve-ab-1", "configured_share": 0.5},
    "paired": {"same_flag_rate": {"flag_rate": 0.02, "threshold_a": 0.7, "threshold_b": 0.5,
                                  "recall_a": 0.8, "recall_b": 0.81}},
}


def test_public_view_drops_exactly_the_salt_and_thresholds() -> None:
    before = copy.deepcopy(REPORT)
    public = ab_stats_view(REPORT, admin=False)
    assert before == REPORT  # the report itself is untouched
    assert public["model_a"] == {"total_predictions": 10, "model_tag": "fraud_rf:a"}
    assert public["model_b"] == {"total_predictions": 12, "model_tag": "fraud_hgb:b"}
    assert public["experiment"] == {"id": 3, "configured_share": 0.5}
    assert public["paired"]["same_flag_rate"] == {"flag_rate": 0.02, "recall_a": 0.8,
                                                  "recall_b": 0.81}
    assert public["sample_ratio"] == REPORT["sample_ratio"]


def test_admin_view_is_the_whole_report() -> None:
    assert ab_stats_view(REPORT, admin=True) == REPORT


def test_missing_or_null_blocks_are_fine() -> None:
    report = {"model_a": {"threshold": 0.7}, "model_b": {}, "experiment": {"salt": "s"},
              "paired": {"same_flag_rate": None}}
    assert ab_stats_view(report, admin=False) == {
        "model_a": {}, "model_b": {}, "experiment": {}, "paired": {"same_flag_rate": None}}
    assert ab_stats_view({}, admin=False) == {}
