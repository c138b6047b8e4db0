#!/usr/bin/env bash
# Quick start: build and run the gateway on its embedded default (no Redis;
# state in ./data), with an example MCP server behind it when Node.js is
# available.   bash deploy/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cmake >/dev/null; then
  echo "== installing cmake (needed by Pingora's build)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake >/dev/null
fi

cargo build --release --locked

# [oauth] requires a secrets key (signing keys and identity-provider tokens are
# stored sealed with it). Made once, kept next to the data it protects.
if [ -z "${DRIO_SECRETS_KEY:-}" ]; then
  if [ ! -s data/secrets.key ]; then
    mkdir -p data
    (umask 077 && head -c 32 /dev/urandom | base64 >data/secrets.key)
    chmod 600 data/secrets.key
    echo "== created data/secrets.key, the DRIO_SECRETS_KEY sealing stored keys and tokens (keep it with data/; later runs reuse it)"
  fi
  DRIO_SECRETS_KEY="$(cat data/secrets.key)"
  export DRIO_SECRETS_KEY
fi

# npx runs the server as a child of its own: it is started in a session of
# its own (setsid), so its whole process group can be ended on the way out.
upstream_pid=""
cleanup() {
  if [ -n "$upstream_pid" ]; then
    kill -TERM -- "-$upstream_pid" 2>/dev/null || true
    upstream_pid=""
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

if command -v npx >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/3001) 2>/dev/null; then
  echo "== starting the example MCP server (@modelcontextprotocol/server-everything) on :3001"
  PORT=3001 setsid npx -y @modelcontextprotocol/server-everything streamableHttp >/tmp/drio-everything.log 2>&1 &
  upstream_pid=$!
else
  echo "== not starting an example MCP server (no npx, or :3001 is taken); the app 'everything' expects one on 127.0.0.1:3001"
fi

echo "== drio-gateway on http://127.0.0.1:8080 (MCP: /apps/everything/mcp), metrics on http://127.0.0.1:9090/metrics"
./target/release/drio-gateway --config conf/gateway.toml
