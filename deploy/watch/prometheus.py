"""The one Prometheus call the watch needs: an instant query (HTTP API v1), stdlib only."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class PrometheusError(RuntimeError):
    """Prometheus did not answer, or answered with an error."""


def query(base_url: str, expr: str, timeout: float = 10.0,
          at: float | None = None) -> list[dict[str, Any]]:
    """The instant vector `expr` evaluates to now (or at unix time `at`):
    [{'metric': {...}, 'value': [t, 'v']}]."""
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400/422 carry Prometheus' own error text
        try:
            detail = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            detail = exc.reason
        raise PrometheusError(f"{exc.code}: {detail}") from None
    except (OSError, ValueError) as exc:
        raise PrometheusError(str(exc)) from None
    if body.get("status") != "success":
        raise PrometheusError(body.get("error", "query failed"))
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]
