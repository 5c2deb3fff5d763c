"""The router's explainers and drift windows, one per arm.

The router holds them because it sees every API worker's traffic: each scored row joins its
arm's drift window (`observe`; explanations do not), a thread refreshes the drift gauges every
drift check interval (`publish_drift_every`), and GET /drift and POST /explain ask the router.
An arm whose model is not a tree ensemble has no explainer, and one trained before drift
references were stored has no window (None in both cases: retrain with `make train`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from fraud.config import DriftSettings
from fraud.drift import DriftMonitor
from fraud.experiment.decisions import ArmModel
from fraud.explain import ExplainUnsupported, TreeExplainer

log = logging.getLogger("fraudserve")


class DriftGauges(Protocol):
    def publish_drift(self, arm: str, report: dict[str, Any]) -> None:
        """Set one arm's drift gauges from its window's report."""


def explainer(estimator: Any, reasons: int) -> TreeExplainer | None:
    """The model's TreeSHAP explainer with `reasons` reason codes (its leaf table is built
    once, here), or None when the model is not a tree ensemble."""
    try:
        return TreeExplainer(estimator, top=reasons)
    except ExplainUnsupported:
        return None


def drift_monitor(model: ArmModel, settings: DriftSettings) -> DriftMonitor | None:
    """The arm's drift window over its model's training reference; None for a model trained
    before references were stored (retrain: make train)."""
    reference = model.metadata.get("drift_reference")
    return DriftMonitor(reference, settings) if reference else None


def observe(monitors: Mapping[str, DriftMonitor | None], rows: np.ndarray) -> None:
    """Every scored row joins its arm's window: column 0 of `rows` is the arm's index in
    `monitors`, the rest are the features."""
    for i, monitor in enumerate(monitors.values()):
        if monitor is not None:
            monitor.observe(rows[rows[:, 0] == i, 1:])


def publish_drift(gauges: DriftGauges, monitors: Mapping[str, DriftMonitor | None]) -> None:
    """One refresh of every arm's drift gauges; an arm that fails is logged, the others go on."""
    for arm, monitor in monitors.items():
        if monitor is not None:
            try:
                gauges.publish_drift(arm, monitor.report())
            except Exception:  # keep publishing; the next round retries
                log.exception("drift gauges of %s failed", arm)


def publish_drift_every(interval_s: float, gauges: DriftGauges,
                        monitors: Mapping[str, DriftMonitor | None],
                        sleep: Callable[[float], Any] = time.sleep) -> None:
    """Refresh the drift gauges every `interval_s`, for ever (a daemon thread's target)."""
    while True:
        sleep(interval_s)
        publish_drift(gauges, monitors)
