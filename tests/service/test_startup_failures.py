"""A service that must not serve says so: no models, or models the gate did not pass."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests
from helpers import BIN, PYTHON, ROOT, Store, free_port, serve

from fraud.config import load_ab_config
from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.service]

AB = load_ab_config()


def refused_start(env: dict[str, str], timeout: float, what: str) -> tuple[list[str], str]:
    """`bentoml serve` that must exit on its own without a traceback: its `fraudserve:` lines
    and its whole output."""
    try:
        out = subprocess.run(
            [str(BIN / "bentoml"), "serve", "service:FraudDetection", "--host", "127.0.0.1",
             "--port", str(free_port())],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what} within {timeout:g} s: {exc.stdout!r}")
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    return [line for line in text.splitlines() if line.startswith("fraudserve:")], text


def test_no_trained_models_exits_with_one_line_saying_how_to_train(tmp_path: Path) -> None:
    empty = Store(home=tmp_path / "empty-bentoml", mlflow_uri=f"sqlite:///{tmp_path / 'm.db'}")
    empty.home.mkdir()
    started = time.monotonic()
    lines, text = refused_start(empty.env(), 60, "bentoml serve without models did not exit")
    assert len(lines) == 1, text[-2000:]
    assert "make train" in lines[0]
    assert str(empty.home) in lines[0]
    assert f"'{AB.model_a}'" in lines[0]
    assert time.monotonic() - started < 60


def _arm_tags(store: Store) -> dict[str, str]:
    """The tags the service resolves for configs/ab.yaml in `store` (roles included)."""
    code = ("import json\n"
            "from fraud.config import load_ab_config\n"
            "from fraud.serving.models import resolve_arms\n"
            "arms = resolve_arms(load_ab_config())\n"
            "print(json.dumps({arm: m.tag for arm, m in arms.items()}))\n")
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=store.env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_models_the_gate_failed_never_become_ready(trained_store: Store, tmp_path: Path) -> None:
    tags = _arm_tags(trained_store)
    tag_a, tag_b = tags["model_a"], tags["model_b"]
    report = tmp_path / "gate_report.json"
    report.write_text(json.dumps({"models": {
        tag_a: {"passed": True, "failures": []},
        tag_b: {"passed": False, "failures": ["recall 0.12 < 0.60"]},
    }}))
    with serve(trained_store, tmp_path, expect_ready=False,
               FRAUDSERVE_GATE_REPORT=str(report)) as server:
        deadline = time.monotonic() + 120
        first = None
        while first is None:
            assert server.proc.poll() is None, server.logs()[-3000:]
            assert time.monotonic() < deadline, "no answer on /readyz after 120 s"
            try:
                first = requests.get(f"{server.url}/readyz", timeout=2).status_code
            except requests.RequestException:
                time.sleep(0.5)
        seen = [first]
        until = time.monotonic() + 10
        while time.monotonic() < until:
            seen.append(requests.get(f"{server.url}/readyz", timeout=5).status_code)
            time.sleep(0.5)
        assert set(seen) == {503}, f"/readyz answered {seen}"

        health = requests.get(f"{server.url}/health", timeout=5)
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "not_ready"
        assert body["models"] == {"model_a": tag_a, "model_b": tag_b}
        assert tag_b in body["reason"] and "FAILED the gate" in body["reason"], body
        assert "recall 0.12 < 0.60" in body["reason"]

        try:
            answer = requests.post(f"{server.url}/predict", json=EXAMPLE_TRANSACTION, timeout=10)
        except requests.Timeout:
            pytest.fail(
                "BUG: POST /predict on a not-ready service hangs (no answer in 10 s) instead of "
                "a 503. service.NotReady sets error_code = 503 (an int); BentoML's handler "
                "reads exc.error_code.value, raises AttributeError, and the request hangs "
                "until the 30 s traffic timeout, then 500. Fix: "
                "error_code = HTTPStatus.SERVICE_UNAVAILABLE.", pytrace=False)
        assert answer.status_code == 503, answer.text[:300]
        assert "error" in answer.json()  # BentoML words every 5xx body generically
        assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 503


def test_a_sqlite_ledger_is_refused_when_a_shared_one_is_required(trained_store: Store,
                                                                   tmp_path: Path) -> None:
    """FRAUDSERVE_REQUIRE_SHARED_LEDGER=1 (the Kubernetes base) with the embedded SQLite
    default: `bentoml serve` exits at once with one line saying why and what to set."""
    env = trained_store.env(FRAUDSERVE_REQUIRE_SHARED_LEDGER="1",
                            FRAUDSERVE_LEDGER=str(tmp_path / "ledger.sqlite"))
    lines, text = refused_start(env, 120, "a SQLite ledger was not refused")
    assert len(lines) == 1 and "FRAUDSERVE_REQUIRE_SHARED_LEDGER" in lines[0], text[-2000:]
    assert "postgresql://" in lines[0]
    assert not (tmp_path / "ledger.sqlite").exists()  # refused before anything was written
