"""Bounded metrics (issue 23: BentoML labelled its request metrics by the raw path before any
check, and 1,000 requests to random paths added 20,000 lines to /metrics): a path the service
does not have is labelled `other`, so 1,000 random paths add a few series, once."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
from client import get, metric_samples
from helpers import Server

pytestmark = [pytest.mark.service]


def series(server: Server) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return set(metric_samples(server))


def test_a_thousand_random_paths_add_a_bounded_number_of_series(server: Server) -> None:
    assert get(server, "/health").status == 200
    before = series(server)
    paths = [f"/scan-{secrets.token_hex(6)}/{i}" for i in range(1000)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda p: get(server, p).status, paths))
    assert set(statuses) == {404}, set(statuses)
    after = series(server)
    new = after - before
    assert len(new) <= 60, sorted(new)[:20]  # the `other` label's series (~20 per metric)
    labels = {dict(lab).get("endpoint") for _, lab in after}
    assert not any(str(e).startswith("/scan-") for e in labels), sorted(map(str, labels))
    assert "other" in labels
    assert "/health" in labels  # the routes the service has keep their own label
