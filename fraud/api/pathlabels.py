"""BentoML's request metrics label a path the service does not have `other`.

BentoML's traffic middleware, outermost in every worker (before our keys), labels its
histogram, counter and gauges with the raw request path: each path a scanner invents added
about 20 series to /metrics (issue 23: 1,000 random paths, 20,000 lines). `bound_path_labels`
puts a subclass in its place (BentoML imports the class when it builds a worker's app, after
service.py ran) that hands the metrics a copy of the request with the path `other` when the
path is not one the service answers; the app itself still sees the real path (and answers
404, or 401 with keys on). Known: the routes given, plus the static prefixes (Swagger's
assets, a fixed set of files).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

OTHER = "other"
STASH = "fraudserve.path"  # the real path, carried past the metrics to the app
PREFIXES = ("/static_content/",)


def label_of(path: str, known: frozenset[str], prefixes: tuple[str, ...] = PREFIXES) -> str:
    """The metrics' label for `path`: itself when the service has it, else `other`."""
    return path if path in known or path.startswith(prefixes) else OTHER


def bound_path_labels(known: Iterable[str]) -> frozenset[str]:
    """Replace BentoML's traffic metrics middleware by one that labels unknown paths
    `other` (idempotent; in the process that builds the app). Returns the known paths."""
    from bentoml._internal.server.http import instruments

    paths = frozenset(known)
    base: Any = instruments.RunnerTrafficMetricsMiddleware
    if getattr(base, "fraudserve_known", None) is not None:
        base.fraudserve_known = base.fraudserve_known | paths
        return paths

    class BoundedTrafficMetrics(base):  # type: ignore[misc,valid-type]
        fraudserve_known: frozenset[str] = paths

        def __init__(self, app: Any, **options: Any) -> None:
            super().__init__(_restore(app), **options)

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            path = scope.get("path", "")
            if scope.get("type") in ("http", "websocket") and \
                    label_of(path, self.fraudserve_known) == OTHER:
                scope = {**scope, "path": OTHER, STASH: path}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = BoundedTrafficMetrics
    return paths


def _restore(app: Any) -> Any:
    """The inner app, given back the real path the metrics did not see."""

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        real = scope.get(STASH)
        if real is not None:
            scope = {key: value for key, value in scope.items() if key != STASH}
            scope["path"] = real
        await app(scope, receive, send)

    return inner
