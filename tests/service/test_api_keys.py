"""Keys, scopes, limits and the published contract against a real `bentoml serve` (2 workers).

The module's server runs with FRAUDSERVE_API_KEYS and a small rate limit; each test uses its
own key (and its own client address, through the trusted proxy) so the buckets do not
interfere. How a service starts with or without keys: test_key_startup.py.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import Server, Store, serve

from fraud.config import load_ab_config
from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service]

AB = load_ab_config()
# Each >= 32 characters and no placeholder: the service refuses anything less at start.
KEYS = {name: f"svc-{name}-key-{i}-" + "x7Kq9TzP4mWb2VnR8sLd3"
        for i, name in enumerate(("score", "label", "admin", "rate", "batch", "flood"))}
BURST = 20  # per key; refills at 6 a minute, so the counts below are exact within a second
ANON_BURST = 60  # per client address without a key; refills at 10 a second
FAILED_BURST = 40  # failed authentications per client address; refills at 30 a minute


@pytest.fixture(scope="module")
def keyed(trained_store: Store, gate_report: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    entries = ",".join(f"{'score' if name in ('rate', 'batch', 'flood') else name}:{key}"
                       for name, key in KEYS.items())
    # The test client is the trusted proxy: a test names its own client address in
    # X-Forwarded-For, so the per-address buckets of one test never starve another's.
    with serve(trained_store, tmp_path_factory.mktemp("auth"),
               FRAUDSERVE_GATE_REPORT=str(gate_report), FRAUDSERVE_API_KEYS=entries,
               FRAUDSERVE_RATE_LIMIT_PER_MIN="6", FRAUDSERVE_RATE_BURST=str(BURST),
               FRAUDSERVE_TRUSTED_PROXIES="127.0.0.1", FRAUDSERVE_ANON_RATE_PER_MIN="600",
               FRAUDSERVE_ANON_RATE_BURST=str(ANON_BURST),
               FRAUDSERVE_FAILED_AUTH_BURST=str(FAILED_BURST)) as srv:
        yield srv


def call(server: Server, method: str, path: str, body: Any = None, key: str | None = None,
         raw: str | None = None, client: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    host, port = server.url.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        conn.request(method, path, body=data, headers={
            "Connection": "close", "Content-Type": "application/json",
            **({"Authorization": f"Bearer {key}"} if key else {}),
            **({"X-Forwarded-For": client} if client else {}), **(headers or {})})
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, (
            json.loads(text) if text.strip().startswith(("{", "[")) else text)
    finally:
        conn.close()


def assert_error_shape(body: Any) -> None:
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert isinstance(body.get("detail", []), list), body


FEEDBACK = {"request_id": "0" * 32, "is_fraud": True}


@pytest.mark.parametrize(("method", "path", "body", "who", "status"), [
    ("POST", "/predict", EXAMPLE_TRANSACTION, None, 401),
    ("POST", "/predict", EXAMPLE_TRANSACTION, "wrong-key", 401),
    ("POST", "/predict", EXAMPLE_TRANSACTION, "label", 403),
    ("POST", "/predict", EXAMPLE_TRANSACTION, "admin", 403),
    ("POST", "/predict", EXAMPLE_TRANSACTION, "score", 200),
    ("POST", "/feedback", FEEDBACK, None, 401),
    ("POST", "/feedback", FEEDBACK, "score", 403),
    ("POST", "/feedback", FEEDBACK, "label", 404),  # through: an unknown request_id
    ("GET", "/experiments", None, "score", 403),
    ("GET", "/experiments", None, "admin", 200),
    ("POST", "/admin/share", {"challenger_share": 1.5}, "label", 403),
    ("POST", "/admin/share", {"challenger_share": 1.5}, "admin", 400),
    ("GET", "/ab-stats", None, None, 200),
    ("GET", "/ab-stats", None, "wrong-key", 401),
    ("GET", "/health", None, None, 200),
    ("GET", "/metrics", None, None, 200),
    ("GET", "/readyz", None, None, 200),
    ("GET", "/docs.json", None, None, 200),
    ("GET", "/", None, None, 200),
])
def test_each_auth_case(keyed: Server, method: str, path: str, body: Any, who: str | None,
                        status: int) -> None:
    key = KEYS.get(who, who) if who else None
    got, headers, answer = call(keyed, method, path, body, key)
    assert got == status, (got, answer)
    if status in (401, 403):
        assert_error_shape(answer)
        assert headers["www-authenticate"].startswith('Bearer realm="fraudserve"')


def test_strict_bodies_are_400s_in_the_one_shape(keyed: Server) -> None:
    for path, body, who, field in (
            ("/feedback", {"request_id": "abc", "is_fraud": "yes"}, "label", "is_fraud"),
            ("/feedback", {"request_id": "abc", "is_fraud": 1}, "label", "is_fraud"),
            ("/admin/share", {"challenger_share": False}, "admin", "challenger_share"),
            ("/predict", {**EXAMPLE_TRANSACTION, "amount": 0.0}, "score", "amount")):
        status, _, answer = call(keyed, "POST", path, body, KEYS[who])
        assert status == 400, (path, body, answer)
        assert_error_shape(answer)
        assert any(d["loc"][-1] == field for d in answer["detail"]), answer


def read_all(conn: socket.socket) -> str:
    """Everything the server sends until it closes the connection (it says Connection: close)."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data.decode()


