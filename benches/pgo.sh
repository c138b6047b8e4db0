#!/usr/bin/env bash
# Profile-guided optimization (PGO) of the gateway and the Pingora floors:
# builds them instrumented, trains them on compare.sh's own load (every
# gateway path and the floor), merges the profile and builds them again
# with it. Prints where the optimized binaries are, ready for
#   GATEWAY_BIN=... FLOOR_BIN=... FLOOR_MI_BIN=... bash benches/compare.sh
#
#   bash benches/pgo.sh
#   TRAIN_SECONDS=10 bash benches/pgo.sh
#
# The gateway and the floors are trained on the same load and built with the
# same merged profile, so their ratios stay like for like. The profile
# fits the source it was made from: after a change, run this again.
#
# Environment (all optional):
#   TRAIN_SECONDS  seconds of load per target in the training run (default 5)
#   PROFILE        cargo profile (default production: fat LTO, one codegen unit)
#   KEEP_TMP=1     keep the temporary directory (the training run's log)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=pgo
. benches/lib/common.sh

TRAIN_SECONDS=${TRAIN_SECONDS:-5}
[[ $TRAIN_SECONDS =~ ^[0-9]+$ ]] && ((TRAIN_SECONDS > 0)) || die "TRAIN_SECONDS must be a whole number above 0"

# llvm-profdata must read the raw profiles of rustc's own LLVM: the rustup
# component, not a distribution's llvm-profdata of another version.
SYSROOT=$(rustc --print sysroot)
HOST=$(rustc -vV | awk '/^host:/ {print $2}')
PROFDATA="$SYSROOT/lib/rustlib/$HOST/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
  command -v rustup >/dev/null 2>&1 || die "needs rustup's llvm-tools component (llvm-profdata of rustc's LLVM)"
  echo "== rustup component add llvm-tools"
  rustup component add llvm-tools
fi
[ -x "$PROFDATA" ] || die "no llvm-profdata at $PROFDATA"

# An explicit --target keeps the flags off build scripts and proc macros,
# which would otherwise be instrumented too and write profiles while building.
# The raw profiles' directory is part of the instrumented build's flags: a
# fixed one lets cargo reuse that build from one run to the next.
BASE=${CARGO_TARGET_DIR:-target}
mkdir -p "$BASE/pgo"
RAW="$(realpath "$BASE/pgo")/raw"
rm -rf "$RAW"
mkdir -p "$RAW"
build() { # build TARGET_DIR RUSTFLAGS
  echo "== cargo build --profile $PROFILE --target $HOST (RUSTFLAGS=$2) into $1"
  RUSTFLAGS="$2" CARGO_TARGET_DIR="$1" cargo build --locked --profile "$PROFILE" --target "$HOST" \
    --bin drio-gateway --example floor_proxy --example floor_proxy_mimalloc
}

build "$BASE/pgo-generate" "-Cprofile-generate=$RAW"
GEN="$BASE/pgo-generate/$HOST/$PROFILE"

# The training load: the same requests compare.sh measures. Each process
# writes its raw profile when it exits (compare.sh stops them with SIGINT or
# SIGTERM, and each exits normally).
echo "== training: compare.sh, ${TRAIN_SECONDS} s per target"
GATEWAY_BIN="$GEN/drio-gateway" FLOOR_BIN="$GEN/examples/floor_proxy" \
  FLOOR_MI_BIN="$GEN/examples/floor_proxy_mimalloc" \
  TARGETS="floor floor+auth floor-mi gw-public gw-bearer gw-exchange" \
  ROUNDS=1 WARMUP=0 DURATION="$TRAIN_SECONDS" bash benches/compare.sh >"$TMP/train.log" 2>&1 || {
  tail -n 30 "$TMP/train.log" >&2
  die "the training run failed"
}
ls "$RAW"/*.profraw >/dev/null 2>&1 || die "the training run wrote no profile (did the proxies exit normally?)"
echo "== llvm-profdata merge ($(ls "$RAW"/*.profraw | wc -l) raw profiles)"
"$PROFDATA" merge -o "$RAW/merged.profdata" "$RAW"/*.profraw
# Named by its content: cargo rebuilds when RUSTFLAGS change, not when the
# file they name does, so a new profile gets a new name.
MERGED="$(realpath "$BASE/pgo")/merged-$(sha256sum "$RAW/merged.profdata" | cut -c1-16).profdata"
mv "$RAW/merged.profdata" "$MERGED"

build "$BASE/pgo-use" "-Cprofile-use=$MERGED"
USE="$BASE/pgo-use/$HOST/$PROFILE"
echo
echo "PGO binaries (profile $MERGED):"
echo "  GATEWAY_BIN=$USE/drio-gateway"
echo "  FLOOR_BIN=$USE/examples/floor_proxy"
echo "  FLOOR_MI_BIN=$USE/examples/floor_proxy_mimalloc"
