#!/usr/bin/env bash
# Runs every cargo-fuzz target of drio-gateway (README: "Fuzzing").
#   bash fuzz/run.sh [executions-per-target]   # default 1000000
#   bash fuzz/run.sh --smoke                   # ~3 s per target over the corpus (CI)
# Builds once (nightly, release with debug assertions; no sanitizer: the
# crate forbids unsafe code, and what we look for is panics and hangs), then
# runs each target on a scratch copy of fuzz/corpus/<target> (the committed
# corpus stays small) and prints executions, execs/s, crashes, timeouts and
# peak RSS from libFuzzer's final stats. Exits non-zero on any crash or
# timeout; the input is kept in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

runs=1000000
mode=long
case "${1:-}" in
  --smoke) mode=smoke ;;
  "") ;;
  *[!0-9]*) echo "usage: $0 [executions-per-target | --smoke]" >&2; exit 2 ;;
  *) runs=$1 ;;
esac

targets=(config redirect_uri client_metadata token_params jwt jsonrpc bearer store_records router)
build=(cargo +nightly fuzz build -O --debug-assertions --sanitizer none)
echo "== ${build[*]}"
start=$(date +%s)
"${build[@]}"
echo "== build took $(( $(date +%s) - start )) s"

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
bin_dir=$target_dir/x86_64-unknown-linux-gnu/release
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

if [ $mode = smoke ]; then
  limits=(-max_total_time=3)
else
  limits=(-runs="$runs")
fi

failed=0
rows=()
for t in "${targets[@]}"; do
  mkdir -p "artifacts/$t" "$scratch/$t"
  rm -f artifacts/"$t"/{crash,timeout,oom,leak}-*
  log="$scratch/$t.log"
  set +e
  "$bin_dir/$t" "${limits[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "$scratch/$t" "corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n1; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  rss=$(stat peak_rss_mb)
  crashes=$(find "artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'leak-*' | wc -l)
  timeouts=$(find "artifacts/$t" -name 'timeout-*' | wc -l)
  if [ $rc -ne 0 ] || [ "$crashes" -gt 0 ] || [ "$timeouts" -gt 0 ]; then
    failed=1
    [ "$crashes" -gt 0 ] || [ "$timeouts" -gt 0 ] || crashes="rc=$rc"
    echo "== $t FAILED; last lines of its log:" >&2
    tail -n 40 "$log" >&2
  fi
  rows+=("$(printf '%-16s %12s %10s %8s %9s %9s' "$t" "${execs:-?}" "${rate:-?}" "$crashes" "$timeouts" "${rss:-?}MB")")
  echo "${rows[-1]}"
done

echo
printf '%-16s %12s %10s %8s %9s %9s\n' target executions execs/s crashes timeouts peak_rss
printf '%s\n' "${rows[@]}"
exit $failed
