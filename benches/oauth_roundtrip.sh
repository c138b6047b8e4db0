#!/usr/bin/env bash
# OAuth round trip: the full sign-in an MCP client and its user go through,
# against the built-in `dev` identity provider, N times, and the gateway's
# time for each step (p50/p99) and for the whole sign-in.
#   1 register    POST /api/v1/auth/register (RFC 7591, public client)
#   2 authorize   GET  /api/v1/auth/authorize (PKCE S256, resource) -> 302 to the dev page
#   3 dev page    GET  /api/v1/auth/dev/login (the IdP's sign-in page)
#   4 dev login   POST /api/v1/auth/dev/login (state, email) -> 302 to the callback
#   5 callback    GET  /api/v1/auth/callback (code exchange with the IdP) -> consent page
#   6 consent     POST /api/v1/auth/consent (approve, CSRF cookie) -> 302 to the client with a code
#   7 token       POST /api/v1/auth/token (authorization_code + code_verifier) -> 200 tokens
# Steps 3 and 4 are the IdP's: with `dev` the IdP is the gateway itself, so the
# table prints the total with and without them.
#
# "Gateway time" of a step is curl's time to first byte minus its pretransfer
# time: from the request written to the first byte of the answer, without
# the TCP connect (each step is a new curl process and connection) and
# without curl's start-up.
#
#   bash benches/oauth_roundtrip.sh
#   N=500 bash benches/oauth_roundtrip.sh
#   STORE=redis bash benches/oauth_roundtrip.sh     # a redis-server on a free port
#
# Environment (all optional): N (200), THREADS (2), STORE (embedded or redis),
# GATEWAY_BIN (skip the build), KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=oauth_roundtrip
. benches/lib/common.sh

N=${N:-200}
THREADS=${THREADS:-2}
STORE=${STORE:-embedded}
need_tools curl:curl openssl:openssl
build_gateway

