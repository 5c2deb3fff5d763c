"""Customer harm: the legit-decline rate (legit declined / legit), challenger over champion.

A challenger must not win recall by flagging more: promotion needs the ratio of legit-decline
rates shown below a margin (non-inferiority), and the guardrail rolls back a challenger whose
ratio is surely above its limit. Both read the always-valid mSPRT confidence sequence of
log(R_b / R_a) (fraud/stats/sequential.py) with the delta-method variance clustered by user.

Where the rates come from, best first:
- the label rows (fraud/stats/labels.py), per arm: (declined - labelled fraud among them) /
  (unexplored decisions - known frauds), mature decisions only. An unlabelled decline counts as
  legit, as the ledger's maturity sweep counts it; that overstates the rate of the model that
  catches more fraud, by a fraction of a percent of its legit declines, which is the safe side
  for both uses;
- the per-user period rows (fraud/stats/periods.py): fp / (fp + tn), clustered by user;
- the per-period counts alone: fp / (fp + tn) with a binomial variance (no clustering: the
  ledger's running sums keep no moments for it; `clustered` says so);
- shadow mode: both models on the same mature legit transactions (PairedUsers fp_a, fp_b).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fraud.stats.aggregates import ArmPeriod, PairedUsers, Periods
from fraud.stats.cluster import Ratio, log_ratio, log_ratio_clustered
from fraud.stats.labels import ArmLabels, LabelUsers
from fraud.stats.periods import UserPeriods
from fraud.stats.sequential import msprt

LogRatio = tuple[float, float]


def label_rows_rate(u: LabelUsers) -> Ratio:
    """Legit declined / legit over the unexplored mature decisions of one deciding policy."""
    legit_declined = u.declined - u.fraud_declined_labelled
    legit = u.n - u.explored - u.fraud_approved - u.fraud_declined_labelled
    return Ratio(legit_declined, legit)


def from_labels(labels: ArmLabels) -> tuple[LogRatio | None, dict[str, float | None]]:
    a, b = labels.model_a, labels.model_b
    if a is None or b is None or a.users == 0 or b.users == 0:
        return None, {}
    ra, rb = label_rows_rate(a), label_rows_rate(b)
    ids = (a.ids, b.ids) if a.ids is not None and b.ids is not None else (None, None)
    return log_ratio_clustered(ra, rb, *ids), {"model_a": ra.value, "model_b": rb.value}


def from_user_periods(up: UserPeriods) -> tuple[LogRatio | None, dict[str, float | None]]:
    rs = {}
    for arm in ("model_a", "model_b"):
        m = up.arm == arm
        rs[arm] = (Ratio(up.fp[m], up.fp[m] + up.tn[m]), up.user[m])
    (ra, ia), (rb, ib) = rs["model_a"], rs["model_b"]
    return log_ratio_clustered(ra, rb, ia, ib), {"model_a": ra.value, "model_b": rb.value}


def from_counts(periods: Periods) -> tuple[LogRatio | None, dict[str, float | None]]:
    """Pooled fp / (fp + tn) per arm with a binomial variance of the log ratio."""
    arms = {arm: ArmPeriod() for arm in ("model_a", "model_b")}
    for per in periods.values():
        for arm in arms:
            if arm in per:
                arms[arm] = arms[arm] + per[arm]
    rates: dict[str, float | None] = {}
    logs = []
    for arm, ap in arms.items():
        n = ap.fp + ap.tn
        rates[arm] = ap.fp / n if n else None
        if n == 0:
            return None, rates
        r = (ap.fp + 0.5) / (n + 1.0)
        logs.append((math.log(r), (1.0 - r) / (r * n)))
    return (logs[1][0] - logs[0][0], logs[0][1] + logs[1][1]), rates


def from_paired(u: PairedUsers) -> tuple[LogRatio | None, dict[str, float | None]]:
    legit = np.maximum(u.mature - u.fraud, 0.0)
    ra, rb = Ratio(u.fp_a, legit), Ratio(u.fp_b, legit)
    return log_ratio(ra, rb), {"model_a": ra.value, "model_b": rb.value}


def test(lr: LogRatio | None, rates: dict[str, float | None], margin: float, alpha: float,
         tau: float, source: str, clustered: bool = True) -> dict[str, Any]:
    """The ratio R_b / R_a with its CS at `alpha`: `non_inferior` (CS below the margin) and
    `inferior` (CS above it); None while undefined."""
    out: dict[str, Any] = {"metric": "legit_decline_rate", "source": source,
                           "clustered": clustered, "model_a": rates.get("model_a"),
                           "model_b": rates.get("model_b"), "ratio": None, "ci_low": None,
                           "ci_high": None, "margin": margin, "alpha": alpha,
                           "non_inferior": None, "inferior": None}
    if lr is None or not lr[1] > 0 or not math.isfinite(lr[0]):
        return out
    _, low, high = msprt(lr[0], lr[1], tau, alpha)
    bound = math.log(margin)
    out.update(ratio=math.exp(lr[0]), ci_low=math.exp(low), ci_high=math.exp(high),
               non_inferior=high < bound, inferior=low > bound)
    return out


def split_test(periods: Periods, margin: float, alpha: float, tau: float, *,
               labels: ArmLabels | None = None,
               user_periods: UserPeriods | None = None) -> dict[str, Any]:
    """The split arms' legit-decline ratio test, from the best source given."""
    if labels is not None and labels.model_a is not None and labels.model_b is not None:
        lr, rates = from_labels(labels)
        return test(lr, rates, margin, alpha, tau, "label rows")
    if user_periods is not None:
        lr, rates = from_user_periods(user_periods)
        return test(lr, rates, margin, alpha, tau, "per-user period rows")
    lr, rates = from_counts(periods)
    return test(lr, rates, margin, alpha, tau, "per-period counts", clustered=False)


def paired_test(u: PairedUsers, margin: float, alpha: float, tau: float) -> dict[str, Any]:
    """Both models' legit-decline rates on the same mature legit transactions."""
    lr, rates = from_paired(u)
    return test(lr, rates, margin, alpha, tau, "paired transactions")
