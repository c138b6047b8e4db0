#!/usr/bin/env bash
# The gateway against the alternatives, on one machine, in one run: the same
# wrk load (POST of a 100-byte JSON-RPC tools/call) sent to
#   direct      the upstream (nginx answering a fixed JSON result)
#   nginx       nginx as a plain reverse proxy (1 worker, upstream keepalive 64)
#   haproxy     haproxy as a plain reverse proxy (nbthread 1, http-reuse always)
#   floor-stock the smallest Pingora proxy (benches/floor_proxy.rs, 1 thread)
#               on stock Pingora 0.9.1 (benches/floor-stock/)
#   floor       the same proxy on the gateway's patched pingora-core
#               (patches/): the floor every ratio is taken against
#   floor-mi    the floor with the gateway's allocator (mimalloc;
#               benches/floor_proxy_mimalloc.rs): what the allocator alone
#               is worth
#   gw-public   drio-gateway, a public app (threads = 1)
#   gw-bearer   drio-gateway, a protected app: RS256 bearer (L1 cache hit)
#               + an API key injected (the upstream refuses requests without it)
#   gw-exchange drio-gateway, a protected app with a per-user credential: the
#               user's token exchanged (RFC 8693) at an STS once, then the
#               per-(connection, user) cache hit injects it
#   X+auth      target X (nginx, haproxy, floor, floor-mi) sent gw-bearer's
#               exact request, its ~800-byte Authorization header included,
#               which a plain proxy forwards: the same-request baseline that
#               the "same request" columns compare gw-bearer with
# interleaved (each round runs every target once), ROUNDS rounds, printing
# req/s, p50, p99 and the ratios vs direct, nginx and the floor of the same
# round as a Markdown table. Exits non-zero when any request failed.
#
#   bash benches/compare.sh
#   DURATION=8 ROUNDS=2 CONNECTIONS=32 bash benches/compare.sh
#
# Environment (all optional): DURATION (8 s), ROUNDS (2), CONNECTIONS (32),
# WRK_THREADS (1), THREADS (1: every proxy's worker threads), WARMUP (2 s per
# target and round), TARGETS (space-separated subset), GATEWAY_BIN and
# FLOOR_BIN and FLOOR_MI_BIN (skip the build), STOCK_FLOOR_BIN (skip that
# build), PROFILE (production: the cargo profile every Rust proxy is built
# in, fat LTO; release for the quicker build), KEEP_TMP=1,
# INSTRUMENT=callgrind, PERF=1, PIN=1.
#
# PIN=1 (2 or more cores) pins every proxy (all its threads and workers) to
# the last core and the upstream and wrk to the others (taskset), so each
# target runs with the same placement: without it the scheduler moves the
# proxy, the load generator and the upstream between cores from one round
# to the next, and the same binary's CPU time per request moves with it.
#
# INSTRUMENT=callgrind runs every proxy (not the upstream) under valgrind's
# callgrind and reports instructions per request (all of the proxy's threads
# and processes, counters zeroed after the warm-up) instead of CPU time. On a
# shared machine req/s and CPU time move by a third between rounds; the
# instruction count of the same binary and load does not, so its ratios are
# the ones to trust for "at the floor". req/s and latency are then
# valgrind's, meaningless; only the Ir columns count.
#
#   INSTRUMENT=callgrind DURATION=10 ROUNDS=1 bash benches/compare.sh
#
# PERF=1 (without INSTRUMENT) also samples each proxy with `perf record -e
# cpu-clock` (user and kernel, every thread and worker process) over its
# measured window, and prints, per target, the functions that cost the most
# CPU time per request (µs/req = samples / PERF_FREQ / requests the
# upstream received). Natively, unlike under callgrind, it sees what costs
# time without costing instructions (atomics, cache misses, the kernel).
# PERF_FREQ (2999 Hz), PERF_TOP (25 functions per target). PERF_ARGS adds
# `perf record` arguments, e.g. "--call-graph dwarf" to ask `perf report -G`
# (on the data kept with KEEP_TMP=1) who calls a function.
#
#   PERF=1 TARGETS="floor+auth gw-public gw-bearer" ROUNDS=3 bash benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=compare
. benches/lib/common.sh
. benches/lib/jwt.sh

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2}
TARGETS=${TARGETS:-"direct nginx nginx+auth haproxy floor-stock floor floor+auth floor-mi gw-public gw-bearer gw-exchange"}
# wants T: T or T+auth is among the targets (so its server must run).
wants() { [[ " $TARGETS " == *" $1 "* || " $TARGETS " == *" $1+auth "* ]]; }
for v in DURATION ROUNDS CONNECTIONS WRK_THREADS THREADS WARMUP; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done

