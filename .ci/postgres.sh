#!/usr/bin/env bash
# Install and start a local PostgreSQL for the store tests; idempotent.
# Prints the export line the test suite reads, e.g.:
#   eval "$(bash .ci/postgres.sh)"
# Everything else goes to stderr so eval sees only the export.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
DB_NAME="${DRIPLINE_PG_DB:-dripline_test}"
DB_USER="${DRIPLINE_PG_USER:-dripline}"
DB_PASSWORD="${DRIPLINE_PG_PASSWORD:-dripline-test}"

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
fi

# The first cluster Debian created (e.g. "15 main"); create one if there is none.
read -r PG_VERSION PG_CLUSTER < <(pg_lsclusters --no-header | awk 'NR==1 {print $1, $2}') || true
if [ -z "${PG_VERSION:-}" ]; then
    PG_VERSION="$(ls /usr/lib/postgresql | sort -n | tail -1)"
    PG_CLUSTER=main
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >&2
fi
PG_PORT="$(pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $3}')"
if ! pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $4}' | grep -q online; then
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >&2
fi

as_postgres() { (cd / && runuser -u postgres -- "$@"); }
for _ in $(seq 1 30); do
    as_postgres psql -p "$PG_PORT" -qAtc 'select 1' >/dev/null 2>&1 && break
    sleep 1
done
if ! as_postgres psql -p "$PG_PORT" -qAtc "select 1 from pg_roles where rolname='$DB_USER'" | grep -q 1; then
    as_postgres psql -p "$PG_PORT" -qc "create role $DB_USER login password '$DB_PASSWORD'" >&2
fi
if ! as_postgres psql -p "$PG_PORT" -qAtc "select 1 from pg_database where datname='$DB_NAME'" | grep -q 1; then
    as_postgres psql -p "$PG_PORT" -qc "create database $DB_NAME owner $DB_USER" >&2
fi
echo "export DRIPLINE_TEST_POSTGRES_URL=postgresql+psycopg://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME"
