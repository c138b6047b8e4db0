#!/usr/bin/env bash
# Soak: a mixed load through the gateway for SECONDS, sampling its RSS and
# open file descriptors every 10 s, then printing the samples and the slope
# (least squares over the samples after WARMUP seconds) per hour.
#   - SSE streams opening and closing (STREAMS clients, each stream 2–6 s);
#   - tool calls on a public app and on a protected app (RS256 bearer, L1 hit,
#     an API key injected), wrk with 4 connections each;
#   - cache misses: a freshly minted token (new jti) every 0.2 s.
#
#   bash benches/soak.sh
#   SECONDS_TOTAL=1800 bash benches/soak.sh        # the issue's 30-minute run
#
#   STORE=redis bash benches/soak.sh                # the Redis store instead
#
# Environment (all optional): SECONDS_TOTAL (180), WARMUP (60), STREAMS (200),
# THREADS (2), STORE (embedded, or redis: a redis-server on a free port),
# CACHE_MIB (the embedded store's [storage] cache_size_mib; unset: the
# gateway's default), L1_TTL ([auth.cache] max_ttl_seconds; unset: the
# default 300 s, so the token cache keeps filling for the first 5 minutes),
# READ_TIMEOUT_MS (every app's read_timeout_ms; unset: the default 300000,
# so Pingora's timer wheel keeps filling for 5 minutes: see benches/README),
# GATEWAY_BIN and SSE_BIN (skip the build), KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=soak
. benches/lib/common.sh
. benches/lib/jwt.sh

TOTAL=${SECONDS_TOTAL:-180}
WARMUP=${WARMUP:-60}
STREAMS=${STREAMS:-200}
THREADS=${THREADS:-2}
STORE=${STORE:-embedded}
((TOTAL > WARMUP + 20)) || die "SECONDS_TOTAL must exceed WARMUP + 20"
need_tools wrk:wrk nginx:nginx curl:curl openssl:openssl
[ "$STORE" = redis ] && need_tools redis-server:redis-server
NGINX=$(tool nginx)
ulimit -n $((STREAMS * 4 + 4096)) 2>/dev/null || true

if [ -n "${SSE_BIN:-}" ] && [ -n "${GATEWAY_BIN:-}" ]; then :; else
  build_gateway --example sse_bench
  SSE_BIN=${SSE_BIN:-"$OUT/examples/sse_bench"}
fi

free_port UP; free_port SSE; free_port GW; free_port ADMIN
PUBLIC_URL="http://127.0.0.1:$GW"
ISSUER="https://bench-idp.invalid"
API_KEY="soak-key-$RANDOM$RANDOM"
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"xxxxx"}}}'
jwt_init "$TMP/jwt"

nginx_conf upstream "
  server {
    listen 127.0.0.1:$UP;
    location = /mcp { default_type application/json; return 200 '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}'; }
    location = /k/mcp {
      if (\$http_x_api_key != '$API_KEY') { return 401; }
      default_type application/json; return 200 '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}';
    }
    location = /jwks.json { default_type application/json; alias $TMP/jwt/jwks.json; }
    location = /ready { return 200; }
  }"
start upstream TERM "$TMP/upstream/stdout.log" "$NGINX" -p "$TMP/upstream" -e "$TMP/upstream/error.log" -c "$TMP/upstream/nginx.conf"
wait_for upstream "$LAST_PID" "$UP" /ready "$TMP/upstream/error.log"
start sse-upstream INT "$TMP/sse.log" "$SSE_BIN" upstream "127.0.0.1:$SSE" 500
wait_for sse-upstream "$LAST_PID" "$SSE" /ready "$TMP/sse.log"

case $STORE in
  embedded) STORAGE="backend = \"embedded\"
path = \"$TMP/gateway.redb\"${CACHE_MIB:+
cache_size_mib = $CACHE_MIB}" ;;
  redis)
    free_port REDIS
    start redis INT "$TMP/redis.log" redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no
    for _ in $(seq 1 50); do redis-cli -p "$REDIS" ping >/dev/null 2>&1 && break; sleep 0.1; done
    STORAGE="backend = \"redis\"
url = \"redis://127.0.0.1:$REDIS\"" ;;
  *) die "STORE must be embedded or redis" ;;
esac

