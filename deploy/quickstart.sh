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

upstream_pid=""
cleanup() { [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if command -v npx >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/3001) 2>/dev/null; then
  echo "== starting the example MCP server (@modelcontextprotocol/server-everything) on :3001"
  PORT=3001 npx -y @modelcontextprotocol/server-everything streamableHttp >/tmp/drio-everything.log 2>&1 &
  upstream_pid=$!
else
  echo "== not starting an example MCP server (no npx, or :3001 is taken); the app 'everything' expects one on 127.0.0.1:3001"
fi

echo "== drio-gateway on http://127.0.0.1:8080 (MCP: /apps/everything/mcp), metrics on http://127.0.0.1:9090/metrics"
./target/release/drio-gateway --config conf/gateway.toml