need_tools wrk:wrk nginx:nginx haproxy:haproxy curl:curl openssl:openssl
INSTRUMENT=${INSTRUMENT:-}
VG=() # the prefix of every proxy's command line
case $INSTRUMENT in
  "") ;;
  callgrind)
    need_tools valgrind:valgrind
    mkdir -p "$TMP/cg"
    VG=(valgrind --tool=callgrind --dump-instr=no --compress-strings=no --compress-pos=no
      "--callgrind-out-file=$TMP/cg/%p.cg")
    WAIT_TRIES=900 # startup under valgrind takes tens of seconds
    ;;
  *) die "INSTRUMENT must be empty or callgrind (got '$INSTRUMENT')" ;;
esac
PERF=${PERF:-0}
PERF_FREQ=${PERF_FREQ:-2999}
PERF_TOP=${PERF_TOP:-25}
if [ "$PERF" = 1 ]; then
  [ -z "$INSTRUMENT" ] || die "PERF=1 samples native runs: leave INSTRUMENT empty"
  [[ $PERF_FREQ =~ ^[0-9]+$ && $PERF_TOP =~ ^[0-9]+$ ]] || die "PERF_FREQ and PERF_TOP must be whole numbers"
  need_tools perf:linux-perf
  mkdir -p "$TMP/perf"
fi
PIN=${PIN:-0}
PX=() # the prefix of every proxy's command line (PIN=1: its core)
LOAD=() # of the upstream's and wrk's
if [ "$PIN" = 1 ]; then
  need_tools taskset:util-linux
  last=$(($(nproc) - 1))
  ((last > 0)) || die "PIN=1 needs 2 or more cores"
  PX=(taskset -c "$last")
  LOAD=(taskset -c "0-$((last - 1))")
elif [ "$PIN" != 0 ]; then
  die "PIN must be 0 or 1 (got '$PIN')"
fi
VG=("${PX[@]}" "${VG[@]}")
NGINX=$(tool nginx)
HAPROXY=$(tool haproxy)

wants floor-mi || FLOOR_MI_BIN=${FLOOR_MI_BIN:-unused}
if [ -n "${FLOOR_BIN:-}" ] && [ -n "${FLOOR_MI_BIN:-}" ] && [ -n "${GATEWAY_BIN:-}" ]; then
  [ -x "$FLOOR_BIN" ] || die "FLOOR_BIN=$FLOOR_BIN is not an executable"
  [ "$FLOOR_MI_BIN" = unused ] || [ -x "$FLOOR_MI_BIN" ] || die "FLOOR_MI_BIN=$FLOOR_MI_BIN is not an executable"
else
  build_gateway --example floor_proxy --example floor_proxy_mimalloc
  FLOOR_BIN=${FLOOR_BIN:-"$OUT/examples/floor_proxy"}
  FLOOR_MI_BIN=${FLOOR_MI_BIN:-"$OUT/examples/floor_proxy_mimalloc"}
fi
if wants floor-stock && [ -z "${STOCK_FLOOR_BIN:-}" ]; then
  # Its own workspace and lockfile (stock Pingora, no [patch]).
  echo "== building the stock-Pingora floor (benches/floor-stock)"
  cargo build --profile "$PROFILE" --locked -q --manifest-path benches/floor-stock/Cargo.toml \
    --target-dir "${CARGO_TARGET_DIR:-target}/floor-stock"
  STOCK_FLOOR_BIN="${CARGO_TARGET_DIR:-target}/floor-stock/$PROFILE/floor_stock"
fi

free_port UP; free_port NGX; free_port HAP; free_port FLOOR; free_port STOCK; free_port FLOORMI
free_port GW; free_port ADMIN
PUBLIC_URL="http://127.0.0.1:$GW"
ISSUER="https://bench-idp.invalid"
API_KEY="bench-key-$RANDOM$RANDOM"
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"xxxxx"}}}'
RESULT='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"xxxxx"}]}}'
jwt_init "$TMP/jwt"

