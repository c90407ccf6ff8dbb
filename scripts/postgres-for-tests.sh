#!/usr/bin/env bash
# Installs (if needed) and starts Debian's PostgreSQL on loopback, and creates the role the tests use.
# Prints the connection string; the tests read it from SERVE_TEST_POSTGRES and create a fresh database per
# test. Idempotent. Needs root (CI runs as root) and, when PostgreSQL is missing, Debian's package registry.
set -euo pipefail

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(pg_lsclusters --no-header 2>/dev/null)" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

read -r version cluster port _ < <(pg_lsclusters --no-header | head -n 1)
pg_ctlcluster "$version" "$cluster" start >&2 2>/dev/null || true
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.2
done
pg_isready -h 127.0.0.1 -p "$port" >&2

su postgres -c "psql -q -p $port -v ON_ERROR_STOP=1" >&2 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'serve_test') THEN
    CREATE ROLE serve_test LOGIN CREATEDB PASSWORD 'serve_test';
  END IF;
END
$$;
SQL

echo "Host=127.0.0.1;Port=$port;Username=serve_test;Password=serve_test;Database=postgres"
