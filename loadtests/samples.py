"""What the load sends and expects: held-out transactions, users, delayed labels, checks.

The rows come from `training.data.generate` with the generator settings of
configs/training.yaml, so the load looks like real traffic (heavy-tailed amounts, daytime
hours, fraud scenarios with interacting features) instead of uniform noise. The seed differs
from the data seed, so no row is one the models were trained, tuned or gated on. With a csv
or parquet source (other features: configs/features.yaml), the rows are that file's held-out
test split instead. Each row keeps its true label: the load tests post it later as delayed
feedback.

The helpers below are plain Python (no locust import: locust monkey-patches the process with
gevent), so the unit tests exercise them directly.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fraud.config import load_training_config
from fraud.schema import ARMS, FEATURE_NAMES, FEATURES_BY_NAME, LABEL
from training.data import generate, load_splits

# Any fixed number unlike the training seed; `holdout_seed` moves off it if they ever collide.
HOLDOUT_SEED = 424_242
DEFAULT_ROWS = 30_000  # ~600 fraud rows at the configured 2% fraud rate
USER_POPULATION = 5_000
USER_PREFIX = "lt_user_"


@dataclass(frozen=True)
class Sample:
    """One held-out transaction: its features (schema order, JSON types) and its true label."""

    features: dict[str, float | int | bool | str]
    is_fraud: bool

    def body(self, user_id: str) -> dict[str, float | int | bool | str]:
        """The flat /predict body (the seed's shape) for `user_id`."""
        return {"user_id": user_id, **self.features}


@dataclass(frozen=True)
class SampleSet:
    """Held-out rows split by true label: ordinary (legit) and suspicious (fraud)."""

    legit: tuple[Sample, ...]
    suspicious: tuple[Sample, ...]
    seed: int

    def pick(self, rng: random.Random, suspicious: bool) -> Sample:
        return rng.choice(self.suspicious if suspicious else self.legit)


def holdout_seed(training_seed: int, preferred: int = HOLDOUT_SEED) -> int:
    """A generator seed that is never the training data seed."""
    return preferred if preferred != training_seed else preferred + 1


def _json_value(name: str, value: float) -> float | int | bool | str:
    """A model column's value as the request sends it (a category by name, a flag as bool)."""
    return FEATURES_BY_NAME[name].decode(value)  # type: ignore[no-any-return]


@lru_cache(maxsize=4)
def load_samples(n_rows: int = DEFAULT_ROWS, seed: int | None = None,
                 config: Path | str | None = None) -> SampleSet:
    """Generate `n_rows` held-out rows (deterministic for the seed) split by label."""
    cfg = load_training_config(config).data
    if cfg.source != "generator":  # a data file: its held-out test split, never trained on
        frame = load_splits(cfg).test
        seed = cfg.seed
    else:
        seed = holdout_seed(cfg.seed) if seed is None else seed
        if seed == cfg.seed:
            raise ValueError(f"seed {seed} is the training data seed: the rows would not be "
                             "held out")
        generator = cfg.generator.model_copy(update={"n_rows": n_rows})
        frame = generate(generator, seed)
    legit: list[Sample] = []
    suspicious: list[Sample] = []
    for record in frame[[*FEATURE_NAMES, LABEL]].to_dict("records"):
        features = {n: _json_value(n, record[n]) for n in FEATURE_NAMES}
        sample = Sample(features=features, is_fraud=bool(record[LABEL]))
        (suspicious if sample.is_fraud else legit).append(sample)
    if not legit or not suspicious:
        raise ValueError(f"{n_rows} rows gave {len(legit)} legit and {len(suspicious)} "
                         "suspicious: generate more rows")
    return SampleSet(legit=tuple(legit), suspicious=tuple(suspicious), seed=seed)


def user_ids(n: int = USER_POPULATION) -> list[str]:
    """A stable population of cardholder ids: the same ids every run, so A/B stickiness shows."""
    return [f"{USER_PREFIX}{i:05d}" for i in range(n)]


# -- delayed feedback ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """A decision the service returned, with the true label of the row it scored."""

    request_id: str
    is_fraud: bool
    at: float


class FeedbackQueue:
    """Recent decisions waiting for their label (a chargeback comes later, or never).

    Bounded: when full, the oldest decisions fall out unlabelled, as most real ones do.
    """

    def __init__(self, maxlen: int = 10_000, delay_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.delay_s = delay_s
        self.clock = clock
        self._waiting: deque[Decided] = deque(maxlen=maxlen)
        self._labelled: deque[Decided] = deque(maxlen=1_000)

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, request_id: str, is_fraud: bool) -> None:
        self._waiting.append(Decided(request_id, is_fraud, self.clock()))

    def due(self) -> Decided | None:
        """The oldest decision at least `delay_s` old, removed from the queue; else None."""
        if self._waiting and self.clock() - self._waiting[0].at >= self.delay_s:
            return self._waiting.popleft()
        return None

    def labelled(self, decided: Decided) -> None:
        """Remember a labelled decision, for a later deliberately conflicting relabel."""
        self._labelled.append(decided)

    def take_labelled(self) -> Decided | None:
        return self._labelled.popleft() if self._labelled else None


# -- response checks -------------------------------------------------------------------------


def prediction_problem(body: object) -> str | None:
    """None when `body` is a well-formed /predict answer, else what is wrong with it."""
    if not isinstance(body, dict):
        return "answer is not a JSON object"
    for key in ("request_id", "is_fraud", "fraud_probability", "model_version"):
        if key not in body:
            return f"answer lacks {key!r}"
    if body["model_version"] not in ARMS:
        return f"unknown model_version {body['model_version']!r}"
    p = body["fraud_probability"]
    if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        return f"fraud_probability {p!r} is not in [0, 1]"
    return None


def stickiness_problem(previous: str | None, current: str) -> str | None:
    """None unless a user moved from the champion to the challenger.

    A user keeps their arm; the one legitimate move during a load test is a guardrail
    rollback, which sends challenger users to the champion (model_b -> model_a). Nothing in
    a load test raises the challenger's share, so model_a -> model_b means stickiness broke.
    """
    if previous == ARMS[0] and current == ARMS[1]:
        return f"user moved from {ARMS[0]} to {ARMS[1]}: A/B assignment is not sticky"
    return None
