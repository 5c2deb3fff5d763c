"""The Swagger UI works end to end in a real browser: POST /predict from the pre-filled example,
in open mode and, with API keys on, through the "Authorize" button.

Drives headless Chromium from the distribution (/usr/bin/chromium; `make sysdeps` or
tools/install_browser.sh installs it) with Playwright's sync API: Playwright's own browser
download is not reachable here, so the browser is always launched by path. Requests to any
host but the server (the UI page embeds a Google Tag Manager snippet) are aborted, so the
test never waits on the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, Server, Store, need_chromium, serve

from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.browser, pytest.mark.service]

UI_TIMEOUT_MS = 30_000


@contextmanager
def swagger_page(server: Server) -> Iterator[Any]:
    """The Swagger UI of `server` in headless Chromium; only the server is reachable."""
    need_chromium()
    from playwright.sync_api import Route, sync_playwright

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
            yield page
        finally:
            browser.close()


def predict_block(page: Any) -> Any:
    """The POST /predict operation, opened, in "Try it out" mode with the example body."""
    from playwright.sync_api import expect

    block = page.locator(".opblock.opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/predict"]'))
    expect(block).to_have_count(1)
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    # The body editor is pre-filled from the pydantic example: the reference's curl body.
    editor = block.locator("textarea.body-param__text")
    expect(editor).to_be_visible()
    assert json.loads(editor.input_value()) == EXAMPLE_TRANSACTION
    return block


def execute(block: Any, status: str) -> dict[str, Any]:
    """Click Execute; wait for the live response with `status`; its JSON body."""
    from playwright.sync_api import expect

    block.get_by_role("button", name="Execute").click()
    live = block.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status").first).to_have_text(status)
    return json.loads(live.locator(".response-col_description pre").first.inner_text())


def assert_scored(body: dict[str, Any]) -> None:
    assert 0.0 <= body["fraud_probability"] <= 1.0
    assert body["model_version"] in ("model_a", "model_b")
    assert isinstance(body["is_fraud"], bool)


BOILERPLATE = ("Contact BentoML Team", "BentoML Service API endpoints for inference",
               "BentoML Team")


def test_the_page_is_ours(server: Server) -> None:
    """Issue 23: the version badge said "None", the contact "Contact BentoML Team", the tag
    "BentoML Service API endpoints for inference", and the scoring operations had no
    summary. Now: the package's version, the project's contact and licence, a summary on
    every operation."""
    import tomllib

    from playwright.sync_api import expect

    from fraud.config import PROJECT_ROOT

    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    with swagger_page(server) as page:
        expect(page.locator(".info .title .version").first).to_have_text(version)
        blocks = page.locator(".opblock")
        expect(blocks.first).to_be_visible()
        text = page.locator("body").inner_text()
        rows = [(blocks.nth(i).locator(".opblock-summary-path").first.inner_text(),
                 blocks.nth(i).locator(".opblock-summary-description").first.inner_text())
                for i in range(blocks.count())]
    assert [b for b in BOILERPLATE if b in text] == [], text[:2000]
    assert "fraudserve maintainers" in text and "Proprietary" in text
    assert {"/predict", "/predict_batch", "/explain", "/feedback"} <= {p for p, _ in rows}
    assert [p for p, summary in rows if not summary.strip()] == [], rows


def test_swagger_try_it_out_predict(server: Server) -> None:
    """Open mode (no keys, as `make serve`): Execute scores straight away."""
    with swagger_page(server) as page:
        body = execute(predict_block(page), "200")
    assert_scored(body)


SCORE_KEY = "swagger-score-key-Bn5Yt2Qx8Lw3Zr7Kc1"  # >= 32 characters


@pytest.fixture(scope="module")
def keyed_server(trained_store: Store, gate_report: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(trained_store, tmp_path_factory.mktemp("swagger-keys"),
               FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_API_KEYS=f"score:{SCORE_KEY},admin:{SCORE_KEY[::-1]}") as srv:
        yield srv


def test_swagger_authorize_then_predict_with_a_key(keyed_server: Server) -> None:
    """Keys on: Execute without a key is a 401; "Authorize" with a score key, then a 200."""
    from playwright.sync_api import expect

    with swagger_page(keyed_server) as page:
        block = predict_block(page)
        refused = execute(block, "401")
        assert "needs an API key" in refused["error"]

        page.locator(".auth-wrapper button.authorize").click()
        modal = page.locator(".modal-ux")
        expect(modal).to_be_visible()
        modal.locator('input[aria-label="auth-bearer-value"]').fill(SCORE_KEY)
        modal.locator("button.modal-btn.authorize").click()
        # Authorized: the modal offers Logout (its accessible name is "Remove authorization").
        expect(modal.locator(".auth-btn-wrapper button").first).to_have_text("Logout")
        modal.locator("button.btn-done").click()
        expect(page.locator(".auth-wrapper button.authorize.locked")).to_be_visible()

        body = execute(block, "200")
        # What the UI sent is on its curl line: the key as a bearer token.
        curl = block.locator(".curl-command").first.inner_text()
        assert f"Authorization: Bearer {SCORE_KEY}" in curl, curl
    assert_scored(body)
