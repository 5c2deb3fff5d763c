"""The report page (fraud/report/page.py) on real /ab-stats bodies and on constructed ones."""

from __future__ import annotations

import copy
import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from fraud.config import ABConfig, ShadowConfig, StatsSettings
from fraud.experiment.decisions import ArmModel
from fraud.experiment.live import Experiment
from fraud.report.page import render
from fraud.report.svg import LABEL_W, TEXT_W, WIDTH, Row, interval_chart, num, pct
from fraud.store.writer import Ledger

ARMS = {"model_a": ArmModel("model_a", "fraud_rf:aaa", 0.6, {}),
        "model_b": ArmModel("model_b", "fraud_hgb:bbb", 0.5, {})}
VOID = {"meta", "circle", "line", "rect", "br", "img", "input", "link"}


def real_body(tmp_path: Path, shadow: bool) -> dict[str, Any]:
    """An /ab-stats body made by the service's own code: decisions, labels, statistics."""
    rng = random.Random(7)
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        # 120 users: ~25 per arm with labelled fraud, so the minimum is set below that.
        cfg = ABConfig(shadow=ShadowConfig(enabled=shadow),
                       statistics=StatsSettings(min_fraud_users_per_arm=20))
        exp = Experiment(cfg, ARMS, ledger)
        for i in range(600):
            user = f"u{i % 120}"
            arm = exp.route(user)
            p = rng.random()
            out, done = exp.decide([user], [arm], [p], 4.0, "predict", amounts=[10.0 + i],
                                   shadow=[min(1.0, p * 1.2)] if shadow else None)
            done.result()
            if i % 2:
                ledger.label(out[0].request_id, rng.random() < p, wait=0)
        body, _, _ = exp.report()
    return json.loads(json.dumps(body))  # what a client receives


