"""The ledger's SQLite schema and queries: decisions, labels, experiments, per-user aggregates.

Per-user aggregates (`user_stats`, one row per experiment, allocation period, arm and user)
are kept exact by triggers in the transaction that inserts a decision or a label, and by the
maturity sweep; /ab-stats sums them per (period, arm) in one query (`AGGREGATES`), so its cost
grows with users, not decisions.
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id            INTEGER PRIMARY KEY,
    request_id    TEXT    NOT NULL UNIQUE,
    ts            REAL    NOT NULL,
    user_id       TEXT    NOT NULL,
    arm           TEXT    NOT NULL,
    model_tag     TEXT    NOT NULL,
    probability   REAL    NOT NULL,
    is_fraud      INTEGER NOT NULL,
    latency_ms    REAL    NOT NULL,
    source        TEXT    NOT NULL,
    experiment_id INTEGER NOT NULL DEFAULT 0,
    period        INTEGER NOT NULL DEFAULT 0,
    matured       INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS labels (
    request_id TEXT    PRIMARY KEY,
    is_fraud   INTEGER NOT NULL,
    ts         REAL    NOT NULL
);

-- One experiment = (salt, model A tag, model B tag); the current one has ended_at NULL.
-- `state` (rollback, share, period, sequence memory) changes by compare-and-set on `version`.
CREATE TABLE IF NOT EXISTS experiments (
    id         INTEGER PRIMARY KEY,
    salt       TEXT    NOT NULL,
    model_a    TEXT    NOT NULL,
    model_b    TEXT    NOT NULL,
    started_at TEXT    NOT NULL,
    ended_at   TEXT,
    end_reason TEXT,
    state      TEXT    NOT NULL DEFAULT '{}',
    version    INTEGER NOT NULL DEFAULT 0,
    final      TEXT
);

CREATE TABLE IF NOT EXISTS user_stats (
    experiment_id INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    arm           TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    decisions     INTEGER NOT NULL DEFAULT 0,
    flagged       INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    labelled      INTEGER NOT NULL DEFAULT 0,
    tp            INTEGER NOT NULL DEFAULT 0,
    fp            INTEGER NOT NULL DEFAULT 0,
    fn            INTEGER NOT NULL DEFAULT 0,
    tn            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, period, arm, user_id)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS decisions_count AFTER INSERT ON decisions
BEGIN
    INSERT INTO user_stats (experiment_id, period, arm, user_id, decisions, flagged)
    VALUES (NEW.experiment_id, NEW.period, NEW.arm, NEW.user_id, 1, NEW.is_fraud)
    ON CONFLICT (experiment_id, period, arm, user_id) DO UPDATE SET
        decisions = decisions + 1, flagged = flagged + excluded.flagged;
END;

-- A label makes its decision mature. If the maturity sweep already counted it as legit
-- (fp or tn), a fraud label moves it to tp or fn; a legit label changes nothing.
CREATE TRIGGER IF NOT EXISTS labels_to_user_stats AFTER INSERT ON labels
BEGIN
    UPDATE user_stats SET
        labelled = labelled + 1,
        tp = tp + (d.is_fraud = 1 AND NEW.is_fraud = 1),
        fn = fn + (d.is_fraud = 0 AND NEW.is_fraud = 1),
        fp = fp + (d.is_fraud = 1 AND NEW.is_fraud = 0 AND d.matured = 0)
                - (d.is_fraud = 1 AND NEW.is_fraud = 1 AND d.matured = 1),
        tn = tn + (d.is_fraud = 0 AND NEW.is_fraud = 0 AND d.matured = 0)
                - (d.is_fraud = 0 AND NEW.is_fraud = 1 AND d.matured = 1)
    FROM (SELECT experiment_id, period, arm, user_id, is_fraud, matured FROM decisions
          WHERE request_id = NEW.request_id) AS d
    WHERE user_stats.experiment_id = d.experiment_id AND user_stats.period = d.period
      AND user_stats.arm = d.arm AND user_stats.user_id = d.user_id;
    UPDATE decisions SET matured = 1 WHERE request_id = NEW.request_id;
END;

CREATE TABLE IF NOT EXISTS state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

# Added after the first release: created separately so an older ledger gains them after the
# migration adds the columns they index.
INDEXES = """
CREATE INDEX IF NOT EXISTS decisions_latency
    ON decisions (experiment_id, period, arm, source, ts, latency_ms);
