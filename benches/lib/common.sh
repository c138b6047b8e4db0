# Helpers shared by the benchmark scripts (compare.sh, streams.sh, soak.sh, ...),
# taken from proxy_overhead.sh: tool installation, free ports, process
# cleanup, readiness polling. Source it after setting NAME (used in messages).
#   NAME=compare; . "$(dirname "$0")/lib/common.sh"

die() { echo "$NAME: $*" >&2; exit 1; }

# need_tools CMD[:PACKAGE]...: installs what is missing with apt-get when run
# as root on Debian/Ubuntu, else says what to install.
need_tools() {
  local missing=() spec cmd pkg
  for spec in "$@"; do
    cmd=${spec%%:*}; pkg=${spec#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "needs ${missing[*]}: install with 'sudo apt-get install -y ${missing[*]}'"
  fi
}

# The path of a command, looking in /usr/sbin too (nginx, haproxy).
tool() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || die "$1 not found"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/drio-$NAME.XXXXXX")
PIDS=()   # "pid:signal" of everything started, stopped in reverse order

stop() { # pid signal: signal, wait up to 5 s, then SIGKILL
  local pid=$1 sig=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[i]%%:*}" "${PIDS[i]##*:}"; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "== kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A loopback port nothing listens on (probed by connecting; a tiny race with
# other processes is possible, the bind then fails loudly).
# free_port VAR: sets VAR (not a subshell, so the ports handed out are remembered).
# Ports come from below the ephemeral range: thousands of client sockets
# (streams.sh, soak.sh) would otherwise hold the port a listener wants.
used_ports=" "
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p span=$((EPHEMERAL_LOW - 10000))
  ((span > 1000)) || span=20000
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % span))
    [[ $used_ports == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports+="$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "no free loopback port found"
}

# HTTP status of one GET: http_status PORT PATH
http_status() {
  curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null || true
}

wait_for() { # wait_for WHAT PID PORT PATH LOG: polls until PATH answers 200
  local what=$1 pid=$2 port=$3 path=$4 log=$5
  for _ in $(seq 1 "${WAIT_TRIES:-150}"); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$NAME: $what exited during startup; its log:" >&2
      tail -n 40 "$log" >&2 || true
      exit 1
    fi
    [ "$(http_status "$port" "$path")" = 200 ] && return 0
    sleep 0.2
  done
  echo "$NAME: $what did not answer $path on port $port within $((${WAIT_TRIES:-150} / 5)) s; its log:" >&2
  tail -n 40 "$log" >&2 || true
  exit 1
}

# start WHAT SIGNAL LOG CMD...: runs CMD in the background, registered for cleanup.
start() {
  local what=$1 sig=$2 log=$3
  shift 3
  "$@" >"$log" 2>&1 &
  PIDS+=("$!:$sig")
  LAST_PID=$!
}

# The cargo profile benchmarks build (PROFILE=release for the quicker build,
# without LTO), and the directory its binaries land in.
PROFILE=${PROFILE:-production}
OUT="${CARGO_TARGET_DIR:-target}/$PROFILE"

# Builds the gateway (and extra cargo targets) in $PROFILE unless GATEWAY_BIN is set.
build_gateway() { # build_gateway [cargo args for extra targets]
  if [ -n "${GATEWAY_BIN:-}" ]; then
    [ -x "$GATEWAY_BIN" ] || die "GATEWAY_BIN=$GATEWAY_BIN is not an executable"
    [ $# = 0 ] && return 0
  fi
  echo "== cargo build --profile $PROFILE $*"
  cargo build --profile "$PROFILE" --bin drio-gateway "$@"
  GATEWAY_BIN=${GATEWAY_BIN:-"$OUT/drio-gateway"}
  [ -x "$GATEWAY_BIN" ] || die "no binary at $GATEWAY_BIN after the build"
}

# The tables every benchmark's gateway config starts with:
# gateway_toml_head PUBLIC_URL STORAGE_LINES [SERVER_LINES] prints the
# listeners on $GW and $ADMIN, [server] with $THREADS threads and no grace
# period (plus SERVER_LINES), [storage] and warn-level logs; the caller
# appends its own tables.
gateway_toml_head() {
  printf '%s\n' "public_url = \"$1\"" '[listen]' "proxy = \"127.0.0.1:$GW\"" \
    "admin = \"127.0.0.1:$ADMIN\"" '[server]' "threads = $THREADS" 'grace_period_seconds = 0' \
    'graceful_shutdown_timeout_seconds = 1'
  if [ -n "${3:-}" ]; then printf '%s\n' "$3"; fi
  printf '%s\n' '[storage]' "$2" '[logging]' 'level = "warn"'
}

# The [storage] lines of an embedded store in FILE: embedded_storage FILE
embedded_storage() { printf 'backend = "embedded"\npath = "%s"' "$1"; }

# An nginx config skeleton in $TMP/$1 with the given server blocks.
nginx_conf() { # nginx_conf DIR SERVER_BLOCKS
  mkdir -p "$TMP/$1"
  cat >"$TMP/$1/nginx.conf" <<EOC
daemon off;
worker_processes 1;
pid $TMP/$1/nginx.pid;
error_log $TMP/$1/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/$1/body;
  proxy_temp_path $TMP/$1/proxy;
  fastcgi_temp_path $TMP/$1/fastcgi;
  uwsgi_temp_path $TMP/$1/uwsgi;
  scgi_temp_path $TMP/$1/scgi;
$2
}
EOC
}

# RSS (KiB) and open fds of a process: proc_stats PID
proc_stats() {
  local rss fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$1/fd" 2>/dev/null | wc -l)
  echo "$rss $fds"
}
