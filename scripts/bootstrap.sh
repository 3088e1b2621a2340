#!/usr/bin/env bash
# Install uv if it is missing, then the project's locked dependencies into .venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
  echo "[bootstrap] installing uv with pip" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv \
    || { echo "[bootstrap] ERROR: could not install uv; install it (pip install uv) and retry" >&2; exit 1; }
fi
UV="$(command -v uv || echo "python3 -m uv")"
echo "[bootstrap] syncing dependencies from uv.lock" >&2
$UV sync --frozen --quiet
