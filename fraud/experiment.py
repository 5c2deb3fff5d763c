"""The A/B experiment: routing, decisions, statistics, guardrails and rollback, without a server.

State that must be shared by every worker and survive restarts (rollback, share override,
the counts at the start of the current allocation period) lives in the ledger's state table;
each worker re-reads it every second or so (`refresh`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fraud.assignment import assign
from fraud.config import ABConfig, GuardrailConfig
from fraud.ledger import ArmAggregate, Decision, Ledger, Source
from fraud.models import ArmModel
from fraud.schema import ARMS, Arm, Prediction, utc_now_iso
from fraud.stats import ArmCounts, experiment_report

log = logging.getLogger("fraudserve.experiment")
STATE_KEY = "experiment"
# After a share change, workers keep routing with the old share until their next refresh
# (<= 1 s): the new period's counts start only after this long.
SETTLE_SECONDS = 3.0


def new_request_id() -> str:
    """32 hex chars, time-ordered (ms clock + 80 random bits): an append-only ledger index."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def decide(probability: float, threshold: float) -> bool:
    """The fraud decision: the model's own saved threshold, never a silent 0.5."""
    return probability >= threshold


@dataclass
class ExperimentState:
    """Shared, persisted experiment state (one JSON value in the ledger)."""

    rolled_back: bool = False
    rollback_reason: str | None = None
    rolled_back_at: str | None = None
    share_override: float | None = None
    period_started_at: str | None = None
    # The share the current period routes with; a config edit across restarts starts anew.
    period_share: float | None = None
    # Epoch seconds after which every worker routes with the period's share.
    settle_until: float | None = None
    # Per-arm (total, flagged, errors) once the period settled; None while settling (or
    # zeros-from-the-start for the first period, when settle_until is None too).
    baseline: dict[str, list[int]] | None = None

    @property
    def settling(self) -> bool:
        return self.baseline is None and self.settle_until is not None

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> ExperimentState:
        return cls(**{k: v for k, v in (value or {}).items() if k in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def period_counts(counts: dict[str, ArmAggregate],
                  baseline: dict[str, list[int]] | None) -> dict[str, tuple[int, int, int]]:
    """(total, flagged, errors) per arm since the current allocation period began."""
    out = {}
    for arm in ARMS:
        c = counts[arm]
        base = (baseline or {}).get(arm, [0, 0, 0])
        out[arm] = (c.total - base[0], c.flagged - base[1], c.errors - base[2])
    return out


def guardrail_breaches(counts: dict[str, ArmAggregate],
                       period: dict[str, tuple[int, int, int]] | None,
                       srm: dict[str, Any] | None, verdict: str,
                       cfg: GuardrailConfig) -> list[str]:
    """Every guardrail the challenger breaks now, each as one readable reason.

    `period` is None while a new allocation period settles: rates are not judged then.
    """
    if not cfg.enabled:
        return []
    reasons: list[str] = []
    quiet = (0, 0, 0)
    (a_total, a_flagged, _), (b_total, b_flagged, b_errors) = (
        (period["model_a"], period["model_b"]) if period else (quiet, quiet))
    if b_total + b_errors >= cfg.min_decisions:
        error_rate = b_errors / (b_total + b_errors)
        if error_rate > cfg.max_error_rate:
            reasons.append(f"challenger error rate {error_rate:.3f} > {cfg.max_error_rate}")
    p95, p95_a = counts["model_b"].latency_p95_ms, counts["model_a"].latency_p95_ms
    if (b_total >= cfg.min_decisions and p95 is not None and p95 > cfg.max_p95_latency_ms
            and (p95_a is None or p95 > cfg.latency_ratio * p95_a)):
        reasons.append(f"challenger p95 latency {p95:.1f} ms > {cfg.max_p95_latency_ms} ms "
                       f"and > {cfg.latency_ratio}x champion's {p95_a or 0:.1f} ms")
    if a_total >= cfg.min_decisions and b_total >= cfg.min_decisions:
        rate_a, rate_b = a_flagged / a_total, b_flagged / b_total
        low = rate_a / cfg.flag_rate_ratio - cfg.flag_rate_slack
        high = rate_a * cfg.flag_rate_ratio + cfg.flag_rate_slack
        if not low <= rate_b <= high:
            reasons.append(f"challenger flag rate {rate_b:.4f} outside [{max(low, 0):.4f}, "
                           f"{high:.4f}] around champion's {rate_a:.4f}")
    if cfg.rollback_on_srm and srm is not None and srm.get("mismatch"):
        reasons.append(f"sample-ratio mismatch (p={srm['p_value']:.2e}, observed share "
                       f"{srm['observed_share_b']:.4f} vs {srm['expected_share_b']})")
    if cfg.rollback_on_worse and verdict == "challenger_worse":
        reasons.append("sequential test verdict: challenger_worse")
    return reasons


class Experiment:
    """Routes users, records decisions, reports statistics and enforces guardrails."""

    def __init__(self, cfg: ABConfig, arms: dict[Arm, ArmModel], ledger: Ledger,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.arms = arms
        self.ledger = ledger
        self.clock = clock
        self.state = ExperimentState()
        self.refresh()

    # -- shared state ---------------------------------------------------------------------

    def refresh(self) -> ExperimentState:
        """Re-read the shared state (rollback, share) that any worker may have changed."""
        self.state = ExperimentState.from_json(self.ledger.get_state(STATE_KEY))
        return self.state

    def _save(self, state: ExperimentState) -> None:
        self.ledger.set_state(STATE_KEY, state.to_json())
        self.state = state

    def configured_share(self) -> float:
        """The challenger's share before any rollback (override from admin, else the config)."""
        return self.effective_share_of(replace(self.state, rolled_back=False))

    def effective_share(self) -> float:
        """The share actually served now: 0 while rolled back."""
        return self.effective_share_of(self.state)

    def _new_period(self, state: ExperimentState) -> ExperimentState:
        """Start an allocation period; its counts begin once every worker has the new share."""
        state.baseline = None
        state.settle_until = self.clock() + SETTLE_SECONDS
        state.period_started_at = utc_now_iso()
        state.period_share = self.effective_share_of(state)
        return state

    def effective_share_of(self, state: ExperimentState) -> float:
        """The share `state` serves: 0 while rolled back, else the override or the config."""
        if state.rolled_back:
            return 0.0
        return self.cfg.challenger_share if state.share_override is None else state.share_override

    def _advance_period(self) -> None:
        """Settle a period whose grace time is over; start one if the config's share changed."""
        state = self.state
        if state.period_share is not None and state.period_share != self.effective_share():
            self._save(self._new_period(state))
        elif state.period_share is None:
            state.period_share = self.effective_share()
            self._save(state)
        elif state.settling and self.clock() >= (state.settle_until or 0):
            counts = self.ledger.arm_counts()
            state.baseline = {a: [counts[a].total, counts[a].flagged, counts[a].errors]
                              for a in ARMS}
            self._save(state)

    def rollback(self, reason: str) -> bool:
        """Send all traffic to the champion and persist why; False if already rolled back."""
        state = self.refresh()
        if state.rolled_back:
            return False
        state.rolled_back, state.rollback_reason = True, reason
        state.rolled_back_at = utc_now_iso()
        self._save(self._new_period(state))
        log.warning("challenger rolled back: %s", reason)
        return True

    def resume(self, share: float | None = None) -> ExperimentState:
        """Clear a rollback (and optionally set the share); starts a new allocation period."""
        state = self.refresh()
        state.rolled_back, state.rollback_reason, state.rolled_back_at = False, None, None
        if share is not None:
            state.share_override = share
        self._save(self._new_period(state))
        return state

    def set_share(self, share: float) -> ExperimentState:
        """Change the challenger's share of users (a new allocation period)."""
        state = self.refresh()
        state.share_override = share
        self._save(self._new_period(state))
        return state

    # -- serving --------------------------------------------------------------------------

    def route(self, user_id: str) -> Arm:
        """The user's arm under the current effective share (sticky per user)."""
        return assign(user_id, self.cfg.salt, self.effective_share())

    def record(self, user_ids: Sequence[str], arms: Sequence[Arm],
               probabilities: Sequence[float], latency_ms: float,
               source: Source) -> list[Prediction]:
        """Turn scores into decisions, ledger them (off the request path), return responses."""
        now, stamp = self.clock(), utc_now_iso()
        out: list[Prediction] = []
        decisions: list[Decision] = []
        for user_id, arm, p in zip(user_ids, arms, probabilities, strict=True):
            model = self.arms[arm]
            rid = new_request_id()
            flagged = decide(float(p), model.threshold)
            decisions.append(Decision(rid, now, user_id, arm, model.tag, float(p), flagged,
                                      latency_ms, source))
            out.append(Prediction(request_id=rid, is_fraud=flagged,
                                  fraud_probability=round(float(p), 6), model_version=arm,
                                  model_tag=model.tag, latency_ms=round(latency_ms, 3),
                                  timestamp=stamp))
        self.ledger.record(decisions)
        return out

    # -- statistics -----------------------------------------------------------------------

    def report(self) -> tuple[dict[str, Any], dict[str, ArmAggregate], list[str]]:
        """The /ab-stats body, the raw counts, and the guardrails breached now."""
        self.refresh()
        self._advance_period()
        counts = self.ledger.arm_counts()
        s = self.cfg.statistics
        arm_counts = {a: ArmCounts(total=counts[a].total, flagged=counts[a].flagged,
                                   tp=counts[a].tp, fp=counts[a].fp, fn=counts[a].fn,
                                   tn=counts[a].tn) for a in ARMS}
        period = period_counts(counts, self.state.baseline)
        share = self.effective_share()
        judge_srm = (0 < share < 1 and not self.state.settling
                     and period["model_a"][0] + period["model_b"][0]
                     >= self.cfg.guardrails.min_decisions)
        stats = experiment_report(arm_counts, share if judge_srm else None, s,
                                  srm_counts=(period["model_a"][0], period["model_b"][0]))
        breaches = guardrail_breaches(counts, None if self.state.settling else period,
                                      stats["sample_ratio"], stats["primary"]["verdict"],
                                      self.cfg.guardrails)
        body: dict[str, Any] = {}
        for arm in ARMS:
            c = counts[arm]
            body[arm] = {
                "total_predictions": c.total,
                "fraud_count": c.flagged,
                "legit_count": c.total - c.flagged,
                "fraud_rate": c.flagged / c.total if c.total else 0.0,
                "model_tag": self.arms[arm].tag,
                "threshold": self.arms[arm].threshold,
                "errors": c.errors,
                "latency_p50_ms": c.latency_p50_ms,
                "latency_p95_ms": c.latency_p95_ms,
                **stats["per_arm"][arm],
            }
        for key in ("flag_rate_chi2", "sample_ratio", "primary"):
            body[key] = stats[key]
        body["experiment"] = {
            "salt": self.cfg.salt,
            "configured_share": self.configured_share(),
            "effective_share": share,
            "rolled_back": self.state.rolled_back,
            "rollback_reason": self.state.rollback_reason,
            "rolled_back_at": self.state.rolled_back_at,
            "period_started_at": self.state.period_started_at,
            "period_settling": self.state.settling,
            "guardrail_breaches": breaches,
        }
        return body, counts, breaches

    def enforce_guardrails(self) -> tuple[dict[str, Any], bool]:
        """Compute the report and roll the challenger back on any breach; (report, rolled)."""
        body, _, breaches = self.report()
        rolled = False
        if breaches and not self.state.rolled_back:
            rolled = self.rollback("; ".join(breaches))
            body["experiment"].update(rolled_back=True, rollback_reason=self.state.rollback_reason,
                                      rolled_back_at=self.state.rolled_back_at,
                                      effective_share=0.0)
        return body, rolled
