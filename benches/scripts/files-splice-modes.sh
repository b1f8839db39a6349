#!/usr/bin/env bash
# 1 MiB static file over the fileserver example: the io_uring backend's splice modes
# (RINGCORE_SPLICE=ring|drain|inline, issue 12 item 6) against the epoll backend, in
# alternating rounds. Server on CPU 0 (one worker), wrk on CPU 1, 10 connections.
# Server CPU is the whole process's utime+stime from /proc/PID/stat, which includes
# its io-wq kernel worker threads (iou-wrk-*: threads of the process; the script
# prints how many it saw). Syscalls and io_uring completions per file come from
# `perf stat -e raw_syscalls:sys_enter,io_uring:io_uring_complete -p PID` (whole
# process, io-wq threads included) over the same window.
#
#   cargo build --release --example fileserver && benches/scripts/files-splice-modes.sh [secs] [rounds]
# NICE=-10 runs server and wrk at a higher priority (on a machine shared with builds).
set -euo pipefail
nice_n=${NICE:-0}
cd "$(dirname "$0")/../.."
secs=${1:-4}
rounds=${2:-3}
port=8411
tck=$(getconf CLK_TCK)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
head -c 1048576 /dev/urandom > "$root/1m.bin"
cat "$root/1m.bin" > /dev/null  # in the page cache before the first round
log="$root/rounds.txt"
for r in $(seq "$rounds"); do
  for mode in ring drain inline epoll; do
    if [ "$mode" = epoll ]; then be=epoll; sp=inline; else be=uring; sp=$mode; fi
    RINGCORE_SPLICE=$sp nice -n "$nice_n" taskset -c 0 ./target/release/examples/fileserver --root "$root" \
      --addr 127.0.0.1:$port --workers 1 --cpus 0 --backend "$be" >/dev/null 2>"$root/srv.err" &
    pid=$!
    for _ in $(seq 100); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
    perf stat -x, -e raw_syscalls:sys_enter,io_uring:io_uring_complete -p $pid \
      -o "$root/perf.txt" -- sleep "$secs" &
    perfpid=$!
    s0=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$(nice -n "$nice_n" taskset -c 1 wrk -t1 -c10 -d"${secs}s" "http://127.0.0.1:$port/1m.bin")
    s1=$(awk '{print $14+$15}' /proc/$pid/stat)
    iowq=$( (grep -l "iou-wrk" /proc/$pid/task/*/comm 2>/dev/null || true) | wc -l)
    wait $perfpid || true
    kill -INT $pid; wait $pid || true
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    sys=$(awk -F, '/sys_enter/ {print $1}' "$root/perf.txt")
    cqe=$(awk -F, '/io_uring_complete/ {print $1}' "$root/perf.txt")
    awk -v m="$mode" -v r="$r" -v reqs="$reqs" -v t0="$s0" -v t1="$s1" -v tck="$tck" -v secs="$secs" \
      -v iowq="$iowq" -v sys="${sys:-0}" -v cqe="${cqe:-0}" \
      'BEGIN { printf "round %d %-6s files/s=%6.0f cpu_us_per_MiB=%6.1f cpu_share=%.2f io-wq_threads=%d syscalls/file=%.1f cqes/file=%.1f\n", r, m, reqs/secs, (t1-t0)/tck*1e6/reqs, (t1-t0)/tck/secs, iowq, sys/reqs, cqe/reqs }' | tee -a "$log"
  done
done
# Medians per mode, and each io_uring mode's per-round ratio to the epoll run of the
# same round (median of the ratios).
python3 - "$log" <<'PY'
import re, statistics as st, sys
rows = [dict(re.findall(r"(\S+)=\s*(\S+)", l), round=int(l.split()[1]), mode=l.split()[2])
        for l in open(sys.argv[1])]
ep = {r["round"]: r for r in rows if r["mode"] == "epoll"}
print("median   files/s  cpu_us/MiB  syscalls/file  cqes/file  files/s vs epoll  cpu/MiB vs epoll")
for m in ["ring", "drain", "inline", "epoll"]:
    rs = [r for r in rows if r["mode"] == m]
    med = lambda k: st.median(float(r[k]) for r in rs)
    rt = lambda k: st.median(float(r[k]) / float(ep[r["round"]][k]) for r in rs)
    print(f"{m:7} {med('files/s'):8.0f} {med('cpu_us_per_MiB'):11.1f} {med('syscalls/file'):14.1f}"
          f" {med('cqes/file'):10.1f} {rt('files/s'):17.2f} {rt('cpu_us_per_MiB'):17.2f}")
PY
