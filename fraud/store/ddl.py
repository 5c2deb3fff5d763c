"""The ledger's schema text, shared by both backends: tables, triggers, indexes and the columns
added over the releases. fraud/store/migrations.py applies them as numbered versions; nothing
here runs by itself. Placeholders are `?`; the PostgreSQL backend translates them.

Per-user aggregates (`user_stats`, one row per experiment, allocation period, arm and user)
are kept exact by triggers in the transaction that inserts a decision or a label, and by the
maturity sweep; /ab-stats sums them per (period, arm) in one query (`AGGREGATES`), so its cost
grows with users, not decisions.
"""

from __future__ import annotations

# Version 1's tables in both dialects: `{id}` an auto-increment key, `{int}` a 64-bit integer,
# `{real}` a double, `{norowid}` SQLite's clustered-key option (nothing in PostgreSQL).
TABLES = """
CREATE TABLE IF NOT EXISTS decisions (
    id            {id},
    request_id    TEXT    NOT NULL UNIQUE,
    ts            {real}  NOT NULL,
    user_id       TEXT    NOT NULL,
    arm           TEXT    NOT NULL,
    model_tag     TEXT    NOT NULL,
    probability   {real}  NOT NULL,
    is_fraud      INTEGER NOT NULL,
    latency_ms    {real}  NOT NULL,
    source        TEXT    NOT NULL,
    experiment_id {int}   NOT NULL DEFAULT 0,
    period        INTEGER NOT NULL DEFAULT 0,
    matured       INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS labels (
    request_id TEXT    PRIMARY KEY,
    is_fraud   INTEGER NOT NULL,
    ts         {real}  NOT NULL
);

-- One experiment = (salt, model A tag, model B tag); the current one has ended_at NULL.
-- `state` (rollback, share, period, sequence memory) changes by compare-and-set on `version`.
CREATE TABLE IF NOT EXISTS experiments (
    id         {id},
    salt       TEXT    NOT NULL,
    model_a    TEXT    NOT NULL,
    model_b    TEXT    NOT NULL,
    started_at TEXT    NOT NULL,
    ended_at   TEXT,
    end_reason TEXT,
    state      TEXT    NOT NULL DEFAULT '{{}}',
    version    {int}   NOT NULL DEFAULT 0,
    final      TEXT
);

CREATE TABLE IF NOT EXISTS user_stats (
    experiment_id {int}   NOT NULL,
    period        INTEGER NOT NULL,
    arm           TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    decisions     {int}   NOT NULL DEFAULT 0,
    flagged       {int}   NOT NULL DEFAULT 0,
    errors        {int}   NOT NULL DEFAULT 0,
    labelled      {int}   NOT NULL DEFAULT 0,
    tp            {int}   NOT NULL DEFAULT 0,
    fp            {int}   NOT NULL DEFAULT 0,
    fn            {int}   NOT NULL DEFAULT 0,
    tn            {int}   NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, period, arm, user_id)
){norowid};

CREATE TABLE IF NOT EXISTS state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at {real} NOT NULL
);
"""

# Trigger bodies, the same SQL in both dialects (each backend wraps them in its own syntax).
# A new decision is added to its user's aggregates.
ON_DECISION = """
    INSERT INTO user_stats (experiment_id, period, arm, user_id, decisions, flagged)
    VALUES (NEW.experiment_id, NEW.period, NEW.arm, NEW.user_id, 1, NEW.is_fraud)
    ON CONFLICT (experiment_id, period, arm, user_id) DO UPDATE SET
        decisions = user_stats.decisions + 1, flagged = user_stats.flagged + excluded.flagged;
"""

# A label makes its decision mature. If the maturity sweep already counted it as legit
# (fp or tn), a fraud label moves it to tp or fn; a legit label changes nothing.
ON_LABEL = """
    UPDATE user_stats SET
        labelled = user_stats.labelled + 1,
        tp = user_stats.tp + CAST(d.is_fraud = 1 AND NEW.is_fraud = 1 AS INTEGER),
        fn = user_stats.fn + CAST(d.is_fraud = 0 AND NEW.is_fraud = 1 AS INTEGER),
        fp = user_stats.fp + CAST(d.is_fraud = 1 AND NEW.is_fraud = 0 AND d.matured = 0 AS INTEGER)
                - CAST(d.is_fraud = 1 AND NEW.is_fraud = 1 AND d.matured = 1 AS INTEGER),
        tn = user_stats.tn + CAST(d.is_fraud = 0 AND NEW.is_fraud = 0 AND d.matured = 0 AS INTEGER)
                - CAST(d.is_fraud = 0 AND NEW.is_fraud = 1 AND d.matured = 1 AS INTEGER)
    FROM (SELECT experiment_id, period, arm, user_id, is_fraud, matured FROM decisions
          WHERE request_id = NEW.request_id) AS d
    WHERE user_stats.experiment_id = d.experiment_id AND user_stats.period = d.period
      AND user_stats.arm = d.arm AND user_stats.user_id = d.user_id;
    UPDATE decisions SET matured = 1 WHERE request_id = NEW.request_id;
"""

