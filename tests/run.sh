#!/usr/bin/env bash
# The one command that sets up and runs every test (README: "Running the tests").
#   bash tests/run.sh
# Installs missing system packages (cmake for Pingora's build, redis-server for
# the store and token-cache tests, prometheus for promtool and the monitoring
# interop case), checks the alert rules with promtool, then runs the Rust unit and integration
# tests, then a short run of every fuzz target (fuzz/run.sh --smoke), then the
# browser tests of the pages (tests/browser) and the interop suite in
# tests/interop when present.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v redis-server >/dev/null || need+=(redis-server)
# ss: the upstream-write tests count the gateway's TCP segments with it.
command -v ss >/dev/null || need+=(iproute2)
# promtool (alert rules) and the Prometheus server the interop suite scrapes
# the gateway with. Debian's package: ~19 MB download, ~96 MB installed, ~10 s.
# (Without recommends: they would add prometheus-node-exporter.)
lean=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || lean+=(prometheus)
if [ $((${#need[@]} + ${#lean[@]})) -gt 0 ]; then
  echo "== installing ${need[*]} ${lean[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  [ ${#lean[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
fi

echo "== promtool check rules (README: Monitoring)"
promtool check rules deploy/prometheus/alerts.yml

echo "== the carried patches are exactly patches/<crate>.diff: pingora-core, pingora-http, mimalloc (patches/README.md)"
bash patches/verify.sh

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