# --- upstream: fixed JSON; /k/mcp only with the injected key; the JWKS -------
nginx_conf upstream "
  server {
    listen 127.0.0.1:$UP;
    location = /mcp { default_type application/json; return 200 '$RESULT'; }
    location = /k/mcp {
      if (\$http_x_api_key != '$API_KEY') { return 401; }
      default_type application/json; return 200 '$RESULT';
    }
    location = /x/mcp {
      if (\$http_authorization != 'Bearer bench-exchanged-token') { return 401; }
      default_type application/json; return 200 '$RESULT';
    }
    location = /sts {
      default_type application/json;
      return 200 '{\"access_token\":\"bench-exchanged-token\",\"token_type\":\"Bearer\",\"expires_in\":3600,\"issued_token_type\":\"urn:ietf:params:oauth:token-type:access_token\"}';
    }
    location = /jwks.json { default_type application/json; alias $TMP/jwt/jwks.json; }
    location = /ready { return 200; }
    location = /bench-status { stub_status; }
  }"
start upstream TERM "$TMP/upstream/stdout.log" "${LOAD[@]}" "$NGINX" -p "$TMP/upstream" -e "$TMP/upstream/error.log" -c "$TMP/upstream/nginx.conf"
UP_PID=$LAST_PID
wait_for upstream "$LAST_PID" "$UP" /ready "$TMP/upstream/error.log"

# --- nginx plain proxy ---------------------------------------------------------
nginx_conf proxy "
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection '';
    }
    location = /ready { return 200; }
  }"
sed -i "s/^worker_processes 1;/worker_processes $THREADS;/" "$TMP/proxy/nginx.conf"
# Under callgrind, one process (its control channel does not follow a fork).
[ -n "$INSTRUMENT" ] && sed -i "s/^daemon off;/daemon off;\nmaster_process off;/" "$TMP/proxy/nginx.conf"
start nginx TERM "$TMP/proxy/stdout.log" "${VG[@]}" "$NGINX" -p "$TMP/proxy" -e "$TMP/proxy/error.log" -c "$TMP/proxy/nginx.conf"
NGX_PID=$LAST_PID
wait_for nginx "$LAST_PID" "$NGX" /ready "$TMP/proxy/error.log"

# --- haproxy plain proxy -------------------------------------------------------
cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread $THREADS
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAP
  default_backend be
backend be
  server up 127.0.0.1:$UP maxconn 1000
EOF
start haproxy USR1 "$TMP/haproxy.log" "${VG[@]}" "$HAPROXY" -db -f "$TMP/haproxy.cfg"
HAP_PID=$LAST_PID
wait_for haproxy "$LAST_PID" "$HAP" /ready "$TMP/haproxy.log"

# --- the floor -------------------------------------------------------------------
start floor INT "$TMP/floor.log" "${VG[@]}" "$FLOOR_BIN" "127.0.0.1:$FLOOR" "127.0.0.1:$UP" "$THREADS"
FLOOR_PID=$LAST_PID
wait_for floor "$LAST_PID" "$FLOOR" /ready "$TMP/floor.log"
if wants floor-mi; then
  start floor-mi INT "$TMP/floor-mi.log" "${VG[@]}" "$FLOOR_MI_BIN" "127.0.0.1:$FLOORMI" "127.0.0.1:$UP" "$THREADS"
  FLOORMI_PID=$LAST_PID
  wait_for floor-mi "$LAST_PID" "$FLOORMI" /ready "$TMP/floor-mi.log"
fi
if wants floor-stock; then
  start floor-stock INT "$TMP/floor-stock.log" "${VG[@]}" "$STOCK_FLOOR_BIN" "127.0.0.1:$STOCK" "127.0.0.1:$UP" "$THREADS"
  STOCK_PID=$LAST_PID
  wait_for floor-stock "$LAST_PID" "$STOCK" /ready "$TMP/floor-stock.log"
fi

