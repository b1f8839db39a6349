#!/usr/bin/env bash
# Pinned echo measurement of the core issues: one fresh server per run, pinned to
# CPU 0, ringcore-load pinned to CPU 1, 128 B messages, closed loop.
# Prints per run: conns, round trips/s, server CPU us per request (utime+stime from
# /proc/PID/stat), io_uring_enter calls and backend syscalls per request (from the
# server's own counters, printed on exit), and the load generator's p50/p99.
#
#   cargo build --release --examples -p ringcore -p ringcore-benches
#   benches/scripts/echo-pinned.sh [seconds] [backends...]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}; shift || true
backends=${*:-"uring epoll tokio"}
port=7301
tck=$(getconf CLK_TCK)
for conns in ${CONNS:-1 50 500}; do
  for b in $backends; do
    case $b in
      tokio) taskset -c 0 ./target/release/peer-tokio --addr 127.0.0.1:$port --mode echo >/tmp/srv.log 2>&1 & ;;
      *) taskset -c 0 ./target/release/examples/echo --addr 127.0.0.1:$port --workers 1 --cpus 0 --backend "$b" >/tmp/srv.log 2>&1 & ;;
    esac
    pid=$!
    for _ in $(seq 50); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
    s0=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$(./target/release/ringcore-load echo --addr 127.0.0.1:$port -c "$conns" --size 128 -d "$secs" --warmup 1 --cpu 1 --json)
    s1=$(awk '{print $14+$15}' /proc/$pid/stat)
    kill -INT $pid
    for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
    python3 - "$b" "$conns" "$out" "$s0" "$s1" "$tck" "$secs" <<'PY'
import json, re, sys
b, conns, out, s0, s1, tck, secs = sys.argv[1:]
r = json.loads(out)
reqs = r.get("requests") or r.get("completed") or 0
rps = r.get("rps") or r.get("throughput") or (reqs / float(secs))
cpu_s = (int(s1) - int(s0)) / int(tck)
log = open("/tmp/srv.log").read()
def m(name):
    x = re.search(r"ringcore_%s_total (\d+)" % name, log)
    return int(x.group(1)) if x else None
enters, sysc, cqes = m("enters"), m("syscalls"), m("cqes")
bytes_out = m("bytes_out")
total_req = (bytes_out // 128) if bytes_out else None
lat = r.get("latency") or {}
per = lambda v: "-" if v is None or not total_req else "%.3f" % (v / total_req)
# Server CPU covers warm-up too, so divide by every request the server answered when
# its counters are known (ringcore), else by the client's count scaled to the same span.
srv_reqs = total_req or reqs * (1 + 1 / float(secs))
print(f"{b:6} conns={conns:>4} rps={rps:>10.0f} cpu_us/req={cpu_s*1e6/max(srv_reqs,1):6.2f} "
      f"enters/req={per(enters)} syscalls/req={per(sysc)} p50={lat.get('p50_us','-')}us p99={lat.get('p99_us','-')}us client_busy={r.get('client_busy_share',0):.2f}")
PY
  done
done
