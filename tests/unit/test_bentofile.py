"""bentofile.yaml: the Swagger page's description and what the bento bundles."""

from __future__ import annotations

import json
import re

import yaml

from fraud.config import PROJECT_ROOT
from fraud.schema import EXAMPLE_TRANSACTION
from gating.build import BUNDLED_REPORT, CARD_FILE, CARD_MD

BENTOFILE = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())


def test_description_is_ours_and_its_example_is_the_schemas() -> None:
    text = BENTOFILE["description"]
    assert "created with BentoML" not in text and "Slack" not in text
    body = re.search(r"-d '(\{.*\})'", text)
    assert body and json.loads(body.group(1)) == EXAMPLE_TRANSACTION
    for words in ("Authorization: Bearer <key>", "Authorize", "(./report)", "(./model-card)"):
        assert words in text


def test_the_bento_bundles_the_gate_report_and_the_model_card() -> None:
    include = BENTOFILE["include"]
    for path in (BUNDLED_REPORT, CARD_FILE, CARD_MD):
        assert str(path.relative_to(PROJECT_ROOT)) in include
