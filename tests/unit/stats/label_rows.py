"""Three users' label rows with round numbers, shared by the selective-labels tests.

Propensity 0.5 (weight 2). u1: 10 decisions, 4 flagged (2 explored, one of them a fraud), one
labelled decline (a fraud), one approved fraud; u2: 6 decisions, 2 declines both reviewed
(legit); u3: 20 decisions, 2 flagged (1 explored fraud), 2 approved frauds. The shadow model
flags: u1 3 (one approved fraud, one explored legit), u2 1, u3 2 (one approved fraud, the
explored fraud).

    C = 2 + 0 + 2 = 4, F = 3 + 0 + 4 = 7: recall 4/7; precision 4/8; legit-decline 4/29
    C_O = 1 + 0 + 3 = 4: shadow recall 4/7
"""

from __future__ import annotations

import numpy as np

from fraud.stats.labels import LABEL_FIELDS, ArmLabels, LabelUsers

ROWS = [
    # id,  n, flagged, explored, lab_decl, lab_appr, fraud_appr, fraud_expl_w, expl_w, fdl,
    #      other_flagged, other_fraud_appr, other_fraud_expl_w, other_flagged_expl_w
    ("u1", 10, 4, 2, 1, 3, 1, 2.0, 4.0, 1, 3, 1, 0.0, 2.0),
    ("u2", 6, 2, 0, 2, 0, 0, 0.0, 0.0, 0, 1, 0, 0.0, 0.0),
    ("u3", 20, 2, 1, 0, 2, 2, 2.0, 2.0, 0, 2, 1, 2.0, 2.0),
]


def rows() -> LabelUsers:
    return LabelUsers.from_rows(ROWS)


def make(**cols: list[float]) -> LabelUsers:
    """LabelUsers from the columns given (the others 0)."""
    size = len(next(iter(cols.values())))
    return LabelUsers(**{f: np.array(cols.get(f, [0.0] * size), dtype=float)
                         for f in LABEL_FIELDS})


def shadow(exploring: bool = True) -> ArmLabels:
    return ArmLabels(model_a=rows(), exploring=exploring)
