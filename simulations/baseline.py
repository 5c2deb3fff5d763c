"""The decision-level rules fraudserve used before users became the unit (commit 359b2ed).

Kept only so simulations/ab.py can show, on the same seeds, what they did: every decision
counted as an independent trial in the sample-ratio check (chi-square, p < 0.001), in the
primary test (mSPRT on decision counts of recall, alpha 0.05, 30 trials, margin 0.05) and in
the guardrails (point estimates: error rate > 2%, flag rate outside [A/3 - 1%, 3A + 1%],
after 200 decisions). Nothing in the service imports this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _sps

from fraud.stats.aggregates import ArmPeriod
from fraud.stats.sequential import msprt


@dataclass(frozen=True)
class Old:
    srm: bool
    difference: bool
    rollback: bool


def _recall_test(a: ArmPeriod, b: ArmPeriod) -> str:
    na, nb = a.tp + a.fn, b.tp + b.fn
    if min(na, nb) < 30:
        return "collecting"
    pa, pb = (a.tp + 1) / (na + 2), (b.tp + 1) / (nb + 2)
    v = pa * (1 - pa) / na + pb * (1 - pb) / nb
    _, low, high = msprt(b.tp / nb - a.tp / na, v, 0.1, 0.05)
    if low > 0:
        return "challenger_better"
    if high < 0:
        return "challenger_worse"
    return "collecting"


def judge(a: ArmPeriod, b: ArmPeriod, share_b: float) -> Old:
    """One look under the old rules."""
    n = a.decisions + b.decisions
    srm = False
    if n >= 200 and 0 < share_b < 1:
        p = _sps.chisquare([a.decisions, b.decisions],
                           f_exp=[n * (1 - share_b), n * share_b]).pvalue
        srm = bool(math.isfinite(p) and p < 0.001)
    verdict = _recall_test(a, b)
    roll = srm or verdict == "challenger_worse"
    if b.decisions + b.errors >= 200 and b.errors / (b.decisions + b.errors) > 0.02:
        roll = True
    if min(a.decisions, b.decisions) >= 200:
        ra, rb = a.flagged / a.decisions, b.flagged / b.decisions
        if not ra / 3 - 0.01 <= rb <= 3 * ra + 0.01:
            roll = True
    return Old(srm, verdict != "collecting", roll)
