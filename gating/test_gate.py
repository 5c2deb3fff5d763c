"""The metric gate. Each test records its checks in the gate report and fails with the model,
the metric, its value, the floor and the gap."""

from __future__ import annotations

import pytest

from fraud.schema import ARMS
from gating.core import (
    behaviour_checks,
    data_checks,
    metric_checks,
    non_inferiority_checks,
)


@pytest.mark.parametrize("arm", ARMS)
def test_held_out_data_is_unseen(shipped, record, arm):
    record(data_checks(shipped[arm]))


@pytest.mark.parametrize("arm", ARMS)
def test_metric_floors(shipped, gate_cfg, record, arm):
    record(metric_checks(shipped[arm], gate_cfg))


def test_challenger_non_inferior(shipped, gate_cfg, record):
    for arm in ARMS:  # both overall reports must exist before comparing
        if not shipped[arm].report:
            metric_checks(shipped[arm], gate_cfg)
    record(non_inferiority_checks(shipped["model_a"], shipped["model_b"], gate_cfg))


@pytest.mark.parametrize("arm", ARMS)
def test_behaviour(shipped, gate_cfg, record, arm):
    record(behaviour_checks(shipped[arm], gate_cfg))
