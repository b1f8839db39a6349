#!/usr/bin/env bash
# Counts clock_gettime calls (a perf uprobe on glibc's __clock_gettime: the vDSO call
# makes no syscall, so strace cannot see it) in the http example per request and per
# loop turn (ringcore_turns_total from /metrics): wrk, 16 connections, depth 1, 5 s.
# Needs root (perf probe). The uprobe traps on every call: do not read throughput here.
#
#   cargo build --release --example http
#   perf probe -x /lib/x86_64-linux-gnu/libc.so.6 -a 'tls11b_cg=__clock_gettime'
#   benches/scripts/clock-count.sh target/release/examples/http [port]
set -euo pipefail
bin=$1; port=${2:-18080}
out_file=$(mktemp /tmp/clock-count.XXXXXX)
trap 'rm -f "$out_file"' EXIT
taskset -c 0 $bin --addr 127.0.0.1:$port --workers 1 --cpus 0 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$port " && break; sleep 0.05; done
t0=$(curl -s 127.0.0.1:$port/metrics | awk '/^ringcore_turns_total /{print $2}')
perf stat -e probe_libc:tls11b_cg -p $pid -x, -o "$out_file" -- sleep 6 &
ppid=$!
sleep 0.3
out=$(taskset -c 1 wrk -t1 -c16 -d5s http://127.0.0.1:$port/plaintext | awk '/requests in/{print $1}')
wait $ppid
t1=$(curl -s 127.0.0.1:$port/metrics | awk '/^ringcore_turns_total /{print $2}')
kill -TERM $pid; wait $pid 2>/dev/null || true
calls=$(grep tls11b_cg "$out_file" | cut -d, -f1)
python3 -c "import sys; c,r,t=map(float,sys.argv[1:]); print(f'clock_gettime={c:.0f} requests={r:.0f} turns={t:.0f} per_request={c/r:.3f} per_turn={c/t:.3f}')" $calls $out $((t1-t0))
