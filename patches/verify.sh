#!/usr/bin/env bash
# Checks that patches/pingora-core is crates.io's pingora-core 0.9.1 plus
# exactly patches/pingora-core.diff, so the carried patch cannot drift from
# what README.md describes. `--write` regenerates the diff from the tree.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=0.9.1
# The stock crate, fetched (not built) through the floor-stock bench, which
# depends on stock Pingora.
cargo fetch --locked -q --manifest-path ../benches/floor-stock/Cargo.toml
stock=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/pingora-core-$VERSION 2>/dev/null | head -1)
[ -d "$stock" ] || { echo "verify: stock pingora-core $VERSION not found after cargo fetch" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/a" "$tmp/b"
for d in "$stock" pingora-core; do
  dest=$tmp/$([ "$d" = pingora-core ] && echo b || echo a)
  # Not carried: the crate's examples and bench (with test keys), its lockfile
  # and cargo's bookkeeping; the manifest's hunk that drops their targets is
  # part of the diff.
  (cd "$d" && tar --exclude=./examples --exclude=./benches --exclude=Cargo.toml.orig \
    --exclude=Cargo.lock --exclude=.cargo-ok --exclude=.cargo_vcs_info.json -cf - .) | tar -xf - -C "$dest"
done
(cd "$tmp" && git diff --no-index --no-prefix --no-color a b | sed -e 's|^diff --git a/\(.*\) b/.*|diff --git a/\1 b/\1|' -e 's|^--- a/|--- a/|' -e 's|^+++ b/|+++ b/|' || true) >"$tmp/now.diff"
if [ "${1:-}" = --write ]; then
  cp "$tmp/now.diff" pingora-core.diff
  echo "verify: wrote pingora-core.diff ($(grep -c '^diff ' pingora-core.diff) files)"
  exit 0
fi
if ! cmp -s "$tmp/now.diff" pingora-core.diff; then
  echo "verify: patches/pingora-core differs from pingora-core $VERSION + pingora-core.diff:" >&2
  diff "$tmp/now.diff" pingora-core.diff | head -40 >&2
  exit 1
fi
echo "verify: patches/pingora-core = pingora-core $VERSION + pingora-core.diff ($(grep -c '^diff ' pingora-core.diff) files)"