# Version 1's indexes (the first release lacked them: created after its columns are added).
INDEXES = """
CREATE INDEX IF NOT EXISTS decisions_latency
    ON decisions (experiment_id, period, arm, source, ts, latency_ms);
CREATE INDEX IF NOT EXISTS decisions_unmatured ON decisions (ts) WHERE matured = 0;
"""

LOOKS = """
-- The report page's history (fraud/store/history.py): one compact JSON `body` per look of an
-- experiment (fraud/report/history.py); `marks` is the look's rollback/verdict/breach state,
-- so thinning keeps every look where it changed. Schema version 4.
CREATE TABLE IF NOT EXISTS looks (
    id            {id},
    experiment_id {int}  NOT NULL,
    ts            {real} NOT NULL,
    marks         TEXT   NOT NULL,
    body          TEXT   NOT NULL
);
CREATE INDEX IF NOT EXISTS looks_by_time ON looks (experiment_id, ts);
"""

# Columns of `decisions` by the version that added them (`{real}` as in TABLES). The first
# release (SQLite only) lacked the first three: its rows belong to the legacy experiment 0.
FIRST_RELEASE_COLUMNS = (("experiment_id", "INTEGER NOT NULL DEFAULT 0"),
                         ("period", "INTEGER NOT NULL DEFAULT 0"),
                         ("matured", "INTEGER NOT NULL DEFAULT 0"))
# Version 2, shadow scoring: the transaction's amount, the other model's score and decision.
SHADOW_COLUMNS = (("amount", "{real}"), ("shadow_probability", "{real}"),
                  ("shadow_is_fraud", "INTEGER"))
# Version 3: rows the writer counted itself (fraud/store/rows.py); 0 = the trigger counts them.
COUNTED_COLUMN = ("counted", "INTEGER NOT NULL DEFAULT 0")
# The first release counted per arm (arm_stats, error_counts) with a trigger of this name;
# per-user aggregates replace them. Its decisions stay readable as experiment 0 but have no
# per-user aggregates (they were counted per decision).
OBSOLETE = (
    "DROP TRIGGER IF EXISTS labels_count",
    "DROP TABLE IF EXISTS arm_stats",
    "DROP TABLE IF EXISTS error_counts",
)

# Which schema version a ledger is at, one row per version applied (fraud/store/version.py);
# `compatible_from`: the oldest schema version a release may know and still run on this one.
VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version         INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    compatible_from INTEGER NOT NULL,
    how             TEXT    NOT NULL,
    applied_at      {real}  NOT NULL
)
"""

# Per (experiment, period, arm), the sums over users that fraud.stats.aggregates.ArmPeriod needs, in
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
    ("users_decided", "CAST({r}.decisions > 0 AS INTEGER)"),
    ("dd", "{r}.decisions * {r}.decisions"),
    ("ff", "{r}.flagged * {r}.flagged"),
    ("df", "{r}.decisions * {r}.flagged"),
    ("users_attempted", "CAST({r}.decisions + {r}.errors > 0 AS INTEGER)"),
    ("aa", "({r}.decisions + {r}.errors) * ({r}.decisions + {r}.errors)"),
    ("ee", "{r}.errors * {r}.errors"),
    ("ae", "({r}.decisions + {r}.errors) * {r}.errors"),
    ("users_fraud", "CAST({r}.tp + {r}.fn > 0 AS INTEGER)"),
    ("pp", "({r}.tp + {r}.fn) * ({r}.tp + {r}.fn)"),
    ("tt", "{r}.tp * {r}.tp"),
    ("pt", "({r}.tp + {r}.fn) * {r}.tp"),
    ("users_flagged_mature", "CAST({r}.tp + {r}.fp > 0 AS INTEGER)"),
    ("qq", "({r}.tp + {r}.fp) * ({r}.tp + {r}.fp)"),
    ("qt", "({r}.tp + {r}.fp) * {r}.tp"),
)
MOMENT_NAMES = ", ".join(name for name, _ in MOMENTS)
_KEY = "experiment_id, period, arm"

MOMENTS_TABLE = f"""
CREATE TABLE IF NOT EXISTS arm_moments (
    experiment_id {{int}}   NOT NULL,
    period        INTEGER NOT NULL,
    arm           TEXT    NOT NULL,
    {", ".join(f"{name} {{int}} NOT NULL DEFAULT 0" for name, _ in MOMENTS)},
    PRIMARY KEY ({_KEY})
){{norowid}};
"""

def _moment_triggers(moments: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """The bodies of the `user_stats` triggers that keep `arm_moments` equal to the sums of
    `moments` over users: (on insert, on update)."""
    names = ", ".join(name for name, _ in moments)
    added = f"""
    INSERT INTO arm_moments ({_KEY}, {names})
    VALUES (NEW.experiment_id, NEW.period, NEW.arm,
            {", ".join(expr.format(r="NEW") for _, expr in moments)})
    ON CONFLICT ({_KEY}) DO UPDATE SET
        {", ".join(f"{name} = arm_moments.{name} + excluded.{name}" for name, _ in moments)};
