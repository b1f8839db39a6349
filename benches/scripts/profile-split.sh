#!/usr/bin/env bash
# Where a server's CPU goes under load: `perf record -g` of one server pinned to CPU 0
# while ringcore-load (CPU 1) drives it, then the kernel vs user split of the samples
# and the top symbols of each side. Used for the issue-12 targets that are not met.
#
#   cargo build --release -p ringcore-benches --bins --features http-peers
#   cargo build --release --example echo --example http --example fileserver
#   [RATE=N] benches/scripts/profile-split.sh SERVER SCENARIO [seconds]
#     SERVER:   uring | epoll | tokio | hyper | minihttp | nginx
#               (uring/epoll take RINGCORE_FEATURES from the environment)
#     SCENARIO: echo-128-c500 | echo-128-c1 | http-d1 | http-d16 | file-1mib
#
# Prints: samples in the kernel and in user space (percent), then the 12 hottest
# kernel and user symbols (self time). The perf data stays in /tmp/profile-SERVER-SCENARIO.data.
set -euo pipefail
cd "$(dirname "$0")/../.."
srv=${1:?server}; sc=${2:?scenario}; secs=${3:-4}
port=7321
rel=./target/release
work=$(mktemp -d /tmp/profile-split.XXXXXX)
trap 'rm -rf "$work"' EXIT
case $sc in
  echo-128-c500) proto=echo; load=(echo --size 128 --conns 500) ;;
  echo-128-c1) proto=echo; load=(echo --size 128 --conns 1) ;;
  http-d1) proto=http; load=(http --path /plaintext --depth 1 --conns 50) ;;
  http-d16) proto=http; load=(http --path /plaintext --depth 16 --conns 50) ;;
  file-1mib) proto=file; load=(http --path /1mib.bin --conns 10)
    mkdir -p "$work/www"; head -c 1048576 /dev/urandom >"$work/www/1mib.bin"; chmod -R a+rX "$work" ;;
  *) echo "unknown scenario $sc" >&2; exit 2 ;;
esac
case $srv in
  uring|epoll)
    case $proto in
      echo) cmd=("$rel/examples/echo") ;;
      http) cmd=("$rel/examples/http") ;;
      file) cmd=("$rel/examples/fileserver" --root "$work/www") ;;
    esac
    cmd+=(--addr 127.0.0.1:$port --workers 1 --backend "$srv") ;;
  tokio|hyper|minihttp) cmd=("$rel/peer-$srv" --addr 127.0.0.1:$port --mode "$proto") ;;
  nginx)
    mkdir -p "$work/tmp" "$work/www"
    cat >"$work/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 20000; use epoll; }
http { access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 100000000;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:$port;
    location = /plaintext { default_type text/plain; return 200 "Hello, World!"; }
    location / { root $work/www; } } }
EOF
    cmd=(nginx -c "$work/nginx.conf" -p "$work") ;;
  *) echo "unknown server $srv" >&2; exit 2 ;;
esac
if ss -ltn | grep -q ":$port "; then echo "port $port is busy" >&2; exit 1; fi
taskset -c 0 "${cmd[@]}" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
data=/tmp/profile-$srv-$sc.data
# RATE=N: open loop at N requests/s (the rate benches/pair uses) instead of closed loop.
if [ -n "${RATE:-}" ]; then load+=(--rate "$RATE"); fi
"$rel/ringcore-load" "${load[@]}" --addr 127.0.0.1:$port --cpu 1 --duration $((secs + 2)) --warmup 1 --json \
  >"$work/load.json" &
lpid=$!
sleep 1.5
perf record -q -g -p "$pid" -o "$data" -- sleep "$secs" 2>/dev/null
wait $lpid || true
kill -INT $pid 2>/dev/null || true
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
python3 - "$work/load.json" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"load: {r['rps']:.0f} req/s, p99 {r['latency']['p99_us']:.0f} us, errors {r['errors']}")
PY
# Kernel vs user: perf marks kernel samples with [k], user ones with [.].
perf report -i "$data" --no-children --sort sym --stdio 2>/dev/null | python3 -c '
import re, sys
k = u = 0.0
ks, us = [], []
for line in sys.stdin:
    m = re.match(r"\s+([\d.]+)%\s+\[([k.])\]\s+(.*)", line)
    if not m:
        continue
    p, side, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    if side == "k":
        k += p; ks.append((p, sym))
    else:
        u += p; us.append((p, sym))
print(f"samples: kernel {k:.1f}%  user {u:.1f}%")
print("top kernel symbols:", "; ".join(f"{s} {p:.1f}%" for p, s in ks[:12]))
print("top user symbols:  ", "; ".join(f"{s} {p:.1f}%" for p, s in us[:12]))
'
