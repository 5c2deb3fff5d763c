"""The ledger's queries, shared by both backends (its tables: fraud/store/ddl.py).

Placeholders are `?`; the PostgreSQL backend translates them.
"""

from __future__ import annotations

from fraud.store.ddl import MOMENT_NAMES_V5, MOMENTS_V5

DECISION_COLUMNS = (
    "request_id, ts, user_id, arm, model_tag, probability, is_fraud, latency_ms, source,"
    " experiment_id, period, amount, shadow_probability, shadow_is_fraud, explored, propensity"
)
# Inserts as head + rows + tail: the writer sends a group commit's rows in as few statements
# as the store takes (Conn.insert_many: multi-row VALUES on SQLite, a pipeline on PostgreSQL).
DECISIONS_HEAD = f"INSERT INTO decisions ({DECISION_COLUMNS})"
IGNORE_DUPLICATES = " ON CONFLICT DO NOTHING"
INSERT_DECISION = f"{DECISIONS_HEAD} VALUES ({', '.join('?' * 16)}){IGNORE_DUPLICATES}"
# The writer's fast path: decisions marked `counted` (the `decisions_count` trigger skips
# them), their users' aggregates and error counts added in one grouped upsert (USER_COUNTS). A
# writer of an earlier release inserts without the mark and its trigger counts them: both can
# share a store.
COUNTED_HEAD = f"INSERT INTO decisions ({DECISION_COLUMNS}, counted)"
INSERT_COUNTED = f"{COUNTED_HEAD} VALUES ({', '.join('?' * 17)}){IGNORE_DUPLICATES}"
_USER = "INSERT INTO user_stats (experiment_id, period, arm, user_id"
_ON_USER = " ON CONFLICT (experiment_id, period, arm, user_id) DO UPDATE SET"
USER_DECISIONS = (f"{_USER}, decisions, flagged)",
                  f"{_ON_USER} decisions = user_stats.decisions + excluded.decisions,"
                  " flagged = user_stats.flagged + excluded.flagged")
USER_ERRORS = (f"{_USER}, errors)", f"{_ON_USER} errors = user_stats.errors + excluded.errors")
USER_COUNTS = (f"{_USER}, decisions, flagged, errors, undecided)",
               f"{USER_DECISIONS[1]}, errors = user_stats.errors + excluded.errors,"
               " undecided = user_stats.undecided + excluded.undecided")
# PostgreSQL, before a shared commit touches user_stats: the per-arm rows its users' triggers
# will update, locked in one sorted order (`{keys}`: that many `(?, ?, ?)`), so two commits
# side by side wait for each other there instead of deadlocking on (user row, arm row).
LOCK_ARMS = ("SELECT 1 FROM arm_moments WHERE (experiment_id, period, arm) IN (VALUES {keys})"
             " ORDER BY experiment_id, period, arm FOR UPDATE")
ADD_DECISIONS = f"{USER_DECISIONS[0]} VALUES (?, ?, ?, ?, ?, ?){USER_DECISIONS[1]}"
UPSERT_ERRORS = f"{USER_ERRORS[0]} VALUES (?, ?, ?, ?, ?){USER_ERRORS[1]}"

# Per (period, arm): fraud.stats.aggregates.SUM_COLUMNS, then `undecided` (schema version 5).
AGGREGATES = f"SELECT period, arm, {MOMENT_NAMES_V5} FROM arm_moments WHERE experiment_id = ?"

# The same sums recomputed from user_stats (a full scan): for checks and for rebuilding.
AGGREGATES_SCAN = f"""
SELECT period, arm, {", ".join(f"SUM({e.format(r='user_stats')})" for _, e in MOMENTS_V5)}
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

# Retention: among the oldest `?` decisions (by id: bounded work), those older than the
# horizon. Only insert triggers keep the aggregates, so deleting rows changes no counts.
PRUNE_PICK = (
    "SELECT id, request_id FROM (SELECT id, request_id, ts FROM decisions"
    " ORDER BY id LIMIT ?) AS oldest WHERE ts < ?"
)
PRUNE_LABEL = "DELETE FROM labels WHERE request_id = ?"
PRUNE_DECISION = "DELETE FROM decisions WHERE id = ?"
HEARTBEAT = (
    "INSERT INTO state (key, value, updated_at) VALUES (?, '{}', ?)"
    " ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at"
)

# Looks (fraud/store/history.py). A look is inserted only if the experiment's newest look is
# older than the given cutoff: one statement in a serialised write transaction.
INSERT_LOOK = """
INSERT INTO looks (experiment_id, ts, marks, body)
SELECT ?, ?, ?, ?
WHERE NOT EXISTS (SELECT 1 FROM looks WHERE experiment_id = ? AND ts > ?)
"""
COUNT_LOOKS = "SELECT COUNT(*) FROM looks WHERE experiment_id = ?"
# Thinning: every second look among the oldest `?` (by time), except a look whose marks differ
# from the look before it (a rollback, a resume, a verdict or breach change stays on the page).
# No `%` (the PostgreSQL backend's placeholder): `(rn / 2) * 2 = rn` is "rn is even".
THIN_LOOKS = """
DELETE FROM looks WHERE id IN (
  SELECT id FROM (
    SELECT id, marks, ROW_NUMBER() OVER (ORDER BY ts, id) AS rn,
           LAG(marks) OVER (ORDER BY ts, id) AS prev_marks
    FROM looks WHERE experiment_id = ?) AS r
  WHERE (rn / 2) * 2 = rn AND rn <= ? AND marks = prev_marks)
