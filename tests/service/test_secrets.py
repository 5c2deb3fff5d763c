"""Secrets stay secret (issue 23: with FRAUDSERVE_LEDGER=postgresql://...?password=... and the
database stopped under a running service, the password was in 4 lines of public answers and
the log, and the database's port in 2 public answers).

A real `bentoml serve` on a real PostgreSQL, logging in as a role whose password holds # and
?, given in the URL's query string; keys configured. Every route is called (with and without
keys) while the database runs, then again after it is stopped under the service. No answer
(body or header) and no line of the log holds the password or a key; no error answer names
the database's host and port, its user, its name or the driver's words.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import Server, Store, serve

from fraud.schema import EXAMPLE_TRANSACTION
from fraud.store.migrate import migrate

pytestmark = [pytest.mark.service, pytest.mark.postgres, pytest.mark.slow]

PASSWORD = f"pw#{secrets.token_hex(8)}?x"
KEYS = {scope: f"{scope}-{secrets.token_urlsafe(30)}" for scope in ("score", "label", "admin")}
ROLE = "leaky_role"
DRIVER_WORDS = ("psycopg", "OperationalError", "connection to server", "Connection refused",
                "PoolTimeout", "libpq")


def leaky_url(postgres: Any) -> tuple[str, str]:
    """A fresh database owned by a role whose password has # and ?, named in ?password=."""
    import psycopg

    db = postgres.create_database().rsplit("/", 1)[1]
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
        conn.execute(f"ALTER DATABASE {db} OWNER TO {ROLE}")
    return f"postgresql://{ROLE}@127.0.0.1:{postgres.port}/{db}?password={PASSWORD}", db


def call(server: Server, method: str, path: str, body: Any = None,
         key: str | None = None) -> tuple[int, str]:
    host, port = server.url.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers={
            "Connection": "close", "Content-Type": "application/json",
            **({"Authorization": f"Bearer {key}"} if key else {})})
        resp = conn.getresponse()
        head = "\n".join(f"{k}: {v}" for k, v in resp.getheaders())
        return resp.status, f"{head}\n\n{resp.read().decode(errors='replace')}"
    finally:
        conn.close()


def every_route(server: Server, request_id: str) -> list[tuple[str, int, str]]:
    calls: list[tuple[str, str, Any, str | None]] = [
        ("POST", "/predict", EXAMPLE_TRANSACTION, KEYS["score"]),
        ("POST", "/predict_batch", {"transactions": [EXAMPLE_TRANSACTION] * 3}, KEYS["score"]),
        ("POST", "/explain", EXAMPLE_TRANSACTION, KEYS["score"]),
        ("POST", "/feedback", {"request_id": request_id, "is_fraud": True}, KEYS["label"]),
        ("GET", "/experiments", None, KEYS["admin"]),
        ("GET", "/experiments/current/disagreements", None, KEYS["admin"]),
        ("GET", "/ab-stats", None, KEYS["admin"]),
        ("POST", "/predict", EXAMPLE_TRANSACTION, "not-a-key"),
        *(("GET", path, None, None) for path in (
            "/ab-stats", "/report", "/drift", "/health", "/model-card", "/metrics", "/readyz",
            "/livez", "/healthz", "/docs.json", "/", "/no-such-path")),
    ]
    return [(f"{m} {p}", *call(server, m, p, b, k)) for m, p, b, k in calls]


def test_no_answer_and_no_log_line_holds_a_secret(trained_store: Store, gate_report: Path,
                                                  postgres: Any, tmp_path: Path) -> None:
    url, db = leaky_url(postgres)
    migrate(url)
    env = {"FRAUDSERVE_GATE_REPORT": str(gate_report), "FRAUDSERVE_LEDGER": url,
           "FRAUDSERVE_API_KEYS": ",".join(f"{s}:{k}" for s, k in KEYS.items()),
           "FRAUDSERVE_ANON_RATE_PER_MIN": "0", "FRAUDSERVE_RATE_LIMIT_PER_MIN": "0"}
    answers: list[tuple[str, int, str]] = []
    try:
        with serve(trained_store, tmp_path, **env) as srv:
            status, text = call(srv, "POST", "/predict", EXAMPLE_TRANSACTION, KEYS["score"])
            assert status == 200, text
            request_id = json.loads(text.split("\n\n", 1)[1])["request_id"]
            answers += every_route(srv, request_id)
            postgres.stop()
            deadline = time.monotonic() + 60  # until the service has noticed
            while call(srv, "POST", "/predict", EXAMPLE_TRANSACTION, KEYS["score"])[0] != 503:
                assert time.monotonic() < deadline, "the service never noticed the database"
                time.sleep(1)
            down = every_route(srv, request_id)
            answers += down
            time.sleep(3)  # the watch's failing rounds reach the log too
            log = srv.logs()
    finally:
        postgres.start()
    refused = {route: status for route, status, _ in down if status == 503}
    assert {"POST /predict", "POST /predict_batch", "POST /feedback", "GET /ab-stats",
            "GET /report", "GET /experiments"} <= set(refused), refused
    for route, status, text in answers:
        for secret in (PASSWORD, PASSWORD.split("#")[1], *KEYS.values()):
            assert secret not in text, (route, status, text[:2000])
        if status >= 400:
            for named in (f"{postgres.port}", ROLE, db, *DRIVER_WORDS):
                assert named not in text, (route, status, named, text[:2000])
    for secret in (PASSWORD, PASSWORD.split("#")[1], *KEYS.values()):
        assert secret not in log, [line for line in log.splitlines() if secret in line][:5]
    assert "LEDGER_UNAVAILABLE" in log and "password=***" in log  # the detail, redacted