class Structure(HTMLParser):
    """Collects start tags and checks that non-void elements close in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Structure:
    s = Structure()
    s.feed(page)
    s.close()
    assert s.stack == [], f"unclosed: {s.stack}"
    return s


@pytest.fixture(scope="module")
def shadow_body(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return real_body(tmp_path_factory.mktemp("shadow"), shadow=True)


def test_a_real_shadow_body_renders_every_section(shadow_body: dict[str, Any]) -> None:
    page = render(shadow_body)
    doc = parse(page)
    text = " ".join(doc.text)
    for heading in ("Volume and flag rate", "Labelled metrics by arm", "Primary test",
                    "Sample ratio", "Rollback and guardrails", "Shadow: both models"):
        assert heading in text
    a, b = shadow_body["model_a"], shadow_body["model_b"]
    assert f"{a['total_predictions']:,} decisions" in text
    assert f"{b['total_predictions']:,} decisions" in text
    assert pct(a["flag_rate"]["value"]) in text and pct(b["recall"]["value"]) in text
    assert shadow_body["paired"]["transactions"] == 600
    assert sum(1 for t, _ in doc.tags if t == "svg") == 7
    assert sum(1 for t, _ in doc.tags if t == "circle") >= 20
    assert "None" not in text and "nan" not in text.lower()


def test_the_page_is_self_contained(shadow_body: dict[str, Any]) -> None:
    doc = parse(render(shadow_body))
    # The one <link> is the empty data: icon (so a browser does not ask for /favicon.ico).
    assert [a for t, a in doc.tags if t == "link"] == [{"rel": "icon", "href": "data:,"}]
    assert not [t for t, _ in doc.tags if t in ("script", "img", "iframe")]
    refs = [v for _, attrs in doc.tags for k, v in attrs.items() if k in ("href", "src")
            and not v.startswith("data:")]
    assert refs == ["/ab-stats"]  # the one link, same origin


def test_without_shadow_there_is_no_paired_section(tmp_path: Path) -> None:
    body = real_body(tmp_path, shadow=False)
    assert "paired" not in body
    page = render(body)
    assert "Shadow:" not in page and "Primary test" in page


def test_every_body_string_is_escaped(shadow_body: dict[str, Any]) -> None:
    evil = "<script>alert('x')</script>&\""
    body = copy.deepcopy(shadow_body)
    body["experiment"].update(model_a=evil, salt=evil, rolled_back=True, rollback_reason=evil,
                              rolled_back_at=evil, guardrail_breaches=[evil, "<img src=x>"])
    body["model_a"]["model_tag"] = evil
    body["primary"]["method"] = evil
    body["primary"]["verdict"] = evil
    body["paired"]["method"] = evil
    page = render(body)
    assert "<script" not in page and "<img" not in page
    assert page.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;") >= 7
    parse(page)


def test_the_public_view_without_salt_and_thresholds_renders(shadow_body: dict[str, Any]) -> None:
    full = render(shadow_body)
    assert "salt " in full and "threshold " in full
    body = copy.deepcopy(shadow_body)  # what fraud/api/views.py leaves for a caller without admin
    del body["experiment"]["salt"], body["model_a"]["threshold"], body["model_b"]["threshold"]
    for key in ("threshold_a", "threshold_b"):
        body["paired"]["same_flag_rate"].pop(key)
    page = render(body)
    assert "salt" not in page and "threshold" not in page and "?" not in page


def test_an_empty_or_early_body_renders_without_failing() -> None:
    text = " ".join(parse(render({})).text)
    assert "no data yet" in text and "Not judged in this period" in text
    early = {"model_a": {"total_predictions": 0, "fraud_rate": 0.0,
                         "recall": {"value": None, "ci_low": None, "ci_high": None}},
             "primary": {"verdict": "collecting", "p_value": None, "estimate": None,
                         "ci_low": None, "ci_high": None, "this_look": {}},
             "experiment": {"id": 3, "rolled_back": False, "guardrail_breaches": []}}
    text = " ".join(parse(render(early)).text)
    assert "collecting data" in text and "none now" in text and "None" not in text


def test_rollback_and_sample_ratio_mismatch_are_shown(shadow_body: dict[str, Any]) -> None:
    body = copy.deepcopy(shadow_body)
    body["experiment"].update(rolled_back=True, rollback_reason="error rate 9% > 5%",
                              rolled_back_at="2026-01-02T03:04:05Z", guardrail_breaches=[])
    body["sample_ratio"] = {"expected_share_b": 0.5, "observed_share_b": 0.4, "users_a": 600,
                            "users_b": 400, "p_value": 1e-6, "alpha": 0.001, "mismatch": True,
                            "unit": "users"}
    page = render(body)
    assert "rolled back: champion serves everyone" in page and "error rate 9% &gt; 5%" in page
    assert ">mismatch<" in page and "40.0% (600 / 400 users)" in page


def test_interval_chart_places_points_and_clamps_to_the_axis() -> None:
    svg = interval_chart("t", [Row("mid", 0.5, 0.25, 0.75), Row("out", 3.0, -1.0, 2.0),
                               Row("none", None)], 0.0, 1.0)
    plot_w = WIDTH - LABEL_W - TEXT_W
    cx = [float(v) for v in re.findall(r'<circle [^>]*cx="([\d.]+)"', svg)]
    assert cx == pytest.approx([LABEL_W + plot_w / 2, LABEL_W + plot_w], abs=0.1)
    x1 = [float(v) for v in re.findall(r'<line class="ci[^"]*" x1="([\d.]+)"', svg)]
    assert x1 == pytest.approx([LABEL_W + plot_w / 4, LABEL_W], abs=0.1)
    assert "no data yet" in svg


@pytest.mark.parametrize(("value", "text"), [(None, "\u2014"), (float("nan"), "\u2014"),
                                             (True, "\u2014"), (0.1234, "0.123"),
                                             (1.5e-23, "1.50e-23"), (56450.6, "56,451")])
def test_numbers_are_formatted_and_missing_values_are_dashes(value: Any, text: str) -> None:
    assert num(value) == text


def test_labels_and_exploration_are_shown_and_the_public_view_hides_the_spending(
        shadow_body: dict[str, Any]) -> None:
    body = copy.deepcopy(shadow_body)
    assert "Labels and exploration" in render(body) and "maturity_days is not set" in render(body)
    rate = {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4, "users": 40}
    body["labels"] = {"per_arm": {"model_a": {"by_decision": {
        "flagged": rate, "approved": {**rate, "value": 0.9, "ci_high": 0.95}}}},
        "label_bias": True, "sources": {}}
    body["exploration"] = {"enabled": True, "rate": 0.01, "max_amount": 100.0,
                           "daily_budget": 500.0, "per_arm": {},
                           "today": {"explored": 4, "explored_amount": 210.5,
                                     "budget_left": 89.5}}
    text = " ".join(parse(render(body)).text)
    assert "flagged 30.0% [20.0%, 40.0%], 40 users; approved 90.0%" in text
    assert "verdicts on labelled rows say label_bias" in text
    assert "4 decisions, 210.50" in text and "89.50 of 500.00" in text
    for key in ("rate", "max_amount", "daily_budget", "today"):  # fraud/api/views.py
        del body["exploration"][key]
    text = " ".join(parse(render(body)).text)
    assert "admin keys only" in text and "210.5" not in text