"""
# The hard bound when thinning could not get below it: the oldest beyond `?` go.
TRIM_LOOKS = """
DELETE FROM looks WHERE id IN (
  SELECT id FROM (
    SELECT id, ROW_NUMBER() OVER (ORDER BY ts DESC, id DESC) AS rn
    FROM looks WHERE experiment_id = ?) AS r
  WHERE rn > ?)
"""
SELECT_LOOKS = "SELECT ts, body FROM looks WHERE experiment_id = ? ORDER BY ts, id"
PRUNE_LOOKS = "DELETE FROM looks WHERE ts < ?"

# The label rows (fraud.stats.labels.LABEL_FIELDS, per deciding arm and user) over one
# experiment's decisions older than `?` (the mature ones): f the model's flag, x explored, w
# 1/propensity of an explored one, lab labelled, y labelled fraud, o the other model's flag.
LABEL_USERS = """
WITH m AS (
  SELECT d.arm AS arm, d.user_id AS u, d.is_fraud AS f, d.explored AS x,
         CASE WHEN d.explored = 1 THEN COALESCE(1.0 / NULLIF(d.propensity, 0), 0) ELSE 0 END
           AS w,
         COALESCE(d.shadow_is_fraud, 0) AS o,
         CASE WHEN l.request_id IS NULL THEN 0 ELSE 1 END AS lab,
         COALESCE(l.is_fraud, 0) AS y
  FROM decisions d LEFT JOIN labels l ON l.request_id = d.request_id
  WHERE d.experiment_id = ? AND d.ts < ?)
SELECT arm, u, COUNT(*), SUM(f), SUM(x), SUM(f * (1 - x) * lab), SUM((1 - f + f * x) * lab),
       SUM((1 - f) * (1 - x) * y), SUM(x * y * w), SUM(x * w), SUM(f * (1 - x) * y), SUM(o),
       SUM((1 - f) * (1 - x) * y * o), SUM(x * y * o * w), SUM(x * o * w)
FROM m GROUP BY arm, u
"""
# The per-user rows (fraud.stats.periods.UserPeriods) of one experiment.
USER_PERIODS = ("SELECT period, arm, user_id, decisions, flagged, errors, labelled, tp, fp, fn,"
                " tn FROM user_stats WHERE experiment_id = ?")
LABEL_SOURCES = """
SELECT d.arm, l.source, COUNT(*) FROM labels l JOIN decisions d ON d.request_id = l.request_id
WHERE d.experiment_id = ? GROUP BY d.arm, l.source
"""
INSERT_LABEL = ("INSERT INTO labels (request_id, is_fraud, ts, source) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (request_id) DO NOTHING")

# Exploration (fraud/store/exploration.py): the day's budget row is created at its first lease;
# a lease is granted only while the day's leases stay within the budget (one conditional
# UPDATE in a serialised write transaction).
BUDGET_OPEN = ("INSERT INTO exploration_budget (day, budget, leased, leases, updated_at)"
               " VALUES (?, ?, 0, 0, ?) ON CONFLICT (day) DO NOTHING")
BUDGET_LEASED = "SELECT leased FROM exploration_budget WHERE day = ?"
BUDGET_LEASE = ("UPDATE exploration_budget SET leased = leased + ?, budget = ?,"
                " leases = leases + 1, updated_at = ? WHERE day = ? AND leased + ? <= ?")
BUDGET_TODAY = "SELECT leased, leases FROM exploration_budget WHERE day = ?"
EXPLORED_SINCE = "SELECT COUNT(*), SUM(amount) FROM decisions WHERE explored = 1 AND ts >= ?"
EXPLORED_TOTALS = """
SELECT d.arm, COUNT(*), SUM(d.amount), SUM(CASE WHEN l.request_id IS NULL THEN 0 ELSE 1 END),
       SUM(CASE WHEN l.is_fraud = 1 THEN 1 ELSE 0 END),
       SUM(CASE WHEN l.is_fraud = 1 THEN COALESCE(d.amount, 0) ELSE 0 END)
FROM decisions d LEFT JOIN labels l ON l.request_id = d.request_id
WHERE d.experiment_id = ? AND d.explored = 1 GROUP BY d.arm
"""
EXPLORED = """
SELECT d.request_id, d.ts, d.user_id, d.arm, d.probability, d.amount, d.propensity,
       l.is_fraud, l.source
FROM decisions d LEFT JOIN labels l ON l.request_id = d.request_id
WHERE d.experiment_id = ? AND d.explored = 1 ORDER BY d.id DESC LIMIT ?
"""
