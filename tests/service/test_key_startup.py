"""How a real `bentoml serve` starts with the keys it is given: open mode says so once (and
that an empty FRAUDSERVE_API_KEYS is open mode), and every key configuration it must not run
with stops the start (exit 2) naming the entry, never the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Store, serve
from test_api_keys import call

from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service]
GOOD = "Kp3Vx8Qm1Tz6Wr4Ln9Yb2Hc5Js7Fd0Ga"


def test_open_mode_says_so_once(trained_store: Store, gate_report: Path,
                                tmp_path: Path) -> None:
    with serve(trained_store, tmp_path, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_API_KEYS=" , # keys to come") as srv:
        assert call(srv, "POST", "/predict", EXAMPLE_TRANSACTION)[0] == 200
        assert call(srv, "POST", "/admin/share", {"challenger_share": 2})[0] == 400
        text = srv.logs()
    lines = [line for line in text.splitlines() if "no API keys configured" in line]
    assert len(lines) == 1, lines
    empty = [line for line in text.splitlines() if "holds no keys" in line]
    assert len(empty) == 1 and "OPEN MODE" in empty[0], empty


REFUSED = [
    ({"FRAUDSERVE_ADMIN_KEY": "old-admin-secret"}, "FRAUDSERVE_ADMIN_KEY is no longer read",
     "old-admin-secret"),
    # The dev overlay's old placeholder (issue 23): refused, naming the entry, not the key.
    ({"FRAUDSERVE_API_KEYS": "score:Kp3Vx8Qm1Tz6Wr4Ln9Yb2Hc5Js7Fd0Ga,admin:REPLACE-ME-admin-key"},
     "FRAUDSERVE_API_KEYS: entry 2 (admin): the key is shorter than 32 characters",
     "REPLACE-ME-admin-key"),
    ({"FRAUDSERVE_API_KEYS": "admin:REPLACE-ME-admin-key-with-enough-characters"},
     "entry 1 (admin): the key looks like a placeholder", "REPLACE-ME-admin-key-with"),
    ({"FRAUDSERVE_API_KEYS": "score:Kp3Vx8Qm1Tz6Wr4Ln9Yb2Hc5Js7Fd0Ga,"
                             "admin:Kp3Vx8Qm1Tz6Wr4Ln9Yb2Hc5Js7Fd0Ga"},
     "entry 1 (score) and FRAUDSERVE_API_KEYS: entry 2 (admin) hold the same key",
     "Kp3Vx8Qm1Tz6Wr4Ln9Yb2Hc5Js7Fd0Ga"),
    ({"FRAUDSERVE_REQUIRE_KEYS": "1", "FRAUDSERVE_API_KEYS": ","},
     "FRAUDSERVE_REQUIRE_KEYS=1 but no API keys are configured", None),
    ({"FRAUDSERVE_REQUIRE_KEYS": "1", "FRAUDSERVE_API_KEYS": f"score:{GOOD}"},
     "FRAUDSERVE_REQUIRE_KEYS=1: the assignment salt is the committed placeholder", GOOD),
]


@pytest.mark.parametrize(("env", "words", "secret"), REFUSED,
                         ids=["retired", "short", "placeholder", "two-scopes", "required",
                              "salt"])
def test_a_key_configuration_it_must_not_run_with_stops_the_start(
        trained_store: Store, tmp_path: Path, env: dict[str, str], words: str,
        secret: str | None) -> None:
    with serve(trained_store, tmp_path, expect_ready=False, **env) as srv:
        srv.proc.wait(timeout=120)
        text = srv.logs()
    assert srv.proc.returncode != 0, text[-2000:]
    assert words in text, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    if secret is not None:
        assert secret not in text


def test_required_keys_with_a_salt_of_its_own_start_and_score(
        trained_store: Store, gate_report: Path, tmp_path: Path) -> None:
    with serve(trained_store, tmp_path, FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_REQUIRE_KEYS="1", FRAUDSERVE_API_KEYS=f"score+admin:{GOOD}",
               FRAUDSERVE_SALT="a-salt-of-its-own-7Hq2Lx9Vw4") as srv:
        assert call(srv, "POST", "/predict", EXAMPLE_TRANSACTION, GOOD)[0] == 200
        stats = call(srv, "GET", "/ab-stats", key=GOOD)[2]
        text = srv.logs()
    assert stats["experiment"]["salt"] == "a-salt-of-its-own-7Hq2Lx9Vw4"
    assert "assignment salt" not in text and GOOD not in text