free_port GW; free_port ADMIN; free_port UP
PUBLIC_URL="http://127.0.0.1:$GW"
REDIRECT="http://127.0.0.1:1/cb"
case $STORE in
  embedded) STORAGE=$(embedded_storage "$TMP/gateway.redb") ;;
  redis)
    need_tools redis-server:redis-server
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
[oauth]
token_mode = "gateway"
# Every sign-in registers a client from 127.0.0.1: lift the per-address limit.
registrations_per_minute = 1000000
registrations_per_hour = 1000000
[idp]
kind = "dev"
[[apps]]
id = "app_notes"
slug = "notes"
upstream = "http://127.0.0.1:$UP"
EOF
} >"$TMP/gateway.toml"
DRIO_SECRETS_KEY=$(openssl rand -base64 32)
export DRIO_SECRETS_KEY
start gateway INT "$TMP/gateway.log" "$GATEWAY_BIN" --config "$TMP/gateway.toml"
GW_PID=$LAST_PID
wait_for drio-gateway "$GW_PID" "$ADMIN" /readyz "$TMP/gateway.log"
RESOURCE="$PUBLIC_URL/apps/notes/mcp"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
urlenc() { # a query/form value: only unreserved characters pass
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in [a-zA-Z0-9.~_-]) out+=$c ;; *) printf -v c '%%%02X' "'$c"; out+=$c ;; esac
  done
  printf '%s' "$out"
}
# One step: step NAME EXPECTED_STATUS curl-args... ; the body lands in $TMP/body,
# headers in $TMP/head, and "NAME seconds" is appended to $TMP/times.
step() {
  local name=$1 want=$2 out
  shift 2
  out=$(curl -s -b "$TMP/jar" -c "$TMP/jar" -D "$TMP/head" -o "$TMP/body" \
    -w '%{http_code} %{time_pretransfer} %{time_starttransfer}' "$@")
  read -r code pre ttfb <<<"$out"
  [ "$code" = "$want" ] || die "$name answered $code, not $want: $(head -c 400 "$TMP/body")"
  awk -v n="$name" -v a="$pre" -v b="$ttfb" 'BEGIN { printf "%s %.6f\n", n, b - a }' >>"$TMP/times"
}
location() { awk 'tolower($1) == "location:" { sub(/\r$/, "", $2); print $2 }' "$TMP/head"; }
field() { # field NAME: the value of <input name="NAME" value="..."> in the last body
  grep -o "name=\"$1\" value=\"[^\"]*\"" "$TMP/body" | head -1 | sed 's/.*value="//; s/"$//'
}
query() { # query URL NAME
  printf '%s' "$1" | tr '?&' '\n\n' | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; $N sign-ins (gateway threads = $THREADS, store $STORE)"
: >"$TMP/times"
for ((i = 1; i <= N; i++)); do
  rm -f "$TMP/jar"
  step register 201 -X POST -H 'Content-Type: application/json' \
    -d "{\"client_name\":\"bench\",\"redirect_uris\":[\"$REDIRECT\"],\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"response_types\":[\"code\"],\"token_endpoint_auth_method\":\"none\"}" \
    "$PUBLIC_URL/api/v1/auth/register"
  client_id=$(grep -o '"client_id":"[^"]*"' "$TMP/body" | head -1 | cut -d'"' -f4)
  verifier=$(openssl rand 32 | b64url)
  challenge=$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | b64url)
  state="s$RANDOM$RANDOM"
  step authorize 302 "$PUBLIC_URL/api/v1/auth/authorize?response_type=code&client_id=$(urlenc "$client_id")&redirect_uri=$(urlenc "$REDIRECT")&code_challenge=$challenge&code_challenge_method=S256&state=$state&scope=$(urlenc 'openid profile email')&resource=$(urlenc "$RESOURCE")"
  step dev-page 200 "$(location)"
  step dev-login 302 -X POST --data-urlencode "state=$(field state)" --data-urlencode "email=user$i@example.com" \
    "$PUBLIC_URL/api/v1/auth/dev/login"
  step callback 200 "$(location)"
  step consent 302 -X POST --data-urlencode "consent_id=$(field consent_id)" \
    --data-urlencode "csrf_token=$(field csrf_token)" --data-urlencode decision=approve \
    "$PUBLIC_URL/api/v1/auth/consent"
  back=$(location)
  [ "$(query "$back" state)" = "$state" ] || die "the client's redirect lost the state: $back"
  step token 200 -X POST --data-urlencode grant_type=authorization_code \
    --data-urlencode "code=$(query "$back" code)" --data-urlencode "redirect_uri=$REDIRECT" \
    --data-urlencode "client_id=$client_id" --data-urlencode "code_verifier=$verifier" \
    "$PUBLIC_URL/api/v1/auth/token"
  grep -q '"access_token"' "$TMP/body" || die "no access token: $(head -c 400 "$TMP/body")"
done

# Per step and per sign-in: p50, p99, mean, max (ms). A sign-in's total sums
# its steps (each sign-in starts with "register").
awk '$1 == "register" { run++ }
  { print; tot[run] += $2; if ($1 != "dev-page" && $1 != "dev-login") gw[run] += $2 }
  END { for (j = 1; j <= run; j++) { printf "gateway %.6f\n", gw[j]; printf "all %.6f\n", tot[j] } }' \
  "$TMP/times" >"$TMP/all"
summary() { # summary KEY LABEL: one table row from the sorted values of KEY
  awk -v k="$1" '$1 == k { print $2 }' "$TMP/all" | sort -g | awk -v label="$2" '
    { v[++n] = $1; sum += $1 }
    END {
      p50 = v[int(n * 0.50 + 0.999999)]; p99 = v[int(n * 0.99 + 0.999999)]
      printf "| %s | %d | %.2f | %.2f | %.2f | %.2f |\n", label, n, p50 * 1000, p99 * 1000, sum / n * 1000, v[n] * 1000
    }'
}
echo "| step | n | p50 ms | p99 ms | mean ms | max ms |"
echo "| --- | --- | --- | --- | --- | --- |"
for s in register authorize dev-page dev-login callback consent token; do summary "$s" "$s"; done
summary gateway "**sign-in without the dev IdP's steps (1, 2, 5, 6, 7)**"
summary all "**sign-in, all 7 steps**"
