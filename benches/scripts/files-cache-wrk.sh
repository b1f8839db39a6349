#!/usr/bin/env bash
# Open-file cache A/B for the fileserver example (docs/fileserver.md): 1 KiB file, one worker
# on CPU 0, wrk -t1 -c10 on CPU 1, 4 s rounds after a 1 s warm-up, alternating off/on, 5 pairs
# per backend. Prints requests/s and server CPU (all threads, user+sys) per request in us.
# Compare only ratios within one run.
#
#   cargo build --release --example fileserver && benches/scripts/files-cache-wrk.sh
set -u
cd "$(dirname "$0")/../.."
BIN=./target/release/examples/fileserver
ROOT=$(mktemp -d); trap 'rm -rf "$ROOT"' EXIT
head -c 1024 /dev/urandom > "$ROOT/k1.bin"
TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
port=18400
for be in uring epoll; do
  for round in 1 2 3 4 5; do
    for mode in off on; do
      port=$((port+1))
      extra=""; [ $mode = on ] && extra="--open-file-cache 64"
      $BIN --root $ROOT --addr 127.0.0.1:$port --workers 1 --cpus 0 --backend $be $extra >/dev/null 2>&1 &
      pid=$!
      for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$port/k1.bin && break; sleep 0.1; done
      taskset -c 1 wrk -t1 -c10 -d1s http://127.0.0.1:$port/k1.bin >/dev/null 2>&1
      c0=$(cpu $pid)
      out=$(taskset -c 1 wrk -t1 -c10 -d4s http://127.0.0.1:$port/k1.bin)
      c1=$(cpu $pid)
      reqs=$(echo "$out" | awk '/requests in/ {print $1}')
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      echo "$be round$round $mode rps=$rps cpu_us_per_req=$(echo "scale=1; ($c1-$c0)*1000000/$TCK/$reqs" | bc)"
      kill $pid; wait $pid 2>/dev/null
    done
  done
done
