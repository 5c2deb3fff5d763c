"""The security settings a service starts with, from configs/ab.yaml and the environment:
keys (fraud/api/auth.py), body limits, the rate buckets (fraud/api/ratelimit.py), the trusted
proxies (fraud/api/clientip.py) and whether the costly open routes need a key. Each problem
is a KeyConfigError or ValueError naming the setting; service.py exits with it (status 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud.api.auth import KeyRing
from fraud.api.clientip import NO_PROXIES, TrustedProxies
from fraud.api.keys import check_salt, load_keys
from fraud.api.ratelimit import RateLimiter, RatePolicy, Store
from fraud.api.ratestate import StateUnsafe, check_state
from fraud.config import ABConfig

BATCH_ROW_BYTES = 2048  # a transaction with a 256-character user_id, JSON-escaped, fits
BODY_ENV = "FRAUDSERVE_MAX_BODY_BYTES"
BATCH_BODY_ENV = "FRAUDSERVE_MAX_BATCH_BODY_BYTES"
REPORTS_NEED_KEY_ENV = "FRAUDSERVE_REPORTS_NEED_KEY"


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


@dataclass(frozen=True)
class SecuritySettings:
    """Everything SecurityMiddleware enforces, as configured."""

    keys: KeyRing
    limits: LimitSettings
    rate: RatePolicy
    proxies: TrustedProxies = NO_PROXIES
    reports_need_key: bool = False
    state_path: Path | None = None  # the rate buckets' file, checked at start


def checked_state(environ: Mapping[str, str]) -> Path:
    """The rate-limit state's path once its directory (and file, if any) can be trusted;
    an unreadable one is a StateUnsafe (a ValueError: the start stops) too."""
    try:
        return check_state(environ)
    except OSError as exc:
        raise StateUnsafe(f"rate-limit state: {exc.strerror} ({exc.filename})") from None


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name)
    if value is None or value == "":
        return default
    if value not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return value == "1"


def security_settings(ab: ABConfig, environ: Mapping[str, str]) -> SecuritySettings:
    """The keys, body limits, rate buckets and access settings from configs/ab.yaml and the
    environment (which overrides it); raises KeyConfigError or ValueError saying what is
    wrong."""
    rate: dict[str, Any] = ab.rate_limit.model_dump(exclude_none=True)
    keys = load_keys(environ)
    salt = check_salt(ab.salt, environ)
    if salt and not keys.open:  # open mode shows the salt to anyone anyway
        keys.notes += (salt,)
    return SecuritySettings(
        keys=keys,
        limits=LimitSettings.from_mapping(ab.limits.model_dump(exclude_none=True), environ,
                                          max_batch_rows=ab.max_batch_rows),
        rate=RatePolicy.from_mapping(rate, environ),
        proxies=TrustedProxies.from_config(ab.access.trusted_proxies, environ),
        reports_need_key=_flag(environ, REPORTS_NEED_KEY_ENV, ab.access.reports_need_key),
        state_path=checked_state(environ))


def middleware_options(security: SecuritySettings, store: Store | None = None
                       ) -> dict[str, Any]:
    """SecurityMiddleware's keyword arguments: its three buckets on one shared store."""
    limiter = RateLimiter(security.rate.key, store)
    return {"keys": security.keys, "limits": security.limits, "limiter": limiter,
            "anonymous": limiter.with_settings(security.rate.anonymous),
            "failed_auth": limiter.with_settings(security.rate.failed_auth),
            "proxies": security.proxies, "reports_need_key": security.reports_need_key}
