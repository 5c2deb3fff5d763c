"""Simulated payment traffic for A/A and A/B experiments, as per-user aggregates at each look.

One experiment is a fixed set of transactions (rows) spread uniformly over `duration_days`:

* users have lognormal activity weights, so a few heavy users produce most of the traffic;
* a small share of users have their card taken over: most fraud sits on those users;
* each user is assigned to an arm with the real sticky hash (`fraud.assignment`), salted
  per seed, and that arm's model scores all of the user's rows with per-user catch and
  false-positive probabilities (so outcomes are correlated within a user, like in reality);
* a scoring call can fail (an error: no decision, no label);
* fraud is labelled (chargeback) after an exponential delay; legit rows optionally too; or,
  with `Scenario.labels`, labels depend on the decision (`LabelMechanics`: chargebacks for
  approvals, reviews for declines);
* unlabelled decisions older than `maturity_days` count as legit.

`looks` yields, at evenly spaced times, the cumulative per-user counts of each arm, which is
what the statistics code needs to test per-user (clustered) effects honestly.

Random streams: the population, model_a, model_b and labels draw from independent children
of `np.random.SeedSequence(seed)`, so for a fixed seed the traffic is the same whatever the
models do (common random numbers across scenarios).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fraud.assignment import BUCKETS, bucket

ARMS = ("model_a", "model_b")


@dataclass(frozen=True)
class Population:
    """Who pays, how often, and whose card is compromised."""

    users: int = 5000
    activity_sigma: float = 1.5  # lognormal sigma of per-user activity weights; 0 = equal rates
    compromised_share: float = 0.02  # share of users whose card is taken over (account takeover)
    fraud_share_compromised: float = 0.5  # share of a compromised user's transactions: fraud
    fraud_rate_clean: float = 0.0005  # stray fraud on clean cards
    duration_days: float = 28.0


@dataclass(frozen=True)
class ModelBehaviour:
    """How one arm's model scores: per-user catch / false-positive probabilities and errors."""

    recall: float = 0.8  # mean per-user probability of catching that user's fraud
    # per-user catch prob ~ Beta(recall*k, (1-recall)*k): small k = a card's fraud is caught
    # consistently or missed consistently
    recall_concentration: float = 2.0
    false_positive_rate: float = 0.01  # mean per-user probability of flagging a legit transaction
    fp_concentration: float = 2.0  # per-user FP prob ~ Beta(fpr*k, (1-fpr)*k)
    error_rate: float = 0.0  # probability that scoring a row fails (an error, no decision)


@dataclass(frozen=True)
class LabelMechanics:
    """Labels that depend on the decision (the selective labels problem).

    An approved fraud comes back as a chargeback with probability `approved_fraud` (q_a) after
    an exponential delay; a declined transaction is labelled only if reviewed: with
    probability `declined_fraud` (q_r) for a fraud, `declined_legit` for a legit one (analysts
    pick likely frauds), after a shorter delay. A legit approval never gets a label.
    Exploration (`simulations.labels`) approves a would-be decline: it is labelled as an
    approval. `INDEPENDENT`: labels arrive whatever the decision.
    """

    approved_fraud: float = 0.9
    declined_fraud: float = 0.3
    declined_legit: float = 0.2
    chargeback_delay_days: float = 7.0
    review_delay_days: float = 2.0


INDEPENDENT = LabelMechanics(approved_fraud=0.9, declined_fraud=0.9, declined_legit=1.0)


def label_times(rng: np.random.Generator, time: np.ndarray, fraud: np.ndarray,
                declined: np.ndarray, mech: LabelMechanics) -> np.ndarray:
    """When each row's label arrives (inf: never), given whether it was actually declined."""
    p = np.where(declined, np.where(fraud, mech.declined_fraud, mech.declined_legit),
                 np.where(fraud, mech.approved_fraud, 0.0))
    delay = rng.exponential(1.0, len(time)) * np.where(declined, mech.review_delay_days,
                                                      mech.chargeback_delay_days)
    return np.where(rng.random(len(time)) < p, time + delay, np.inf)


