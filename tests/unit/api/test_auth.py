"""Scoped API keys: parsing, loading (fail closed), the route table and each verdict."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fraud.api.auth import (
    Access,
    KeyConfigError,
    KeyRing,
    authorize,
    bearer_token,
    log_start,
    parse_keys,
    rule_for,
)
from fraud.api.keys import load_keys

SCORE, LABEL, ADMIN, BOTH = "s-key-123", "l-key-456", "a-key-789", "sl-key-000"
RING = KeyRing(parse_keys(f"score:{SCORE},label:{LABEL},admin:{ADMIN},score+label:{BOTH}",
                          "test"))


def test_a_key_holds_several_scopes_only_when_one_entry_says_so() -> None:
    keys = {k.secret.decode(): k.scopes for k in RING.keys}
    assert keys == {SCORE: {"score"}, LABEL: {"label"}, ADMIN: {"admin"},
                    BOTH: {"score", "label"}}
    with pytest.raises(KeyConfigError) as err:
        parse_keys(f"score:{BOTH},admin:{LABEL}\nlabel:{BOTH}", "FRAUDSERVE_API_KEYS")
    assert str(err.value).startswith("FRAUDSERVE_API_KEYS: entry 1 (score) and "
                                     "FRAUDSERVE_API_KEYS: entry 3 (label) hold the same key")
    assert "(label+score:<key>)" in str(err.value) and BOTH not in str(err.value)


def test_file_format_allows_lines_and_comments() -> None:
    keys = parse_keys("# ops keys\nscore:k1\n\nadmin:k2, label:k3  # the labeller\n", "f")
    assert {k.secret.decode(): set(k.scopes) for k in keys} == {
        "k1": {"score"}, "k2": {"admin"}, "k3": {"label"}}


@pytest.mark.parametrize(("text", "words"), [
    ("scroe:topsecret1", "unknown scope 'scroe'"),
    ("topsecret1", "entry 1 is not 'scope:key'"),
    ("score:", "entry 1 is not 'scope:key'"),
    ("score:ok1,admin:top secret1", "entry 2: a key may not contain white space"),
])
def test_bad_entries_are_named_without_the_secret(text: str, words: str) -> None:
    with pytest.raises(KeyConfigError) as err:
        parse_keys(text, "FRAUDSERVE_API_KEYS")
    assert words in str(err.value)
    assert "topsecret1" not in str(err.value) and "secret1" not in str(err.value)


def test_env_and_file_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("admin:" + "f" * 32 + "\n")
    path.chmod(0o600)
    ring = load_keys({"FRAUDSERVE_API_KEYS": "score:" + "e" * 32,
                      "FRAUDSERVE_API_KEYS_FILE": str(path)})
    assert {k.secret for k in ring.keys} == {b"e" * 32, b"f" * 32}


def test_no_keys_or_empty_variable_is_open_mode() -> None:
    assert load_keys({}).open
    assert load_keys({"FRAUDSERVE_API_KEYS": ""}).open


@pytest.mark.parametrize("content", [None, "", "# only a comment\n"])
def test_a_named_file_that_is_missing_or_empty_fails_closed(tmp_path: Path,
                                                            content: str | None) -> None:
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KeyConfigError, match="FRAUDSERVE_API_KEYS_FILE"):
        load_keys({"FRAUDSERVE_API_KEYS_FILE": str(path)})


def test_the_retired_admin_key_is_refused_with_the_migration() -> None:
    with pytest.raises(KeyConfigError) as err:
        load_keys({"FRAUDSERVE_ADMIN_KEY": "old-admin-secret"})
    assert "FRAUDSERVE_API_KEYS='admin:<that key>" in str(err.value)
    assert "old-admin-secret" not in str(err.value)


def test_repr_never_shows_a_secret() -> None:
    assert SCORE not in repr(RING) and SCORE not in repr(RING.keys)
    assert all(len(k.fingerprint) == 12 for k in RING.keys)


@pytest.mark.parametrize(("header", "token"), [
    (f"Bearer {SCORE}", SCORE), (f"bearer   {SCORE} ", SCORE), ("Bearer", None),
    ("Bearer ", None), (f"Basic {SCORE}", None), (SCORE, None), (None, None), ("", None)])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_lookup_is_exact() -> None:
    assert RING.lookup(ADMIN).scopes == {"admin"}
    for near in (ADMIN.upper(), ADMIN[:-1], ADMIN + "x", f" {ADMIN}", "", None):
        assert RING.lookup(near) is None


@pytest.mark.parametrize(("path", "access", "scope"), [
    ("/predict", Access.SCOPED, "score"), ("/predict_batch", Access.SCOPED, "score"),
    ("/explain", Access.SCOPED, "score"), ("/feedback", Access.SCOPED, "label"),
    ("/admin/share", Access.SCOPED, "admin"), ("/admin/anything", Access.SCOPED, "admin"),
    ("/experiments", Access.SCOPED, "admin"), ("/ab-stats", Access.VIEW, None),
    ("/health", Access.OPEN, None), ("/metrics", Access.OPEN, None),
    ("/docs.json", Access.OPEN, None), ("/", Access.OPEN, None),
    ("/static_content/swagger-ui.css", Access.OPEN, None),
    # fail closed: nobody listed these
    ("/predict/", Access.SCOPED, "admin"), ("/openapi.json", Access.SCOPED, "admin"),
    ("/healthz/x", Access.SCOPED, "admin"),
])
def test_route_table(path: str, access: Access, scope: str | None) -> None:
    rule = rule_for(path)
    assert (rule.access, rule.scope) == (access, scope)


def bearer(key: str) -> str:
    return f"Bearer {key}"


@pytest.mark.parametrize(("method", "path", "header", "status"), [
    ("POST", "/predict", None, 401),
    ("POST", "/predict", bearer("nope"), 401),
    ("POST", "/predict", f"Basic {SCORE}", 401),
    ("POST", "/predict", bearer(SCORE), 0),
    ("POST", "/predict", bearer(BOTH), 0),
    ("POST", "/predict", bearer(LABEL), 403),
    ("POST", "/predict", bearer(ADMIN), 403),  # admin is not a superset: scopes are explicit
    ("POST", "/feedback", bearer(LABEL), 0),
    ("POST", "/feedback", bearer(SCORE), 403),
    ("POST", "/admin/share", bearer(ADMIN), 0),
    ("POST", "/admin/share", bearer(BOTH), 403),
    ("GET", "/experiments", bearer(SCORE), 403),
    ("GET", "/health", None, 0),
    ("GET", "/health", bearer("nope"), 0),  # open routes ignore the header
    ("GET", "/ab-stats", None, 0),
    ("GET", "/ab-stats", bearer("nope"), 401),  # a wrong key is not silently anonymous
    ("GET", "/ab-stats", bearer(SCORE), 0),
    ("OPTIONS", "/predict", None, 0),  # CORS preflight
    ("GET", "/unlisted", bearer(SCORE), 403),
])
def test_verdicts(method: str, path: str, header: str | None, status: int) -> None:
    verdict = authorize(RING, method, path, header)
    assert verdict.status == status, verdict.message
    if status == 401:
        assert verdict.challenge.startswith('Bearer realm="fraudserve"')
        assert ('error="invalid_token"' in verdict.challenge) == ("nope" in (header or ""))
        assert "Authorization: Bearer <key>" in verdict.message
    if status == 403:
        assert 'error="insufficient_scope"' in verdict.challenge
        assert f"'{rule_for(path).scope}' scope" in verdict.message
    for secret in (SCORE, LABEL, ADMIN, BOTH):
        assert secret not in verdict.message and secret not in verdict.challenge


def test_granted_scopes_tell_a_route_what_the_key_holds() -> None:
    assert authorize(RING, "GET", "/ab-stats", None).scopes == frozenset()
    assert authorize(RING, "GET", "/ab-stats", bearer(ADMIN)).scopes == {"admin"}
    assert authorize(RING, "POST", "/predict", bearer(BOTH)).scopes == {"score", "label"}


def test_open_mode_lets_everything_through_with_every_scope() -> None:
    for path in ("/predict", "/feedback", "/admin/share", "/unlisted", "/ab-stats"):
        verdict = authorize(KeyRing(), "POST", path, None)
        assert (verdict.status, verdict.scopes) == (0, {"score", "label", "admin"})


def test_start_line_warns_in_open_mode_and_counts_keys_otherwise(
        caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test-auth")
    with caplog.at_level(logging.INFO, logger="test-auth"):
        log_start(KeyRing(), log)
        log_start(RING, log)
    (open_line, keyed_line) = caplog.records
    assert open_line.levelno == logging.WARNING and "OPEN" in open_line.getMessage()
    assert keyed_line.levelno == logging.INFO
    assert keyed_line.getMessage() == "API keys: 2 score, 2 label, 1 admin"
    with caplog.at_level(logging.INFO, logger="test-auth"):
        log_start(KeyRing(notes=["a note"]), log)
    assert caplog.records[-2].getMessage() == "a note"
    assert all(s not in caplog.text for s in (SCORE, LABEL, ADMIN, BOTH))


def test_the_switch_makes_the_costly_views_need_any_key() -> None:
    for path in ("/ab-stats", "/report", "/drift"):
        assert rule_for(path, reports_need_key=True).access is Access.KEYED
        assert authorize(RING, "GET", path, None, reports_need_key=True).status == 401
        assert authorize(RING, "GET", path, f"Bearer {LABEL}", reports_need_key=True
                         ).scopes == {"label"}
    assert rule_for("/report").access is Access.OPEN
    assert rule_for("/health", reports_need_key=True).access is Access.OPEN


def test_an_open_route_names_a_valid_key_and_ignores_a_wrong_one() -> None:
    named = authorize(RING, "GET", "/report", f"Bearer {ADMIN}")
    assert named.status == 0 and named.key is not None and named.scopes == {"admin"}
    wrong = authorize(RING, "GET", "/report", "Bearer not-a-key")
    assert wrong.status == 0 and wrong.key is None and wrong.scopes == frozenset()
