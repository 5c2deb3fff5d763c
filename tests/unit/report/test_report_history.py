"""The report page over time: looks from /ab-stats bodies (fraud/report/history.py), their
chart series and events, the time and drift charts, and the page with history and drift."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_report import parse, real_body

from fraud.experiment.looks import breach_rule, look_of, marks_of
from fraud.report.charts import HEIGHT, LEFT, RIGHT, TOP, Line, time_chart
from fraud.report.history import Event, series
from fraud.report.page import render
from fraud.report.svg import WIDTH

EVIL = '<script>alert("x")</script>&'
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def body(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return real_body(tmp_path_factory.mktemp("hist"), shadow=True)


def drift(psi_a: float = 0.4, name: str = "amount") -> dict[str, Any]:
    def arm(tag: str, psi: float) -> dict[str, Any]:
        return {"model_tag": tag, "rows": 600, "window": 1000, "min_rows": 500, "ready": True,
                "psi_threshold": 0.25, "alpha": 0.001, "ks_critical": 0.08, "drift": psi > 0.25,
                "features": {name: {"psi": psi, "psi_level": "major", "psi_critical": 0.05,
                                    "ks": 0.1, "drift": psi > 0.25},
                             "hour": {"psi": 0.01, "psi_level": "stable", "psi_critical": 0.05,
                                      "ks": 0.01, "drift": False}}}
    return {"model_a": arm("fraud_rf:aaa", psi_a), "model_b": arm("fraud_hgb:bbb", 0.02)}


def history(body: dict[str, Any], n: int = 12) -> list[dict[str, Any]]:
    """n looks of a run: growing volume, the verdict turns at 4, a rollback at 8."""
    looks = []
    for i in range(n):
        b = copy.deepcopy(body)
        for arm, k in (("model_a", 10), ("model_b", 12)):
            b[arm]["total_predictions"] = k * i
        if i >= 4:
            b["primary"]["verdict"] = "challenger_worse"
        if i >= 8:
            at = datetime.fromtimestamp(T0 + 2 * i - 1, tz=UTC).isoformat()
            b["experiment"].update(rolled_back=True, rollback_reason=EVIL, rolled_back_at=at,
                                   guardrail_breaches=[EVIL], period=2, effective_share=0.0)
        looks.append({**look_of(b), "ts": T0 + 2 * i})
    return looks


def test_a_look_is_a_compact_copy_of_what_the_charts_need(body: dict[str, Any]) -> None:
    lk = look_of(body)
    assert len(json.dumps(lk)) < len(json.dumps(body)) / 4
    a = lk["arms"]["model_a"]
    assert a["n"] == body["model_a"]["total_predictions"]
    assert a["recall"][0] == pytest.approx(body["model_a"]["recall"]["value"], rel=1e-5)
    assert a["flag_rate"][1] == pytest.approx(body["model_a"]["flag_rate"]["ci_low"], rel=1e-5)
    p = body["primary"]
    assert (lk["primary"]["lo"], lk["primary"]["hi"]) == (
        pytest.approx(p["ci_low"], rel=1e-5), pytest.approx(p["ci_high"], rel=1e-5))
    assert lk["primary"]["verdict"] == p["verdict"]
    assert lk["paired"]["est"] == pytest.approx(body["paired"]["test"]["estimate"], rel=1e-5)
    assert lk["guard"] == {"rolled_back": False, "reason": None, "at": None, "breaches": []}
    no_shadow = {k: v for k, v in body.items() if k != "paired"}
    assert "paired" not in look_of(no_shadow)


def test_a_look_of_a_broken_or_empty_body_has_nones_never_nan(body: dict[str, Any]) -> None:
    b = copy.deepcopy(body)
    b["model_a"]["recall"] = {"value": float("nan"), "ci_low": float("inf"), "ci_high": None}
    b["primary"]["estimate"] = True  # not a number
    b["experiment"]["guardrail_breaches"] = ["x" * 1000] * 50
    lk = look_of(b)
    assert lk["arms"]["model_a"]["recall"] == [None, None, None]
    assert lk["primary"]["est"] is None
    assert len(lk["guard"]["breaches"]) == 10 and len(lk["guard"]["breaches"][0]) == 200
    json.dumps(lk, allow_nan=False)
    empty = look_of({})
    json.dumps(empty, allow_nan=False)
    assert empty["arms"]["model_b"]["n"] is None and "paired" not in empty


def test_marks_change_with_rollback_verdict_breaches_and_period(body: dict[str, Any]) -> None:
    base = look_of(body)
    assert marks_of(base) == marks_of(look_of(copy.deepcopy(body)))
    for path, value in ((("experiment", "rolled_back"), True), (("primary", "verdict"), "x"),
                        (("experiment", "guardrail_breaches"), ["y"]),
                        (("experiment", "period"), 9)):
        b = copy.deepcopy(body)
        b[path[0]][path[1]] = value
        assert marks_of(look_of(b)) != marks_of(base), path
    b = copy.deepcopy(body)
    b["model_a"]["total_predictions"] += 1
    assert marks_of(look_of(b)) == marks_of(base)  # counts are not marks


def test_a_lasting_breach_is_one_event_and_one_mark_whatever_its_live_figures(
        body: dict[str, Any]) -> None:
    texts = ["challenger flag rate 0.0412 vs champion's 0.0101: ratio CS [2.61, 6.10] outside "
             "[1/2, 2]", "challenger flag rate 0.0399 vs champion's 0.0098: ratio CS [2.70, "
             "5.90] outside [1/2, 2]"]
    assert breach_rule(texts[0]) == breach_rule(texts[1]) == "challenger flag rate"
    assert breach_rule("sample-ratio mismatch over users (anytime p=1e-05, ...)") \
        == "sample-ratio mismatch over users"
    looks = []
    for i, text in enumerate(texts):
        b = copy.deepcopy(body)
        b["experiment"]["guardrail_breaches"] = [text]
        looks.append({**look_of(b), "ts": T0 + i})
    assert marks_of(looks[0]) == marks_of(looks[1])
    assert [e.kind for e in series(looks).events].count("breach") == 1


def test_series_are_aligned_sorted_and_carry_the_events(body: dict[str, Any]) -> None:
    looks = history(body)
    s = series([*reversed(looks), {"ts": None}, {"ts": float("nan")}])
    assert s.t == [T0 + 2 * i for i in range(12)]
    assert s.arms["model_b"]["n"] == [12.0 * i for i in range(12)]
    assert len(s.arms["model_a"]["recall"]) == len(s.primary["lo"]) == len(s.paired["est"]) == 12
    assert s.rolled_back == [False] * 8 + [True] * 4
    assert s.metric == "recall" and s.margin == 0.05 and s.has_paired
    kinds = [(e.kind, e.t) for e in s.events]
    assert kinds == [("verdict", T0 + 8), ("rollback", T0 + 15), ("breach", T0 + 16)]
    resumed = series([*looks, {**looks[0], "ts": T0 + 100}])
    # Back to an unrolled look: a resume and the verdict's change (the period change that
    # comes with a resume is not a separate event).
    assert [e.kind for e in resumed.events[3:]] == ["resume", "verdict"]
    assert len(series([])) == 0 and series([]).events == []


def test_time_chart_draws_lines_bands_gaps_and_markers() -> None:
    t = [T0 + i for i in range(6)]
    values = [0.1, 0.2, None, 0.4, 0.5, 0.6]
    svg = time_chart("t", t, [Line("a", values, "a", [v and v - 0.05 for v in values],
                                   [v and v + 0.05 for v in values])], 0.0, 1.0,
                     events=[Event(T0 + 2, "rollback", EVIL)],
                     shade=[False, False, False, True, True, True])
    assert svg.count("<polyline") == 2 and svg.count("<polygon") == 2  # the gap splits both
    assert svg.count('class="rolled"') == 2 and 'class="ev rollback"' in svg
    for px, py in re.findall(r"(\d+\.\d),(\d+\.\d)", svg):
        assert LEFT <= float(px) <= WIDTH - RIGHT and TOP <= float(py) <= HEIGHT
    lone = time_chart("one look", [T0], [Line("a", [0.3])], 0.0, 1.0)
    assert "<polyline" not in lone and lone.count("<circle") == 1


def test_render_with_history_and_drift(body: dict[str, Any]) -> None:
    page = render(body, history(body), drift(name=EVIL))
    s = parse(page)
    charts = [a for tag, a in s.tags if tag == "svg"]
    assert sum("time" in (a.get("class") or "") for a in charts) == 6
    assert sum("drift" in (a.get("class") or "") for a in charts) == 1
    assert "no data yet (a look" not in page
    assert EVIL not in page and "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert 'class="thr"' in page and 'class="bar a drift"' in page
    assert "rolled back: " in "".join(s.text) and "verdict: challenger worse" in "".join(s.text)
    assert render(body, history(body), {"arms": drift()}).count('class="chart drift"') == 1


def test_render_without_history_or_drift_says_so(body: dict[str, Any], tmp_path: Path) -> None:
    page = render(body)
    parse(page)
    assert page.count("no data yet (a look is stored") == 4  # volume, metrics, primary, events
    assert 'class="chart time"' not in page and "No drift report" in page
    assert render(body, [], {}) == page
    not_ready = drift()
    for a in not_ready.values():
        a.update(ready=False, drift=None, rows=10)
        for f in a["features"].values():
            f.update(psi=None, drift=None)
    page = render(body, [], not_ready)
    assert "no verdict yet" in page and 'class="chart drift"' in page
    page = render(body, [], {"error": EVIL})
    assert "No drift report: &lt;script&gt;" in page and EVIL not in page
