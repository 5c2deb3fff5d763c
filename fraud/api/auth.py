"""Scoped API keys: which key may call which route.

Keys come from FRAUDSERVE_API_KEYS (`scope:key` entries, comma-separated) and/or the file named
by FRAUDSERVE_API_KEYS_FILE (the same entries, also one per line, `#` comments), e.g. a
Kubernetes Secret; fraud/api/keys.py loads and checks them. A key holds several scopes only
when one entry says so (`score+label:<key>`): the same key in two entries is an error. With
no keys at all the service is open (local use). Secrets are compared in constant time and
never logged: only a key's fingerprint (a hash prefix) is ever shown.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

Scope = Literal["score", "label", "admin"]
SCOPES: tuple[Scope, ...] = ("score", "label", "admin")
KEYS_ENV = "FRAUDSERVE_API_KEYS"
KEYS_FILE_ENV = "FRAUDSERVE_API_KEYS_FILE"
LEGACY_ADMIN_ENV = "FRAUDSERVE_ADMIN_KEY"
REALM = "fraudserve"


class KeyConfigError(ValueError):
    """The key configuration is unusable; the message never contains a key."""


class Access(Enum):
    """How a route is guarded."""

    OPEN = "open"  # no key needed; the Authorization header is ignored
    VIEW = "view"  # no key needed; a valid key widens the answer, a wrong one is a 401
    KEYED = "keyed"  # any valid key, whatever its scopes
    SCOPED = "scoped"  # a key with the route's scope


@dataclass(frozen=True)
class Rule:
    """The guard of one route: its access and, when scoped, the scope it needs."""

    access: Access
    scope: Scope | None = None


OPEN, VIEW = Rule(Access.OPEN), Rule(Access.VIEW)
EXACT_ROUTES: dict[str, Rule] = {
    "/predict": Rule(Access.SCOPED, "score"),
    "/predict_batch": Rule(Access.SCOPED, "score"),
    "/explain": Rule(Access.SCOPED, "score"),
    "/noop": Rule(Access.SCOPED, "score"),
    "/feedback": Rule(Access.SCOPED, "label"),
    "/experiments": Rule(Access.SCOPED, "admin"),
    "/ab-stats": VIEW,
    **{p: OPEN for p in ("/", "/docs.json", "/schema.json", "/healthz", "/livez", "/readyz",
                         "/metrics", "/health", "/drift", "/report", "/model-card")},
}
PREFIX_ROUTES: tuple[tuple[str, Rule], ...] = (
    ("/admin/", Rule(Access.SCOPED, "admin")),
    ("/static_content/", OPEN),  # the Swagger UI's assets
)
UNLISTED = Rule(Access.SCOPED, "admin")  # fail closed: a route nobody listed needs admin
# The open routes that compute the experiment's report or ask the router: with
# access.reports_need_key they need a key (any scope).
COSTLY_VIEWS = frozenset({"/ab-stats", "/report", "/drift"})


def rule_for(path: str, *, reports_need_key: bool = False) -> Rule:
    """The guard of `path` (exact routes first, then prefixes, else admin)."""
    if reports_need_key and path in COSTLY_VIEWS:
        return Rule(Access.KEYED)
    if path in EXACT_ROUTES:
        return EXACT_ROUTES[path]
    for prefix, rule in PREFIX_ROUTES:
        if path.startswith(prefix):
            return rule
    return UNLISTED


@dataclass(frozen=True)
class ApiKey:
    """One secret and the scopes it holds. repr and str never show the secret."""

    secret: bytes = field(repr=False)
    scopes: frozenset[str]

    @property
    def fingerprint(self) -> str:
        """A short SHA-256 prefix: safe to log, enough to tell keys apart."""
        return hashlib.sha256(self.secret).hexdigest()[:12]


@dataclass(frozen=True)
class Entry:
    """One `scope[+scope...]:key` entry and where it was written (never shows the secret)."""

    source: str
    number: int
    scopes: frozenset[str]
    secret: bytes = field(repr=False)

    def __str__(self) -> str:
        return f"{self.source}: entry {self.number} ({'+'.join(sorted(self.scopes))})"


def parse_entries(text: str, source: str) -> list[Entry]:
    """`scope:key` entries separated by commas or new lines; `#` starts a comment; one entry
    may name several scopes joined by `+` (`score+label:<key>`)."""
    out: list[Entry] = []
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    entries = [e.strip() for line in lines for e in line.split(",")]
    for n, entry in enumerate((e for e in entries if e), start=1):
        scope, sep, secret = entry.partition(":")
        scopes, secret = [s.strip() for s in scope.split("+")], secret.strip()
        if not sep or not secret:
            raise KeyConfigError(f"{source}: entry {n} is not 'scope:key'")
        for name in scopes:
            if name not in SCOPES:
                raise KeyConfigError(f"{source}: entry {n} has the unknown scope {name!r} "
                                     f"(expected one of {', '.join(SCOPES)})")
        if any(c.isspace() for c in secret):
            raise KeyConfigError(f"{source}: entry {n}: a key may not contain white space")
        out.append(Entry(source, n, frozenset(scopes), secret.encode()))
    return out


def merge(entries: Iterable[Entry]) -> list[ApiKey]:
    """One ApiKey per entry; the same key in two entries is an error naming both (a key that
    must hold several scopes says so in one entry), never the key."""
    seen: dict[bytes, Entry] = {}
    for entry in entries:
        first = seen.setdefault(entry.secret, entry)
        if first is not entry:
            both = "+".join(sorted(first.scopes | entry.scopes))
            raise KeyConfigError(
                f"{first} and {entry} hold the same key: give each scope its own key, or "
                f"write the scopes it must hold in one entry ({both}:<key>)")
    return [ApiKey(e.secret, e.scopes) for e in seen.values()]


def parse_keys(text: str, source: str) -> list[ApiKey]:
    """The keys of `text` (see parse_entries; duplicates refused by merge)."""
    return merge(parse_entries(text, source))


class KeyRing:
    """The configured keys; empty means open mode. `notes` are start-up warnings (an empty
    variable, a key file others can read) that log_start repeats."""

    def __init__(self, keys: Iterable[ApiKey] = (), notes: Iterable[str] = ()) -> None:
        by_secret: dict[bytes, set[str]] = {}
        for key in keys:
            by_secret.setdefault(key.secret, set()).update(key.scopes)
        self.keys = tuple(ApiKey(s, frozenset(sc)) for s, sc in by_secret.items())
        self.notes = tuple(notes)

    @property
    def open(self) -> bool:
        return not self.keys

    def __repr__(self) -> str:
        return f"KeyRing({len(self.keys)} keys)"

    def lookup(self, presented: str | None) -> ApiKey | None:
        """The key equal to `presented`, compared in constant time against every key."""
        if not presented:
            return None
        given = presented.encode()
        found = None
        for key in self.keys:  # no early exit: the time does not tell which key matched
            if hmac.compare_digest(given, key.secret):
                found = key
        return found


def describe(keys: KeyRing) -> str:
    """One start-up line: open mode loudly, else how many keys per scope."""
    if keys.open:
        return (f"no API keys configured ({KEYS_ENV} / {KEYS_FILE_ENV}): every route is OPEN "
                "to anyone who can reach the service, with no rate limit; for local use only")
    counts = {s: sum(s in k.scopes for k in keys.keys) for s in SCOPES}
    return "API keys: " + ", ".join(f"{n} {s}" for s, n in counts.items())


def log_start(keys: KeyRing, log: logging.Logger) -> None:
    """Log the start-up line (a WARNING in open mode, INFO otherwise) and each note."""
    for note in keys.notes:
        log.warning("%s", note)
    log.log(logging.WARNING if keys.open else logging.INFO, "%s", describe(keys))


@dataclass(frozen=True)
class Verdict:
    """The answer to one request: 0 to let it through, else 401 or 403 with a message."""

    status: int
    message: str = ""
    key: ApiKey | None = None
    scopes: frozenset[str] = frozenset()
    challenge: str = ""  # the WWW-Authenticate header of a 401/403


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def authorize(keys: KeyRing, method: str, path: str, header: str | None, *,
              reports_need_key: bool = False) -> Verdict:
    """Decide one request from its method, path and Authorization header. On an open route
    a key is never refused, but a valid one is named (its bucket pays, not the address's)."""
    rule = rule_for(path, reports_need_key=reports_need_key)
    if keys.open:
        return Verdict(0, scopes=frozenset(SCOPES))
    token = bearer_token(header)
    if rule.access is Access.OPEN or method == "OPTIONS":  # CORS preflights carry no key
        key = keys.lookup(token)
        return Verdict(0, key=key, scopes=key.scopes if key else frozenset())
    key = keys.lookup(token)
    if key is None:
        if rule.access is Access.VIEW and header is None:
            return Verdict(0)
        why = "no API key" if token is None else "an unknown API key"
        error = "" if token is None else ', error="invalid_token"'
        return Verdict(401, f"{method} {path} needs an API key: send 'Authorization: Bearer "
                            f"<key>' ({why} was sent)", challenge=f'Bearer realm="{REALM}"{error}')
    if rule.access is Access.SCOPED and rule.scope not in key.scopes:
        return Verdict(403, f"{method} {path} needs a key with the '{rule.scope}' scope; this "
                            f"key holds {', '.join(sorted(key.scopes))}", key=key,
                       challenge=f'Bearer realm="{REALM}", error="insufficient_scope", '
                                 f'scope="{rule.scope}"')
    return Verdict(0, key=key, scopes=key.scopes)
