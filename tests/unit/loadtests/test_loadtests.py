"""Load tests: held-out samples, pure helpers, and run.py against a stub service (the bench:
test_bench.py)."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from fraud.config import load_training_config
from fraud.schema import ARMS, FEATURE_NAMES, FEATURES_BY_NAME, LABEL, Transaction
from loadtests import run
from loadtests.samples import (
    HOLDOUT_SEED,
    FeedbackQueue,
    holdout_seed,
    load_samples,
    prediction_problem,
    stickiness_problem,
    user_ids,
)
from training.data import generate, row_hashes

GOOD = {"request_id": "abc", "is_fraud": False, "fraud_probability": 0.12,
        "model_version": "model_a", "model_tag": "fraud_rf:x", "latency_ms": 1.0,
        "timestamp": "2026-01-01T00:00:00.000Z"}


# -- samples ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples():
    return load_samples(n_rows=6_000)


def test_seed_is_never_the_training_seed() -> None:
    training_seed = load_training_config().data.seed
    assert holdout_seed(training_seed) != training_seed
    assert holdout_seed(HOLDOUT_SEED) == HOLDOUT_SEED + 1  # a collision moves off
    with pytest.raises(ValueError, match="training data seed"):
        load_samples(n_rows=1_000, seed=training_seed)


def test_samples_are_split_by_true_label_and_valid(samples) -> None:
    assert len(samples.legit) > 20 * len(samples.suspicious) > 0  # ~2% fraud, as configured
    assert not any(s.is_fraud for s in samples.legit)
    assert all(s.is_fraud for s in samples.suspicious)
    for s in samples.legit[:200] + samples.suspicious[:200]:
        assert tuple(s.features) == FEATURE_NAMES
        for name, value in s.features.items():
            assert isinstance(value, int) is FEATURES_BY_NAME[name].integer
        Transaction(**s.body("user_1"))  # the service's own validation accepts it
    assert json.loads(json.dumps(samples.legit[0].body("u")))["user_id"] == "u"


def test_samples_are_realistic_not_uniform(samples) -> None:
    def column(rows, name):
        return np.array([s.features[name] for s in rows], dtype=float)

    amount = column(samples.legit, "amount")
    assert np.mean(amount) > 1.3 * np.median(amount)  # heavy right tail (log-normal)
    hours = column(samples.legit, "hour")
    assert np.mean((hours >= 8) & (hours <= 20)) > 0.7  # mostly daytime
    # suspicious rows carry the fraud scenarios' signal
    assert np.mean(column(samples.suspicious, "amount")) > np.mean(amount)
    assert (np.mean(column(samples.suspicious, "card_age_days"))
            < np.mean(column(samples.legit, "card_age_days")))


def test_samples_are_deterministic_and_held_out(samples) -> None:
    again = load_samples.__wrapped__(n_rows=6_000)  # bypass the cache
    assert again == samples
    cfg = load_training_config().data
    training = generate(cfg.generator, cfg.seed)
    held_out = generate(cfg.generator.model_copy(update={"n_rows": 6_000}), samples.seed)
    assert not row_hashes(held_out) & row_hashes(training)
    assert held_out[LABEL].sum() == len(samples.suspicious)


def test_user_population_is_stable() -> None:
    users = user_ids()
    assert len(users) == len(set(users)) == 5_000
    assert users == user_ids()


# -- feedback queue and response checks ----------------------------------------------------------


def test_feedback_waits_for_the_delay_and_is_bounded() -> None:
    now = [100.0]
    queue = FeedbackQueue(maxlen=3, delay_s=2.0, clock=lambda: now[0])
    for i in range(5):
        queue.add(f"r{i}", i % 2 == 0)
    assert len(queue) == 3  # the two oldest fell out unlabelled
    assert queue.due() is None  # not old enough yet
    now[0] += 2.0
    first = queue.due()
    assert first is not None and (first.request_id, first.is_fraud) == ("r2", True)
    queue.labelled(first)
    assert queue.take_labelled() == first
    assert queue.take_labelled() is None


def test_prediction_problem() -> None:
    assert prediction_problem(GOOD) is None
    assert prediction_problem([GOOD]) == "answer is not a JSON object"
    assert "request_id" in prediction_problem({k: v for k, v in GOOD.items()
                                               if k != "request_id"})
    assert "model_version" in prediction_problem({**GOOD, "model_version": "model_c"})
    assert "[0, 1]" in prediction_problem({**GOOD, "fraud_probability": 1.5})


def test_stickiness_allows_only_a_rollback_move() -> None:
    a, b = ARMS
    assert stickiness_problem(None, b) is None
    assert stickiness_problem(a, a) is None
    assert stickiness_problem(b, a) is None  # a guardrail rollback
    assert "not sticky" in stickiness_problem(a, b)


# -- run.py -------------------------------------------------------------------------------------


STATS_CSV = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,\
90%,95%,98%,99%,99.9%,99.99%,100%
POST,/predict [legit],100,0,12,14.0,5,80,200,10.5,0.0,12,14,15,16,20,30,50,70,80,80,80
,Aggregated,120,1,11,13.0,1,80,180,12.5,0.1,11,13,14,15,19,29,49,N/A,80,80,80
"""


