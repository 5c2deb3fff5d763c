"""The report page in headless Chromium: a live service's experiment (shadow mode, so the
paired section is drawn too), with no console error, no request beyond the page itself and
every chart on screen; a screenshot is saved.

Until `GET /report` is wired into service.py (.wiring/report.md), the page is fraud.report's
render of the same service's `GET /ab-stats` body, loaded with `set_content`; once the route
answers, the route itself is opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import CHROMIUM, CHROMIUM_ARGS, ROOT, Server, Store, need_chromium, serve

from fraud.report import render
from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.browser, pytest.mark.service]
SCREENSHOT = ROOT / "reports" / "report" / "report.png"
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def server(trained_store: Store, gate_report: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The suite's server in shadow mode, so the page has its paired section too."""
    workdir = tmp_path_factory.mktemp("serve-report")
    with serve(trained_store, workdir, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_SHADOW="1") as srv:
        yield srv


def _traffic(url: str, n: int = 120) -> None:
    for i in range(n):
        body = {**EXAMPLE_TRANSACTION, "user_id": f"page-{i % 40}", "amount": 20.0 + 3 * i,
                "card_age_days": 15 + 11 * i}
        r = requests.post(f"{url}/predict", json=body, timeout=30)
        assert r.status_code == 200, r.text
        if i % 2:
            requests.post(f"{url}/feedback", json={"request_id": r.json()["request_id"],
                                                   "is_fraud": bool(i % 4 == 1)}, timeout=30)


def test_report_page_renders_its_charts(server: Server, tmp_path: Path) -> None:
    need_chromium()
    from playwright.sync_api import sync_playwright

    _traffic(server.url)
    routed = requests.get(f"{server.url}/report", timeout=30)
    wired = routed.status_code == 200 and routed.headers["content-type"].startswith("text/html")
    page_html = routed.text if wired else render(requests.get(f"{server.url}/ab-stats",
                                                              timeout=30).json())
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
            if wired:
                page.goto(f"{server.url}/report", wait_until="load")
            else:
                page.set_content(page_html, wait_until="load")
            charts = page.locator("svg.chart")
            assert charts.count() >= 6
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 20
            assert page.locator("svg.chart circle").count() >= 8
            for heading in ("Primary test", "Labelled metrics by arm", "Shadow: both models"):
                assert page.locator("h2", has_text=heading).is_visible()
            path = tmp_path / "report.png"
            page.screenshot(path=str(path), full_page=True)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            SCREENSHOT.write_bytes(path.read_bytes())
        finally:
            browser.close()
    assert errors == []
    assert requested == ([f"{server.url}/report"] if wired else [])
    assert path.stat().st_size > 10_000
