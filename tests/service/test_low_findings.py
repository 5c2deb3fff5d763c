"""Issue 23's low findings on a real `bentoml serve` with keys: OPTIONS pays the client
address's bucket (it skipped the rate limit), a websocket goes through the key check (it
skipped the middleware), and a service that is not ready says why without its directories
(/health showed filesystem paths). The server runs without a gate report, at a path deep in
a directory it must not publish."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator

import pytest
from helpers import Server, Store, serve
from test_api_keys import REJECTED, call, metric

from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service]

KEY = "low-findings-key-Mv7Rq2Xz5Lp8Wt3Nb6"
BURST = 10


@pytest.fixture(scope="module")
def unready(trained_store: Store, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("low")
    missing = workdir / "private-layout" / "reports" / "gate_report.json"
    with serve(trained_store, workdir, expect_ready=False, FRAUDSERVE_API_KEYS=f"score:{KEY}",
               FRAUDSERVE_GATE_REPORT=str(missing), FRAUDSERVE_TRUSTED_PROXIES="127.0.0.1",
               FRAUDSERVE_ANON_RATE_PER_MIN="6", FRAUDSERVE_ANON_RATE_BURST=str(BURST)) as srv:
        for i in range(240):  # up, though never ready (each poll from its own address)
            try:
                if call(srv, "GET", "/livez", client=f"198.51.100.{i % 250}")[0] == 200:
                    break
            except OSError:
                pass
            srv.proc.poll()
            assert srv.proc.returncode is None, srv.logs()[-3000:]
            time.sleep(0.5)
        yield srv


def test_not_ready_answers_name_no_directory(unready: Server) -> None:
    status, _, health = call(unready, "GET", "/health", client="203.0.113.1")
    assert status == 503 and health["status"] == "not_ready"
    assert "gate_report.json" in health["reason"] and "private-layout" not in str(health)
    status, _, refused = call(unready, "POST", "/predict", EXAMPLE_TRANSACTION, KEY)
    assert status == 503 and "private-layout" not in str(refused), refused
    assert "private-layout" in unready.logs()  # the log keeps the whole reason


def test_options_pays_the_client_address_bucket(unready: Server) -> None:
    statuses = [call(unready, "OPTIONS", "/predict", client="203.0.113.2")[0]
                for _ in range(BURST + 5)]
    assert 429 in statuses and statuses.count(429) >= 4, statuses
    assert call(unready, "OPTIONS", "/predict", client="203.0.113.3")[0] != 429


def handshake(server: Server, path: str, key: str | None = None) -> str:
    """The status line a websocket upgrade request gets."""
    host, port = server.url.rsplit("/", 1)[1].split(":")
    nonce = base64.b64encode(os.urandom(16)).decode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: "
                     f"Upgrade\r\nSec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n"
                     f"X-Forwarded-For: 203.0.113.4\r\n{auth}\r\n".encode())
        return conn.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_a_websocket_goes_through_the_key_check(unready: Server) -> None:
    before = metric(unready, REJECTED, route="/predict", reason="unauthenticated")
    line = handshake(unready, "/predict")
    assert " 403 " in line + " ", line
    after = metric(unready, REJECTED, route="/predict", reason="unauthenticated")
    assert after - before == 1  # refused by the key check, not only by the missing route