def test_read_and_format_stats(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(STATS_CSV)
    rows = run.read_stats(path)
    assert rows[0] == run.EndpointStats("POST", "/predict [legit]", 100, 0, 10.5, 12.0, 30.0,
                                        70.0)
    assert rows[-1].failures == 1 and rows[-1].p99 is None
    text = run.format_stats(rows)
    assert "POST /predict [legit]" in text and "Aggregated" in text


def test_run_defaults_and_ledger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    args = run.parse_args([])
    assert (args.users, args.run_time, args.profile, args.url) == (50, "60s", "mix", None)
    with pytest.raises(SystemExit):
        run.parse_args(["--profile", "nope"])
    monkeypatch.delenv("FRAUDSERVE_LEDGER", raising=False)
    assert run.ledger_env(tmp_path) == {"FRAUDSERVE_LEDGER": str(tmp_path / "ledger.sqlite")}
    monkeypatch.setenv("FRAUDSERVE_LEDGER", "/somewhere/ledger.sqlite")
    assert run.ledger_env(tmp_path) == {}


# -- a real locust run against a stub of the service ---------------------------------------------


class _Stub(BaseHTTPRequestHandler):
    """Just enough of fraudserve for the load profiles: sticky arms, ids, 404/409 labels."""

    labels: ClassVar[dict[str, bool | None]] = {}
    lock = threading.Lock()
    broken: ClassVar[set[str]] = set()

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _prediction(self, tx: dict) -> dict:
        digest = hashlib.sha256(tx["user_id"].encode()).digest()
        rid = uuid.uuid4().hex
        with self.lock:
            self.labels[rid] = None
        return {**GOOD, "request_id": rid, "model_version": ARMS[digest[0] % 2]}

    def do_GET(self) -> None:
        if self.path in self.broken:
            self._answer(503, {"error": "broken on purpose"})
        elif self.path == "/ab-stats":
            self._answer(200, {arm: {"total_predictions": 0} for arm in ARMS})
        else:
            self._answer(200, {"status": "healthy"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/predict":
            self._answer(200, self._prediction(body))
        elif self.path == "/predict_batch":
            self._answer(200, {"results": [self._prediction(t) for t in body["transactions"]]})
        elif self.path == "/feedback":
            rid, label = body["request_id"], body["is_fraud"]
            with self.lock:
                if rid not in self.labels:
                    return self._answer(404, {"error": "unknown"})
                if self.labels[rid] not in (None, label):
                    return self._answer(409, {"error": "conflict"})
                self.labels[rid] = label
            self._answer(200, {"status": "created"})
        else:
            self._answer(404, {"error": "no route"})


@pytest.fixture
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.broken.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.mark.slow
def test_run_mix_profile_against_stub(stub: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    rc = run.main(["--url", stub, "--users", "20", "--spawn-rate", "20", "--run-time", "6s",
                   "--reports", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    for name in ("/predict [legit]", "/predict [suspicious]", "/predict_batch", "/feedback",
                 "/ab-stats"):
        assert name in out
    report = next(tmp_path.iterdir())
    assert (report / "report.html").exists() and (report / "locust_stats.csv").exists()
    assert "loadtest: OK" in out and "stickiness:" in out


@pytest.mark.slow
def test_run_fails_on_any_non_2xx(stub: str, tmp_path: Path) -> None:
    _Stub.broken.add("/health")
    rc = run.main(["--url", stub, "--profile", "reference", "--users", "5", "--run-time", "3s",
                   "--reports", str(tmp_path)])
    assert rc == 1
