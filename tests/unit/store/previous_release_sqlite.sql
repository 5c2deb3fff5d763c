-- The ledger schema a fresh SQLite ledger got from the previous release (HEAD~8 at
-- 0ddeca8, b458802: fraud/ledger_sql.py with fraud/ledger_{sqlite,postgres}.py), as it
-- executed it, captured once; no schema_version table. Statements end at a `-- ;;` line.
CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY,
    request_id    TEXT    NOT NULL UNIQUE,
    ts            REAL  NOT NULL,
    user_id       TEXT    NOT NULL,
    arm           TEXT    NOT NULL,
    model_tag     TEXT    NOT NULL,
    probability   REAL  NOT NULL,
    is_fraud      INTEGER NOT NULL,
    latency_ms    REAL  NOT NULL,
    source        TEXT    NOT NULL,
    experiment_id INTEGER   NOT NULL DEFAULT 0,
    period        INTEGER NOT NULL DEFAULT 0,
    matured       INTEGER NOT NULL DEFAULT 0
, amount REAL, shadow_probability REAL, shadow_is_fraud INTEGER, counted INTEGER NOT NULL DEFAULT 0)
-- ;;
CREATE TABLE labels (
    request_id TEXT    PRIMARY KEY,
    is_fraud   INTEGER NOT NULL,
    ts         REAL  NOT NULL
)
-- ;;
CREATE TABLE experiments (
    id         INTEGER PRIMARY KEY,
    salt       TEXT    NOT NULL,
    model_a    TEXT    NOT NULL,
    model_b    TEXT    NOT NULL,
    started_at TEXT    NOT NULL,
    ended_at   TEXT,
    end_reason TEXT,
    state      TEXT    NOT NULL DEFAULT '{}',
    version    INTEGER   NOT NULL DEFAULT 0,
    final      TEXT
)
-- ;;
CREATE TABLE user_stats (
    experiment_id INTEGER   NOT NULL,
    period        INTEGER NOT NULL,
    arm           TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    decisions     INTEGER   NOT NULL DEFAULT 0,
    flagged       INTEGER   NOT NULL DEFAULT 0,
    errors        INTEGER   NOT NULL DEFAULT 0,
    labelled      INTEGER   NOT NULL DEFAULT 0,
    tp            INTEGER   NOT NULL DEFAULT 0,
    fp            INTEGER   NOT NULL DEFAULT 0,
    fn            INTEGER   NOT NULL DEFAULT 0,
    tn            INTEGER   NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, period, arm, user_id)
) WITHOUT ROWID
-- ;;
CREATE TABLE state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL
)
-- ;;
CREATE TABLE looks (
    id            INTEGER PRIMARY KEY,
    experiment_id INTEGER  NOT NULL,
    ts            REAL NOT NULL,
    marks         TEXT   NOT NULL,
    body          TEXT   NOT NULL
)
-- ;;
CREATE TABLE arm_moments (
    experiment_id INTEGER   NOT NULL,
    period        INTEGER NOT NULL,
    arm           TEXT    NOT NULL,
    users INTEGER NOT NULL DEFAULT 0, decisions INTEGER NOT NULL DEFAULT 0, flagged INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0, labelled INTEGER NOT NULL DEFAULT 0, tp INTEGER NOT NULL DEFAULT 0, fp INTEGER NOT NULL DEFAULT 0, fn INTEGER NOT NULL DEFAULT 0, tn INTEGER NOT NULL DEFAULT 0, users_decided INTEGER NOT NULL DEFAULT 0, dd INTEGER NOT NULL DEFAULT 0, ff INTEGER NOT NULL DEFAULT 0, df INTEGER NOT NULL DEFAULT 0, users_attempted INTEGER NOT NULL DEFAULT 0, aa INTEGER NOT NULL DEFAULT 0, ee INTEGER NOT NULL DEFAULT 0, ae INTEGER NOT NULL DEFAULT 0, users_fraud INTEGER NOT NULL DEFAULT 0, pp INTEGER NOT NULL DEFAULT 0, tt INTEGER NOT NULL DEFAULT 0, pt INTEGER NOT NULL DEFAULT 0, users_flagged_mature INTEGER NOT NULL DEFAULT 0, qq INTEGER NOT NULL DEFAULT 0, qt INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, period, arm)
) WITHOUT ROWID
-- ;;
CREATE TRIGGER decisions_count AFTER INSERT ON decisions WHEN NEW.counted = 0 BEGIN 
    INSERT INTO user_stats (experiment_id, period, arm, user_id, decisions, flagged)
    VALUES (NEW.experiment_id, NEW.period, NEW.arm, NEW.user_id, 1, NEW.is_fraud)
    ON CONFLICT (experiment_id, period, arm, user_id) DO UPDATE SET
        decisions = user_stats.decisions + 1, flagged = user_stats.flagged + excluded.flagged;
 END
-- ;;
CREATE TRIGGER labels_to_user_stats AFTER INSERT ON labels BEGIN 
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
 END
