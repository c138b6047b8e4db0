#!/usr/bin/env bash
# Memory per idle keep-alive client connection: for each N in COUNTS, on a
# fresh gateway, opens N HTTP/1.1 connections to the proxy listener, sends one
# request on each (the gateway's own /healthz, answered without an upstream),
# reads the answer and leaves the connection open; prints the gateway's RSS
# before and with the N connections open, and the difference per connection.
# Clients that keep their connection between tool calls hold one of these
# each for as long as they are idle.
#
#   bash benches/idle.sh
#   COUNTS="1000 5000 9000" bash benches/idle.sh
#
# Environment (all optional): COUNTS ("1000 5000"), THREADS (2, the
# gateway's), GATEWAY_BIN (skip the build), KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=idle
. benches/lib/common.sh

COUNTS=${COUNTS:-"1000 5000"}
THREADS=${THREADS:-2}
need_tools curl:curl python3:python3

max=0; for n in $COUNTS; do ((n > max)) && max=$n; done
want=$((max + 4096))
ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
(($(ulimit -n) >= want)) || echo "== warning: ulimit -n is $(ulimit -n), $want wanted"
build_gateway

# Opens N connections to 127.0.0.1:PORT, one request each, and prints the
# gateway's RSS (KiB) once every answer is in and the connections sit idle.
cat >"$TMP/clients.py" <<'PY'
import asyncio, sys
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
async def main():
    conns = []
    for _ in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        conns.append((r, w))
    for r, w in conns:
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
        await r.readexactly(int(length[0].split(b":")[1]) if length else 0)
    await asyncio.sleep(2)
    print(rss())
    for r, w in conns:
        w.close()
asyncio.run(main())
PY

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; gateway threads $THREADS; each N on a fresh gateway"
echo "| connections | RSS before MiB | RSS open MiB | KiB per connection |"
echo "| --- | --- | --- | --- |"
for n in $COUNTS; do
  free_port GW; free_port ADMIN
  gateway_toml_head "http://127.0.0.1:$GW" "$(embedded_storage "$TMP/gateway-$n.redb")" \
    >"$TMP/gateway-$n.toml"
  start gateway INT "$TMP/gateway-$n.log" "$GATEWAY_BIN" --config "$TMP/gateway-$n.toml"
  pid=$LAST_PID
  wait_for drio-gateway "$pid" "$ADMIN" /readyz "$TMP/gateway-$n.log"
  sleep 1
  read -r before _ < <(proc_stats "$pid")
  open=$(python3 "$TMP/clients.py" "$GW" "$n" "$pid")
  awk -v n="$n" -v b="$before" -v o="$open" \
    'BEGIN { printf "| %d | %.1f | %.1f | %.1f |\n", n, b / 1024, o / 1024, (o - b) / n }'
  stop "$pid" INT
done
