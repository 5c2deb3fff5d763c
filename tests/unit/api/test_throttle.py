"""The buckets besides the key's: per client address for requests without a key and for
failed authentications, OPTIONS, websockets, the size class of a body, the switch that makes
the costly open routes need a key, and the trusted proxies' X-Forwarded-For."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from fraud.api.auth import KeyRing, parse_keys
from fraud.api.clientip import NO_PROXIES, TrustedProxies
from fraud.api.middleware import SecurityMiddleware, keyed
from fraud.api.ratelimit import MemoryStore, RateLimiter, RatePolicy, RateSettings
from fraud.api.settings import LimitSettings, middleware_options, security_settings
from fraud.config import ABConfig

SCORE = "s" * 40
KEYS = KeyRing(parse_keys(f"score:{SCORE}", "test"))
LIMITS = LimitSettings(max_body_bytes=100_000, max_batch_body_bytes=100_000)


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"keyed": keyed(request)})


async def ws(socket: WebSocket) -> None:
    await socket.accept()
    await socket.send_text("hello")
    await socket.close()


ROUTES = [Route(p, echo, methods=["GET", "POST", "OPTIONS"])
          for p in ("/predict", "/report", "/health", "/ab-stats")]


class Harness:
    """The middleware with all three buckets on one store and a frozen clock."""

    def __init__(self, keys: KeyRing = KEYS, *, anonymous: int = 3, failed: int = 2,
                 proxies: TrustedProxies = NO_PROXIES, reports_need_key: bool = False,
                 key_burst: int = 5) -> None:
        self.now = 1000.0
        self.rejects: list[tuple[str, int, str]] = []
        key = RateLimiter(RateSettings(per_min=60, burst=key_burst), MemoryStore(),
                          lambda: self.now)
        self.app = Starlette(
            routes=[*ROUTES, *(WebSocketRoute(p, ws) for p in ("/ws", "/predict", "/report"))],
            middleware=[Middleware(
                SecurityMiddleware, keys=keys, limits=LIMITS, limiter=key,
                anonymous=key.with_settings(RateSettings(per_min=60, burst=anonymous)),
                failed_auth=key.with_settings(RateSettings(per_min=60, burst=failed)),
                proxies=proxies, reports_need_key=reports_need_key,
                on_reject=lambda *a: self.rejects.append(a))])
        self.client = TestClient(self.app, client=("198.51.100.7", 5000))

    def get(self, path: str, key: str | None = None, **headers: str) -> Any:
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return self.client.get(path, headers={**auth, **headers})


def test_requests_without_a_key_are_limited_per_client_address() -> None:
    h = Harness()
    assert [h.get("/report").status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = h.get("/health")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "per client address" in refused.json()["error"]
    assert h.get("/predict").status_code == 429  # a 401-to-be pays too: no key is no key
    assert h.get("/report", SCORE).status_code == 200  # a key pays its own bucket
    other = TestClient(h.app, client=("198.51.100.8", 5000))
    assert other.get("/report").status_code == 200  # another address, another bucket
    h.now += 1.0
    assert h.get("/report").status_code == 200
    assert ("/report", 429, "rate_limited") in h.rejects


def test_open_mode_limits_no_address() -> None:
    h = Harness(KeyRing())
    assert {h.get("/report").status_code for _ in range(20)} == {200}


def test_failed_authentications_are_throttled_per_address() -> None:
    h = Harness(anonymous=100, failed=2)
    assert [h.get("/predict", "wrong" * 8).status_code for _ in range(2)] == [401, 401]
    blocked = h.get("/predict", SCORE)  # even the right key, from this address, for now
    assert blocked.status_code == 429 and "failed authentications" in blocked.json()["error"]
    assert h.get("/report").status_code == 200  # without a key: the anonymous bucket
    other = TestClient(h.app, client=("198.51.100.9", 5000))
    assert other.get("/predict", headers={"Authorization": f"Bearer {SCORE}"}
                     ).status_code == 200
    h.now += 1.0
    assert h.get("/predict", SCORE).status_code == 200


def test_a_trusted_proxy_names_the_client_and_nobody_else_can() -> None:
    proxied = Harness(proxies=TrustedProxies.parse(["198.51.100.0/24"]), anonymous=1)
    assert proxied.get("/report", **{"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert proxied.get("/report", **{"X-Forwarded-For": "203.0.113.2"}).status_code == 200
    assert proxied.get("/report", **{"X-Forwarded-For": "203.0.113.1"}).status_code == 429
    direct = Harness(anonymous=1)  # the peer is not trusted: its header is ignored
    assert direct.get("/report", **{"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert direct.get("/report", **{"X-Forwarded-For": "203.0.113.2"}).status_code == 429


def test_options_pays_the_address_bucket() -> None:
    h = Harness(anonymous=2)
    assert [h.client.options("/predict").status_code for _ in range(3)] == [200, 200, 429]


def test_preflight_only_charges_options_outside_cors_and_the_inner_one_does_not_again(
        ) -> None:
    now = [1000.0]
    anonymous = RateLimiter(RateSettings(per_min=60, burst=2), MemoryStore(), lambda: now[0])
    inner = Starlette(routes=ROUTES, middleware=[Middleware(
        SecurityMiddleware, keys=KEYS, limits=LIMITS, anonymous=anonymous)])
    outer = SecurityMiddleware(inner, keys=KEYS, limits=LIMITS, anonymous=anonymous,
                               preflight_only=True)
    client = TestClient(outer)
    assert [client.options("/predict").status_code for _ in range(3)] == [200, 200, 429]
    now[0] += 2.0
    assert client.get("/report").status_code == 200  # only the inner one charges a GET
    assert client.get("/report").status_code == 200
    assert client.get("/report").status_code == 429


def refused(client: TestClient, path: str, **headers: str) -> int:
    """The close code of a websocket the middleware refuses before it is accepted."""
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(
            path, headers=headers):
        pass
    return closed.value.code


def test_websockets_pass_the_same_checks() -> None:
    h = Harness(anonymous=100)
    assert refused(h.client, "/predict") == 1008  # no key for a scored route
    assert ("/predict", 401, "unauthenticated") in h.rejects
    with h.client.websocket_connect("/predict", headers={
            "Authorization": f"Bearer {SCORE}"}) as socket:
        assert socket.receive_text() == "hello"
    # /ws is a route nobody listed: admin only
    assert refused(h.client, "/ws", Authorization=f"Bearer {SCORE}") == 1008
    limited = Harness(anonymous=1)
    with limited.client.websocket_connect("/report") as socket:
        assert socket.receive_text() == "hello"
    assert refused(limited.client, "/report") == 1008
    assert ("/report", 429, "rate_limited") in limited.rejects


def test_a_body_pays_one_token_per_started_size_class() -> None:
    h = Harness(key_burst=10)
    auth = {"Authorization": f"Bearer {SCORE}"}
    big = b"x" * (2048 * 8)  # 8 classes: 1 token at the door, 7 after the body
    assert h.client.post("/predict", content=big, headers=auth).status_code == 200
    assert h.client.post("/predict", content=b"{}", headers=auth).status_code == 200
    assert h.client.post("/predict", content=b"{}", headers=auth).status_code == 200
    assert h.client.post("/predict", content=b"{}", headers=auth).status_code == 429
    h.now += 100
    huge = b"x" * 90_000  # 44 classes, more than the bucket holds: a full bucket pays it
    assert h.client.post("/predict", content=huge, headers=auth).status_code == 200
    assert h.client.post("/predict", content=b"{}", headers=auth).status_code == 429


def test_the_switch_makes_the_costly_views_need_a_key() -> None:
    h = Harness(reports_need_key=True, anonymous=100)
    for path in ("/report", "/ab-stats"):
        assert h.get(path).status_code == 401
        assert h.get(path, SCORE).json() == {"keyed": True}
    assert h.get("/health").status_code == 200
    assert Harness(anonymous=100).get("/report").json() == {"keyed": False}


def test_settings_give_three_buckets_on_one_store() -> None:
    ab = ABConfig(rate_limit={"anonymous_per_min": 120, "failed_auth_burst": 4},
                  access={"trusted_proxies": ["10.0.0.0/8"], "reports_need_key": True})
    got = security_settings(ab, {"FRAUDSERVE_FAILED_AUTH_PER_MIN": "6"})
    assert got.rate.anonymous == RateSettings(per_min=120, burst=60)
    assert got.rate.failed_auth == RateSettings(per_min=6, burst=4)
    assert got.rate.key == RatePolicy().key
    assert got.reports_need_key and got.proxies.networks[0].prefixlen == 8
    options = middleware_options(got, MemoryStore())
    assert options["anonymous"].store is options["limiter"].store
    off = security_settings(ab, {"FRAUDSERVE_REPORTS_NEED_KEY": "0",
                                 "FRAUDSERVE_TRUSTED_PROXIES": ""})
    assert not off.reports_need_key and off.proxies.networks == ()
    with pytest.raises(ValueError, match="FRAUDSERVE_REPORTS_NEED_KEY must be 0 or 1"):
        security_settings(ab, {"FRAUDSERVE_REPORTS_NEED_KEY": "yes"})
    with pytest.raises(ValueError, match="not an address"):
        security_settings(ab, {"FRAUDSERVE_TRUSTED_PROXIES": "10.0.0.0/8,ingress"})
