"""Realistic load for fraudserve: held-out transactions, bulk scoring, delayed labels, A/B reads.

Each simulated client acts for a stable population of cardholders (5,000 ids), so the same
users come back and the A/B assignment's stickiness is checked on every answer. Transactions
are held-out rows of the training generator (loadtests/samples.py), not uniform noise.

Mix per client (weights): ordinary /predict 74, suspicious /predict 5, /predict_batch of
50-200 rows 4, /feedback for a decision at least 2 s old 10, /ab-stats 4, /health 2, and 1
deliberate error probe (an unknown request id must answer 404, a contradicting relabel 409).
Any other non-2xx answer, a malformed answer or a user changing arm from model_a to model_b
is a failure.

Run it with `python -m loadtests.run` (starts the service, writes the reports), or directly:
    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:3000
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from locust import FastHttpUser, between, events, task

from loadtests.samples import (
    FeedbackQueue,
    load_samples,
    prediction_problem,
    stickiness_problem,
    user_ids,
)

SAMPLES = load_samples()
USERS = user_ids()
SUSPICIOUS_IN_BATCH = 0.03  # share of suspicious rows inside a bulk request
BATCH_ROWS = (50, 200)
FEEDBACK = FeedbackQueue(maxlen=10_000, delay_s=2.0)
ARM_OF: dict[str, str] = {}  # last arm seen per user id (one locust process: no locking)
MOVED_TO_CHAMPION = [0]  # B -> A moves: legitimate only after a guardrail rollback


class FraudClient(FastHttpUser):
    """A payment front-end calling fraudserve for many cardholders."""

    wait_time = between(0.1, 0.5)  # as the reference profile: ~3.3 requests/s per client

    def on_start(self) -> None:
        self.rng = random.Random()

    # -- scoring ----------------------------------------------------------------------------

    def _predict(self, suspicious: bool) -> None:
        sample = SAMPLES.pick(self.rng, suspicious)
        user = self.rng.choice(USERS)
        name = "/predict [suspicious]" if suspicious else "/predict [legit]"
        with self.client.post("/predict", json=sample.body(user), name=name,
                              catch_response=True) as resp:
            body = _json_2xx(resp)
            if body is None:
                return
            problem = prediction_problem(body) or self._sticky(user, body["model_version"])
            if problem:
                resp.failure(problem)
                return
            resp.success()
            FEEDBACK.add(body["request_id"], sample.is_fraud)

    @task(74)
    def predict_legit(self) -> None:
        self._predict(suspicious=False)

    @task(5)
    def predict_suspicious(self) -> None:
        self._predict(suspicious=True)

    @task(4)
    def predict_batch(self) -> None:
        n = self.rng.randint(*BATCH_ROWS)
        rows = [SAMPLES.pick(self.rng, self.rng.random() < SUSPICIOUS_IN_BATCH)
                for _ in range(n)]
        users = [self.rng.choice(USERS) for _ in range(n)]
        payload = {"transactions": [s.body(u) for s, u in zip(rows, users, strict=True)]}
        with self.client.post("/predict_batch", json=payload, name="/predict_batch",
                              catch_response=True) as resp:
            body = _json_2xx(resp)
            if body is None:
                return
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list) or len(results) != n:
                resp.failure(f"expected {n} results in order")
                return
            for result, user in zip(results, users, strict=True):
                problem = prediction_problem(result) or self._sticky(user,
                                                                     result["model_version"])
                if problem:
                    resp.failure(problem)
                    return
            resp.success()
            for result, sample in self.rng.sample(list(zip(results, rows, strict=True)), 3):
                FEEDBACK.add(result["request_id"], sample.is_fraud)

    @staticmethod
    def _sticky(user: str, arm: str) -> str | None:
        previous = ARM_OF.get(user)
        ARM_OF[user] = arm
        if previous is not None and previous != arm and stickiness_problem(previous, arm) is None:
            MOVED_TO_CHAMPION[0] += 1
        return stickiness_problem(previous, arm)

    # -- delayed feedback -------------------------------------------------------------------

    @task(10)
    def feedback(self) -> None:
        decided = FEEDBACK.due()
        if decided is None:
            return  # nothing old enough yet: a chargeback takes time
        with self.client.post("/feedback", json={"request_id": decided.request_id,
                                                 "is_fraud": decided.is_fraud},
                              name="/feedback", catch_response=True) as resp:
            if _json_2xx(resp) is not None:
                resp.success()
                FEEDBACK.labelled(decided)

    @task(1)
    def feedback_probes(self) -> None:
        """The two expected refusals: an id never issued (404), a contradicting label (409)."""
        unknown = {"request_id": uuid.uuid4().hex, "is_fraud": False}
        with self.client.post("/feedback", json=unknown, name="/feedback [unknown id: 404]",
                              catch_response=True) as resp:
            _expect(resp, 404)
        decided = FEEDBACK.take_labelled()
        if decided is None:
            return
        flipped = {"request_id": decided.request_id, "is_fraud": not decided.is_fraud}
        with self.client.post("/feedback", json=flipped, name="/feedback [relabel: 409]",
                              catch_response=True) as resp:
            _expect(resp, 409)

    # -- reads ------------------------------------------------------------------------------

    @task(4)
    def ab_stats(self) -> None:
        with self.client.get("/ab-stats", name="/ab-stats", catch_response=True) as resp:
            body = _json_2xx(resp)
            if body is None:
                return
            if not all(isinstance(body.get(arm), dict) and "total_predictions" in body[arm]
                       for arm in ("model_a", "model_b")):
                resp.failure("/ab-stats lacks per-arm total_predictions")
                return
            resp.success()

    @task(2)
    def health(self) -> None:
        with self.client.get("/health", name="/health", catch_response=True) as resp:
            if _json_2xx(resp) is not None:
                resp.success()


def _json_2xx(resp: Any) -> Any:
    """The JSON body of a 2xx answer; otherwise marks the request failed and returns None."""
    if not 200 <= resp.status_code < 300:
        resp.failure(f"HTTP {resp.status_code}: {_text(resp)[:200]}")
        return None
    try:
        return resp.json()
    except ValueError:
        resp.failure("answer is not JSON")
        return None


def _expect(resp: Any, status: int) -> None:
    if resp.status_code == status:
        resp.success()
    else:
        resp.failure(f"expected HTTP {status}, got {resp.status_code}: {_text(resp)[:200]}")


def _text(resp: Any) -> str:
    try:
        return resp.text or ""
    except Exception:  # a connection error has no body
        return str(getattr(resp, "error", "") or "")


@events.quitting.add_listener
def _report_stickiness(environment: Any, **_: Any) -> None:
    print(f"stickiness: {len(ARM_OF)} users seen; {MOVED_TO_CHAMPION[0]} answers moved a user "
          "model_b -> model_a (only a guardrail rollback does that); any model_a -> model_b "
          "move is counted as a failed request")
