"""ASGI middleware: API keys, the rate buckets and body size limits, before any parsing.

Order per request (HTTP and websocket alike): a client address that failed to authenticate
too often is refused outright (429); then the key (401/403, nothing read); then a rate
bucket: the key's, or, for a request without a valid key, its client address's (429 with
Retry-After); then the body, read here up to its limit before the app sees a byte: a
Content-Length above the limit is refused unread, and a body streamed without one is
counted as it arrives (413 naming the limit). A body larger than one size class (2 KiB) pays
one more token per started class. Every refusal is the one error shape of
fraud/api/errors.py; a websocket is closed (1008) instead. In open mode (no keys) no bucket
applies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fraud.api.auth import KeyRing, Verdict, authorize, bearer_token
from fraud.api.clientip import NO_PROXIES, TrustedProxies, client_bucket
from fraud.api.errors import error_json
from fraud.api.ratelimit import RateLimiter, RateSettings
from fraud.api.ratestate import StateUnsafe
from fraud.api.settings import BATCH_ROW_BYTES, LimitSettings

log = logging.getLogger("fraudserve.security")
Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[..., Any]
Send = Callable[[Message], Any]
STATE_KEY = "fraudserve_scopes"  # request.state.fraudserve_scopes: the scopes granted
KEYED_KEY = "fraudserve_keyed"  # request.state.fraudserve_keyed: a valid key, or open mode
PAID_KEY = "fraudserve_paid"  # an OPTIONS request the outer (preflight) instance charged
SIZE_CLASS_BYTES = BATCH_ROW_BYTES  # one token per started class of body bytes
STATE_DOWN = ("the rate-limit state is unavailable (RATE_STATE_UNAVAILABLE); nothing was done, "
              "retry later")  # the detail goes to the log only


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def send_error(send: Send, status: int, message: str,
                     headers: Mapping[str, str] | None = None) -> None:
    """Answer `status` with the one error body."""
    body = error_json(message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def size_class_cost(size: int) -> int:
    """Tokens a body of `size` bytes costs: one per started SIZE_CLASS_BYTES (at least 1)."""
    return max(1, math.ceil(size / SIZE_CLASS_BYTES))


def _retry(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait)))}


class SecurityMiddleware:
    """Keys, rate and body limits in front of `app` (BentoML: Service.add_asgi_middleware).

    `limiter` is the per-key bucket; `anonymous` (per client address, requests without a
    valid key) and `failed_auth` (per client address, 401s for a presented key) apply only
    while keys are configured. With `preflight_only`, an instance placed outside
    CORSMiddleware (which answers preflights itself) charges OPTIONS requests to the client
    address and lets everything through. `on_reject(path, status, reason)` is called for
    every refusal (metrics); reasons are unauthenticated, forbidden, rate_limited, too_large,
    unsupported_media_type. Secrets never reach it or the log.
    """

    def __init__(self, app: ASGIApp, *, keys: KeyRing, limits: LimitSettings,
                 limiter: RateLimiter | None = None,
                 anonymous: RateLimiter | None = None,
                 failed_auth: RateLimiter | None = None,
                 proxies: TrustedProxies = NO_PROXIES,
                 reports_need_key: bool = False, preflight_only: bool = False,
                 on_reject: Callable[[str, int, str], None] | None = None) -> None:
        self.app, self.keys, self.limits, self.preflight_only = app, keys, limits, preflight_only
        self.limiter, self.on_reject = limiter, on_reject
        self.anonymous, self.failed_auth = anonymous, failed_auth
        self.proxies, self.reports_need_key = proxies, reports_need_key

    def _rejected(self, path: str, status: int, reason: str) -> None:
        log.debug("refused %s: %d %s", path, status, reason)
        if self.on_reject is not None:
            try:
                self.on_reject(path, status, reason)
            except Exception:  # a metrics hook must never turn a 4xx into a 500
                log.exception("on_reject hook failed")

    async def _refuse(self, scope: Scope, send: Send, status: int, reason: str, message: str,
                      headers: Mapping[str, str] | None = None) -> None:
        self._rejected(scope["path"], status, reason)
        if scope["type"] == "websocket":  # closed before accept: the server answers 403
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        await send_error(send, status, message, headers)

    async def __call__(self, scope: Scope, receive: Callable[[], Any], send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        if self.preflight_only and method != "OPTIONS":
            await self.app(scope, receive, send)
            return
        try:
            verdict = await self._admit(scope, send, method)
        except (OSError, StateUnsafe):  # the buckets' file: a 503, never a 500
            log.exception("rate-limit state unavailable")
            await self._refuse(scope, send, 503, "unavailable", STATE_DOWN)
            return
        if verdict is None:  # answered already
            return
        if self.preflight_only or scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        await self._limited_body(scope, receive, send, verdict.key.secret
                                 if verdict.key is not None else None)

    async def _admit(self, scope: Scope, send: Send, method: str) -> Verdict | None:
        """The request's verdict once its buckets paid, or None when it was refused."""
        path, header = scope["path"], _header(scope, b"authorization")
        client = client_bucket(scope, self.proxies) if not self.keys.open else ""
        if self.preflight_only:  # OPTIONS, outside CORSMiddleware
            if await self._anonymous_limited(scope, send, client):
                return None
            scope.setdefault("state", {})[PAID_KEY] = True
            return Verdict(0)
        presented = bearer_token(header) is not None
        if presented and self.failed_auth is not None and not self.keys.open:
            wait = self.failed_auth.peek(b"failed-auth:" + client.encode())
            if wait > 0:
                await self._refuse(scope, send, 429, "rate_limited", "too many failed "
                                   "authentications from this client address; retry after "
                                   f"{math.ceil(wait)} s", _retry(wait))
                return None
        verdict = authorize(self.keys, method, path, header,
                            reports_need_key=self.reports_need_key)
        if verdict.key is None and not scope.get("state", {}).get(PAID_KEY) \
                and await self._anonymous_limited(scope, send, client):
            return None
        if verdict.status:
            if verdict.status == 401 and presented and self.failed_auth is not None:
                self.failed_auth.check(b"failed-auth:" + client.encode())
            reason = "unauthenticated" if verdict.status == 401 else "forbidden"
            await self._refuse(scope, send, verdict.status, reason, verdict.message,
                               {"WWW-Authenticate": verdict.challenge})
            return None
        state = scope.setdefault("state", {})
        state[STATE_KEY] = verdict.scopes
        state[KEYED_KEY] = verdict.key is not None or self.keys.open
        if verdict.key is not None and self.limiter is not None:
            wait = self.limiter.check(verdict.key.secret)
            if wait > 0:
                await self._key_limited(scope, send, wait)
                return None
        return verdict

    async def _anonymous_limited(self, scope: Scope, send: Send, client: str) -> bool:
        """Charge a request without a valid key to its client address; True if refused."""
        if self.anonymous is None or self.keys.open:
            return False
        wait = self.anonymous.check(b"anonymous:" + client.encode())
        if wait <= 0:
            return False
        await self._refuse(scope, send, 429, "rate_limited", "rate limit exceeded for requests "
                           f"without a key: {self.anonymous.settings.per_min:g} per minute per "
                           f"client address; retry after {math.ceil(wait)} s", _retry(wait))
        return True

    async def _key_limited(self, scope: Scope, send: Send, wait: float) -> None:
        settings: RateSettings = self.limiter.settings if self.limiter else RateSettings()
        await self._refuse(scope, send, 429, "rate_limited", f"rate limit exceeded: "
                           f"{settings.per_min:g} requests per minute per key (burst "
                           f"{settings.capacity:g}); retry after {math.ceil(wait)} s",
                           _retry(wait))

    async def _limited_body(self, scope: Scope, receive: Callable[[], Any], send: Send,
                            key: bytes | None) -> None:
        """Read the body up to its limit; a key pays its size class beyond the first token."""
        path, limit = scope["path"], self.limits.body_limit(scope["path"])
        kind = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if scope["method"] in ("POST", "PUT", "PATCH") and kind and not (
                kind == "application/json" or kind.endswith("+json")):
            # Every body here is JSON; other parsers (multipart, forms) are not reached.
            self._rejected(path, 415, "unsupported_media_type")
            await send_error(send, 415, f"Content-Type must be application/json, got {kind!r}")
            return
        too_large = f"request body exceeds the limit of {limit} bytes for {path}"
        length = (_header(scope, b"content-length") or "").strip()
        if length.isdigit() and int(length) > limit:  # refused unread
            self._rejected(path, 413, "too_large")
            await send_error(send, 413, f"{too_large} (Content-Length {int(length)})",
                             {"Connection": "close"})
            return
        chunks: list[bytes] = []
        size = 0
        while True:  # read it all here, counting: the app gets it only if within the limit
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                self._rejected(path, 413, "too_large")
                await send_error(send, 413, f"{too_large} (more was sent)",
                                 {"Connection": "close"})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        extra = 0
        if key is not None and self.limiter is not None:  # a full bucket pays any body
            extra = min(size_class_cost(size), int(self.limiter.settings.capacity)) - 1
        if key is not None and self.limiter is not None and extra > 0:
            try:
                wait = self.limiter.check(key, cost=extra)
            except (OSError, StateUnsafe):
                log.exception("rate-limit state unavailable")
                await self._refuse(scope, send, 503, "unavailable", STATE_DOWN)
                return
            if wait > 0:
                await self._key_limited(scope, send, wait)
                return
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Callable[[], Any]) -> Callable[[], Any]:
    """A receive() that hands the app the body already read, then waits as the server's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def count_by_route(known: Iterable[str], count: Callable[[str, str], None]
                   ) -> Callable[[str, int, str], None]:
    """SecurityMiddleware's `on_reject` hook: `count(route, reason)` per refusal, naming a
    known route as itself and any other path (a scanner's guesses) "other", so the metric's
    label set stays bounded (fraud_rejected_requests{route,reason})."""
    routes = frozenset(known)

    def on_reject(path: str, status: int, reason: str) -> None:
        count(path if path in routes else "other", reason)

    return on_reject


def scopes_of(request: Any) -> frozenset[str]:
    """The scopes the request's key holds (all in open mode), for routes that answer more to
    a key (GET /ab-stats: internals for admin)."""
    return getattr(request.state, STATE_KEY, frozenset())



def is_admin(request: Any) -> bool:
    """Whether the request's key holds the admin scope (always, in open mode)."""
    return "admin" in scopes_of(request)


def keyed(request: Any) -> bool:
    """Whether the request came with a valid key (or the service runs open): such callers
    may have fresh reports; the rest get the copy cached for the check interval."""
    return bool(getattr(request.state, KEYED_KEY, False))
