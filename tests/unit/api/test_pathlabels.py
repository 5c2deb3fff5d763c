"""BentoML's traffic metrics get `other` for a path the service does not have; the app still
sees the real path."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bentoml._internal.server.http import instruments

from fraud.api.pathlabels import OTHER, bound_path_labels, label_of

KNOWN = frozenset({"/predict", "/health"})


def test_label_of() -> None:
    assert label_of("/predict", KNOWN) == "/predict"
    assert label_of("/static_content/swagger-ui.css", KNOWN) == "/static_content/swagger-ui.css"
    for path in ("/wp-login.php", "/predict/", "/PREDICT", "", "/health/../etc/passwd"):
        assert label_of(path, KNOWN) == OTHER


def test_the_metrics_see_other_and_the_app_the_real_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str] = {}

    class Recorder:  # stands in for BentoML's class: records what the metrics would label
        def __init__(self, app: Any, **options: Any) -> None:
            self.app = app

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen["metrics"] = scope["path"]
            await self.app(scope, receive, send)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["app"] = scope["path"]
        seen["stash"] = str(sorted(k for k in scope if k.startswith("fraudserve")))

    monkeypatch.setattr(instruments, "RunnerTrafficMetricsMiddleware", Recorder)
    assert bound_path_labels(KNOWN) == KNOWN
    assert bound_path_labels({"/feedback"}) == {"/feedback"}  # a second call adds its paths
    middleware = instruments.RunnerTrafficMetricsMiddleware(app, namespace="x")
    for path, label in (("/scan-1234", OTHER), ("/predict", "/predict"),
                        ("/feedback", "/feedback")):
        asyncio.run(middleware({"type": "http", "path": path}, None, None))
        assert seen == {"metrics": label, "app": path, "stash": "[]"}
    asyncio.run(middleware({"type": "lifespan", "path": ""}, None, None))
    assert seen["metrics"] == ""
