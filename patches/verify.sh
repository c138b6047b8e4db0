#!/usr/bin/env bash
# Checks that each carried crate under patches/ (pingora-core and pingora-http
# 0.9.1, mimalloc 0.1.52) is the published release plus exactly
# patches/<crate>.diff, so a carried patch cannot drift from what README.md
# describes. `--write` regenerates the diffs from the trees.
set -euo pipefail
cd "$(dirname "$0")"
CRATES="pingora-core@0.9.1 pingora-http@0.9.1 mimalloc@0.1.52"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The stock crates, fetched (not built): Pingora's through the floor-stock
# bench, which depends on stock Pingora; mimalloc's through a throwaway
# manifest that pins the release (the gateway's lockfile names the carried
# copy, so cargo never fetches the published one for it).
cargo fetch --locked -q --manifest-path ../benches/floor-stock/Cargo.toml
mkdir -p "$tmp/stock/src"
touch "$tmp/stock/src/lib.rs"
printf '[package]\nname = "stock"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[dependencies]\nmimalloc = { version = "=0.1.52", default-features = false }\n' \
  >"$tmp/stock/Cargo.toml"
cargo fetch -q --manifest-path "$tmp/stock/Cargo.toml"
status=0
for spec in $CRATES; do
  crate=${spec%@*} VERSION=${spec#*@}
  stock=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$crate-$VERSION" 2>/dev/null | head -1)
  [ -d "$stock" ] || { echo "verify: stock $crate $VERSION not found after cargo fetch" >&2; exit 1; }
  rm -rf "$tmp/a" "$tmp/b"
  mkdir "$tmp/a" "$tmp/b"
  for d in "$stock" "$crate"; do
    dest=$tmp/$([ "$d" = "$crate" ] && echo b || echo a)
    # Not carried: a crate's examples and bench (pingora-core's hold test
    # keys), its lockfile, its git and CI files (mimalloc's) and cargo's
    # bookkeeping; the manifest's hunk that drops their targets is part of
    # the diff.
    (cd "$d" && tar --exclude=./examples --exclude=./benches --exclude=Cargo.toml.orig \
      --exclude=./.github --exclude=./.gitmodules --exclude=./.gitignore \
      --exclude=Cargo.lock --exclude=.cargo-ok --exclude=.cargo_vcs_info.json -cf - .) | tar -xf - -C "$dest"
  done
  (cd "$tmp" && git diff --no-index --no-prefix --no-color a b | sed -e 's|^diff --git a/\(.*\) b/.*|diff --git a/\1 b/\1|' || true) >"$tmp/now.diff"
  if [ "${1:-}" = --write ]; then
    cp "$tmp/now.diff" "$crate.diff"
    echo "verify: wrote $crate.diff ($(grep -c '^diff ' "$crate.diff") files)"
  elif ! cmp -s "$tmp/now.diff" "$crate.diff"; then
    echo "verify: patches/$crate differs from $crate $VERSION + $crate.diff:" >&2
    diff "$tmp/now.diff" "$crate.diff" | head -40 >&2
    status=1
  else
    echo "verify: patches/$crate = $crate $VERSION + $crate.diff ($(grep -c '^diff ' "$crate.diff") files)"
  fi
done
exit $status
