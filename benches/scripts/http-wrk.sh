#!/usr/bin/env bash
# wrk against the http example's /plaintext, server pinned to CPU 0, wrk to CPU 1,
# 100 connections, pipeline depth 1 and 16, both backends (and the tokio peer with
# the same response bytes). Server CPU per request from /proc/PID/stat.
#
#   cargo build --release --examples && cargo build --release -p ringcore-benches
#   benches/scripts/http-wrk.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
port=8301
tck=$(getconf CLK_TCK)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
for depth in 1 16; do
  for b in uring epoll tokio; do
    case $b in
      tokio) taskset -c 0 ./target/release/peer-tokio --addr 127.0.0.1:$port --mode http >/tmp/srv.log 2>&1 & ;;
      *) taskset -c 0 ./target/release/examples/http --addr 127.0.0.1:$port --workers 1 --cpus 0 --backend "$b" >/tmp/srv.log 2>&1 & ;;
    esac
    pid=$!
    for _ in $(seq 50); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
    s0=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$(taskset -c 1 wrk -t1 -c100 -d"${secs}s" -s benches/scripts/pipeline.lua "http://127.0.0.1:$port/plaintext" -- "$depth")
    s1=$(awk '{print $14+$15}' /proc/$pid/stat)
    kill -INT $pid
    for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    awk -v b="$b" -v d="$depth" -v rps="$rps" -v reqs="$reqs" -v t0="$s0" -v t1="$s1" -v tck="$tck" \
      'BEGIN { printf "%-6s depth=%-2s rps=%10.0f server_cpu_us/req=%.3f\n", b, d, rps, (t1-t0)/tck*1e6/reqs }'
  done
done
