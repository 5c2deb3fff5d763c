"""A 200 means committed: SIGKILL an API worker (and, separately, the router) under load.

Real `bentoml serve` with 2 API workers; 12 client threads send /predict for a bounded time
while the test kills a worker with SIGKILL a few times. Every decision answered 200 must be in
the ledger afterwards; requests in flight fail with an error (a connection reset or a 5xx),
never with a 200; BentoML brings the killed processes back.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import Server, Store, serve

from fraud.schema import EXAMPLE_TRANSACTION
from fraud.store.writer import Ledger

pytestmark = [pytest.mark.service]

THREADS = 12
SECONDS = 18.0


def processes(server: Server, service: str) -> list[psutil.Process]:
    """The server's worker processes of one BentoML service."""
    out = []
    for p in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            if f"--service-name {service}" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def predict_loop(server: Server, stop: threading.Event, answers: list[tuple[str, Any]],
                 worker: int) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    i = 0
    while not stop.is_set():
        i += 1
        body = json.dumps({**EXAMPLE_TRANSACTION, "user_id": f"dur-{worker}-{i % 50}"})
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
            if resp.status == 200:
                answers.append(("ok", json.loads(text)["request_id"]))
            else:
                answers.append((f"http {resp.status}", text[:200]))
        except (OSError, http.client.HTTPException) as exc:
            answers.append((type(exc).__name__, str(exc)))
            time.sleep(0.05)
        finally:
            conn.close()


def load_while_killing(server: Server, service: str, kills: int) -> tuple[list, list[int]]:
    """Load for SECONDS; SIGKILL one `service` process `kills` times, evenly spaced."""
    stop = threading.Event()
    answers: list[tuple[str, Any]] = []
    threads = [threading.Thread(target=predict_loop, args=(server, stop, answers, w))
               for w in range(THREADS)]
    for t in threads:
        t.start()
    killed: list[int] = []
    try:
        for k in range(kills):
            time.sleep(SECONDS / (kills + 1))
            deadline = time.monotonic() + 60  # the last one killed may still be restarting
            alive = [p for p in processes(server, service) if p.pid not in killed]
            while not alive and time.monotonic() < deadline:
                time.sleep(0.2)
                alive = [p for p in processes(server, service) if p.pid not in killed]
            assert alive, f"no {service} process to kill (killed so far: {killed})"
            victim = alive[k % len(alive)]
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)
        time.sleep(SECONDS / (kills + 1))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    return answers, killed


def back_again(server: Server, service: str, count: int, killed: list[int]) -> list[int]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pids = [p.pid for p in processes(server, service)]
        if len(pids) == count and not set(pids) & set(killed):
            return pids
        time.sleep(0.5)
    return [p.pid for p in processes(server, service)]


def ledgered(path: Path, request_ids: list[str]) -> list[str]:
    """The ids NOT found in the ledger file."""
    with Ledger(path) as led:
        return [rid for rid in request_ids if led.lookup(rid) is None]


@pytest.fixture
def durable_server(trained_store: Store, gate_report: Path,
                   tmp_path: Path) -> Any:
    with serve(trained_store, tmp_path, FRAUDSERVE_GATE_REPORT=str(gate_report)) as srv:
        yield srv, tmp_path / "ledger.sqlite"


@pytest.mark.parametrize(("service", "count", "kills"), [("FraudDetection", 2, 3),
                                                        ("ABRouter", 1, 2)])
def test_every_200_is_in_the_ledger_when_processes_are_killed(
        durable_server: tuple[Server, Path], service: str, count: int, kills: int) -> None:
    server, path = durable_server
    before = [p.pid for p in processes(server, service)]
    assert len(before) == count, before
    answers, killed = load_while_killing(server, service, kills)
    outcomes = Counter(kind for kind, _ in answers)
    ok = [rid for kind, rid in answers if kind == "ok"]
    assert len(ok) > 100, outcomes
    assert back_again(server, service, count, killed) != [], "no process came back"
    pids = [p.pid for p in processes(server, service)]
    assert len(pids) == count and not set(pids) & set(killed), (
        f"{service}: processes {pids} after killing {killed}")
    missing = ledgered(path, ok)
    assert not missing, (f"{len(missing)} of {len(ok)} decisions answered 200 are not in the "
                         f"ledger, e.g. {missing[:3]}; outcomes {dict(outcomes)}")
    # Served again: every process is back and answers.
    answers_after: list[tuple[str, Any]] = []
    stop = threading.Event()
    t = threading.Thread(target=predict_loop, args=(server, stop, answers_after, 99))
    t.start()
    time.sleep(2)
    stop.set()
    t.join(30)
    assert any(kind == "ok" for kind, _ in answers_after), answers_after[:3]
    assert not ledgered(path, [rid for kind, rid in answers_after if kind == "ok"])
    print(f"{service}: killed {killed}; outcomes {dict(outcomes)}; all {len(ok)} 200s ledgered")
