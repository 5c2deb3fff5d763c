"""The report page in headless Chromium: a live service's experiment with a history (shadow
mode, so the paired section is drawn too; a guardrail check every second, several of them
under traffic, then a rollback and more looks), with no console error, no request beyond the
page itself, every chart on screen: the snapshot charts, the charts over time (lines with
their bands, the rollback marker) and PSI per feature; a screenshot is saved.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    Server,
    Store,
    need_chromium,
    random_transactions,
    serve,
)

pytestmark = [pytest.mark.browser, pytest.mark.service]
SCREENSHOT = ROOT / "reports" / "report" / "report.png"
UI_TIMEOUT_MS = 30_000
ROUNDS = 4  # traffic rounds before the rollback, each followed by guardrail checks


@pytest.fixture(scope="module")
def server(trained_store: Store, gate_report: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """The suite's models in shadow mode, looking every second, with low minimums so the
    primary test has an estimate early."""
    workdir = tmp_path_factory.mktemp("serve-report")
    cfg = yaml.safe_load((ROOT / "configs" / "ab.yaml").read_text())
    cfg["guardrails"].update(check_interval_s=1)
    cfg["statistics"].update(min_labelled_per_arm=5, min_users_per_arm=5)
    (workdir / "ab.yaml").write_text(yaml.safe_dump(cfg))
    with serve(trained_store, workdir, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_AB_CONFIG=str(workdir / "ab.yaml"), FRAUDSERVE_SHADOW="1") as srv:
        yield srv, workdir / "ledger.sqlite"


def transactions(n: int, seed: int) -> list[dict[str, Any]]:
    return random_transactions(n, seed, 40, f"page-{seed}-")


def _round(url: str, seed: int, singles: int = 40, bulk: int = 350) -> None:
    """Labelled singles (half of them fraud: the primary test needs labelled frauds in both
    arms for its confidence sequence), and one bulk request (fills the drift windows)."""
    for i, body in enumerate(transactions(singles, seed)):
        r = requests.post(f"{url}/predict", json=body, timeout=30)
        assert r.status_code == 200, r.text
        requests.post(f"{url}/feedback", json={"request_id": r.json()["request_id"],
                                               "is_fraud": i % 2 == 0}, timeout=30)
    r = requests.post(f"{url}/predict_batch",
                      json={"transactions": transactions(bulk, seed + 1000)}, timeout=60)
    assert r.status_code == 200, r.text


def _looks(ledger: Path) -> tuple[int, int]:
    """(looks stored, of which rolled back), read from the server's ledger file."""
    with sqlite3.connect(ledger) as conn:
        rows = conn.execute("SELECT marks FROM looks").fetchall()
    return len(rows), sum(r[0].startswith("[true") for r in rows)


def _wait_looks(ledger: Path, more_than: int, rolled: int = 0, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n, r = _looks(ledger)
        if n > more_than and r >= rolled:
            return n
        time.sleep(0.3)
    raise AssertionError(f"no new look in {timeout} s: {_looks(ledger)}")


def test_report_page_renders_its_charts_over_time(server: tuple[Server, Path],
                                                  tmp_path: Path) -> None:
    need_chromium()
    from playwright.sync_api import sync_playwright

    srv, ledger = server
    seen = 0
    for k in range(ROUNDS):
        _round(srv.url, seed=k)
        seen = _wait_looks(ledger, seen)
    assert requests.post(f"{srv.url}/admin/rollback", timeout=30).status_code == 200
    _round(srv.url, seed=99, bulk=50)
    seen = _wait_looks(ledger, seen, rolled=1)
    _wait_looks(ledger, seen, rolled=2)
    assert seen >= ROUNDS + 1
    routed = requests.get(f"{srv.url}/report", timeout=30)
    assert routed.status_code == 200 and routed.headers["content-type"].startswith("text/html")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            errors: list[str] = []
            requested: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requested.append(r.url))
            page.goto(f"{srv.url}/report", wait_until="load")
            charts = page.locator("svg.chart")
            assert charts.count() >= 13
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 20
            assert page.locator("svg.chart circle").count() >= 8
            for heading in ("Primary test", "Labelled metrics by arm", "Shadow: both models",
                            "Drift per feature"):
                assert page.locator("h2", has_text=heading).is_visible()
            assert page.locator(".nodata").count() == 0
            # Over time: volume, flag rate, recall, precision, primary and paired sequences.
            timed = page.locator("svg.chart.time")
            assert timed.count() == 6
            for i in range(timed.count()):
                chart = timed.nth(i)
                assert chart.bounding_box()["height"] > 150  # type: ignore[index]
                line = chart.locator("polyline").first
                box = line.bounding_box()
                assert box is not None and box["width"] > 100, f"time chart {i}: {box}"
                mark = chart.locator("line.ev.rollback").first
                mbox = mark.bounding_box()
                assert mbox is not None and mbox["height"] > 100, f"time chart {i}: no rollback"
                assert chart.locator("rect.rolled").count() >= 1
                if i:  # all but the volume chart draw intervals as bands
                    assert chart.locator("polygon.area").count() >= 1, f"time chart {i}"
            bands = page.locator("svg.chart.time polygon.area")
            assert max(bands.nth(i).bounding_box()["height"]  # type: ignore[index]
                       for i in range(bands.count())) > 10
            assert page.locator("li", has_text="rolled back:").count() >= 1
            # Drift: a bar per feature and arm once the windows hold min_rows, the threshold.
            drift = page.locator("svg.chart.drift")
            assert drift.count() == 1
            # An arm has bars once its window holds min_rows: the champion's always does here;
            # the challenger's may not (a guardrail can roll it back before it does).
            features = drift.locator("text.label").count()
            bars = drift.locator("rect.bar.a, rect.bar.b")
            assert features >= 7 and bars.count() >= features
            widths = [bars.nth(i).bounding_box()["width"]  # type: ignore[index]
                      for i in range(bars.count())]
            assert max(widths) > 5
            assert drift.locator("line.thr").bounding_box()["height"] > 100  # type: ignore[index]
            path = tmp_path / "report.png"
            page.screenshot(path=str(path), full_page=True)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            SCREENSHOT.write_bytes(path.read_bytes())
        finally:
            browser.close()
    assert errors == []
    assert requested == [f"{srv.url}/report"]
    assert path.stat().st_size > 10_000
