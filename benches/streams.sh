#!/usr/bin/env bash
# Many concurrent SSE streams through the gateway: for each N in COUNTS, N
# clients hold a GET event stream (upstream: benches/sse_bench.rs, one event
# per stream every EVERY_MS) for HOLD seconds; prints the gateway's RSS per
# open stream (RSS with N open minus RSS before, over N), drio_open_streams,
# events received and whether every stream got its events in order.
#
#   bash benches/streams.sh
#   COUNTS="1000 5000 10000" HOLD=30 bash benches/streams.sh
#   COUNTS="1000 5000" PROTO=h1 bash benches/streams.sh
#
# Environment (all optional): COUNTS ("1000 5000 10000"), HOLD (20 s),
# EVERY_MS (1000), THREADS (2, the gateway's), RAMP (2000 new streams per
# second), PROTO (h1 or h2, see below), GATEWAY_BIN and SSE_BIN (skip the
# build), KEEP_TMP=1.
#
# PROTO=h1: one HTTP/1.1 connection per stream, so the gateway holds two
# descriptors per stream (client and upstream side). PROTO=h2: the gateway
# runs with `[server] h2c = true` and the streams are HTTP/2 streams, 100 per
# connection (ceil(N/100) client connections), so it holds about N + N/100.
# The default is h2 when the largest N would need more descriptors over
# HTTP/1.1 than the hard `ulimit -n` allows, else h1.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=streams
. benches/lib/common.sh

COUNTS=${COUNTS:-"1000 5000 10000"}
HOLD=${HOLD:-20}
EVERY_MS=${EVERY_MS:-1000}
THREADS=${THREADS:-2}
RAMP=${RAMP:-2000}
need_tools curl:curl

# Over HTTP/1.1 each stream is one client socket and one upstream socket in the
# gateway; over h2 the client sockets are shared, 100 streams each. The
# upstream (a process of its own) holds one socket per stream either way.
max=0; for n in $COUNTS; do ((n > max)) && max=$n; done
h1_want=$((max * 2 + 4096))
hard=$(ulimit -Hn)
if [ -z "${PROTO:-}" ]; then
  if [ "$hard" != unlimited ] && ((h1_want > hard)); then PROTO=h2; else PROTO=h1; fi
fi
case $PROTO in
  h1) want=$h1_want; H2C=false; CLIENT_FLAGS=() ;;
  h2) want=$((max + max / 100 + 4096)); H2C=true; CLIENT_FLAGS=(--h2) ;;
  *) die "PROTO must be h1 or h2, not $PROTO" ;;
esac
ulimit -n "$want" 2>/dev/null || ulimit -n "$hard" || true
(($(ulimit -n) >= want)) || echo "== warning: ulimit -n is $(ulimit -n), $want wanted; raise the hard limit (e.g. /etc/security/limits.conf) for N=$max over $PROTO"

if [ -n "${SSE_BIN:-}" ] && [ -n "${GATEWAY_BIN:-}" ]; then :; else
  build_gateway --example sse_bench
  SSE_BIN=${SSE_BIN:-"$OUT/examples/sse_bench"}
fi

free_port UP; free_port GW; free_port ADMIN
start upstream INT "$TMP/upstream.log" "$SSE_BIN" upstream "127.0.0.1:$UP" "$EVERY_MS"
wait_for sse-upstream "$LAST_PID" "$UP" /ready "$TMP/upstream.log"
{
  gateway_toml_head "http://127.0.0.1:$GW" "$(embedded_storage "$TMP/gateway.redb")" "h2c = $H2C"
  cat <<EOF
[[apps]]
id = "app_sse"
slug = "sse"
upstream = "http://127.0.0.1:$UP"
public = true
EOF
} >"$TMP/gateway.toml"
start gateway INT "$TMP/gateway.log" "$GATEWAY_BIN" --config "$TMP/gateway.toml"
GW_PID=$LAST_PID
wait_for drio-gateway "$GW_PID" "$ADMIN" /readyz "$TMP/gateway.log"
URL="http://127.0.0.1:$GW/apps/sse/mcp"

open_streams() { curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^drio_open_streams / {print $2}'; }

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; gateway threads $THREADS; an event every $EVERY_MS ms per stream; hold $HOLD s; $PROTO"
echo "| proto | streams | open (gateway) | gateway fds | RSS before MiB | RSS open MiB | KiB per stream | events | out of order | failed |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in $COUNTS; do
  read -r rss0 _ < <(proc_stats "$GW_PID")
  "$SSE_BIN" clients "${CLIENT_FLAGS[@]}" "$URL" "$n" "$HOLD" "$RAMP" >"$TMP/clients-$n.txt" 2>&1 &
  cpid=$!
  # Sample once every stream had time to open (ramp), halfway through the rest.
  ramp_s=$(( (n + RAMP - 1) / RAMP ))
  sleep $(( ramp_s + (HOLD - ramp_s) / 2 ))
  read -r rss1 fds < <(proc_stats "$GW_PID")
  opened=$(open_streams)
  wait "$cpid" || true
  res=$(grep '^SSE_RESULT' "$TMP/clients-$n.txt" || echo "SSE_RESULT open=0 events=0 out_of_order=? failed=?")
  eval "${res#SSE_RESULT }"
  awk -v p="$PROTO" -v n="$n" -v o="$opened" -v fd="$fds" -v a="$rss0" -v b="$rss1" -v ev="$events" -v ooo="$out_of_order" -v f="$failed" 'BEGIN {
    printf "| %s | %d | %s | %s | %.1f | %.1f | %.1f | %s | %s | %s |\n", p, n, o, fd, a / 1024, b / 1024, (o > 0 ? (b - a) / o : 0), ev, ooo, f }'
  # Let the gateway notice the closed streams before the next size.
  for _ in $(seq 1 100); do [ "$(open_streams)" = 0 ] && break; sleep 0.2; done
done
