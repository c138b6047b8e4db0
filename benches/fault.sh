#!/usr/bin/env bash
# Fault tests under load: steady MCP traffic through two gateways sharing one
# Redis while Redis, the identity provider and the upstream are killed and
# restarted, and gateway A is restarted gracefully twice (SIGTERM + start,
# then a zero-downtime upgrade: `--upgrade` + SIGQUIT). Prints per phase the
# requests sent, answered per status, refused, wrong answers, hangs and
# in-flight requests dropped, and a verdict; exits non-zero when a goal is
# missed (see benches/README.md, "Fault tests").
#
#   bash benches/fault.sh
#   PROFILE=release PHASE_SECONDS=5 bash benches/fault.sh
#
# Environment (all optional):
#   PROFILE          debug (default) or release: which build of the gateway to test
#   GATEWAY_BIN      test this binary instead of building one
#   PHASE_SECONDS    length of each phase (default 4)
#   CONCURRENCY      short requests in flight (default 8)
#   LONG             long requests in flight (default 4; each takes LONG_MS)
#   LONG_MS          upstream delay of a long request (default 3000; half are SSE streams)
#   TIMEOUT_MS       a request without a complete answer by then is a hang (default 10000)
#   FOLLOW_READYZ=0  send to both gateways always (default: like a load balancer,
#                    only to gateways whose /readyz answers 200, or to both when neither does)
#   KEEP_TMP=1       keep the temporary directory (configs, logs, the JSON report)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PROFILE=${PROFILE:-debug}
PHASE_SECONDS=${PHASE_SECONDS:-4}
CONCURRENCY=${CONCURRENCY:-8}
LONG=${LONG:-4}
LONG_MS=${LONG_MS:-3000}
TIMEOUT_MS=${TIMEOUT_MS:-10000}

die() { echo "fault: $*" >&2; exit 1; }
for v in PHASE_SECONDS CONCURRENCY LONG LONG_MS TIMEOUT_MS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
[[ $PROFILE == debug || $PROFILE == release ]] || die "PROFILE must be debug or release"

# --- tools -------------------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "needs ${missing[*]}: install with 'sudo apt-get install -y ${missing[*]}'"
  fi
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  die "needs Node.js 18 or later (has $(node --version))"

# --- the gateway binary ------------------------------------------------------
if [ -n "${GATEWAY_BIN:-}" ]; then
  [ -x "$GATEWAY_BIN" ] || die "GATEWAY_BIN=$GATEWAY_BIN is not an executable"
else
  echo "== cargo build ($PROFILE)"
  if [ "$PROFILE" = release ]; then cargo build --release --bin drio-gateway; else cargo build --bin drio-gateway; fi
  GATEWAY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/drio-gateway"
  [ -x "$GATEWAY_BIN" ] || die "no binary at $GATEWAY_BIN after the build"
fi

# --- temp dir, processes, cleanup --------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/drio-fault.XXXXXX")
declare -A PID=()