# --- the gateway -------------------------------------------------------------------
{
  gateway_toml_head "$PUBLIC_URL" "$(embedded_storage "$TMP/gateway.redb")"
  cat <<EOF

[auth]
issuer = "$ISSUER"
jwks_uri = "http://127.0.0.1:$UP/jwks.json"

[management]
admins = ["bench-admin"]

[security]
allow_upstream_cidrs = ["127.0.0.0/8"]

[[apps]]
id = "app_public"
slug = "public"
upstream = "http://127.0.0.1:$UP"
public = true

[[apps]]
id = "app_bearer"
slug = "bearer"
upstream = "http://127.0.0.1:$UP/k"

[[apps]]
id = "app_exchange"
slug = "exchange"
upstream = "http://127.0.0.1:$UP/x"
EOF
} >"$TMP/gateway.toml"
DRIO_SECRETS_KEY=$(openssl rand -base64 32)
export DRIO_SECRETS_KEY
start gateway INT "$TMP/gateway.log" "${VG[@]}" "$GATEWAY_BIN" --config "$TMP/gateway.toml"
GW_PID=$LAST_PID
wait_for drio-gateway "$GW_PID" "$ADMIN" /readyz "$TMP/gateway.log"

# The API key, as a user would add it (management API, admin token).
MGMT=$(jwt_mint "$ISSUER" bench-admin "$PUBLIC_URL")
status=$(curl -s -o "$TMP/auth.json" -w '%{http_code}' -m 10 -X POST \
  -H "Authorization: Bearer $MGMT" -H 'Content-Type: application/json' \
  -d "{\"name\":\"key\",\"config\":{\"type\":\"api_key\",\"headerName\":\"X-Api-Key\",\"apiKey\":\"$API_KEY\"}}" \
  "$PUBLIC_URL/api/v1/apps/app_bearer/auth")
[ "$status" = 201 ] || die "adding the API key answered $status: $(cat "$TMP/auth.json")"
TOKEN=$(jwt_mint "$ISSUER" bench-user "$PUBLIC_URL/apps/bearer/mcp")
status=$(curl -s -o "$TMP/auth2.json" -w '%{http_code}' -m 10 -X POST \
  -H "Authorization: Bearer $MGMT" -H 'Content-Type: application/json' \
  -d "{\"name\":\"sts\",\"config\":{\"type\":\"token_exchange\",\"tokenEndpoint\":\"http://127.0.0.1:$UP/sts\",\"audience\":\"bench\",\"clientId\":\"bench\",\"clientSecret\":\"bench-secret\"}}" \
  "$PUBLIC_URL/api/v1/apps/app_exchange/auth")
[ "$status" = 201 ] || die "adding the token exchange answered $status: $(cat "$TMP/auth2.json")"
XTOKEN=$(jwt_mint "$ISSUER" bench-user "$PUBLIC_URL/apps/exchange/mcp")

# --- wrk -------------------------------------------------------------------------
lua() { # lua FILE [AUTH]
  local auth=""
  [ -n "${2:-}" ] && auth="wrk.headers[\"Authorization\"] = \"Bearer $2\""
  cat >"$1" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
$auth
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %d %d %d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOF
}
lua "$TMP/plain.lua"
lua "$TMP/bearer.lua" "$TOKEN"
lua "$TMP/exchange.lua" "$XTOKEN"