@dataclass(frozen=True)
class Scenario:
    """One simulated experiment: population, the two models, assignment, labels and looks."""

    name: str
    population: Population = Population()
    model_a: ModelBehaviour = ModelBehaviour()
    model_b: ModelBehaviour = ModelBehaviour()
    # share of users actually assigned to model_b (an assignment fault when it differs from
    # what the experiment expects)
    true_share: float = 0.5
    decisions: int = 100_000  # transactions over the whole experiment (errors included)
    looks: int = 50  # evenly spaced in time
    label_delay_days: float = 10.0  # mean (exponential) delay of a fraud label (chargeback)
    fraud_label_share: float = 1.0  # share of fraud transactions that ever get a label
    label_legit: bool = False  # whether legit transactions also get an explicit (delayed) label
    # unlabelled decisions older than this count as legit; None = only labelled ones count
    maturity_days: float | None = 30.0
    # decision-dependent labels (fraud_label_share, label_delay_days and label_legit unused)
    labels: LabelMechanics | None = None


@dataclass
class ArmUsers:
    """One arm at one look: aligned int64 arrays, one entry per user exposed so far in that arm.

    tp/fp/fn/tn are over MATURE decisions only: labelled by now (the label decides), or, with
    `maturity_days` set, unlabelled and older than `maturity_days` (counted as legit).
    """

    decisions: np.ndarray  # rows scored
    flags: np.ndarray  # rows flagged as fraud
    errors: np.ndarray  # rows whose scoring failed
    labelled: np.ndarray  # decisions with an explicit label by now
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray


@dataclass
class Look:
    """Cumulative state at time `t_days`; `decisions_seen` counts rows so far, errors included."""

    t_days: float
    decisions_seen: int
    arms: dict[str, ArmUsers]  # keys "model_a", "model_b"


def _per_user_prob(rng: np.random.Generator, mean: float, k: float, n: int) -> np.ndarray:
    """n probabilities ~ Beta(mean*k, (1-mean)*k); degenerate at 0 or 1, constant if k is inf."""
    if not 0.0 <= mean <= 1.0 or k <= 0:
        raise ValueError(f"need 0 <= mean <= 1 and k > 0, got mean={mean}, k={k}")
    if mean in (0.0, 1.0) or np.isinf(k):
        return np.full(n, mean)
    return rng.beta(mean * k, (1.0 - mean) * k, size=n)


def _in_challenger(users: int, salt: str, share: float) -> np.ndarray:
    """Boolean per user: True when `fraud.assignment.assign` would send "u{i}" to model_b."""
    cut = round(share * BUCKETS)
    buckets = np.fromiter((bucket(f"u{i}", salt) for i in range(users)), np.int64, users)
    return buckets < cut


