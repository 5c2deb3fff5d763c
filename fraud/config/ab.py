"""configs/ab.yaml: the arms, the split, and the experiment's safety and serving settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from fraud.config.base import CONFIG_DIR, Strict, load_yaml
from fraud.config.settings import DriftSettings, StatsSettings


class GuardrailConfig(Strict):
    """Limits on the challenger; a breach rolls it back (all traffic to the champion).

    Each rule is an always-valid test at its own error rate (fraud/experiment/guardrails.py);
    the rates add up to the false-alarm budget over a whole experiment (docs/statistics.md).
    """

    enabled: bool = True
    min_decisions: int = Field(200, ge=1)  # per arm, before any rate is judged
    min_users: int = Field(20, ge=2)  # per arm, before any rate is judged
    max_error_rate: float = Field(0.02, ge=0, le=1)
    alpha_error_rate: float = Field(0.002, gt=0, lt=1)
    error_tau: float = Field(0.02, gt=0)
    max_p95_latency_ms: float = Field(250.0, gt=0)
    # ...and only when also this many times the champion's p95 (an overloaded host slows both).
    latency_ratio: float = Field(2.0, ge=0)  # 0: judge the absolute limit alone
    latency_alpha_per_look: float = Field(1e-10, gt=0, lt=1)
    # Challenger flag rate must stay within [champion / ratio, champion x ratio].
    flag_rate_ratio: float = Field(2.0, gt=1)
    alpha_flag_rate: float = Field(0.003, gt=0, lt=1)
    flag_tau: float = Field(0.5, gt=0)
    rollback_on_srm: bool = True  # sample-ratio mismatch over users (statistics.srm_alpha)
    rollback_on_worse: bool = True  # primary comparison's CS at alpha_worse below 0
    alpha_worse: float = Field(0.003, gt=0, lt=1)
    check_interval_s: float = Field(2.0, gt=0)
    # Customer harm: the challenger's legit-decline rate (legit declined / legit, mature
    # decisions) within `legit_decline_ratio` x the champion's, unless the ratio's CS at
    # `alpha_legit_decline` lies above it (fraud/experiment/guardrails.py).
    legit_decline_ratio: float = Field(1.5, gt=1)
    alpha_legit_decline: float = Field(0.0008, gt=0, lt=1)
    legit_decline_tau: float = Field(0.5, gt=0)

    def alarm_budget(self, srm_alpha: float) -> float:
        """The sum of the rules' error rates: a bound on an A/A experiment's rollback chance
        (latency counted at its per-look rate times a month of looks)."""
        looks_per_month = 30 * 86_400 / self.check_interval_s
        return (self.alpha_error_rate + self.alpha_flag_rate
                + (srm_alpha if self.rollback_on_srm else 0.0)
                + (self.alpha_worse if self.rollback_on_worse else 0.0)
                + self.alpha_legit_decline
                + self.latency_alpha_per_look * looks_per_month)


class LabelPolicy(Strict):
    """How late labels (chargebacks) count."""

    # An unlabelled decision older than this counts as legit ("no chargeback within N days");
    # None (the default): only labelled decisions count in recall and precision.
    maturity_days: float | None = Field(None, gt=0)


class RetentionPolicy(Strict):
    """How long decisions are kept. Older ones are deleted in small batches by the guardrail
    loop (the experiment's counts are kept apart and do not change); a label for a deleted
    decision is a 404."""

    decisions_days: float | None = Field(90, gt=0, description="None keeps everything")
    batch_rows: int = Field(1000, ge=1, le=100_000)
    max_batches_per_check: int = Field(10, ge=1)


class ShadowConfig(Strict):
    """Shadow scoring: both models score every transaction; the other model's answer is
    stored beside the decision, never returned, and the two are compared on the same
    transactions (fraud/stats/paired.py)."""

    enabled: bool = Field(False, description="FRAUDSERVE_SHADOW=1|0 overrides")
    metric: Literal["recall", "precision", "amount_recall"] = "recall"
    decline_fixed: float = Field(5.0, ge=0, description="cost of declining a legit txn")
    decline_share: float = Field(0.02, ge=0, le=1, description="... plus this share of it")
    disagreements_max: int = Field(500, ge=1, le=10_000)
    scores_window: int = Field(100_000, ge=100, description="paired scores for the "
                                "same-flag-rate comparison (newest)")


class LimitsConfig(Strict):
    """Request body limits in bytes, checked before parsing (413 naming the limit).

    None takes the default; FRAUDSERVE_MAX_BODY_BYTES / _MAX_BATCH_BODY_BYTES override
    (fraud.api.middleware.LimitSettings.from_mapping applies and checks them)."""

    max_body_bytes: int | None = Field(None, ge=1, description="None: 65536")
    max_batch_body_bytes: int | None = Field(None, ge=1, description="None: max_batch_rows "
                                             "x 2048")


class RateLimitConfig(Strict):
    """The token buckets, shared by a replica's API workers (429 with Retry-After): one per
    key, one per client address for requests without a key, one per client address for
    failed authentications (only while keys are configured).

    FRAUDSERVE_RATE_LIMIT_PER_MIN / FRAUDSERVE_RATE_BURST (and FRAUDSERVE_ANON_RATE_PER_MIN,
    FRAUDSERVE_FAILED_AUTH_PER_MIN) override (fraud.api.ratelimit.RatePolicy applies them)."""

    per_min: float | None = Field(None, ge=0, description="None: 12000; 0 turns it off")
    burst: int | None = Field(None, ge=1, description="None: 2 s of the rate")
    anonymous_per_min: float | None = Field(None, ge=0, description="per client address, "
                                            "requests without a key; None: 600")
    anonymous_burst: int | None = Field(None, ge=1, description="None: 60")
    failed_auth_per_min: float | None = Field(None, ge=0, description="per client address, "
                                              "401s for a wrong key; None: 30")
    failed_auth_burst: int | None = Field(None, ge=1, description="None: 10")


class AccessConfig(Strict):
    """configs/ab.yaml `access:`: who the client is, and whether the costly open routes need
    a key. FRAUDSERVE_TRUSTED_PROXIES (comma-separated) and FRAUDSERVE_REPORTS_NEED_KEY (0|1)
    override (fraud.api.clientip and fraud.api.auth apply them)."""

    trusted_proxies: list[str] = Field(default_factory=list, description="addresses or CIDR "
                                       "ranges whose X-Forwarded-For is believed, e.g. the "
                                       "ingress controller's pod range; [] believes none")
    reports_need_key: bool = Field(False, description="/ab-stats, /report and /drift need a "
                                   "key (any scope)")


class CorsConfig(Strict):
    """Cross-origin browser access: off (no origin allowed) unless origins are listed.

    FRAUDSERVE_CORS_ORIGINS (comma-separated) overrides `allow_origins`."""

    allow_origins: list[str] = Field(default_factory=list, description="e.g. "
                                     "['https://analysts.example.com']; [] is off")
    max_age_s: int = Field(600, ge=0, description="how long browsers cache a preflight")

    def origins(self) -> list[str]:
        env = os.environ.get("FRAUDSERVE_CORS_ORIGINS")
        if env is not None:
            return [o.strip() for o in env.split(",") if o.strip()]
        return list(self.allow_origins)


class DriftConfig(Strict):
    """configs/ab.yaml `drift:`: GET /drift windows and verdicts (docs/explain-and-drift.md)."""

    window: int = Field(1000, ge=1, le=100_000, description="newest rows kept per arm")
    min_rows: int = Field(500, ge=1, description="no verdict below this many rows")
    psi_threshold: float = Field(0.25, gt=0, description="a major shift; the alert's level")
    alpha: float = Field(0.001, gt=0, lt=1, description="false-alarm rate of each test")
    check_interval_s: float = Field(10, gt=0, description="how often the gauges refresh")

    @model_validator(mode="after")
    def _valid(self) -> DriftConfig:
        self.settings()  # DriftSettings refuses min_rows > window and a too-small min_rows
        return self

    def settings(self) -> DriftSettings:
        return DriftSettings(window=self.window, min_rows=self.min_rows,
                             psi_threshold=self.psi_threshold, alpha=self.alpha)


class ExplainConfig(Strict):
    """configs/ab.yaml `explain:`: POST /explain."""

    reasons: int = Field(3, ge=1, le=7, description="reason codes per explanation")


class CoalesceConfig(Strict):
    """configs/ab.yaml `coalesce:`: natural batching of /predict in each API worker
    (fraud/serving/coalesce.py). FRAUDSERVE_COALESCE=0 sends every request alone (benchmarks)."""

    max_rows: int = Field(256, ge=1, le=256, description="rows per router call at most (the "
                          "router's max_batch_size)")
    max_waiting: int = Field(10_000, ge=1, description="rows queued per API worker before "
                             "503 (overloaded)")
    linger_ms: float = Field(8.0, ge=0, le=50, description="under load (the last call held "
                             "linger_after requests or more) wait up to this long, before the "
                             "next call, for as many rows as that call carried (at most "
                             "linger_fill); 0: never wait")
    linger_after: int = Field(4, ge=2, le=256, description="requests in the last call that "
                              "mean load")
    linger_fill: int = Field(64, ge=2, le=256, description="the most rows a linger waits for")


class ReportConfig(Strict):
    """configs/ab.yaml `report:`: GET /report's history (fraud/store/history.py).

    One look per experiment is stored per half guardrail check interval (whatever the number
    of workers and replicas); past `max_looks` the oldest half is thinned, keeping every look
    where the rollback state, verdict or breaches changed. Looks older than
    retention.decisions_days are deleted with the decisions."""

    max_looks: int = Field(2000, ge=10, le=100_000, description="looks kept per experiment")


class ExplorationConfig(Strict):
    """configs/ab.yaml `exploration:`: approve a random, capped share of would-be declines and
    store the probability it had (fraud/experiment/exploration.py), so recall, precision and
    the legit-decline rate can be estimated without the selective-labels bias.

    Off unless `enabled` and `rate` > 0. What it costs: up to `daily_budget` of money exposed
    to fraud per UTC day (shared by every worker and replica through the ledger); expected
    exposure is about rate x (money of would-be declines up to max_amount) x P(fraud)."""

    enabled: bool = Field(False, description="off by default; rate 0 is off too")
    rate: float = Field(0.0, ge=0, le=0.2, description="share of eligible would-be declines "
                        "approved instead (the propensity)")
    max_amount: float = Field(0.0, ge=0, description="never explore a transaction above "
                              "this amount")
    daily_budget: float = Field(0.0, ge=0, description="most money explored per UTC day, "
                                "all workers and replicas together")
    lease: float | None = Field(None, gt=0, description="money a worker leases from the "
                                "day's budget at a time; None: max(max_amount, budget / 50)")

    @property
    def on(self) -> bool:
        """Exploring at all: enabled, a positive rate, and something to spend."""
        return self.enabled and self.rate > 0 and self.daily_budget > 0

    def lease_size(self) -> float:
        """The chunk a worker leases (at least max_amount, so any eligible amount fits)."""
        size = self.lease if self.lease is not None else self.daily_budget / 50
        return max(size, self.max_amount)


class ABConfig(Strict):
    """configs/ab.yaml: the arms, the split and the experiment's safety settings."""

    model_a: str = Field("@champion", description="@role, a model name, or name:version")
    model_b: str = Field("@challenger", description="@role, a model name, or name:version")
    challenger_share: float = Field(0.5, ge=0, le=1)
    salt: str = Field("REPLACE-ME-with-a-random-salt", min_length=1,
                      description="FRAUDSERVE_SALT overrides; a placeholder is refused under "
                                  "FRAUDSERVE_REQUIRE_KEYS=1 (fraud/api/keys.py)")
    max_batch_rows: int = Field(1000, ge=1, le=10_000)
    coalesce: CoalesceConfig = CoalesceConfig()
    guardrails: GuardrailConfig = GuardrailConfig()
    statistics: StatsSettings = StatsSettings()
    labels: LabelPolicy = LabelPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    shadow: ShadowConfig = ShadowConfig()
    limits: LimitsConfig = LimitsConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    access: AccessConfig = AccessConfig()
    cors: CorsConfig = CorsConfig()
    drift: DriftConfig = DriftConfig()
    explain: ExplainConfig = ExplainConfig()
    report: ReportConfig = ReportConfig()
    exploration: ExplorationConfig = ExplorationConfig()

    @model_validator(mode="after")
    def _retention_outlives_maturity(self) -> ABConfig:
        keep, mature = self.retention.decisions_days, self.labels.maturity_days
        if keep is not None and mature is not None and keep <= mature:
            raise ValueError(f"retention.decisions_days ({keep}) must exceed "
                             f"labels.maturity_days ({mature}): decisions are counted as "
                             "legit at maturity, before they may be deleted")
        return self


def load_ab_config(path: Path | str | None = None) -> ABConfig:
    """Read and validate configs/ab.yaml (or `path`, or FRAUDSERVE_AB_CONFIG)."""
    path = path or os.environ.get("FRAUDSERVE_AB_CONFIG") or CONFIG_DIR / "ab.yaml"
    cfg = ABConfig.model_validate(load_yaml(Path(path)))
    if os.environ.get("FRAUDSERVE_SALT"):
        cfg = cfg.model_copy(update={"salt": os.environ["FRAUDSERVE_SALT"]})
    flag = os.environ.get("FRAUDSERVE_SHADOW")
    if flag is not None:
        if flag not in ("0", "1"):
            raise ValueError(f"FRAUDSERVE_SHADOW must be 0 or 1, got {flag!r}")
        cfg = cfg.model_copy(update={"shadow": cfg.shadow.model_copy(
            update={"enabled": flag == "1"})})
    return cfg
