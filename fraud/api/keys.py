"""Where the keys come from, and the checks that keep a service from starting with keys (or
without keys) it should not have. Every refusal is a KeyConfigError naming the variable, the
entry (its source, position and scopes) and the rule; never a key.

- FRAUDSERVE_API_KEYS and the file FRAUDSERVE_API_KEYS_FILE names (both may be set); a named
  file that is missing or holds no keys is an error, not open mode.
- A key shorter than MIN_KEY_LENGTH characters, or one that looks like a placeholder
  (PLACEHOLDER_WORDS), refuses the start.
- FRAUDSERVE_REQUIRE_KEYS=1 (the Kubernetes base sets it) refuses open mode.
- FRAUDSERVE_API_KEYS set but holding no keys (empty, commas, comments) says plainly that the
  service runs open.
- A key file other users can read is a warning; FRAUDSERVE_KEYS_FILE_STRICT=1 refuses it. Its
  group may read it when that group is the service's own (Kubernetes: fsGroup).
- The retired FRAUDSERVE_ADMIN_KEY is refused with how to migrate.
- The assignment salt (configs/ab.yaml `salt`, FRAUDSERVE_SALT overrides) must not be the
  committed placeholder, a value once committed, or shorter than MIN_SALT_LENGTH under
  FRAUDSERVE_REQUIRE_KEYS=1: with a known salt anyone computes any user's arm. Without the
  switch it is a warning.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from fraud.api.auth import (
    KEYS_ENV,
    KEYS_FILE_ENV,
    LEGACY_ADMIN_ENV,
    Entry,
    KeyConfigError,
    KeyRing,
    merge,
    parse_entries,
)

REQUIRE_ENV = "FRAUDSERVE_REQUIRE_KEYS"
STRICT_FILE_ENV = "FRAUDSERVE_KEYS_FILE_STRICT"
MIN_KEY_LENGTH = 32
PLACEHOLDER_WORDS = ("replace", "changeme", "change-me", "change_me", "example",
                     "placeholder", "<", ">")
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one"
SALT_ENV = "FRAUDSERVE_SALT"
MIN_SALT_LENGTH = 16
PUBLIC_SALTS = frozenset({"fraudserve-ab-1"})  # committed in earlier releases


def switch(environ: Mapping[str, str], name: str) -> bool:
    """A 0/1 environment switch (unset or empty: 0); anything else is an error."""
    value = environ.get(name, "")
    if value not in ("", "0", "1"):
        raise KeyConfigError(f"{name} must be 0 or 1, got {value!r}")
    return value == "1"


def weakness(secret: bytes) -> str | None:
    """Why a key is unusable, or None. Placeholders are matched case-insensitively."""
    if len(secret) < MIN_KEY_LENGTH:
        return f"is shorter than {MIN_KEY_LENGTH} characters ({len(secret)})"
    text = secret.decode(errors="replace").lower()
    for word in PLACEHOLDER_WORDS:
        if word in text:
            return f"looks like a placeholder (it contains {word!r})"
    return None


def salt_problem(salt: str) -> str | None:
    """Why an assignment salt is public or guessable, or None."""
    if salt in PUBLIC_SALTS or any(w in salt.lower() for w in PLACEHOLDER_WORDS):
        return "is the committed placeholder (public)"
    if len(salt) < MIN_SALT_LENGTH:
        return f"is shorter than {MIN_SALT_LENGTH} characters"
    return None


def check_salt(salt: str, environ: Mapping[str, str]) -> str | None:
    """A KeyConfigError under FRAUDSERVE_REQUIRE_KEYS=1 when the salt is public or short;
    else the warning to log (or None)."""
    problem = salt_problem(salt)
    if problem is None:
        return None
    words = (f"the assignment salt {problem}: anyone can compute any user's arm; set "
             f"{SALT_ENV} (or configs/ab.yaml salt) to a random value ({MAKE_ONE})")
    if switch(environ, REQUIRE_ENV):
        raise KeyConfigError(f"{REQUIRE_ENV}=1: {words}")
    return words


def check_strength(entries: list[Entry]) -> None:
    for entry in entries:
        problem = weakness(entry.secret)
        if problem:
            raise KeyConfigError(f"{entry}: the key {problem}; use a random key of at least "
                                 f"{MIN_KEY_LENGTH} characters ({MAKE_ONE})")


def file_exposure(path: Path) -> str | None:
    """Who else can read the key file, in words, or None."""
    info = path.stat()
    if info.st_mode & stat.S_IROTH:
        return "every user can read it"
    if info.st_mode & stat.S_IRGRP and info.st_gid != os.getgid():
        return f"group {info.st_gid}, not the service's own, can read it"
    return None


def _read_file(path: str, strict: bool) -> tuple[list[Entry], list[str]]:
    source = f"{KEYS_FILE_ENV}={path}"
    try:
        text = Path(path).read_text()
        exposure = file_exposure(Path(path))
    except OSError as exc:
        raise KeyConfigError(f"{source}: cannot read it ({exc.strerror})") from None
    entries = parse_entries(text, source)
    if not entries:
        raise KeyConfigError(f"{source} holds no keys; unset it to run open")
    notes = []
    if exposure:
        why = f"{source}: {exposure} (mode {oct(Path(path).stat().st_mode & 0o777)})"
        if strict:
            raise KeyConfigError(f"{why}: make it readable by the service alone (chmod 600) "
                                 f"or unset {STRICT_FILE_ENV}")
        notes.append(f"{why}: other users may read the API keys; chmod 600 it "
                     f"({STRICT_FILE_ENV}=1 refuses such a file)")
    return entries, notes


def load_keys(environ: Mapping[str, str] = os.environ) -> KeyRing:
    """The checked keys of FRAUDSERVE_API_KEYS and FRAUDSERVE_API_KEYS_FILE (module docstring)."""
    if environ.get(LEGACY_ADMIN_ENV):
        raise KeyConfigError(
            f"{LEGACY_ADMIN_ENV} is no longer read: admin routes take 'Authorization: Bearer "
            f"<key>' with an admin key in {KEYS_ENV}. Set {KEYS_ENV}='admin:<that key>,"
            f"score:<key>,label:<key>' (or {KEYS_FILE_ENV}) and unset {LEGACY_ADMIN_ENV}.")
    require = switch(environ, REQUIRE_ENV)
    strict = switch(environ, STRICT_FILE_ENV)
    entries = parse_entries(environ.get(KEYS_ENV, ""), KEYS_ENV)
    notes: list[str] = []
    if KEYS_ENV in environ and not entries:
        notes.append(f"{KEYS_ENV} is set but holds no keys (it is empty, or only commas and "
                     "comments): that is OPEN MODE, not a keyed service")
    path = environ.get(KEYS_FILE_ENV)
    if path:
        from_file, file_notes = _read_file(path, strict)
        entries += from_file
        notes += file_notes
    if not entries and require:
        raise KeyConfigError(f"{REQUIRE_ENV}=1 but no API keys are configured ({KEYS_ENV} / "
                             f"{KEYS_FILE_ENV}{' hold none' if KEYS_ENV in environ else ''}): "
                             "refusing to run open")
    check_strength(entries)
    return KeyRing(merge(entries), notes)