def _model_rows(rng: np.random.Generator, model: ModelBehaviour, user: np.ndarray,
                fraud: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(flagged, error) for every row as if that model scored it; the caller picks the arm."""
    catch = _per_user_prob(rng, model.recall, model.recall_concentration, n)
    fpp = _per_user_prob(rng, model.false_positive_rate, model.fp_concentration, n)
    m = user.size
    flagged = rng.random(m) < np.where(fraud, catch[user], fpp[user])
    error = rng.random(m) < model.error_rate
    return flagged, error


def _check(s: Scenario) -> None:
    p = s.population
    if p.users < 1 or s.decisions < 0 or s.looks < 1 or p.duration_days <= 0:
        raise ValueError("need users >= 1, decisions >= 0, looks >= 1, duration_days > 0")
    shares = (p.compromised_share, p.fraud_share_compromised, p.fraud_rate_clean, s.true_share,
              s.fraud_label_share, s.model_a.error_rate, s.model_b.error_rate)
    if not all(0.0 <= x <= 1.0 for x in shares) or p.activity_sigma < 0:
        raise ValueError("shares, rates and probabilities must be in [0, 1], sigma >= 0")
    if s.label_delay_days < 0 or (s.maturity_days is not None and s.maturity_days < 0):
        raise ValueError("label_delay_days and maturity_days must be >= 0")


def looks(scenario: Scenario, seed: int) -> Iterator[Look]:
    """Yield the cumulative per-user aggregates of both arms at t = duration * k / looks.

    Only users exposed so far (decisions + errors > 0) appear, in user-index order within
    each arm. The whole experiment is drawn up front; each look is a few `np.bincount`s.
    """
    _check(scenario)
    pop = scenario.population
    n, m = pop.users, scenario.decisions
    pop_rng, a_rng, b_rng, label_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )

    # Population and traffic (independent of the models).
    in_b = _in_challenger(n, f"sim-{seed}", scenario.true_share)
    weight = (pop_rng.lognormal(0.0, pop.activity_sigma, n) if pop.activity_sigma > 0
              else np.ones(n))
    compromised = pop_rng.random(n) < pop.compromised_share
    time = np.sort(pop_rng.uniform(0.0, pop.duration_days, m))
    user = pop_rng.choice(n, size=m, p=weight / weight.sum())
    fraud_p = np.where(compromised, pop.fraud_share_compromised, pop.fraud_rate_clean)
    fraud = pop_rng.random(m) < fraud_p[user]

    # Scoring: each model scores every row from its own stream; the user's arm picks one.
    flag_a, err_a = _model_rows(a_rng, scenario.model_a, user, fraud, n)
    flag_b, err_b = _model_rows(b_rng, scenario.model_b, user, fraud, n)
    row_b = in_b[user]
    flagged = np.where(row_b, flag_b, flag_a)
    error = np.where(row_b, err_b, err_a)
    flagged &= ~error

    # Labels: errors never get one; legit rows only with label_legit (or when reviewed).
    if scenario.labels is not None:
        label_time = label_times(label_rng, time, fraud, flagged, scenario.labels)
        label_time[error] = np.inf
    else:
        gets_label = label_rng.random(m) < np.where(fraud, scenario.fraud_label_share,
                                                    1.0 if scenario.label_legit else 0.0)
        gets_label &= ~error
        delay = label_rng.exponential(scenario.label_delay_days, m)
        label_time = np.where(gets_label, time + delay, np.inf)

    # Per-row codes for the bincounts: user * width + category.
    status = np.where(error, 2, flagged.astype(np.int64))  # 0 pass, 1 flag, 2 error
    status_code = user * 3 + status
    flag_i = flagged.astype(np.int64)
    fraud_i = fraud.astype(np.int64)
    decided = ~error
    maturity = scenario.maturity_days

    for k in range(1, scenario.looks + 1):
        t = pop.duration_days * k / scenario.looks
        seen = int(np.searchsorted(time, t, side="right"))
        counts = np.bincount(status_code[:seen], minlength=3 * n).reshape(n, 3)
        labelled_now = label_time[:seen] <= t
        mature = labelled_now.copy()
        if maturity is not None:
            mature |= decided[:seen] & (t - time[:seen] > maturity)
        # 0 tn, 1 fp, 2 fn, 3 tp; the label's truth if labelled, else legit.
        cat = 2 * (fraud_i[:seen] & labelled_now) + flag_i[:seen]
        conf = np.bincount(user[:seen][mature] * 4 + cat[mature], minlength=4 * n).reshape(n, 4)
        labelled = np.bincount(user[:seen][labelled_now], minlength=n)
        decisions = counts[:, 0] + counts[:, 1]
        exposed = (decisions + counts[:, 2]) > 0
        arms = {}
        for name, mask in zip(ARMS, (exposed & ~in_b, exposed & in_b), strict=True):
            arms[name] = ArmUsers(
                decisions=decisions[mask].astype(np.int64),
                flags=counts[mask, 1].astype(np.int64),
                errors=counts[mask, 2].astype(np.int64),
                labelled=labelled[mask].astype(np.int64),
                tp=conf[mask, 3].astype(np.int64),
                fp=conf[mask, 1].astype(np.int64),
                fn=conf[mask, 2].astype(np.int64),
                tn=conf[mask, 0].astype(np.int64),
            )
        yield Look(t_days=t, decisions_seen=seen, arms=arms)
