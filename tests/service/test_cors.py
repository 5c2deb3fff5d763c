"""CORS: off by default (no browser on another origin gets an allow header); with
FRAUDSERVE_CORS_ORIGINS, a listed origin's preflight is answered before the key check and an
unlisted origin is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import Server, Store, serve

from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service]

ALLOWED = "https://analysts.example.com"
CORS_KEY = "cors-score-key-Ux3Rk8Wq1Zp6Tn4Lm9Vs"  # >= 32 characters
PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}


def test_cors_is_off_by_default(server: Server) -> None:
    resp = requests.post(f"{server.url}/predict", json=EXAMPLE_TRANSACTION, timeout=15,
                         headers={"Origin": ALLOWED})
    assert resp.status_code == 200
    assert "access-control-allow-origin" not in resp.headers
    pre = requests.options(f"{server.url}/predict", timeout=15,
                           headers={"Origin": ALLOWED, **PREFLIGHT})
    assert "access-control-allow-origin" not in pre.headers


@pytest.fixture(scope="module")
def cors_server(trained_store: Store, gate_report: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(trained_store, tmp_path_factory.mktemp("cors"), workers=1,
               FRAUDSERVE_GATE_REPORT=str(gate_report), FRAUDSERVE_CORS_ORIGINS=ALLOWED,
               FRAUDSERVE_API_KEYS=f"score:{CORS_KEY}") as srv:
        yield srv


def test_listed_origin_passes_preflight_and_gets_the_header(cors_server: Server) -> None:
    pre = requests.options(f"{cors_server.url}/predict", timeout=15,
                           headers={"Origin": ALLOWED, **PREFLIGHT})
    assert pre.status_code == 200  # answered before the key check: preflights carry no key
    assert pre.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    resp = requests.post(f"{cors_server.url}/predict", json=EXAMPLE_TRANSACTION, timeout=15,
                         headers={"Origin": ALLOWED,
                                  "Authorization": f"Bearer {CORS_KEY}"})
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == ALLOWED
    unkeyed = requests.post(f"{cors_server.url}/predict", json=EXAMPLE_TRANSACTION,
                            timeout=15, headers={"Origin": ALLOWED})
    assert unkeyed.status_code == 401  # CORS never stands in for a key


def test_unlisted_origin_is_refused(cors_server: Server) -> None:
    pre = requests.options(f"{cors_server.url}/predict", timeout=15,
                           headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert pre.status_code == 400
    assert "access-control-allow-origin" not in pre.headers