def test_a_huge_body_is_refused_unread_and_a_full_batch_fits(keyed: Server) -> None:
    counted = metric(keyed, REJECTED, route="/predict", reason="too_large")
    host, port = keyed.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     f"{KEYS['score']}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {50 * 2**20}\r\n\r\n".encode())
        head = read_all(conn)
    assert head.startswith("HTTP/1.1 413"), head[:300]
    assert "request body exceeds the limit of 65536 bytes for /predict" in head
    assert metric(keyed, REJECTED, route="/predict", reason="too_large") - counted == 1
    rows = [{**EXAMPLE_TRANSACTION, "user_id": "u" * 256} for _ in range(AB.max_batch_rows)]
    status, _, answer = call(keyed, "POST", "/predict_batch", {"transactions": rows},
                             KEYS["batch"])
    assert status == 200, str(answer)[:300]


def test_the_rate_limit_holds_for_the_replica_not_per_worker(keyed: Server) -> None:
    """BURST requests get through in all, whichever of the 2 workers serves them."""
    offset = keyed.log.stat().st_size
    counted = metric(keyed, REJECTED, route="/predict", reason="rate_limited")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: call(keyed, "POST", "/predict", EXAMPLE_TRANSACTION,
                                               KEYS["rate"]), range(3 * BURST)))
    statuses = [a[0] for a in answers]
    assert statuses.count(200) in (BURST, BURST + 1), statuses  # +1: 0.1 token/s refill
    assert set(statuses) == {200, 429}
    refused = next(a for a in answers if a[0] == 429)
    assert int(refused[1]["retry-after"]) >= 1
    assert_error_shape(refused[2])
    assert metric(keyed, REJECTED, route="/predict", reason="rate_limited") - counted == \
        statuses.count(429)
    time.sleep(1)
    log = keyed.log.read_text(errors="replace")[offset:]
    workers = set(re.findall(r"\[entry_service:FraudDetection:(\d+)\].*path=/predict,", log))
    assert workers == {"1", "2"}, f"both workers must have served: {workers}"


def test_the_contract_declares_the_keys(keyed: Server) -> None:
    _, _, doc = call(keyed, "GET", "/docs.json")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["paths"]["/predict"]["post"]["security"] == [{"bearerAuth": ["score"]}]
    assert doc["paths"]["/feedback"]["post"]["security"] == [{"bearerAuth": ["label"]}]
    assert doc["paths"]["/admin/share"]["post"]["security"] == [{"bearerAuth": ["admin"]}]
    for status in ("400", "401", "403", "413", "429", "503"):
        assert status in doc["paths"]["/predict"]["post"]["responses"], status


def test_no_key_ever_reaches_the_log(keyed: Server) -> None:
    text = keyed.logs()
    for key in (*KEYS.values(), "wrong-key"):
        assert key not in text


REJECTED = "fraud_rejected_requests_total"


