"""The A/B experiment: identity, routing, decisions, statistics, guardrails and rollback.

An experiment is (salt, model A tag, model B tag): a change of any of them (or a promotion)
ends the open one, which keeps its final statistics, and starts a new one with fresh counts
(fraud.store.writer.Ledger.current_experiment). Its shared state (rollback, share, allocation
period, the sequence memory of the primary test) lives with it in the ledger and changes only
by compare-and-set, so a change another worker saved in between is never overwritten.

Allocation periods: every share change (admin, rollback, resume, config) starts a period.
Each decision is stamped with the period its worker routed it under, so a worker that has not
yet seen a change records under the old period with the old share: within a period the share
is fixed, the users test holds, and arms are compared within periods (fraud/stats/users.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from fraud.assignment import assign
from fraud.config import ABConfig
from fraud.experiment import abstats, evidence, guardrails
from fraud.experiment.budget import explorer
from fraud.experiment.decisions import ArmModel, Scored, build
from fraud.experiment.look import judge, summary
from fraud.experiment.state import ExperimentState, effective_share, new_period
from fraud.schema import ARMS, Arm, Prediction, utc_now_iso
from fraud.stats import paired
from fraud.stats.aggregates import PairedUsers
from fraud.stats.labels import ArmLabels
from fraud.stats.sequential import Memory
from fraud.store.records import Decision, ScoringError, Source
from fraud.store.writer import Ledger

log = logging.getLogger("fraudserve.experiment")


LATENCY_WINDOW = 2000  # recent single predictions per arm for the latency guardrail
CAS_ATTEMPTS = 50


class Experiment:
    """Routes users, records decisions, reports statistics and enforces guardrails."""

    def __init__(self, cfg: ABConfig, arms: dict[Arm, ArmModel], ledger: Ledger,
                 clock: Callable[[], float] = time.time, *,
                 on_explored: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.arms = arms
        self.ledger = ledger
        self.clock = clock
        # Exploration (None while off) and who counts its explored decisions once stored.
        self.explorer = explorer(cfg.exploration, cfg.salt, ledger)
        self.on_explored = on_explored
        identity = (cfg.salt, arms["model_a"].tag, arms["model_b"].tag)
        record, replaced = ledger.current_experiment(identity, utc_now_iso())
        if replaced is not None and replaced.final is None:
            ledger.finish(replaced.id, None, None,
                          summary(cfg, replaced, ledger.aggregates(replaced.id)))
        self.id = record.id
        self.record_ = record
        self.state = ExperimentState.from_json(record.state)
        self.version = record.version
        if self.state.period_share != effective_share(cfg, self.state):
            self._update(lambda st: new_period(cfg, st) if st.period_share
                         != effective_share(cfg, st) else st)

    # -- shared state ---------------------------------------------------------------------

    def refresh(self) -> ExperimentState:
        """Re-read the shared state (rollback, share, period) any worker may have changed."""
        record = self.ledger.experiment(self.id)
        if record is not None:
            self.record_ = record
            self.state, self.version = ExperimentState.from_json(record.state), record.version
        return self.state

    @property
    def ended(self) -> bool:
        return self.record_.ended_at is not None

    def _update(self, change: Callable[[ExperimentState], ExperimentState], *,
                durable: bool = True) -> ExperimentState:
        """Apply `change` to the latest state by compare-and-set, retrying on a conflict."""
        for _ in range(CAS_ATTEMPTS):
            new = change(self.state)
            if new == self.state:
                return new
            if self.ledger.compare_and_set(self.id, self.version, new.to_json(),
                                           durable=durable):
                self.state, self.version = new, self.version + 1
                return new
            self.refresh()
            if self.ended:
                raise RuntimeError(f"experiment {self.id} has ended ({self.record_.end_reason})")
        raise RuntimeError(f"experiment {self.id}: state kept changing under {CAS_ATTEMPTS} "
                           "attempts")

    def configured_share(self) -> float:
        """The challenger's share before any rollback (override from admin, else the config)."""
        return effective_share(self.cfg, replace(self.state, rolled_back=False))

    def effective_share(self) -> float:
        """The share actually served now: 0 while rolled back."""
        return effective_share(self.cfg, self.state)

    def rollback(self, reason: str) -> bool:
        """Send all traffic to the champion and persist why; False if already rolled back."""
        done = False

        def change(st: ExperimentState) -> ExperimentState:
            nonlocal done
            if st.rolled_back:
                done = False
                return st
            done = True
            return new_period(self.cfg, replace(st, rolled_back=True, rollback_reason=reason,
                                                rolled_back_at=utc_now_iso()))

        self._update(change)
        if done:
            log.warning("challenger rolled back: %s", reason)
        return done

    def resume(self, share: float | None = None, force: bool = False) -> ExperimentState:
        """Clear a rollback (optionally setting the share): a new allocation period. A forced
        resume also stops the primary verdict from rolling the challenger back again."""
        return self._update(lambda st: new_period(self.cfg, replace(
            st, rolled_back=False, rollback_reason=None, rolled_back_at=None,
            share_override=st.share_override if share is None else share,
            worse_overridden=st.worse_overridden or force)))

    def resume_refusal(self, force: bool) -> str | None:
        """Why /admin/resume is refused now (fraud.experiment.guardrails.resume_refusal), or
        None."""
        return guardrails.resume_refusal(
            Memory.from_json(self.refresh().primary).verdict, force)

    def set_share(self, share: float) -> ExperimentState:
        """Change the challenger's share of users (a new allocation period)."""
        return self._update(lambda st: new_period(self.cfg, replace(st, share_override=share)))

    # -- serving --------------------------------------------------------------------------

    def route(self, user_id: str, state: ExperimentState | None = None) -> Arm:
        """The user's arm under `state`'s period share (sticky per user)."""
        st = state or self.state
        share = st.period_share if st.period_share is not None else effective_share(
            self.cfg, st)
        return assign(user_id, self.cfg.salt, share)

    def decide(self, user_ids: Sequence[str], arms: Sequence[Arm],
               probabilities: Sequence[float], latency_ms: float, source: Source,
               state: ExperimentState | None = None, *,
               amounts: Sequence[float] | None = None,
               shadow: Sequence[float] | None = None) -> tuple[list[Prediction], Future[None]]:
        """Turn scores into decisions under `state`'s period and queue them for the ledger:
        (the responses, a future that completes once they are committed). Answer only then.

        `shadow` (shadow mode): the other model's score per row, stored with its decision at
        its own threshold beside the arm's (NaN: the other model failed on that row; nothing
        is stored for it). It never reaches the response.
        """
        scored = Scored(user_ids, arms, probabilities, latency_ms, source,
                        state or self.state, amounts, shadow)
        return self.decide_many([scored])[0]

    def decide_many(self, requests: Sequence[Scored]
                    ) -> list[tuple[list[Prediction], Future[None]]]:
        """`decide` for several requests (a coalesced batch): queued for the ledger together,
        so one transaction commits them; each request is stored whole or refused alone."""
        now, stamp = self.clock(), utc_now_iso()
        answers: list[list[Prediction]] = []
        groups: list[list[Decision]] = []
        for r in requests:
            out, decisions = build(r, self.arms, self.id, now, stamp, self.explorer)
            answers.append(out)
            groups.append(decisions)
        futures = self.ledger.record_many(groups)
        if self.on_explored is not None:
            for decisions, done in zip(groups, futures, strict=True):
                explored = [d.arm for d in decisions if d.explored]
                if explored:
                    done.add_done_callback(lambda f, arms=explored: self._explored(f, arms))
        return list(zip(answers, futures, strict=True))

    def _explored(self, committed: Future[None], arms: list[str]) -> None:
        if self.on_explored is not None and committed.exception() is None:
            for arm in arms:
                self.on_explored(arm)

    def record(self, user_ids: Sequence[str], arms: Sequence[Arm],
               probabilities: Sequence[float], latency_ms: float, source: Source,
               state: ExperimentState | None = None) -> list[Prediction]:
        """`decide`, waiting for the commit (raises LedgerUnavailable if it failed)."""
        out, committed = self.decide(user_ids, arms, probabilities, latency_ms, source, state)
        committed.result()
        return out

    def record_errors(self, user_ids: Sequence[str], arms: Sequence[Arm],
                      state: ExperimentState | None = None, *, undecided: bool = False) -> None:
        """Count failed rows (or, `undecided`, rows left undecided because another row of
        their request failed: attempted all the same) against their arm and user."""
        period = (state or self.state).period
        self.ledger.record_errors(ScoringError(self.id, period, arm, user, undecided)
                                  for user, arm in zip(user_ids, arms, strict=True))

    # -- statistics -----------------------------------------------------------------------

    def report(self) -> tuple[dict[str, Any], list[str], ExperimentState]:
        """(the /ab-stats body, the guardrails breached now, the state with this look's
        sequence memory folded in). Reads only: nothing is written."""
        state, now = self.refresh(), self.clock()
        periods = self.ledger.aggregates(self.id)
        latency = self.ledger.latencies(self.id, state.period, LATENCY_WINDOW)
        shadow = self.cfg.shadow.enabled or bool(state.paired)
        pairs = self.ledger.paired_users(self.id) if shadow else None
        inputs = evidence.read(self.cfg, self.ledger, self.id, now)
        seen = judge(self.cfg, state, periods, (latency["model_a"], latency["model_b"]), pairs,
                     labels=inputs.labels, user_periods=inputs.user_periods)
        body: dict[str, Any] = {arm: abstats.arm_block(self.cfg, periods, arm, self.arms[arm],
                                                       latency[arm]) for arm in ARMS}
        body.update(sample_ratio=seen.sample_ratio, primary=seen.primary,
                    experiment=abstats.experiment_block(self, state, periods, seen.breaches),
                    guardrails=seen.guardrail_tests)
        looked = seen.state
        if pairs is not None:
            body["paired"], memory = self.paired(looked, pairs, inputs.labels)
            looked = replace(looked, paired=memory.to_json())
        body["labels"] = evidence.labels_block(self.cfg, inputs,
                                               self.ledger.label_sources(self.id))
        body["exploration"] = evidence.exploration_block(self.cfg, self.ledger, self.id, now)
        return body, seen.breaches, looked

    def paired(self, state: ExperimentState, pairs: PairedUsers,
               labels: ArmLabels | None = None) -> tuple[dict[str, Any], Memory]:
        """The paired comparison on shadow-scored transactions (fraud/stats/paired.py)."""
        sh = self.cfg.shadow
        return paired.paired(pairs, self.ledger.paired_scores(self.id, sh.scores_window),
                             self.cfg.statistics, sh.metric,
                             paired.Costs(sh.decline_fixed, sh.decline_share),
                             Memory.from_json(state.paired), labels=labels)

    def disagreements(self, limit: int) -> list[dict[str, Any]]:
        """The latest transactions the two models decided differently, newest first."""
        return self.ledger.disagreements(self.id, min(limit, self.cfg.shadow.disagreements_max))

    def enforce_guardrails(self) -> tuple[dict[str, Any], bool]:
        """One look: mature old decisions, fold the look into the shared sequence memory,
        and roll the challenger back on any breach; (report, rolled back now)."""
        if self.cfg.labels.maturity_days:
            self.ledger.mature(self.clock() - self.cfg.labels.maturity_days * 86_400)
        body, breaches, looked = self.report()
        memory = Memory.from_json(looked.primary)

        paired_memory = Memory.from_json(looked.paired)

        def fold(st: ExperimentState) -> ExperimentState:
            merged = memory.merge(Memory.from_json(st.primary)).to_json()
            srm_min = min(st.srm_p_min, looked.srm_p_min) if st.period == looked.period \
                else st.srm_p_min
            pair = paired_memory.merge(Memory.from_json(st.paired)).to_json() \
                if looked.paired else st.paired
            return replace(st, primary=merged, srm_p_min=srm_min, paired=pair)

        self._update(fold, durable=False)  # a look: no fsync (rollbacks below are durable)
        rolled = False
        if breaches and not self.state.rolled_back:
            rolled = self.rollback("; ".join(breaches))
            body["experiment"].update(rolled_back=True, rollback_reason=self.state.rollback_reason,
                                      rolled_back_at=self.state.rolled_back_at,
                                      effective_share=0.0, period=self.state.period)
        return body, rolled

    def end(self, reason: str) -> dict[str, Any]:
        """End this experiment now (e.g. a promotion), storing its final statistics."""
        self.refresh()
        inputs = evidence.read(self.cfg, self.ledger, self.id, self.clock())
        final = summary(self.cfg, self.record_, self.ledger.aggregates(self.id),
                        labels=inputs.labels, user_periods=inputs.user_periods)
        self.ledger.finish(self.id, utc_now_iso(), reason, final)
        self.refresh()
        return final

