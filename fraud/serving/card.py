"""The served models' card (GET /model-card): the one `make build` bundled when it describes
exactly the models being served, else one made at start-up from their metadata and the gate
report (fraud/model_card.py has the rule), with its markdown rendered once.

A card that cannot be made is not fatal: scoring is unaffected, and the route answers 503
saying why (`ServedCard.problem`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud import model_card
from fraud.config import PROJECT_ROOT
from fraud.experiment.decisions import ArmModel
from fraud.report.card import to_markdown
from fraud.serving.readiness import report_path

log = logging.getLogger("fraudserve")
# `make build` (gating/build.py) writes the card of the gated models here; the bento has it.
CARD_FILE = PROJECT_ROOT / "reports" / "build" / "model_card.json"


@dataclass(frozen=True)
class ServedCard:
    """The card and where it came from, or why there is none."""

    card: dict[str, Any] | None
    source: str  # "build", "startup", or "none"
    problem: str | None = None  # why there is no card
    markdown: str = ""
    public_markdown: str = ""  # without the thresholds (model_card.public)

    def as_json(self, *, admin: bool = True) -> dict[str, Any]:
        """The JSON answer: the card with its `source`; without an admin key, its public
        view (no thresholds)."""
        card = self.card or {}
        return {**(card if admin or not card else model_card.public(card)),
                "source": self.source}


def served_card(models: Mapping[str, ArmModel], card_file: Path = CARD_FILE,
                gate_report: Path | None = None) -> ServedCard:
    """The card of `models`: the bundled `card_file` when it describes them, else one made
    now from their metadata and the gate report (FRAUDSERVE_GATE_REPORT or the project's)."""
    metadata = {arm: {"tag": m.tag, "metadata": m.metadata} for arm, m in models.items()}
    try:
        card, source = model_card.for_served(metadata, card_file, gate_report or report_path())
    except Exception as exc:  # the route answers 503 saying why; scoring is unaffected
        log.exception("model card failed")
        return ServedCard(None, "none", f"{exc.__class__.__name__}: {exc}")
    if not card:
        return ServedCard(card, source)
    return ServedCard(card, source, markdown=to_markdown({**card, "source": source}),
                      public_markdown=to_markdown({**model_card.public(card),
                                                   "source": source}))
