#!/usr/bin/env bash
# The one command that sets up and runs every test (README: "Running the tests").
#   bash tests/run.sh
# Installs missing system packages (cmake for Pingora's build, redis-server for
# the store and token-cache tests), then runs the Rust unit and integration
# tests, then a short run of every fuzz target (fuzz/run.sh --smoke), then the
# browser tests of the pages (tests/browser) and the interop suite in
# tests/interop when present.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== cargo test"
cargo test --locked --all-targets --no-fail-fast 2>&1 | tee /tmp/drio-cargo-test.log
# cargo's exit status is what counts; tee hides it without pipefail.

echo "== fuzz smoke (each cargo-fuzz target ~3 s over its corpus; README: Fuzzing)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
bash fuzz/run.sh --smoke

if [ -f tests/browser/package.json ]; then
  echo "== browser tests (tests/browser: chromium + puppeteer-core + axe-core)"
  bash tests/browser/run.sh
fi

if [ -f tests/interop/package.json ]; then
  echo "== interop suite"
  bash tests/interop/run.sh
fi
