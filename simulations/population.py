"""Who pays and how both models see them: the per-user parameters behind simulations/labels.py.

Like simulations/traffic.py: lognormal activity (a few heavy users make most transactions),
fraud concentrated on taken-over cards, and per-user catch and false-positive probabilities
(Beta-distributed: a card's fraud is caught consistently or missed consistently). Here both
models see every transaction (shadow mode needs it) and their decisions are correlated as
real models trained on the same data are:

- per user, model B's catch probability is model A's mapped through the Beta quantiles
  (empirically: B's draws handed out in the order of A's), so the ranking of cards is shared
  and the means are recall_a and recall_b;
- per fraud, B's "hardness" draw equals A's with probability `agreement`, else is fresh; a
  model catches a fraud when its draw is below its per-user catch probability;
- false positives alike, with B's per-user rate `fp_multiplier` x A's.

`cells` gives, per user, the probabilities of the four (A flags, B flags) outcomes of one
fraud and of one legit transaction; the generators draw counts or rows from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class World:
    """The population and the two models (A: champion, B: challenger)."""

    users: int = 20_000
    txns_per_user: float = 15.0  # mean transactions per user over the experiment
    activity_sigma: float = 1.0  # lognormal sigma of activity weights
    compromised_share: float = 0.02
    fraud_share_compromised: float = 0.5
    fraud_rate_clean: float = 0.0005
    recall_a: float = 0.70
    recall_b: float = 0.70
    recall_concentration: float = 2.0  # per-user catch ~ Beta(r k, (1 - r) k)
    agreement: float = 0.85  # per fraud: B's hardness draw is A's with this probability
    fpr_a: float = 0.01
    fp_multiplier: float = 1.0  # B's per-user false-positive rate / A's
    fp_concentration: float = 20.0
    fp_agreement: float = 0.85


@dataclass(frozen=True)
class People:
    """Per-user draws: activity weight, fraud rate, both models' catch and FP probabilities."""

    weight: np.ndarray
    fraud_rate: np.ndarray
    catch_a: np.ndarray
    catch_b: np.ndarray
    fp_a: np.ndarray
    fp_b: np.ndarray


def _beta(mean: float, k: float) -> tuple[float, float]:
    return mean * k, (1.0 - mean) * k


def draw_people(w: World, rng: np.random.Generator) -> People:
    n = w.users
    weight = rng.lognormal(0.0, w.activity_sigma, n) if w.activity_sigma > 0 else np.ones(n)
    compromised = rng.random(n) < w.compromised_share
    fraud_rate = np.where(compromised, w.fraud_share_compromised, w.fraud_rate_clean)
    catch_a = rng.beta(*_beta(w.recall_a, w.recall_concentration), size=n)
    catch_b = catch_a
    if (w.recall_b, w.recall_concentration) != (w.recall_a, w.recall_concentration):
        # empirical quantile mapping: B's draws, handed out in the order of A's
        catch_b = np.empty(n)
        catch_b[np.argsort(catch_a)] = np.sort(
            rng.beta(*_beta(w.recall_b, w.recall_concentration), size=n))
    fp_a = rng.beta(*_beta(w.fpr_a, w.fp_concentration), size=n)
    fp_b = np.minimum(fp_a * w.fp_multiplier, 1.0)
    return People(weight, fraud_rate, catch_a, catch_b, fp_a, fp_b)


def joint(pa: np.ndarray, pb: np.ndarray, agree: float) -> np.ndarray:
    """Per user, P(A and B, A only, B only, neither) for one transaction: with probability
    `agree` one shared uniform draw decides both, else two independent draws."""
    both = agree * np.minimum(pa, pb) + (1.0 - agree) * pa * pb
    out = np.stack([both, pa - both, pb - both, 1.0 - pa - pb + both], axis=1)
    return np.clip(out, 0.0, 1.0)


def cells(w: World, p: People) -> tuple[np.ndarray, np.ndarray]:
    """(fraud cells, legit cells): per user, the four (A flags, B flags) probabilities."""
    return joint(p.catch_a, p.catch_b, w.agreement), joint(p.fp_a, p.fp_b, w.fp_agreement)


# Cell order of `joint`: (A flags, B flags).
CELL_FLAGS = ((1, 1), (1, 0), (0, 1), (0, 0))
