"""The reference implementation's load profile, reproduced for like-for-like comparisons.

Same mix, payload ranges, user ids and pacing as the seed's tests/load_test.py:
80% ordinary /predict, 5% suspicious /predict, 10% GET /health, 5% GET /ab-stats; each
simulated client is one user id of 1..10,000 and waits 0.1-0.5 s between requests (about
3.3 requests/s per client: the reference's 32.5 req/s is 10 clients). Payloads are uniform
random draws, as in the reference; loadtests/locustfile.py is the realistic profile.
Any non-2xx answer is a failure.

    python -m loadtests.run --profile reference --users 10
"""

from __future__ import annotations

import random

from locust import FastHttpUser, between, task


class ReferenceClient(FastHttpUser):
    """One reference load-test user."""

    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.user_id = f"load_test_user_{random.randint(1, 10_000)}"

    @task(80)
    def predict_normal(self) -> None:
        self.client.post("/predict", name="/predict [normal]", json={
            "user_id": self.user_id,
            "amount": round(random.uniform(10, 200), 2),
            "hour": random.randint(8, 20),
            "merchant_risk": round(random.uniform(0.0, 0.3), 2),
            "card_age_days": random.randint(90, 1500),
            "distance_km": round(random.uniform(0, 20), 1),
            "num_recent_txns": random.randint(0, 5),
            "is_international": 0,
        })

    @task(5)
    def predict_suspicious(self) -> None:
        self.client.post("/predict", name="/predict [suspicious]", json={
            "user_id": self.user_id,
            "amount": round(random.uniform(500, 5000), 2),
            "hour": random.choice([0, 1, 2, 3, 23]),
            "merchant_risk": round(random.uniform(0.7, 1.0), 2),
            "card_age_days": random.randint(1, 30),
            "distance_km": round(random.uniform(200, 1000), 1),
            "num_recent_txns": random.randint(8, 20),
            "is_international": 1,
        })

    @task(10)
    def health(self) -> None:
        self.client.get("/health")

    @task(5)
    def ab_stats(self) -> None:
        self.client.get("/ab-stats")
