"""The start-up checks on keys: length and placeholders (naming the entry, never the key),
FRAUDSERVE_REQUIRE_KEYS, an empty variable said to be open mode, the key file's readers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraud.api.auth import KeyConfigError
from fraud.api.keys import load_keys, weakness

GOOD = "k7Qm2vXp9LwT4rZs8NcY1hBd6FgJ3eUa"  # 32 characters


@pytest.mark.parametrize(("text", "words"), [
    ("score:short-key-1", "FRAUDSERVE_API_KEYS: entry 1 (score): the key is shorter than 32 "
                          "characters (11)"),
    (f"score:{GOOD},admin:REPLACE-ME-admin-key-0000000000000",
     "FRAUDSERVE_API_KEYS: entry 2 (admin): the key looks like a placeholder (it contains "
     "'replace')"),
    (f"label+score:{GOOD}-changeme", "entry 1 (label+score)"),
    (f"score:{GOOD}-Example", "contains 'example'"),
    ("admin:<your-admin-key-of-32-characters-or-more>", "contains '<'"),
])
def test_short_and_placeholder_keys_refuse_the_start(text: str, words: str) -> None:
    with pytest.raises(KeyConfigError) as err:
        load_keys({"FRAUDSERVE_API_KEYS": text})
    assert words in str(err.value)
    for secret in (e.partition(":")[2] for e in text.split(",")):
        assert secret not in str(err.value)


def test_a_random_key_is_fine() -> None:
    assert weakness(GOOD.encode()) is None
    assert load_keys({"FRAUDSERVE_API_KEYS": f"score:{GOOD}"}).keys[0].scopes == {"score"}


def test_the_same_key_in_env_and_file_names_both(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# ops\nadmin:{GOOD}\n")
    path.chmod(0o600)
    with pytest.raises(KeyConfigError) as err:
        load_keys({"FRAUDSERVE_API_KEYS": f"score:{GOOD}", "FRAUDSERVE_API_KEYS_FILE": str(path)})
    assert f"FRAUDSERVE_API_KEYS: entry 1 (score) and FRAUDSERVE_API_KEYS_FILE={path}: entry 1 " \
           "(admin) hold the same key" in str(err.value)


@pytest.mark.parametrize("value", ["", ",", " , ,", "# nothing here"])
def test_an_empty_variable_says_open_mode_and_is_refused_when_keys_are_required(
        value: str) -> None:
    ring = load_keys({"FRAUDSERVE_API_KEYS": value})
    assert ring.open
    assert any("holds no keys" in n and "OPEN MODE" in n for n in ring.notes)
    with pytest.raises(KeyConfigError, match="FRAUDSERVE_REQUIRE_KEYS=1 but no API keys"):
        load_keys({"FRAUDSERVE_API_KEYS": value, "FRAUDSERVE_REQUIRE_KEYS": "1"})


def test_require_keys_refuses_open_mode_and_accepts_keys() -> None:
    assert load_keys({"FRAUDSERVE_REQUIRE_KEYS": "0"}).open
    with pytest.raises(KeyConfigError, match="refusing to run open"):
        load_keys({"FRAUDSERVE_REQUIRE_KEYS": "1"})
    assert not load_keys({"FRAUDSERVE_REQUIRE_KEYS": "1",
                          "FRAUDSERVE_API_KEYS": f"admin:{GOOD}"}).open
    with pytest.raises(KeyConfigError, match="FRAUDSERVE_REQUIRE_KEYS must be 0 or 1"):
        load_keys({"FRAUDSERVE_REQUIRE_KEYS": "yes"})


def test_a_key_file_others_can_read_warns_or_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"admin:{GOOD}\n")
    path.chmod(0o644)
    env = {"FRAUDSERVE_API_KEYS_FILE": str(path)}
    ring = load_keys(env)
    assert not ring.open and any("every user can read it" in n and "chmod 600" in n
                                 for n in ring.notes)
    with pytest.raises(KeyConfigError, match="every user can read it"):
        load_keys({**env, "FRAUDSERVE_KEYS_FILE_STRICT": "1"})
    path.chmod(0o640)  # its group is ours (the Kubernetes fsGroup case): fine
    assert os.stat(path).st_gid == os.getgid()
    assert load_keys({**env, "FRAUDSERVE_KEYS_FILE_STRICT": "1"}).notes == ()
    path.chmod(0o600)
    assert load_keys(env).notes == ()
    if os.getuid() == 0:  # root may give the file another group: its members could read it
        os.chown(path, -1, os.getgid() + 4242)
        path.chmod(0o640)
        assert any(f"group {os.getgid() + 4242}, not the service's own" in n
                   for n in load_keys(env).notes)


def test_the_committed_salt_is_refused_when_keys_are_required() -> None:
    from fraud.api.keys import check_salt
    from fraud.config import load_ab_config

    committed = load_ab_config().salt
    required = {"FRAUDSERVE_REQUIRE_KEYS": "1"}
    for salt in (committed, "fraudserve-ab-1", "short-salt"):
        with pytest.raises(KeyConfigError, match="FRAUDSERVE_REQUIRE_KEYS=1: the assignment "
                                                 "salt") as err:
            check_salt(salt, required)
        assert "FRAUDSERVE_SALT" in str(err.value)
        assert "anyone can compute" in (check_salt(salt, {}) or "")  # else: a warning
    assert check_salt(GOOD, required) is None


def test_fraudserve_salt_overrides_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud.config import load_ab_config

    monkeypatch.setenv("FRAUDSERVE_SALT", GOOD)
    assert load_ab_config().salt == GOOD