# X+auth is target X with gw-bearer's request.
base_of() { echo "${1%+auth}"; }
url_of() {
  case $(base_of "$1") in
    direct) echo "http://127.0.0.1:$UP/mcp" ;;
    nginx) echo "http://127.0.0.1:$NGX/mcp" ;;
    haproxy) echo "http://127.0.0.1:$HAP/mcp" ;;
    floor) echo "http://127.0.0.1:$FLOOR/mcp" ;;
    floor-stock) echo "http://127.0.0.1:$STOCK/mcp" ;;
    floor-mi) echo "http://127.0.0.1:$FLOORMI/mcp" ;;
    gw-public) echo "$PUBLIC_URL/apps/public/mcp" ;;
    gw-bearer) echo "$PUBLIC_URL/apps/bearer/mcp" ;;
    gw-exchange) echo "$PUBLIC_URL/apps/exchange/mcp" ;;
    *) die "unknown target $1" ;;
  esac
}
# CPU time (clock ticks) of a process and its children (nginx's workers):
# on a shared machine req/s follows the CPU share the proxy happens to get,
# CPU time per request does not.
cpu_ticks() {
  local pid total=0 t
  for pid in $1 $(pgrep -P "$1" 2>/dev/null); do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
pid_of() {
  case $(base_of "$1") in
    direct) echo "$UP_PID" ;; nginx) echo "$NGX_PID" ;; haproxy) echo "$HAP_PID" ;;
    floor) echo "$FLOOR_PID" ;; floor-stock) echo "$STOCK_PID" ;; floor-mi) echo "$FLOORMI_PID" ;;
    *) echo "$GW_PID" ;;
  esac
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# INSTRUMENT=callgrind: the instructions of a process (every thread) since
# its counters were last zeroed.
cg_zero() { callgrind_control -z "$1" >/dev/null; }
cg_instructions() {
  local dump n
  callgrind_control -d "$1" >/dev/null
  dump=$(ls -t "$TMP/cg/$1.cg".* 2>/dev/null | head -n 1)
  [ -n "$dump" ] || die "no callgrind dump for pid $1"
  n=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  [ -n "$n" ] || die "no instruction total in $dump"
  echo "$n"
}
script_of() {
  case $1 in
    gw-bearer | *+auth) echo "$TMP/bearer.lua" ;;
    gw-exchange) echo "$TMP/exchange.lua" ;;
    *) echo "$TMP/plain.lua" ;;
  esac
}

# One request per target must answer 200 before any load.
for t in $TARGETS; do
  auth=()
  [ "$(script_of "$t")" = "$TMP/bearer.lua" ] && auth=(-H "Authorization: Bearer $TOKEN")
  [ "$t" = gw-exchange ] && auth=(-H "Authorization: Bearer $XTOKEN")
  s=$(curl -s -o "$TMP/check.txt" -w '%{http_code}' -m 5 -X POST "${auth[@]}" \
    -H 'Content-Type: application/json' -d "$BODY" "$(url_of "$t")")
  [ "$s" = 200 ] || die "$t answered $s, not 200: $(head -c 300 "$TMP/check.txt"); gateway log: $(tail -n 5 "$TMP/gateway.log")"
done

# The upstream's request counter (nginx stub_status; the status request
# itself included). Cost per request divides by what the upstream received
# in the measured window, not by what wrk completed: wrk leaves up to
# CONNECTIONS requests in flight when it stops, whose cost the proxy still
# pays, and under callgrind that is a percent or two of a slow run.
upstream_count() { curl -s -m 5 "http://127.0.0.1:$UP/bench-status" | awk 'NR == 3 { print $3 }'; }
run_wrk() { # run_wrk TARGET SECONDS OUT
  timeout --foreground $(($2 + 30)) "${LOAD[@]}" wrk --latency --timeout 5s -t "$WRK_THREADS" -c "$CONNECTIONS" \
    -d "${2}s" -s "$(script_of "$1")" "$(url_of "$1")" >"$3" 2>&1 ||
    { cat "$3" >&2; die "wrk against $1 failed"; }
}

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -srm)"
echo "== wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, POST ${#BODY} bytes; proxies with $THREADS thread(s); $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
  for t in $TARGETS; do
    ((WARMUP > 0)) && run_wrk "$t" "$WARMUP" "$TMP/warm-$t.txt"
    u0=$(upstream_count)
    if [ -n "$INSTRUMENT" ] && [ "$t" != direct ]; then
      cg_zero "$(pid_of "$t")"
      run_wrk "$t" "$DURATION" "$TMP/wrk-$r-$t.txt"
      cost=$(cg_instructions "$(pid_of "$t")")
    elif [ -n "$INSTRUMENT" ]; then
      run_wrk "$t" "$DURATION" "$TMP/wrk-$r-$t.txt"
      cost=0 # the upstream is not instrumented
    else
      perf_pid=""
      if [ "$PERF" = 1 ] && [ "$t" != direct ]; then
        p=$(pid_of "$t")
        # shellcheck disable=SC2086 # PERF_ARGS is a list of arguments
        perf record -q -e cpu-clock -F "$PERF_FREQ" ${PERF_ARGS:-} -o "$TMP/perf/$r-$t.data" \
          -p "$(echo "$p" $(pgrep -P "$p") | tr ' ' ,)" -- sleep "$DURATION" >/dev/null 2>&1 &
        perf_pid=$!
      fi
      c0=$(cpu_ticks "$(pid_of "$t")")
      run_wrk "$t" "$DURATION" "$TMP/wrk-$r-$t.txt"
      c1=$(cpu_ticks "$(pid_of "$t")")
      cost=$(((c1 - c0) * TICK_US))
      [ -z "$perf_pid" ] || wait "$perf_pid" || die "perf record failed for $t"
    fi
    u1=$(upstream_count)
    served=$((${u1:-0} - ${u0:-0} - 1))
    grep -q '^BENCH_RESULT' "$TMP/wrk-$r-$t.txt" || { cat "$TMP/wrk-$r-$t.txt" >&2; die "no result from wrk ($t)"; }
    grep '^BENCH_RESULT' "$TMP/wrk-$r-$t.txt" | sed "s/^BENCH_RESULT/$r $t/; s/\$/ $cost $served/" >>"$TMP/results.txt"
    echo "   round $r: $t done"
  done
