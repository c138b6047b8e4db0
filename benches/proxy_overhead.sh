#!/usr/bin/env bash
# Proxy overhead: the same POST, at the same concurrency and for the same
# time, sent to a trivial upstream (nginx answering a fixed JSON-RPC result)
# directly and then through drio-gateway, with wrk. Prints requests/s, p50 and
# p99 for both and the ratio gateway/direct. Exits non-zero if any request
# failed (socket error or non-2xx/3xx answer) or a run completed none.
#
#   bash benches/proxy_overhead.sh
#   DURATION=30 CONNECTIONS=64 bash benches/proxy_overhead.sh
#
# Environment (all optional):
#   DURATION         seconds of load per run (default 10)
#   CONNECTIONS      concurrent connections (default 32)
#   WRK_THREADS      wrk threads (default 2, at most CONNECTIONS)
#   GATEWAY_THREADS  the gateway's [server] threads (default 2)
#   WARMUP           seconds of untimed load before each run (default 2; 0 = none)
#   GATEWAY_BIN      use this gateway binary instead of building one
#   PROFILE          cargo profile to build (default production; release builds quicker)
#   KEEP_TMP=1       keep the temporary directory (configs, logs, wrk output)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
GATEWAY_THREADS=${GATEWAY_THREADS:-2}
WARMUP=${WARMUP:-2}

NAME=proxy_overhead
. benches/lib/common.sh
for v in DURATION CONNECTIONS WRK_THREADS GATEWAY_THREADS WARMUP; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
((DURATION > 0)) || die "DURATION must be at least 1"
((CONNECTIONS > 0)) || die "CONNECTIONS must be at least 1"
((WRK_THREADS > 0)) || die "WRK_THREADS must be at least 1"
((WRK_THREADS <= CONNECTIONS)) || WRK_THREADS=$CONNECTIONS

need_tools wrk:wrk nginx:nginx curl:curl
NGINX=$(tool nginx)
build_gateway

free_port UP_PORT
free_port PROXY_PORT
free_port ADMIN_PORT

BODY='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
RESULT='{"jsonrpc":"2.0","id":1,"result":{}}'

# --- upstream: nginx answering a fixed JSON-RPC result -----------------------
nginx_conf nginx "
  server {
    listen 127.0.0.1:$UP_PORT;
    location /mcp {
      default_type application/json;
      return 200 '$RESULT';
    }
    location = /ready { return 200; }
  }"
start nginx TERM "$TMP/nginx/stdout.log" "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
wait_for nginx "$LAST_PID" "$UP_PORT" /ready "$TMP/nginx/error.log"

# --- the gateway in front of it ----------------------------------------------
cat >"$TMP/gateway.toml" <<EOF
public_url = "http://127.0.0.1:$PROXY_PORT"

[listen]
proxy = "127.0.0.1:$PROXY_PORT"
admin = "127.0.0.1:$ADMIN_PORT"

[server]
threads = $GATEWAY_THREADS
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1

[storage]
backend = "embedded"
path = "$TMP/gateway.redb"

[logging]
level = "warn"

[[apps]]
id = "app_bench"
slug = "bench"
name = "Benchmark upstream"
upstream = "http://127.0.0.1:$UP_PORT"
mcp_path = "/mcp"
public = true
EOF
# Pingora: SIGINT is its fast shutdown.
start drio-gateway INT "$TMP/gateway.log" "$GATEWAY_BIN" --config "$TMP/gateway.toml"
wait_for drio-gateway "$LAST_PID" "$ADMIN_PORT" /readyz "$TMP/gateway.log"

DIRECT_URL="http://127.0.0.1:$UP_PORT/mcp"
GATEWAY_URL="http://127.0.0.1:$PROXY_PORT/apps/bench/mcp"
check_post() { # check_post URL: one POST must answer 200 before the load
  local status
  status=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' --data "$BODY" "$1" || true)
  [ "$status" = 200 ] && return 0
  echo "proxy_overhead: POST $1 answered '${status:-nothing}', not 200; gateway log:" >&2
  tail -n 20 "$TMP/gateway.log" >&2 || true
  exit 1
}
check_post "$DIRECT_URL"
check_post "$GATEWAY_URL"

# --- wrk ---------------------------------------------------------------------
# The request, plus a done() hook printing the figures in a parseable line
# (latencies in microseconds).
cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT %d %d %d %d %d %d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOF

