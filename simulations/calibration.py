"""`python -m simulations.calibration`: is the primary comparison's variance right on an A/A
ramp? The z-score (estimate / standard error) of an A/A comparison should have SD 1 and
|z| > 3 in 0.27% of experiments; a variance that is too small shows as SD > 1.

Each seed draws the three-period ramp of `python -m simulations.labels` (shares 0.1, 0.25,
0.5; heavy-tailed activity, fraud on taken-over cards, decision-dependent labels; see
simulations/label_traffic.py) and reads the final look four ways: the per-period sums with
independent strata (fraud.stats.users.stratified_difference, what the service did), the per-user
rows clustered by user across periods (delta method), plus the delete-one-user jackknife, plus
Cochran-Mantel-Haenszel weights (fraud.stats.periods.stratified as the service runs it).

    nice -n 10 python -m simulations.calibration [--seeds 400] [--processes 2]
"""

from __future__ import annotations

import argparse
import sys
from multiprocessing import get_context

import numpy as np

from fraud.stats import periods
from fraud.stats.users import stratified_difference
from simulations import label_traffic
from simulations.labels import RAMP, _limit_threads, markdown, rows

VARIANTS = ("per-period sums, strata independent", "per-user rows, delta method",
            "+ jackknife", "+ CMH weights (the service)")


def zscores(seed: int) -> list[float]:
    row = next(r for r in rows() if isinstance(r.setup, label_traffic.Plan)
               and r.setup.shares == RAMP)
    plan = row.setup
    assert isinstance(plan, label_traffic.Plan)
    x = label_traffic.inputs_at(label_traffic._rows(plan, seed), plan.duration_days, plan)
    out = []
    old = stratified_difference(x.periods, "recall")
    out.append(old["estimate"] / np.sqrt(old["variance"]) if old else np.nan)
    for cmh, jack in ((False, False), (False, True), (True, True)):
        d = periods.stratified(x.user_periods, "recall", cmh=cmh, jackknife=jack)
        out.append(d["estimate"] / np.sqrt(d["variance"]) if d else np.nan)
    return out


def table(seeds: int, processes: int) -> str:
    if processes > 1:
        with get_context("spawn").Pool(1, initializer=_limit_threads) as pool:
            theirs = pool.map_async(zscores, range(1, seeds, 2))
            z = [zscores(s) for s in range(0, seeds, 2)] + theirs.get()
    else:
        z = [zscores(s) for s in range(seeds)]
    cols = np.array(z).T
    lines = []
    for name, col in zip(VARIANTS, cols, strict=True):
        col = col[np.isfinite(col)]
        lines.append({"variance": name, "seeds": str(len(col)), "SD of z": f"{col.std():.3f}",
                      "abs z > 2.58 (1%)": f"{100 * np.mean(np.abs(col) > 2.58):.2f}%",
                      "abs z > 3 (0.27%)": f"{100 * np.mean(np.abs(col) > 3):.2f}%"})
    return markdown(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations.calibration",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--processes", type=int, default=2, help="1, or 2 (one worker)")
    args = parser.parse_args(argv)
    _limit_threads()
    print(table(args.seeds, args.processes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
