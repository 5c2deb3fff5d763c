"""SecurityMiddleware in front of a tiny Starlette app: keys, rate, body limits over HTTP."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fraud.api.auth import KeyConfigError, KeyRing, parse_keys
from fraud.api.errors import ErrorBody
from fraud.api.middleware import SecurityMiddleware, count_by_route, scopes_of
from fraud.api.ratelimit import MemoryStore, RateLimiter, RateSettings
from fraud.api.settings import LimitSettings, security_settings
from fraud.config import ABConfig

SCORE, LABEL, ADMIN = "score-secret-1", "label-secret-2", "admin-secret-3"
KEYS = KeyRing(parse_keys(f"score:{SCORE},label:{LABEL},admin:{ADMIN}", "test"))
LIMITS = LimitSettings(max_body_bytes=100, max_batch_body_bytes=1000)


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body), "scopes": sorted(scopes_of(request))})


ROUTES = [Route(p, echo, methods=["GET", "POST"]) for p in (
    "/predict", "/predict_batch", "/feedback", "/admin/share", "/health", "/ab-stats")]


class Harness:
    """The app, its frozen clock, and what reached the app and the reject hook."""

    def __init__(self, keys: KeyRing = KEYS, rate: RateSettings | None = None) -> None:
        self.now = 1000.0
        self.rejects: list[tuple[str, int, str]] = []
        limiter = RateLimiter(rate or RateSettings(per_min=60, burst=3), MemoryStore(),
                              lambda: self.now)
        self.app = Starlette(routes=ROUTES, middleware=[Middleware(
            SecurityMiddleware, keys=keys, limits=LIMITS, limiter=limiter,
            on_reject=lambda *a: self.rejects.append(a))])
        self.client = TestClient(self.app)

    def post(self, path: str, key: str | None = None, body: bytes = b"{}",
             **headers: str) -> Any:
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return self.client.post(path, content=body, headers={**auth, **headers})


def check_error(answer: Any, status: int) -> ErrorBody:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    return ErrorBody.model_validate(answer.json())  # the documented shape, exactly


@pytest.mark.parametrize(("path", "key", "status"), [
    ("/predict", None, 401), ("/predict", "wrong", 401), ("/predict", SCORE, 200),
    ("/predict", LABEL, 403), ("/feedback", LABEL, 200), ("/feedback", SCORE, 403),
    ("/admin/share", ADMIN, 200), ("/admin/share", SCORE, 403), ("/admin/share", None, 401),
    ("/health", None, 200), ("/health", "wrong", 200), ("/ab-stats", None, 200),
    ("/ab-stats", "wrong", 401)])
def test_auth_statuses(path: str, key: str | None, status: int) -> None:
    h = Harness()
    answer = h.post(path, key)
    if status == 200:
        assert answer.status_code == 200, answer.text
        return
    body = check_error(answer, status)
    if status == 401:
        assert answer.headers["www-authenticate"].startswith('Bearer realm="fraudserve"')
    if status == 403:
        assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
        assert "scope" in body.error
    reason = "unauthenticated" if status == 401 else "forbidden"
    assert h.rejects == [(path, status, reason)]


def test_the_app_learns_the_granted_scopes() -> None:
    h = Harness()
    assert h.client.get("/ab-stats").json()["scopes"] == []
    assert h.client.get("/ab-stats", headers={"Authorization": f"Bearer {ADMIN}"}
                        ).json()["scopes"] == ["admin"]
    assert Harness(KeyRing()).client.get("/ab-stats").json()["scopes"] == [
        "admin", "label", "score"]


def test_open_mode_needs_no_key_and_has_no_rate_limit() -> None:
    h = Harness(KeyRing())
    assert {h.post(p).status_code for p in ("/predict", "/feedback", "/admin/share")} == {200}
    assert all(h.post("/predict").status_code == 200 for _ in range(20))  # burst is 3


def test_rate_limit_per_key_with_retry_after() -> None:
    h = Harness()
    assert [h.post("/predict", SCORE).status_code for _ in range(3)] == [200] * 3
    answer = h.post("/predict", SCORE)
    body = check_error(answer, 429)
    assert answer.headers["retry-after"] == "1"
    assert "60 requests per minute per key" in body.error
    assert h.post("/feedback", LABEL).status_code == 200  # another key, another bucket
    assert h.client.get("/health").status_code == 200  # open routes spend nothing
    for _ in range(5):  # refused requests spend nothing: the key is back after 1 s
        h.post("/predict", SCORE)
    h.now += 1.0
    assert h.post("/predict", SCORE).status_code == 200
    assert h.rejects.count(("/predict", 429, "rate_limited")) == 6


def test_unauthenticated_requests_spend_no_tokens() -> None:
    h = Harness()
    for _ in range(10):
        h.post("/predict", "wrong")
    assert h.post("/predict", SCORE).status_code == 200


@pytest.mark.parametrize(("path", "limit"), [("/predict", 100), ("/predict_batch", 1000)])
def test_body_limit_by_content_length(path: str, limit: int) -> None:
    h = Harness()
    ok = h.post(path, SCORE, b"x" * limit)
    assert (ok.status_code, ok.json()["bytes"]) == (200, limit)  # all of it reached the app
    h.now += 10
    body = check_error(h.post(path, SCORE, b"x" * (limit + 1)), 413)
    assert f"limit of {limit} bytes for {path}" in body.error
    assert f"Content-Length {limit + 1}" in body.error
    assert h.rejects == [(path, 413, "too_large")]


def test_body_limit_applies_to_open_routes_too() -> None:
    check_error(Harness().post("/health", None, b"y" * 101), 413)


async def _drive(chunks: list[bytes], path: str = "/predict") -> tuple[int, int, bool]:
    """A streamed body without Content-Length: (status, chunks read, app reached)."""
    reached = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await JSONResponse({"ok": 1})(scope, receive, send)

    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[reads - 1],
                "more_body": reads < len(chunks)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    mw = SecurityMiddleware(app, keys=KeyRing(), limits=LIMITS)
    await mw({"type": "http", "method": "POST", "path": path, "headers": []}, receive, send)
    return sent[0]["status"], reads, bool(reached)


@pytest.mark.anyio
async def test_a_streamed_body_is_counted_and_cut_at_the_limit() -> None:
    assert await _drive([b"a" * 40] * 10) == (413, 3, False)  # 120 > 100 on the 3rd chunk
    assert await _drive([b"a" * 50, b"a" * 50]) == (200, 2, True)  # exactly the limit


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live_server() -> Iterator[int]:
    """The harness app on a real uvicorn socket."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(Harness().app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def read_all(conn: socket.socket) -> str:
    """Everything the server sends until it closes the connection (it says Connection: close)."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data.decode()


def test_a_huge_declared_body_is_refused_before_it_is_sent(live_server: int) -> None:
    """A 50 MB Content-Length: the 413 comes back with none of the body sent."""
    with socket.create_connection(("127.0.0.1", live_server), timeout=5) as conn:
        conn.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SCORE}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {50 * 2**20}\r\n"
                     "\r\n".encode())
        head = read_all(conn)
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert "request body exceeds the limit of 100 bytes for /predict" in head


def test_secrets_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    with caplog.at_level(logging.DEBUG):
        for key in (SCORE, LABEL, ADMIN, "wrong-secret-9"):
            for path in ("/predict", "/feedback", "/admin/share", "/ab-stats"):
                h.post(path, key)
        h.post("/predict", SCORE, b"z" * 500)
    assert caplog.records, "the refusals are logged (at DEBUG)"
    for secret in (SCORE, LABEL, ADMIN, "wrong-secret-9"):
        assert secret not in caplog.text
    assert all(secret not in str(r) for r in h.rejects for secret in (SCORE, ADMIN))


def test_a_failing_reject_hook_does_not_turn_a_401_into_a_500() -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("metrics down")

    app = Starlette(routes=ROUTES, middleware=[Middleware(
        SecurityMiddleware, keys=KEYS, limits=LIMITS, on_reject=boom)])
    assert TestClient(app).post("/predict").status_code == 401


def test_limit_settings_from_yaml_and_environment() -> None:
    default = LimitSettings.from_mapping({}, max_batch_rows=500)
    assert (default.max_body_bytes, default.max_batch_body_bytes) == (65536, 500 * 2048)
    s = LimitSettings.from_mapping({"max_body_bytes": 1000},
                                   {"FRAUDSERVE_MAX_BATCH_BODY_BYTES": "5000"})
    assert (s.body_limit("/predict"), s.body_limit("/predict_batch")) == (1000, 5000)
    with pytest.raises(ValueError, match="unknown keys"):
        LimitSettings.from_mapping({"max_body": 1})
    with pytest.raises(ValueError, match="max_body_bytes must be >= 1"):
        LimitSettings.from_mapping({"max_body_bytes": 0})


def test_a_body_that_is_not_json_is_415_before_any_parser() -> None:
    """schemathesis found BentoML answering 500 to multipart without a boundary: no parser
    other than JSON is ever reached."""
    reached: list[str] = []

    async def handler(request: Request) -> JSONResponse:
        reached.append("app")
        return JSONResponse({"ok": True})

    inner = Starlette(routes=[Route("/predict", handler, methods=["POST"])])
    app = SecurityMiddleware(inner, keys=KeyRing(), limits=LIMITS)
    client = TestClient(app)
    bad = client.post("/predict", content=b"--x\r\n", headers={"Content-Type":
                                                                 "multipart/form-data"})
    assert bad.status_code == 415 and "application/json" in bad.json()["error"]
    assert client.post("/predict", json={"a": 1}).status_code == 200
    assert client.post("/predict", content=b"{}", headers={
        "Content-Type": "application/json; charset=utf-8"}).status_code == 200
    assert reached == ["app", "app"]


def test_refusals_are_counted_by_known_route_and_any_other_path_is_other() -> None:
    counted: list[tuple[str, str]] = []
    on_reject = count_by_route({"/predict", "/admin/share"}, lambda *c: counted.append(c))
    on_reject("/predict", 401, "unauthenticated")
    on_reject("/wp-login.php", 401, "unauthenticated")  # a scanner's guess
    on_reject("/admin/share", 403, "forbidden")
    assert counted == [("/predict", "unauthenticated"), ("other", "unauthenticated"),
                       ("/admin/share", "forbidden")]


def test_security_settings_come_from_the_config_then_the_environment() -> None:
    ab = ABConfig(max_batch_rows=10, limits={"max_body_bytes": 1000},
                  rate_limit={"per_min": 60})
    got = security_settings(ab, {})
    assert got.keys.open and got.limits.max_body_bytes == 1000 and got.rate.key.per_min == 60
    assert got.limits.max_batch_body_bytes == 10 * 2048  # enough for max_batch_rows rows
    env = {"FRAUDSERVE_API_KEYS": "admin:" + "k" * 32, "FRAUDSERVE_MAX_BODY_BYTES": "2000"}
    got = security_settings(ab, env)
    assert not got.keys.open and got.limits.max_body_bytes == 2000
    with pytest.raises(ValueError):
        security_settings(ab, {"FRAUDSERVE_MAX_BODY_BYTES": "0"})
    with pytest.raises(KeyConfigError):
        security_settings(ab, {"FRAUDSERVE_API_KEYS": "nonsense"})