run_wrk() { # run_wrk NAME URL SECONDS
  timeout --foreground $(($3 + 30)) wrk --latency --timeout 5s -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${3}s" \
    -s "$TMP/post.lua" "$2" >"$TMP/wrk-$1.txt" 2>&1 || {
    echo "proxy_overhead: wrk against $2 failed:" >&2
    cat "$TMP/wrk-$1.txt" >&2
    exit 1
  }
}

echo "== upstream nginx on :$UP_PORT, drio-gateway on :$PROXY_PORT (${GATEWAY_THREADS} threads)"
echo "== wrk: POST, ${CONNECTIONS} connections, ${WRK_THREADS} threads, ${DURATION} s per run (warm-up ${WARMUP} s)"
if ((WARMUP > 0)); then
  run_wrk warmup-direct "$DIRECT_URL" "$WARMUP"
  run_wrk warmup-gateway "$GATEWAY_URL" "$WARMUP"
fi
echo "== direct:  $DIRECT_URL"
run_wrk direct "$DIRECT_URL" "$DURATION"
echo "== gateway: $GATEWAY_URL"
run_wrk gateway "$GATEWAY_URL" "$DURATION"

# --- report ------------------------------------------------------------------
result() {
  local line
  line=$(grep '^BENCH_RESULT ' "$TMP/wrk-$1.txt" | tail -n 1)
  [ -n "$line" ] || { echo "proxy_overhead: no result from wrk ($1):" >&2; cat "$TMP/wrk-$1.txt" >&2; exit 1; }
  echo "${line#BENCH_RESULT }"
}
direct=$(result direct)
gateway=$(result gateway)

echo
awk -v d="$direct" -v g="$gateway" 'BEGIN {
  split(d, D, " "); split(g, G, " ")
  # fields: requests duration_us p50_us p99_us socket_errors non_2xx_3xx
  drps = D[1] / (D[2] / 1e6); grps = G[1] / (G[2] / 1e6)
  printf "%-16s %12s %10s %10s %10s %10s\n", "", "requests/s", "p50 (ms)", "p99 (ms)", "requests", "errors"
  printf "%-16s %12.0f %10.3f %10.3f %10d %10d\n", "direct", drps, D[3] / 1000, D[4] / 1000, D[1], D[5] + D[6]
  printf "%-16s %12.0f %10.3f %10.3f %10d %10d\n", "gateway", grps, G[3] / 1000, G[4] / 1000, G[1], G[5] + G[6]
  printf "%-16s %12s %10s %10s\n", "gateway/direct", \
    (drps > 0 ? sprintf("%.2fx", grps / drps) : "-"), \
    (D[3] > 0 ? sprintf("%.2fx", G[3] / D[3]) : "-"), \
    (D[4] > 0 ? sprintf("%.2fx", G[4] / D[4]) : "-")
  printf "%-16s %12s %10.3f %10.3f\n", "added latency", "", (G[3] - D[3]) / 1000, (G[4] - D[4]) / 1000
}'

# Failed requests (socket errors, non-2xx/3xx answers) or an empty run make
# the figures meaningless: a gateway answering 502 fast would look great.
errors=$(awk -v d="$direct" -v g="$gateway" 'BEGIN { split(d, D, " "); split(g, G, " "); print D[5] + D[6] + G[5] + G[6] }')
empty=$(awk -v d="$direct" -v g="$gateway" 'BEGIN { split(d, D, " "); split(g, G, " "); print (D[1] + 0 == 0 || G[1] + 0 == 0) ? 1 : 0 }')
if [ "$errors" != 0 ] || [ "$empty" != 0 ]; then
  echo
  echo "proxy_overhead: FAILED: $errors requests failed (socket errors or non-2xx/3xx answers)$([ "$empty" != 0 ] && echo ', and a run completed no request'); the figures are invalid." >&2
  echo "  direct:  $(grep -E 'Socket errors|Non-2xx' "$TMP/wrk-direct.txt" | tr -s ' ' | paste -sd';' || true)" >&2
  echo "  gateway: $(grep -E 'Socket errors|Non-2xx' "$TMP/wrk-gateway.txt" | tr -s ' ' | paste -sd';' || true)" >&2
  exit 1
fi
