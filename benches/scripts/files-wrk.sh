#!/usr/bin/env bash
# 1 MiB static file over the fileserver example (splice bodies), io_uring vs epoll,
# and nginx (sendfile on) as a reference: server pinned to CPU 0, wrk to CPU 1,
# 10 connections. Prints throughput and server CPU per MiB sent.
#
#   cargo build --release --examples && benches/scripts/files-wrk.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
port=8401
tck=$(getconf CLK_TCK)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
head -c 1048576 /dev/urandom > "$root/1m.bin"
chmod 755 "$root"; chmod 644 "$root/1m.bin"  # nginx workers run as www-data
for b in uring epoll nginx; do
  case $b in
    nginx)
      conf="$root/nginx.conf"
      cat > "$conf" <<NGX
daemon off; worker_processes 1; pid $root/nginx.pid; error_log /dev/null;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on;
  server { listen 127.0.0.1:$port reuseport; root $root; } }
NGX
      taskset -c 0 nginx -c "$conf" >/dev/null 2>&1 & ;;
    *) taskset -c 0 ./target/release/examples/fileserver --root "$root" --addr 127.0.0.1:$port \
         --workers 1 --cpus 0 --backend "$b" >/tmp/srv.log 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 50); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
  [ "$b" = nginx ] && pid=$(pgrep -f "nginx: worker" | head -1)
  s0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(taskset -c 1 wrk -t1 -c10 -d"${secs}s" "http://127.0.0.1:$port/1m.bin")
  s1=$(awk '{print $14+$15}' /proc/$pid/stat)
  if [ "$b" = nginx ]; then kill -QUIT "$(cat "$root/nginx.pid")"; else kill -INT $pid; fi
  sleep 0.5; pkill -9 -f "examples/fileserver --root $root" 2>/dev/null || true
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  tput=$(echo "$out" | awk '/Transfer\/sec/ {print $2}')
  awk -v b="$b" -v reqs="$reqs" -v t0="$s0" -v t1="$s1" -v tck="$tck" -v tput="$tput" -v secs="$secs" \
    'BEGIN { mib = reqs; printf "%-6s files/s=%7.0f throughput=%s/s server_cpu_us_per_MiB=%.1f\n", b, reqs/secs, tput, (t1-t0)/tck*1e6/mib }'
done
