#!/usr/bin/env bash
# Cost of --access-log: the http example's /plaintext with and without an access log,
# wrk at pipeline depth 16, server pinned to CPU 0 (its access-log writer thread too),
# wrk to CPU 1, alternating rounds. Server CPU per request from /proc/PID/stat.
#
#   cargo build --release --examples
#   benches/scripts/access-log-wrk.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; secs=${2:-4}
port=8391; tck=$(getconf CLK_TCK); log=$(mktemp /tmp/ringcore-access.XXXXXX)
for round in $(seq "$rounds"); do
  for mode in off on; do
    extra=(); [ "$mode" = on ] && extra=(--access-log "$log")
    : > "$log"
    taskset -c 0 ./target/release/examples/http --addr 127.0.0.1:$port --workers 1 --cpus 0 \
      --backend uring "${extra[@]}" >/tmp/srv.log 2>&1 &
    pid=$!
    for _ in $(seq 100); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
    s0=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$(taskset -c 1 wrk -t1 -c100 -d"${secs}s" -s benches/scripts/pipeline.lua "http://127.0.0.1:$port/plaintext" -- 16)
    s1=$(awk '{print $14+$15}' /proc/$pid/stat)
    kill -INT $pid; wait $pid || true
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    lines=$(wc -l < "$log")
    awk -v m="$mode" -v r="$round" -v rps="$rps" -v reqs="$reqs" -v t0="$s0" -v t1="$s1" -v tck="$tck" -v lines="$lines" \
      'BEGIN{printf "round %d access-log %-3s %10.0f req/s  server CPU %.2f us/req  log lines %d\n", r, m, rps, (t1-t0)/tck*1e6/reqs, lines}'
  done
done
rm -f "$log"