-- ;;
CREATE TRIGGER user_stats_added AFTER INSERT ON user_stats BEGIN 
    INSERT INTO arm_moments (experiment_id, period, arm, users, decisions, flagged, errors, labelled, tp, fp, fn, tn, users_decided, dd, ff, df, users_attempted, aa, ee, ae, users_fraud, pp, tt, pt, users_flagged_mature, qq, qt)
    VALUES (NEW.experiment_id, NEW.period, NEW.arm,
            1, NEW.decisions, NEW.flagged, NEW.errors, NEW.labelled, NEW.tp, NEW.fp, NEW.fn, NEW.tn, CAST(NEW.decisions > 0 AS INTEGER), NEW.decisions * NEW.decisions, NEW.flagged * NEW.flagged, NEW.decisions * NEW.flagged, CAST(NEW.decisions + NEW.errors > 0 AS INTEGER), (NEW.decisions + NEW.errors) * (NEW.decisions + NEW.errors), NEW.errors * NEW.errors, (NEW.decisions + NEW.errors) * NEW.errors, CAST(NEW.tp + NEW.fn > 0 AS INTEGER), (NEW.tp + NEW.fn) * (NEW.tp + NEW.fn), NEW.tp * NEW.tp, (NEW.tp + NEW.fn) * NEW.tp, CAST(NEW.tp + NEW.fp > 0 AS INTEGER), (NEW.tp + NEW.fp) * (NEW.tp + NEW.fp), (NEW.tp + NEW.fp) * NEW.tp)
    ON CONFLICT (experiment_id, period, arm) DO UPDATE SET
        users = arm_moments.users + excluded.users, decisions = arm_moments.decisions + excluded.decisions, flagged = arm_moments.flagged + excluded.flagged, errors = arm_moments.errors + excluded.errors, labelled = arm_moments.labelled + excluded.labelled, tp = arm_moments.tp + excluded.tp, fp = arm_moments.fp + excluded.fp, fn = arm_moments.fn + excluded.fn, tn = arm_moments.tn + excluded.tn, users_decided = arm_moments.users_decided + excluded.users_decided, dd = arm_moments.dd + excluded.dd, ff = arm_moments.ff + excluded.ff, df = arm_moments.df + excluded.df, users_attempted = arm_moments.users_attempted + excluded.users_attempted, aa = arm_moments.aa + excluded.aa, ee = arm_moments.ee + excluded.ee, ae = arm_moments.ae + excluded.ae, users_fraud = arm_moments.users_fraud + excluded.users_fraud, pp = arm_moments.pp + excluded.pp, tt = arm_moments.tt + excluded.tt, pt = arm_moments.pt + excluded.pt, users_flagged_mature = arm_moments.users_flagged_mature + excluded.users_flagged_mature, qq = arm_moments.qq + excluded.qq, qt = arm_moments.qt + excluded.qt;
 END
-- ;;
CREATE TRIGGER user_stats_changed AFTER UPDATE ON user_stats BEGIN 
    UPDATE arm_moments SET
        decisions = decisions + (NEW.decisions) - (OLD.decisions), flagged = flagged + (NEW.flagged) - (OLD.flagged), errors = errors + (NEW.errors) - (OLD.errors), labelled = labelled + (NEW.labelled) - (OLD.labelled), tp = tp + (NEW.tp) - (OLD.tp), fp = fp + (NEW.fp) - (OLD.fp), fn = fn + (NEW.fn) - (OLD.fn), tn = tn + (NEW.tn) - (OLD.tn), users_decided = users_decided + (CAST(NEW.decisions > 0 AS INTEGER)) - (CAST(OLD.decisions > 0 AS INTEGER)), dd = dd + (NEW.decisions * NEW.decisions) - (OLD.decisions * OLD.decisions), ff = ff + (NEW.flagged * NEW.flagged) - (OLD.flagged * OLD.flagged), df = df + (NEW.decisions * NEW.flagged) - (OLD.decisions * OLD.flagged), users_attempted = users_attempted + (CAST(NEW.decisions + NEW.errors > 0 AS INTEGER)) - (CAST(OLD.decisions + OLD.errors > 0 AS INTEGER)), aa = aa + ((NEW.decisions + NEW.errors) * (NEW.decisions + NEW.errors)) - ((OLD.decisions + OLD.errors) * (OLD.decisions + OLD.errors)), ee = ee + (NEW.errors * NEW.errors) - (OLD.errors * OLD.errors), ae = ae + ((NEW.decisions + NEW.errors) * NEW.errors) - ((OLD.decisions + OLD.errors) * OLD.errors), users_fraud = users_fraud + (CAST(NEW.tp + NEW.fn > 0 AS INTEGER)) - (CAST(OLD.tp + OLD.fn > 0 AS INTEGER)), pp = pp + ((NEW.tp + NEW.fn) * (NEW.tp + NEW.fn)) - ((OLD.tp + OLD.fn) * (OLD.tp + OLD.fn)), tt = tt + (NEW.tp * NEW.tp) - (OLD.tp * OLD.tp), pt = pt + ((NEW.tp + NEW.fn) * NEW.tp) - ((OLD.tp + OLD.fn) * OLD.tp), users_flagged_mature = users_flagged_mature + (CAST(NEW.tp + NEW.fp > 0 AS INTEGER)) - (CAST(OLD.tp + OLD.fp > 0 AS INTEGER)), qq = qq + ((NEW.tp + NEW.fp) * (NEW.tp + NEW.fp)) - ((OLD.tp + OLD.fp) * (OLD.tp + OLD.fp)), qt = qt + ((NEW.tp + NEW.fp) * NEW.tp) - ((OLD.tp + OLD.fp) * OLD.tp)
    WHERE experiment_id = NEW.experiment_id AND period = NEW.period AND arm = NEW.arm;
 END
-- ;;
CREATE INDEX decisions_latency
    ON decisions (experiment_id, period, arm, source, ts, latency_ms)
-- ;;
CREATE INDEX decisions_unmatured ON decisions (ts) WHERE matured = 0
-- ;;
CREATE INDEX looks_by_time ON looks (experiment_id, ts)
-- ;;