def metric(server: Server, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when absent), summed over the workers."""
    from prometheus_client.parser import text_string_to_metric_families

    _, _, text = call(server, "GET", "/metrics")
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_admin_routes_refuse_missing_wrong_and_unscoped_keys(keyed: Server) -> None:
    """Replaces X-Admin-Key: near misses of the admin key are 401s, a key without the scope a
    403, and nothing changes; each refusal is counted in fraud_rejected_requests."""
    admin = KEYS["admin"]
    before = call(keyed, "GET", "/ab-stats", key=admin)[2]["experiment"]
    counted = {r: metric(keyed, REJECTED, route="/admin/share", reason=r)
               for r in ("unauthenticated", "forbidden")}
    for path, body in (("/admin/share", {"challenger_share": 0.0}), ("/admin/rollback", None),
                       ("/admin/resume", None), ("/experiments/current/disagreements", None)):
        method = "GET" if path.startswith("/experiments") else "POST"
        for who, status in ((None, 401), ("", 401), ("wrong-key", 401), (admin.upper(), 401),
                            (admin[:-1], 401), (KEYS["score"], 403), (KEYS["label"], 403)):
            got, headers, answer = call(keyed, method, path, body, who)
            assert got == status, f"{path} key={who!r}: {got} {answer}"
            assert_error_shape(answer)
            assert headers["www-authenticate"].startswith('Bearer realm="fraudserve"')
        # The old header is not a key any more.
        assert call(keyed, method, path, body, headers={"X-Admin-Key": admin})[0] == 401, path
    time.sleep(1.2)  # a change would have reached every worker by now
    assert call(keyed, "GET", "/ab-stats", key=admin)[2]["experiment"] == before
    # /admin/share: 5 near misses and the old header are 401s, the two other scopes 403s.
    rejected = [line for line in call(keyed, "GET", "/metrics")[2].splitlines()
                if line.startswith(REJECTED)]
    assert metric(keyed, REJECTED, route="/admin/share", reason="unauthenticated") \
        - counted["unauthenticated"] == 6, rejected
    assert metric(keyed, REJECTED, route="/admin/share", reason="forbidden") \
        - counted["forbidden"] == 2


def test_ab_stats_shows_salt_and_thresholds_to_admin_keys_only(keyed: Server) -> None:
    public = call(keyed, "GET", "/ab-stats")[2]
    scored = call(keyed, "GET", "/ab-stats", key=KEYS["score"])[2]
    full = call(keyed, "GET", "/ab-stats", key=KEYS["admin"])[2]
    for view in (public, scored):
        assert "salt" not in view["experiment"], view["experiment"]
        for arm in ("model_a", "model_b"):
            assert "threshold" not in view[arm]
            assert view[arm]["total_predictions"] >= 0 and view[arm]["model_tag"]
    assert full["experiment"]["salt"] == AB.salt
    assert all(0 < full[arm]["threshold"] < 1 for arm in ("model_a", "model_b"))
    stripped = {k: v for k, v in full["experiment"].items() if k != "salt"}
    assert set(stripped) == set(public["experiment"])


def test_the_model_card_shows_thresholds_to_admin_keys_only(keyed: Server) -> None:
    """Issue 23: /model-card was open and published each model's threshold."""
    def card(key: str | None = None, accept: str = "application/json") -> Any:
        return call(keyed, "GET", "/model-card", key=key, headers={"Accept": accept})[2]

    thresholds = [m["threshold"] for m in card(KEYS["admin"])["models"]]
    assert all(0 < t < 1 for t in thresholds), thresholds
    for view in (card(), card(KEYS["score"])):
        assert [m["threshold"] for m in view["models"]] == [None, None]
        assert "admin key" in view["thresholds_hidden"]
    section = card(accept="text/markdown").split("## Thresholds")[1].split("## Caveats")[0]
    assert "Not shown:" in section and "Validation curve" not in section, section
    assert not any(f"{t:.4f}" in section for t in thresholds), section



def test_anonymous_report_floods_are_throttled_per_client_address(keyed: Server) -> None:
    """Issue 23: 600 anonymous /report calls, 32 at a time, were never throttled. Now one
    address gets its burst and the refill (10 a second), the rest 429 with Retry-After, while
    another address and a keyed client are served."""
    flood = "203.0.113.10"
    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: call(keyed, "GET", "/report", client=flood),
                                range(300)))
    elapsed = time.monotonic() - started
    statuses = [a[0] for a in answers]
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) <= ANON_BURST + 10 * elapsed + 1, (statuses.count(200), elapsed)
    refused = next(a for a in answers if a[0] == 429)
    assert int(refused[1]["retry-after"]) >= 1
    assert "per client address" in refused[2]["error"]
    # The same bucket: /ab-stats from the flooding address right after, 30 at once. The bucket
    # refills 10 a second meanwhile, so a single call could find a fresh token on a slow machine;
    # 30 cannot all be served unless they took 3 s.
    started = time.monotonic()
    with ThreadPoolExecutor(30) as pool:
        same = [a[0] for a in pool.map(lambda _: call(keyed, "GET", "/ab-stats", client=flood),
                                       range(30))]
    elapsed = time.monotonic() - started
    assert 429 in same, (same, elapsed)
    assert same.count(200) <= 10 * elapsed + 2, (same, elapsed)
    assert call(keyed, "GET", "/report", client="203.0.113.11")[0] == 200
    assert call(keyed, "POST", "/predict", EXAMPLE_TRANSACTION, KEYS["flood"],
                client=flood)[0] == 200


def test_failed_authentications_are_throttled_per_client_address(keyed: Server) -> None:
    guesser = "203.0.113.20"
    statuses = [call(keyed, "POST", "/predict", EXAMPLE_TRANSACTION, f"guess-{i}",
                     client=guesser)[0] for i in range(FAILED_BURST)]
    assert statuses == [401] * FAILED_BURST
    status, headers, answer = call(keyed, "POST", "/predict", EXAMPLE_TRANSACTION,
                                   KEYS["flood"], client=guesser)
    assert status == 429 and "failed authentications" in answer["error"], answer
    assert int(headers["retry-after"]) >= 1
    assert call(keyed, "POST", "/predict", EXAMPLE_TRANSACTION, KEYS["flood"],
                client="203.0.113.21")[0] == 200