{
  gateway_toml_head "$PUBLIC_URL" "$STORAGE"
  cat <<EOF
[auth]
issuer = "$ISSUER"
jwks_uri = "http://127.0.0.1:$UP/jwks.json"
${L1_TTL:+[auth.cache]
max_ttl_seconds = $L1_TTL}
[management]
admins = ["bench-admin"]
[security]
allow_upstream_cidrs = ["127.0.0.0/8"]
[[apps]]
id = "app_public"
slug = "public"
${READ_TIMEOUT_MS:+read_timeout_ms = $READ_TIMEOUT_MS
}upstream = "http://127.0.0.1:$UP"
public = true
[[apps]]
id = "app_bearer"
slug = "bearer"
${READ_TIMEOUT_MS:+read_timeout_ms = $READ_TIMEOUT_MS
}upstream = "http://127.0.0.1:$UP/k"
[[apps]]
id = "app_sse"
slug = "sse"
${READ_TIMEOUT_MS:+read_timeout_ms = $READ_TIMEOUT_MS
}upstream = "http://127.0.0.1:$SSE"
public = true
EOF
} >"$TMP/gateway.toml"
DRIO_SECRETS_KEY=$(openssl rand -base64 32)
export DRIO_SECRETS_KEY
start gateway INT "$TMP/gateway.log" "$GATEWAY_BIN" --config "$TMP/gateway.toml"
GW_PID=$LAST_PID
wait_for drio-gateway "$GW_PID" "$ADMIN" /readyz "$TMP/gateway.log"
MGMT=$(jwt_mint "$ISSUER" bench-admin "$PUBLIC_URL")
s=$(curl -s -o "$TMP/auth.json" -w '%{http_code}' -m 10 -X POST -H "Authorization: Bearer $MGMT" \
  -H 'Content-Type: application/json' \
  -d "{\"name\":\"key\",\"config\":{\"type\":\"api_key\",\"headerName\":\"X-Api-Key\",\"apiKey\":\"$API_KEY\"}}" \
  "$PUBLIC_URL/api/v1/apps/app_bearer/auth")
[ "$s" = 201 ] || die "adding the API key answered $s: $(cat "$TMP/auth.json")"
AUD="$PUBLIC_URL/apps/bearer/mcp"
TOKEN=$(jwt_mint "$ISSUER" soak-user "$AUD")

for f in public bearer; do
  cat >"$TMP/$f.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
$([ $f = bearer ] && echo "wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\"")
EOF
done

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; ${TOTAL} s soak, slope after ${WARMUP} s; $STREAMS churning SSE clients; store $STORE${CACHE_MIB:+, cache_size_mib = $CACHE_MIB}${L1_TTL:+, L1 max_ttl_seconds = $L1_TTL}"
start streams INT "$TMP/clients.txt" "$SSE_BIN" clients "$PUBLIC_URL/apps/sse/mcp" "$STREAMS" "$TOTAL" 200 --churn
start wrk-public INT "$TMP/wrk-public.txt" wrk -t1 -c4 -d"${TOTAL}s" -s "$TMP/public.lua" "$PUBLIC_URL/apps/public/mcp"
start wrk-bearer INT "$TMP/wrk-bearer.txt" wrk -t1 -c4 -d"${TOTAL}s" -s "$TMP/bearer.lua" "$AUD"
misses() { # a new token (L1 and L2 miss, JWT verification) every 0.2 s
  local end=$((SECONDS + TOTAL)) ok=0 bad=0 s
  while ((SECONDS < end)); do
    s=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H "Authorization: Bearer $(jwt_mint "$ISSUER" "u$RANDOM" "$AUD")" \
      -H 'Content-Type: application/json' -d "$BODY" "$AUD" || true)
    if [ "$s" = 200 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
    sleep 0.2
  done
  echo "MISSES ok=$ok failed=$bad"
}
misses >"$TMP/misses.txt" 2>&1 &
PIDS+=("$!:TERM")

echo "| t (s) | RSS MiB | open fds |"
echo "| --- | --- | --- |"
t0=$SECONDS
while ((SECONDS - t0 < TOTAL)); do
  t=$((SECONDS - t0))
  read -r rss fds < <(proc_stats "$GW_PID")
  echo "$t $rss $fds" >>"$TMP/samples.txt"
  awk -v t="$t" -v r="$rss" -v f="$fds" 'BEGIN { printf "| %d | %.1f | %d |\n", t, r / 1024, f }'
  sleep 10
done
sleep 3 # let the load generators print their summaries
echo
awk -v w="$WARMUP" '$1 >= w { n++; sx += $1; sy += $2; sf += $3; sxx += $1 * $1; sxy += $1 * $2; sxf += $1 * $3 }
  END {
    if (n < 2) { print "too few samples after warm-up"; exit }
    d = n * sxx - sx * sx
    printf "slope after %d s (%d samples): RSS %+.1f MiB/hour, open fds %+.1f/hour\n", w, n,
      (n * sxy - sx * sy) / d * 3600 / 1024, (n * sxf - sx * sf) / d * 3600 }' "$TMP/samples.txt"
echo "streams: $(grep -h '^SSE_RESULT' "$TMP/clients.txt" || echo 'no result')"
echo "tool calls: public $(grep -h 'Requests/sec' "$TMP/wrk-public.txt" || echo '?'), bearer $(grep -h 'Requests/sec' "$TMP/wrk-bearer.txt" || echo '?')"
echo "non-2xx: public $(grep -h 'Non-2xx' "$TMP/wrk-public.txt" || echo 0), bearer $(grep -h 'Non-2xx' "$TMP/wrk-bearer.txt" || echo 0)"
echo "cache misses: $(cat "$TMP/misses.txt")"
