"""`python -m simulations.split_estimators`: which split-mode estimator of recall_B - recall_A has
the most power, on the per-user sums of simulations/cohorts.py (one look, all users).

- `ipw`: each arm's own inverse-propensity recall (fraud/stats/ipw.py, what the service uses);
- `missed`: (M_A/n_A - M_B/n_B) / f, missed fraud per decision (model-approved frauds, no
  exploration weight) compared between arms, f the fraud rate pooled over both arms. Right in
  expectation because randomisation gives both arms the same fraud rate, but each arm's own
  fraud incidence (which cards it drew) is in its variance;
- `caught`: (C_B/n_B - C_A/n_A) / f, caught fraud per decision from explored declines (IPW);
- `combined`: missed and caught weighted by their inverse (co)variances from the same data.

Each is tested as estimate / std error with the user-clustered variance of
fraud.stats.cluster.combine; the table gives the mean z over seeds (the power grows with it)
and the mean std error. With `--exploration 1` every would-be decline is approved: the
oracle, what no estimator of these rows can beat.

    nice -n 19 python -m simulations.split_estimators [--runs 200] [--exploration 0.01]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fraud.stats import ipw
from fraud.stats.cluster import Ratio, Term, combine
from fraud.stats.labels import LabelUsers
from simulations import cohorts
from simulations.population import World

NAMES = ("ipw", "missed", "caught", "combined")


def estimates(a: LabelUsers, b: LabelUsers) -> dict[str, tuple[float, float]]:
    """Per estimator (estimate, std error) of recall_B - recall_A."""
    f = float(a.fraud_w.sum() + b.fraud_w.sum()) / float(a.n.sum() + b.n.sum())
    ma, mb = Ratio(a.fraud_approved, a.n), Ratio(b.fraud_approved, b.n)
    ca, cb = Ratio(a.fraud_explored_w, a.n), Ratio(b.fraud_explored_w, b.n)
    zm = np.concatenate([ma.terms(), -mb.terms()])
    zc = np.concatenate([-ca.terms(), cb.terms()])
    vm, vc, cov = float(zm @ zm), float(zc @ zc), float(zm @ zc)
    w = (vc - cov) / (vm + vc - 2.0 * cov)
    terms = {
        "missed": [Term(ma, 1 / f, a.ids), Term(mb, -1 / f, b.ids)],
        "caught": [Term(cb, 1 / f, b.ids), Term(ca, -1 / f, a.ids)],
        "combined": [Term(ma, w / f, a.ids), Term(mb, -w / f, b.ids),
                     Term(cb, (1 - w) / f, b.ids), Term(ca, -(1 - w) / f, a.ids)],
    }
    out = {}
    for name, ts in terms.items():
        est = combine(ts)
        assert est is not None
        out[name] = (est[0], float(np.sqrt(est[1])))
    d = ipw.split_difference(a, b, "recall")
    assert d is not None
    out["ipw"] = (d[0], float(np.sqrt(d[1])))
    return out


def table(runs: int, users: int, exploration: float, recall_b: float) -> str:
    setup = cohorts.Setup(world=World(users=users, txns_per_user=200.0, recall_b=recall_b),
                          exploration=exploration, looks=1)
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in NAMES}
    for seed in range(runs):
        d = cohorts.draw(setup, seed)
        idx = np.arange(users)
        b = d["arm_b"]
        res = estimates(cohorts.label_users(d, idx[~b]), cohorts.label_users(d, idx[b]))
        for k in NAMES:
            got[k].append(res[k])
    lines = ["| estimator | mean estimate | mean std error | mean z | sd of z |",
             "|---|---|---|---|---|"]
    for k in NAMES:
        x = np.array(got[k])
        z = x[:, 0] / x[:, 1]
        lines.append(f"| {k} | {x[:, 0].mean():+.4f} | {x[:, 1].mean():.4f} | "
                     f"{z.mean():.2f} | {z.std():.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations.split_estimators",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--exploration", type=float, default=0.01)
    p.add_argument("--recall-b", type=float, default=0.75, help="model A's recall is 0.70")
    args = p.parse_args(argv)
    print(table(args.runs, args.users, args.exploration, args.recall_b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