CREATE INDEX IF NOT EXISTS decisions_unmatured ON decisions (ts) WHERE matured = 0;
"""

# Columns an older ledger lacks (its rows belong to the legacy experiment 0).
MIGRATIONS = {
    "decisions": (("experiment_id", "INTEGER NOT NULL DEFAULT 0"),
                  ("period", "INTEGER NOT NULL DEFAULT 0"),
                  ("matured", "INTEGER NOT NULL DEFAULT 0")),
}
# The first release counted per arm (arm_stats, error_counts) with a trigger of this name;
# per-user aggregates replace them. Its decisions stay readable as experiment 0 but have no
# per-user aggregates (they were counted per decision).
OBSOLETE = (
    "DROP TRIGGER IF EXISTS labels_count",
    "DROP TABLE IF EXISTS arm_stats",
    "DROP TABLE IF EXISTS error_counts",
)

INSERT_DECISION = (
    "INSERT INTO decisions (request_id, ts, user_id, arm, model_tag, probability, is_fraud,"
    " latency_ms, source, experiment_id, period) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
DECISION_COLUMNS = (
    "request_id, ts, user_id, arm, model_tag, probability, is_fraud, latency_ms, source,"
    " experiment_id, period"
)
UPSERT_ERRORS = (
    "INSERT INTO user_stats (experiment_id, period, arm, user_id, errors) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (experiment_id, period, arm, user_id) DO UPDATE SET"
    " errors = errors + excluded.errors"
)

# Per (experiment, period, arm), the sums over users that fraud.aggregates.ArmPeriod needs, in
# its SUM_COLUMNS order, each as a function of one user_stats row `{r}`. Triggers on user_stats
# add a new row's terms and, on update, the difference NEW - OLD, so /ab-stats reads a few
# rows whatever the number of users or decisions.
MOMENTS: tuple[tuple[str, str], ...] = (
    ("users", "1"),
    ("decisions", "{r}.decisions"),
    ("flagged", "{r}.flagged"),
    ("errors", "{r}.errors"),
    ("labelled", "{r}.labelled"),
    ("tp", "{r}.tp"),
    ("fp", "{r}.fp"),
    ("fn", "{r}.fn"),
    ("tn", "{r}.tn"),
    ("users_decided", "({r}.decisions > 0)"),
    ("dd", "{r}.decisions * {r}.decisions"),
    ("ff", "{r}.flagged * {r}.flagged"),
    ("df", "{r}.decisions * {r}.flagged"),
    ("users_attempted", "({r}.decisions + {r}.errors > 0)"),
    ("aa", "({r}.decisions + {r}.errors) * ({r}.decisions + {r}.errors)"),
    ("ee", "{r}.errors * {r}.errors"),
    ("ae", "({r}.decisions + {r}.errors) * {r}.errors"),
    ("users_fraud", "({r}.tp + {r}.fn > 0)"),
    ("pp", "({r}.tp + {r}.fn) * ({r}.tp + {r}.fn)"),
    ("tt", "{r}.tp * {r}.tp"),
    ("pt", "({r}.tp + {r}.fn) * {r}.tp"),
    ("users_flagged_mature", "({r}.tp + {r}.fp > 0)"),
    ("qq", "({r}.tp + {r}.fp) * ({r}.tp + {r}.fp)"),
    ("qt", "({r}.tp + {r}.fp) * {r}.tp"),
)
_NAMES = ", ".join(name for name, _ in MOMENTS)
_KEY = "experiment_id, period, arm"

MOMENTS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS arm_moments (
    experiment_id INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    arm           TEXT    NOT NULL,
    {", ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name, _ in MOMENTS)},
    PRIMARY KEY ({_KEY})
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS user_stats_added AFTER INSERT ON user_stats
BEGIN
    INSERT INTO arm_moments ({_KEY}, {_NAMES})
    VALUES (NEW.experiment_id, NEW.period, NEW.arm,
            {", ".join(expr.format(r="NEW") for _, expr in MOMENTS)})
    ON CONFLICT ({_KEY}) DO UPDATE SET
        {", ".join(f"{name} = {name} + excluded.{name}" for name, _ in MOMENTS)};
END;

CREATE TRIGGER IF NOT EXISTS user_stats_changed AFTER UPDATE ON user_stats
BEGIN
    UPDATE arm_moments SET
        {", ".join(f"{name} = {name} + ({expr.format(r='NEW')}) - ({expr.format(r='OLD')})"
                   for name, expr in MOMENTS[1:])}
    WHERE experiment_id = NEW.experiment_id AND period = NEW.period AND arm = NEW.arm;
END;
"""

AGGREGATES = f"SELECT period, arm, {_NAMES} FROM arm_moments WHERE experiment_id = ?"

# The same sums recomputed from user_stats (a full scan): for checks and for rebuilding.
AGGREGATES_SCAN = f"""
SELECT period, arm, {", ".join(f"SUM({expr.format(r='user_stats')})" for _, expr in MOMENTS)}
FROM user_stats WHERE experiment_id = ? GROUP BY period, arm
"""

LATENCIES = (
    "SELECT latency_ms FROM decisions WHERE experiment_id = ? AND period = ? AND arm = ?"
    " AND source = 'predict' ORDER BY ts DESC LIMIT ?"
)

# Unlabelled decisions older than the cutoff count as legit: flagged -> fp, else -> tn.
MATURE_COUNT = """
UPDATE user_stats SET fp = fp + m.flagged, tn = tn + m.n - m.flagged
FROM (SELECT experiment_id, period, arm, user_id, SUM(is_fraud) AS flagged, COUNT(*) AS n
      FROM decisions WHERE matured = 0 AND ts < ?
      GROUP BY experiment_id, period, arm, user_id) AS m
WHERE user_stats.experiment_id = m.experiment_id AND user_stats.period = m.period
  AND user_stats.arm = m.arm AND user_stats.user_id = m.user_id
"""
MATURE_MARK = "UPDATE decisions SET matured = 1 WHERE matured = 0 AND ts < ?"

EXPERIMENT_COLUMNS = (
    "id, salt, model_a, model_b, started_at, ended_at, end_reason, state, version, final"
)
