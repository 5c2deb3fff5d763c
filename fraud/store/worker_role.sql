-- The PostgreSQL role the API workers connect as: rows only, no DDL.
--
-- The ledger's tables, triggers and functions belong to the role that runs
-- `python -m fraud.store.migrate` (the database owner). Workers never change the schema
-- (fraud/store/version.py only reads it), so they get a role that cannot: it may read and
-- write the ledger's rows, read the schema version, and nothing else (no CREATE in the schema,
-- not the owner of anything, so no ALTER, DROP, TRUNCATE or trigger changes).
--
-- Run once per database, as the owner, after the first migration:
--   psql "$OWNER_URL" -v worker_password="$WORKER_PASSWORD" -f fraud/store/worker_role.sql
-- then give the workers FRAUDSERVE_LEDGER=postgresql://fraudserve_worker:...@host/db and the
-- migrator Job the owner's URL. Everything below is idempotent except CREATE ROLE (drop
-- that line to re-apply the grants to an existing role). tests/unit/store/test_pg_migrate.py
-- runs this file with psql against a real server.

CREATE ROLE fraudserve_worker LOGIN PASSWORD :'worker_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;

-- Nobody but the owner creates objects in the schema (PostgreSQL 15 and later already revoke
-- this from PUBLIC; earlier servers grant it). A cluster that revokes CONNECT from PUBLIC
-- also needs: GRANT CONNECT ON DATABASE <db> TO fraudserve_worker;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO fraudserve_worker;

-- The rows of every ledger table; the version table is the migrator's, workers only read it.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO fraudserve_worker;
REVOKE INSERT, UPDATE, DELETE ON schema_version FROM fraudserve_worker;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO fraudserve_worker;

-- Tables and sequences a later migration creates get the same rights, from the owner's
-- default privileges (so a migration never needs to grant anything itself).
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO fraudserve_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO fraudserve_worker;
