#!/usr/bin/env bash
# Fetch the official AsyncAPI 3.0.0 JSON Schema (npm package @asyncapi/specs) once, into var/, and print its path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${JIESU_VAR:-var}/asyncapi"
schema="$target/package/schemas/3.0.0.json"
if [ ! -s "$schema" ]; then
  command -v npm >/dev/null 2>&1 || { echo "[asyncapi] ERROR: npm is needed to fetch @asyncapi/specs; install Node.js and npm" >&2; exit 1; }
  mkdir -p "$target"
  echo "[asyncapi] fetching @asyncapi/specs from the npm registry" >&2
  (cd "$target" && npm pack --silent "@asyncapi/specs@6" >/dev/null && tar xzf asyncapi-specs-*.tgz) \
    || { echo "[asyncapi] ERROR: could not fetch @asyncapi/specs; check access to the npm registry" >&2; exit 1; }
fi
echo "$(cd "$(dirname "$schema")" && pwd)/$(basename "$schema")"
