#!/usr/bin/env bash
# Start PostgreSQL in the dev StatefulSet; on an empty volume, first create the cluster, the
# role $POSTGRES_USER (password from $POSTGRES_PASSWORD_FILE, or $POSTGRES_PASSWORD; owner of
# database $POSTGRES_DB) and allow password (scram-sha-256) connections from the network.
# The image is CloudNativePG's
# PostgreSQL (PGDG packages on Debian, no docker-entrypoint), so this does what the Docker
# Hub image's entrypoint would. tests/deploy runs it against a real PostgreSQL.
set -euo pipefail
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi
: "${PGDATA:?}" "${POSTGRES_USER:?}" "${POSTGRES_PASSWORD:?}" "${POSTGRES_DB:?}"
for name in POSTGRES_USER POSTGRES_DB; do
  if [[ ! ${!name} =~ ^[a-z_][a-z0-9_]*$ ]]; then
    echo "start.sh: $name must be a plain lower-case identifier" >&2; exit 2
  fi
done
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  # The bootstrap superuser is the OS user (single-user mode below connects as it); it has no
  # password and may log in over the local socket only (peer).
  initdb -D "$PGDATA" --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  printf "CREATE ROLE \"%s\" LOGIN PASSWORD '%s'\n" "$POSTGRES_USER" \
    "${POSTGRES_PASSWORD//\'/\'\'}" >"$pwfile"
  printf 'CREATE DATABASE "%s" OWNER "%s"\n' "$POSTGRES_DB" "$POSTGRES_USER" >>"$pwfile"
  postgres --single -D "$PGDATA" -c listen_addresses='' template1 <"$pwfile" >/dev/null
  {
    echo "host all all 0.0.0.0/0 scram-sha-256"
    echo "host all all ::/0 scram-sha-256"
  } >>"$PGDATA/pg_hba.conf"
  echo "start.sh: initialised $PGDATA (role $POSTGRES_USER, database $POSTGRES_DB)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c "port=${PGPORT:-5432}" \
  -c unix_socket_directories="${PGSOCKET:-/var/run/postgresql}"