stop() { # stop NAME SIGNAL [SECONDS]: signal, wait for the exit, then SIGKILL
  local name=$1 sig=$2 secs=${3:-5} pid=${PID[$1]:-}
  PID[$name]=""
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((secs * 20))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  for name in driver gw_a gw_a_old gw_b; do stop "$name" INT 3; done
  for name in upstream idp redis; do stop "$name" KILL; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "== kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A loopback port nothing listens on (probed by connecting; a tiny race with
# other processes is possible, the bind then fails loudly).
used_ports=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    [[ $used_ports == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free loopback port found"
}
# Assign in this shell (a $(...) subshell would lose used_ports).
for v in REDIS_PORT IDP_PORT UP_PORT A_PROXY A_ADMIN B_PROXY B_ADMIN; do
  p=$(free_port)
  used_ports+="$p "
  printf -v "$v" %s "$p"
done

# HTTP status of a GET over bash's /dev/tcp: http_status PORT PATH
http_status() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
  IFS= read -r -t 5 line <&3 || line=""
  exec 3<&- 3>&-
  line=${line%$'\r'}
  echo "${line#* }" | cut -d' ' -f1
}
wait_for() { # wait_for NAME PORT PATH LOG: until GET answers 200 (30 s)
  local name=$1 port=$2 path=$3 log=$4
  for _ in $(seq 1 600); do
    kill -0 "${PID[$name]}" 2>/dev/null || { tail -n 30 "$log" >&2; die "$name exited during startup"; }
    [ "$(http_status "$port" "$path" 2>/dev/null || true)" = 200 ] && return 0
    sleep 0.05
  done
  tail -n 30 "$log" >&2
  die "$name did not answer $path on port $port within 30 s"
}
redis_ping() { # 0 when Redis answers PING
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=""
  exec 3<&- 3>&-
  [[ $line == +PONG* ]]
}

# --- services ----------------------------------------------------------------
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --protected-mode no >>"$TMP/redis.log" 2>&1 &
  PID[redis]=$!
  for _ in $(seq 1 200); do redis_ping && return 0; sleep 0.05; done
  die "redis-server did not answer PING"
}
start_idp() {
  node benches/fault/services.mjs idp "$IDP_PORT" "$TMP/idp-key.pem" >>"$TMP/idp.log" 2>&1 &
  PID[idp]=$!
  wait_for idp "$IDP_PORT" /jwks "$TMP/idp.log"
}
start_upstream() {
  node benches/fault/services.mjs upstream "$UP_PORT" >>"$TMP/upstream.log" 2>&1 &
  PID[upstream]=$!
  wait_for upstream "$UP_PORT" /ready "$TMP/upstream.log"
}

PUBLIC_URL="https://mcp.fault.test"
export DRIO_SECRETS_KEY DRIO_ADMIN_TOKEN
DRIO_SECRETS_KEY=$(head -c 32 /dev/urandom | base64)
DRIO_ADMIN_TOKEN="fault-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
gateway_config() { # gateway_config NAME PROXY ADMIN
  cat >"$TMP/$1.toml" <<EOF
public_url = "$PUBLIC_URL"

[listen]
proxy = "127.0.0.1:$2"
admin = "127.0.0.1:$3"
admin_token_env = "DRIO_ADMIN_TOKEN"

[server]
threads = 2
grace_period_seconds = 2
graceful_shutdown_timeout_seconds = 5
upgrade_sock = "$TMP/$1-upgrade.sock"

[storage]
backend = "redis"
url = "redis://127.0.0.1:$REDIS_PORT"
key_prefix = "fault:"

[logging]
level = "warn"
format = "json"

[auth]
issuer = "http://127.0.0.1:$IDP_PORT"
jwks_uri = "http://127.0.0.1:$IDP_PORT/jwks"

[[apps]]
id = "app_fault"
slug = "fault"
name = "Fault upstream"
upstream = "http://127.0.0.1:$UP_PORT"
mcp_path = "/mcp"
connect_timeout_ms = 1000
read_timeout_ms = $((LONG_MS + 5000))
EOF
}
start_gateway() { # start_gateway NAME PROXY ADMIN [--upgrade]: starts; waits unless upgrading
  "$GATEWAY_BIN" --config "$TMP/$1.toml" ${4:-} >>"$TMP/$1.log" 2>&1 &
  PID[$1]=$!
  [ -n "${4:-}" ] || wait_for "$1" "$3" /healthz "$TMP/$1.log"
}

echo "== redis :$REDIS_PORT, idp :$IDP_PORT, upstream :$UP_PORT, gateway A :$A_PROXY, gateway B :$B_PROXY ($GATEWAY_BIN)"
start_redis
start_idp
start_upstream
gateway_config gw_a "$A_PROXY" "$A_ADMIN"
gateway_config gw_b "$B_PROXY" "$B_ADMIN"
start_gateway gw_a "$A_PROXY" "$A_ADMIN"
start_gateway gw_b "$B_PROXY" "$B_ADMIN"

