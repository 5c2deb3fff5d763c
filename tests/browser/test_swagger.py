"""The Swagger UI works end to end in a real browser: POST /predict from the pre-filled example.

Drives headless Chromium from the distribution (/usr/bin/chromium; `make sysdeps` or
tools/install_browser.sh installs it) with Playwright's sync API: Playwright's own browser
download is not reachable here, so the browser is always launched by path. Requests to any
host but the server (the UI page embeds a Google Tag Manager snippet) are aborted, so the
test never waits on the network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.browser, pytest.mark.service]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic",
                 "--disable-sync"]
UI_TIMEOUT_MS = 30_000


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    msg = f"{CHROMIUM} is missing: `make sysdeps` installs it (tools/install_browser.sh)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(msg)


def test_swagger_try_it_out_predict(server) -> None:
    _need_chromium()
    from playwright.sync_api import Route, expect, sync_playwright

    host = urlparse(server.url).netloc

    def only_the_server(route: Route) -> None:
        if urlparse(route.request.url).netloc == host:
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.route("**/*", only_the_server)
            page.goto(f"{server.url}/", wait_until="domcontentloaded")

            block = page.locator(".opblock.opblock-post").filter(
                has=page.locator('.opblock-summary-path[data-path="/predict"]'))
            expect(block).to_have_count(1)
            block.locator(".opblock-summary").first.click()
            block.get_by_role("button", name="Try it out").click()

            # The body editor is pre-filled from the pydantic example: the reference's curl body.
            editor = block.locator("textarea.body-param__text")
            expect(editor).to_be_visible()
            assert json.loads(editor.input_value()) == EXAMPLE_TRANSACTION

            block.get_by_role("button", name="Execute").click()
            live = block.locator(".live-responses-table .response")
            expect(live.locator(".response-col_status").first).to_have_text("200")
            body_text = live.locator(".response-col_description pre").first.inner_text()
        finally:
            browser.close()

    body = json.loads(body_text)
    assert 0.0 <= body["fraud_probability"] <= 1.0
    assert body["model_version"] in ("model_a", "model_b")
    assert isinstance(body["is_fraud"], bool)
