"""ASGI middleware: API keys, the per-key rate limit and body size limits, before any parsing.

Order per request: the key (401/403, nothing read), the key's rate (429 with Retry-After),
then the body, read here up to its limit before the app sees a byte: a Content-Length above
the limit is refused unread, and a body streamed without one is counted as it arrives (413
naming the limit). Every refusal is the one error shape of fraud/api/errors.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fraud.api.auth import KeyRing, authorize, load_keys
from fraud.api.errors import error_json
from fraud.api.ratelimit import RateLimiter, RateSettings
from fraud.config import ABConfig

log = logging.getLogger("fraudserve.security")
Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[..., Any]
STATE_KEY = "fraudserve_scopes"  # request.state.fraudserve_scopes: the scopes granted
BATCH_ROW_BYTES = 2048  # a transaction with a 256-character user_id, JSON-escaped, fits
BODY_ENV = "FRAUDSERVE_MAX_BODY_BYTES"
BATCH_BODY_ENV = "FRAUDSERVE_MAX_BATCH_BODY_BYTES"


@dataclass(frozen=True)
class LimitSettings:
    """Body size limits in bytes: one for every route, a larger one for bulk routes."""

    max_body_bytes: int = 64 * 1024
    max_batch_body_bytes: int = 1000 * BATCH_ROW_BYTES  # max_batch_rows rows
    batch_paths: frozenset[str] = frozenset({"/predict_batch"})

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"limits.{name} must be >= 1 (got {getattr(self, name)})")

    def body_limit(self, path: str) -> int:
        return self.max_batch_body_bytes if path in self.batch_paths else self.max_body_bytes

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None, *,
                     max_batch_rows: int = 1000) -> LimitSettings:
        """From the YAML section, then the environment; the bulk limit defaults to enough
        for `max_batch_rows` transactions."""
        values: dict[str, Any] = {"max_batch_body_bytes": max_batch_rows * BATCH_ROW_BYTES,
                                  **(data or {})}
        unknown = set(values) - {"max_body_bytes", "max_batch_body_bytes"}
        if unknown:
            raise ValueError(f"limits: unknown keys {sorted(unknown)}")
        env = environ or {}
        for name, var in (("max_body_bytes", BODY_ENV), ("max_batch_body_bytes",
                                                         BATCH_BODY_ENV)):
            if env.get(var):
                values[name] = int(env[var])
        return cls(**{k: int(v) for k, v in values.items()})


def security_settings(ab: ABConfig, environ: Mapping[str, str]
                      ) -> tuple[KeyRing, LimitSettings, RateSettings]:
    """The keys, body limits and rate limit from configs/ab.yaml and the environment (which
    overrides it); raises KeyConfigError or ValueError saying what is wrong."""
    return (load_keys(environ),
            LimitSettings.from_mapping(ab.limits.model_dump(exclude_none=True), environ,
                                       max_batch_rows=ab.max_batch_rows),
            RateSettings.from_mapping(ab.rate_limit.model_dump(exclude_none=True), environ))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def send_error(send: Callable[[Message], Any], status: int, message: str,
                     headers: Mapping[str, str] | None = None) -> None:
    """Answer `status` with the one error body."""
    body = error_json(message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    """Keys, rate and body limits in front of `app` (BentoML: Service.add_asgi_middleware).

    `on_reject(path, status, reason)` is called for every refusal (metrics); reasons are
    unauthenticated, forbidden, rate_limited, too_large. Secrets never reach it or the log.
    """

    def __init__(self, app: ASGIApp, *, keys: KeyRing, limits: LimitSettings,
                 limiter: RateLimiter | None = None,
                 on_reject: Callable[[str, int, str], None] | None = None) -> None:
        self.app, self.keys, self.limits = app, keys, limits
        self.limiter, self.on_reject = limiter, on_reject

    def _rejected(self, path: str, status: int, reason: str) -> None:
        log.debug("refused %s: %d %s", path, status, reason)
        if self.on_reject is not None:
            try:
                self.on_reject(path, status, reason)
            except Exception:  # a metrics hook must never turn a 4xx into a 500
                log.exception("on_reject hook failed")

    async def __call__(self, scope: Scope, receive: Callable[[], Any],
                       send: Callable[[Message], Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        verdict = authorize(self.keys, method, path, _header(scope, b"authorization"))
        if verdict.status:
            reason = "unauthenticated" if verdict.status == 401 else "forbidden"
            self._rejected(path, verdict.status, reason)
            await send_error(send, verdict.status, verdict.message,
                             {"WWW-Authenticate": verdict.challenge})
            return
        scope.setdefault("state", {})[STATE_KEY] = verdict.scopes
        if verdict.key is not None and self.limiter is not None:
            wait = self.limiter.check(verdict.key.secret)
            if wait > 0:
                self._rejected(path, 429, "rate_limited")
                per_min = self.limiter.settings.per_min
                await send_error(send, 429, f"rate limit exceeded: {per_min:g} requests per "
                                 f"minute per key (burst {self.limiter.settings.capacity:g}); "
                                 f"retry after {math.ceil(wait)} s",
                                 {"Retry-After": str(max(1, math.ceil(wait)))})
                return
        await self._limited_body(scope, receive, send)

    async def _limited_body(self, scope: Scope, receive: Callable[[], Any],
                            send: Callable[[Message], Any]) -> None:
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