# --- the driver --------------------------------------------------------------
cat >"$TMP/driver.json" <<EOF
{"gateways": {"A": "http://127.0.0.1:$A_PROXY", "B": "http://127.0.0.1:$B_PROXY"},
 "admins": {"A": "http://127.0.0.1:$A_ADMIN", "B": "http://127.0.0.1:$B_ADMIN"},
 "mcpPath": "/apps/fault/mcp", "idp": "http://127.0.0.1:$IDP_PORT", "aud": "$PUBLIC_URL/apps/fault/mcp",
 "concurrency": $CONCURRENCY, "longConcurrency": $LONG, "longDelayMs": $LONG_MS, "timeoutMs": $TIMEOUT_MS,
 "phaseFile": "$TMP/phase", "reportFile": "$TMP/report.json", "followReadyz": $([ "${FOLLOW_READYZ:-1}" = 0 ] && echo false || echo true)}
EOF
phase() { # phase NAME: switch, and wait until the driver tags requests with it
  echo "$1" >"$TMP/phase.tmp" && mv "$TMP/phase.tmp" "$TMP/phase"
  echo "== phase $1"
  [ -n "${PID[driver]:-}" ] || return 0
  for _ in $(seq 1 500); do
    [ "$(cat "$TMP/phase.ack" 2>/dev/null)" = "$1" ] && return 0
    kill -0 "${PID[driver]}" 2>/dev/null || break
    sleep 0.01
  done
  die "the driver did not take up phase $1"
}
phase steady
node benches/fault/driver.mjs "$TMP/driver.json" >"$TMP/driver.out" 2>&1 &
PID[driver]=$!
for _ in $(seq 1 400); do
  grep -q '^driver: running' "$TMP/driver.out" && break
  kill -0 "${PID[driver]}" 2>/dev/null || { cat "$TMP/driver.out" >&2; die "the driver failed to start"; }
  sleep 0.05
done
grep -q '^driver: running' "$TMP/driver.out" || die "the driver did not start within 20 s"

hold() { sleep "$PHASE_SECONDS"; }
hold

# Each "-down" phase kills the service (SIGKILL), holds, and restarts it
# (until it answers); the "-up" phase after it is steady traffic again.
phase redis-down
stop redis KILL
hold
start_redis
phase redis-up
hold

phase idp-down
stop idp KILL
hold
start_idp
phase idp-up
hold

phase upstream-down
stop upstream KILL
hold
start_upstream
phase upstream-up
hold

# Graceful stop: SIGTERM; the gateway drains (keeps accepting, every answer
# says Connection: close, /readyz 503) for grace_period_seconds, then stops
# accepting and lets in-flight requests finish (graceful_shutdown_timeout_seconds).
# Long requests are in flight on A at this moment by construction.
phase gw-a-sigterm
stop gw_a TERM 20
phase gw-a-restart
start_gateway gw_a "$A_PROXY" "$A_ADMIN"
hold

# Zero-downtime upgrade: the new process waits on server.upgrade_sock; SIGQUIT
# makes the old one hand over its listening sockets, keep serving for 5 s
# (Pingora's CLOSE_TIMEOUT), then stop gracefully as above.
phase gw-a-upgrade
PID[gw_a_old]=${PID[gw_a]}
rm -f "$TMP/gw_a-upgrade.sock"
start_gateway gw_a "$A_PROXY" "$A_ADMIN" --upgrade
for _ in $(seq 1 400); do [ -S "$TMP/gw_a-upgrade.sock" ] && break; sleep 0.05; done
[ -S "$TMP/gw_a-upgrade.sock" ] || { tail -n 30 "$TMP/gw_a.log" >&2; die "the upgrading gateway never opened its upgrade socket"; }
kill -QUIT "${PID[gw_a_old]}"
wait_for gw_a "$A_ADMIN" /healthz "$TMP/gw_a.log"
# The old process exits by itself once its in-flight requests are done.
old=${PID[gw_a_old]}
for _ in $(seq 1 600); do kill -0 "$old" 2>/dev/null || break; sleep 0.05; done
kill -0 "$old" 2>/dev/null && die "the old gateway A was still running 30 s after SIGQUIT"
wait "$old" 2>/dev/null || true
PID[gw_a_old]=""
phase steady-after
hold

phase stop
set +e
wait "${PID[driver]}"
rc=$?
PID[driver]=""
set -e
echo
cat "$TMP/driver.out"
if [ "$rc" != 0 ]; then
  KEEP_TMP=1
  echo "fault: FAILED (driver exit $rc); logs kept in $TMP" >&2
  exit 1
fi