"""
    changed = f"""
    UPDATE arm_moments SET
        {", ".join(f"{name} = {name} + ({expr.format(r='NEW')}) - ({expr.format(r='OLD')})"
                   for name, expr in moments[1:])}
    WHERE experiment_id = NEW.experiment_id AND period = NEW.period AND arm = NEW.arm;
"""
    return added, changed


ON_USER_ADDED, ON_USER_CHANGED = _moment_triggers(MOMENTS)

# (name, table, event, condition, body), their latest definitions: version 1 created them
# (`decisions_count` without its condition), version 3 gave `decisions_count` its condition.
TRIGGERS: tuple[tuple[str, str, str, str, str], ...] = (
    ("decisions_count", "decisions", "INSERT", "NEW.counted = 0", ON_DECISION),
    ("labels_to_user_stats", "labels", "INSERT", "", ON_LABEL),
    ("user_stats_added", "user_stats", "INSERT", "", ON_USER_ADDED),
    ("user_stats_changed", "user_stats", "UPDATE", "", ON_USER_CHANGED),
)


# Version 5, selective labels (fraud/store/evidence.py, fraud/store/exploration.py): each
# decision's exploration (`is_fraud` stays the model's decision; `explored`: approved instead;
# `propensity`: its chance of that, 0 when not eligible, NULL before this version), where a
# label came from, rows a bulk left undecided because another of its rows failed (attempted
# all the same: the error rate's denominator), and the day's exploration budget every worker
# and replica leases from.
EXPLORATION_COLUMNS = (("explored", "INTEGER NOT NULL DEFAULT 0"), ("propensity", "{real}"))
LABEL_SOURCE_COLUMN = ("source", "TEXT")
UNDECIDED_COLUMN = ("undecided", "{int} NOT NULL DEFAULT 0")
EXPLORATION = """
CREATE TABLE IF NOT EXISTS exploration_budget (
    day        TEXT   PRIMARY KEY,
    budget     {real} NOT NULL,
    leased     {real} NOT NULL DEFAULT 0,
    leases     {int}  NOT NULL DEFAULT 0,
    updated_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_explored ON decisions (experiment_id, id) WHERE explored = 1;
CREATE INDEX IF NOT EXISTS decisions_explored_ts ON decisions (ts) WHERE explored = 1;
"""

# The error rate's moments from version 5: attempted = decisions + errors + undecided. Rows of
# earlier versions have undecided = 0, so their running sums stay exact; the triggers on
# user_stats are replaced to add the new terms and the `undecided` sum (arm_moments gains it).
ATTEMPTED = "({r}.decisions + {r}.errors + {r}.undecided)"
_V5 = {"users_attempted": f"CAST({ATTEMPTED} > 0 AS INTEGER)",
       "aa": f"{ATTEMPTED} * {ATTEMPTED}", "ae": f"{ATTEMPTED} * {{r}}.errors"}
MOMENTS_V5: tuple[tuple[str, str], ...] = (
    *((name, _V5.get(name, expr)) for name, expr in MOMENTS), ("undecided", "{r}.undecided"))
MOMENT_NAMES_V5 = ", ".join(name for name, _ in MOMENTS_V5)
ON_USER_ADDED_V5, ON_USER_CHANGED_V5 = _moment_triggers(MOMENTS_V5)
TRIGGERS_V5: tuple[tuple[str, str, str, str, str], ...] = (
    ("user_stats_added", "user_stats", "INSERT", "", ON_USER_ADDED_V5),
    ("user_stats_changed", "user_stats", "UPDATE", "", ON_USER_CHANGED_V5),
)
