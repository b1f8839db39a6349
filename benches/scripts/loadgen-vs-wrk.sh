#!/usr/bin/env bash
# Client cost per request: ringcore-load vs wrk against the same server (the http
# example on io_uring, pinned to CPU 0; each client pinned to CPU 1), 50 connections,
# depth 1 and 16. Client CPU from /proc/PID/stat (wrk) and ringcore-load's own report.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
port=8501
tck=$(getconf CLK_TCK)
taskset -c 0 ./target/release/examples/http --addr 127.0.0.1:$port --workers 1 --cpus 0 --backend uring >/tmp/srv.log 2>&1 &
srv=$!
for _ in $(seq 50); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
for depth in 1 16; do
  taskset -c 1 wrk -t1 -c50 -d"${secs}s" -s benches/scripts/pipeline.lua "http://127.0.0.1:$port/plaintext" -- "$depth" >/tmp/wrk.out &
  w=$!; sleep 0.5
  c0=$(awk '{print $14+$15}' /proc/$w/stat)
  while kill -0 $w 2>/dev/null; do c1=$(awk '{print $14+$15}' /proc/$w/stat 2>/dev/null || echo "$c1"); sleep 0.2; done
  wait $w || true
  rps=$(awk '/Requests\/sec/ {print $2}' /tmp/wrk.out)
  awk -v d="$depth" -v rps="$rps" -v c0="$c0" -v c1="$c1" -v tck="$tck" -v secs="$secs" \
    'BEGIN { printf "wrk           depth=%-2s rps=%9.0f client_cpu_us/req=%.3f\n", d, rps, (c1-c0)/tck*1e6/(rps*(secs-0.5)) }'
  out=$(./target/release/ringcore-load http --addr 127.0.0.1:$port --path /plaintext -c 50 --depth "$depth" -d "$secs" --warmup 1 --cpu 1 --json 2>/dev/null)
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print('ringcore-load depth=%-2s rps=%9.0f client_cpu_us/req=%.3f' % ($depth, r['rps'], r['client_cpu_us_per_req']))" "$out"
done
kill -INT $srv; wait $srv 2>/dev/null || true