done
echo "== gateway RSS (KiB) and open fds after the load: $(proc_stats "$GW_PID")"

# PERF=1: per target, the costliest functions in µs of CPU per request,
# summed over the rounds (samples / PERF_FREQ / requests served).
if [ "$PERF" = 1 ]; then
  for t in $TARGETS; do
    [ "$t" = direct ] && continue
    served=$(awk -v t="$t" '$2 == t { s += ($10 > 0 ? $10 : $3) } END { print s + 0 }' "$TMP/results.txt")
    for f in "$TMP"/perf/*-"$t".data; do
      perf report -i "$f" --no-children --sort dso,sym -F sample,dso,sym --stdio -q 2>/dev/null
    done | awk '$1 ~ /^[0-9]+$/ { n = $1; $1 = ""; sub(/^ +/, ""); s[$0] += n }
      END { for (k in s) print s[k] "\t" k }' | sort -t "$(printf '\t')" -k1,1nr >"$TMP/perf/$t.txt"
    awk -F '\t' -v t="$t" -v served="$served" -v freq="$PERF_FREQ" -v top="$PERF_TOP" '
      { n[NR] = $1; k[NR] = $2; total += $1 }
      END {
        if (served == 0 || total == 0) exit
        printf "\n%s: %.2f µs of CPU per request in %d samples (%d requests)\n\n", t, total / freq / served * 1e6, total, served
        print "| µs/req | share | dso and function |"
        print "| --- | --- | --- |"
        for (i = 1; i <= NR && i <= top; i++) printf "| %.3f | %.1f %% | %s |\n", n[i] / freq / served * 1e6, 100 * n[i] / total, k[i]
      }' "$TMP/perf/$t.txt"
  done
fi

# --- report ----------------------------------------------------------------------
echo
awk -v unit="$([ -n "$INSTRUMENT" ] && echo "Ir/req" || echo "CPU µs/req")" -v fmt="$([ -n "$INSTRUMENT" ] && echo "%.0f" || echo "%.1f")" '
  # fields: round target requests duration_us p50_us p99_us socket_errors non_2xx cost
  # served (cost: CPU µs, or instructions with INSTRUMENT; served: requests
  # the upstream received meanwhile, the divisor when known)
  { rps[$1, $2] = $3 / ($4 / 1e6); p50[$1, $2] = $5 / 1000; p99[$1, $2] = $6 / 1000
    per = $10 > 0 ? $10 : $3
    cpu[$1, $2] = per > 0 ? $9 / per : 0
    err[$1, $2] = $7 + $8; order[++n] = $1 SUBSEP $2; errors += $7 + $8 }
  function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "—" }
  function collect(t, k, a, b) { if (b > 0) list[t, k] = list[t, k] " " a / b }
  function median(l,   v, c, i, j, x) {
    c = split(l, v, " ")
    if (c == 0) return "—"
    for (i = 2; i <= c; i++) { x = v[i] + 0; for (j = i - 1; j > 0 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return sprintf("%.2f", c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2)
  }
  # The same-request baseline of a target: X+auth for gw-bearer (and for
  # X+auth itself), X otherwise.
  function same(r, t, x) { return (t == "gw-bearer" || t ~ /\+auth$/) && ((r, x "+auth") in rps) ? x "+auth" : x }
  END {
    print "| round | path | req/s | p50 ms | p99 ms | errors | vs direct | vs nginx | vs haproxy | vs floor | vs floor, same request | vs nginx, same request | " unit " | cost vs floor | cost vs floor-mi | cost vs nginx | cost vs floor, same request | cost vs nginx, same request |"
    print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for (i = 1; i <= n; i++) {
      split(order[i], k, SUBSEP); r = k[1]; t = k[2]; sf = same(r, t, "floor"); sn = same(r, t, "nginx")
      printf "| %s | %s | %.0f | %.2f | %.2f | %d | %s | %s | %s | %s | %s | %s | " fmt " | %s | %s | %s | %s | %s |\n", r, t, rps[r, t], p50[r, t], p99[r, t], err[r, t],
        ratio(rps[r, t], rps[r, "direct"]), ratio(rps[r, t], rps[r, "nginx"]),
        ratio(rps[r, t], rps[r, "haproxy"]), ratio(rps[r, t], rps[r, "floor"]),
        ratio(rps[r, t], rps[r, sf]), ratio(rps[r, t], rps[r, sn]),
        cpu[r, t], ratio(cpu[r, t], cpu[r, "floor"]), ratio(cpu[r, t], cpu[r, "floor-mi"]),
        ratio(cpu[r, t], cpu[r, "nginx"]), ratio(cpu[r, t], cpu[r, sf]), ratio(cpu[r, t], cpu[r, sn])
      if (!(t in seen)) { seen[t] = 1; targets[++nt] = t }
      collect(t, "rf", rps[r, t], rps[r, "floor"]); collect(t, "rsf", rps[r, t], rps[r, sf])
      collect(t, "rsn", rps[r, t], rps[r, sn]); collect(t, "cf", cpu[r, t], cpu[r, "floor"])
      collect(t, "csf", cpu[r, t], cpu[r, sf]); collect(t, "csn", cpu[r, t], cpu[r, sn])
      if (cpu[r, t] > 0 && (!((t) in best) || cpu[r, t] < best[t])) best[t] = cpu[r, t]
      if (rps[r, t] > top[t]) top[t] = rps[r, t]
      rounds = r
    }
    # With several rounds, the median of each round'"'"'s ratio: on a shared
    # machine single rounds disagree, paired ratios of one round less so.
    if (rounds > 1) {
      print ""
      print "Median over " rounds " rounds of each round'"'"'s ratio:"
      print ""
      print "| path | req/s vs floor | vs floor, same request | vs nginx, same request | cost vs floor | cost vs floor, same request | cost vs nginx, same request |"
      print "| --- | --- | --- | --- | --- | --- | --- |"
      for (i = 1; i <= nt; i++) {
        t = targets[i]
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", t, median(list[t, "rf"]), median(list[t, "rsf"]),
          median(list[t, "rsn"]), median(list[t, "cf"]), median(list[t, "csf"]), median(list[t, "csn"])
      }
      # The best round of each target: interference from the rest of a
      # shared machine only ever adds cost, so each target'"'"'s cheapest round
      # is its least disturbed one, and the ratio of two bests is steadier
      # than any single round'"'"'s.
      print ""
      print "Best round of each target (lowest cost, highest req/s) and the ratios of the bests:"
      print ""
      print "| path | best req/s | best " unit " | cost vs floor | cost vs floor, same request | cost vs nginx | cost vs nginx, same request |"
      print "| --- | --- | --- | --- | --- | --- | --- |"
      for (i = 1; i <= nt; i++) {
        t = targets[i]; bf = (t == "gw-bearer" || t ~ /\+auth$/) && ("floor+auth" in best) ? "floor+auth" : "floor"
        bn = (t == "gw-bearer" || t ~ /\+auth$/) && ("nginx+auth" in best) ? "nginx+auth" : "nginx"
        printf "| %s | %.0f | " fmt " | %s | %s | %s | %s |\n", t, top[t], best[t], ratio(best[t], best["floor"]),
          ratio(best[t], best[bf]), ratio(best[t], best["nginx"]), ratio(best[t], best[bn])
      }
    }
    exit(errors > 0)
  }' "$TMP/results.txt" || die "some requests failed (errors column): the figures are invalid"
