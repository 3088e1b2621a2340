#!/usr/bin/env bash
# The whole test run: dependencies, lint, real PostgreSQL and Kafka, then every test.
# Servers this script starts are stopped at the end; servers already running are left running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
UV="$(command -v uv || echo "python3 -m uv")"

echo "[test] make lint: ruff and mypy --strict" >&2
make --no-print-directory lint

started=()
cleanup() {
  for server in "${started[@]}"; do scripts/"$server".sh stop || true; done
}
trap cleanup EXIT
for server in postgres kafka; do
  if ! scripts/"$server".sh status >/dev/null 2>&1; then
    echo "[test] starting $server" >&2
    scripts/"$server".sh start
    started+=("$server")
  fi
done

JIESU_TEST_PG_URL="$(scripts/postgres.sh url)"
JIESU_TEST_KAFKA="$(scripts/kafka.sh bootstrap)"
JIESU_TEST_ASYNCAPI_SCHEMA="$(scripts/asyncapi-schema.sh)"
export JIESU_TEST_PG_URL JIESU_TEST_KAFKA JIESU_TEST_ASYNCAPI_SCHEMA
echo "[test] pytest against PostgreSQL and Kafka at $JIESU_TEST_KAFKA" >&2
$UV run pytest "$@"
