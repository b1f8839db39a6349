#!/usr/bin/env bash
# Issue 12 items 2/3/5 on and off: zero-copy echo (send_received holds), receive
# bundles, incremental buffers, SEND_ZC. One fresh server per run, pinned to CPU 0;
# ringcore-load (echo) or wrk (HTTP) pinned to CPU 1; variants alternate inside every
# round, so compare them as ratios within one round. Options are switched with the
# runtime's environment overrides, so one binary serves every variant.
#
#   cargo build --release --examples -p ringcore
#   cargo build --release -p ringcore-benches --bin ringcore-load --bin peer-tokio
#   ROUNDS=3 SECS=4 benches/scripts/ablation-buffers.sh echo128|echo500|echo16k|http|large
#   (VARIANTS="name=ENV=1,ENV2=2 ..." picks the variants; PORT the port, default 17612)
#
# Prints per run: variant, scenario, rps, server CPU µs/req (utime+stime from
# /proc/PID/stat over warm-up + measurement, divided by every request the server
# answered), syscalls/req and CQEs/req (the server's own counters), p99 (load
# generator), and the held/fallback/zc counters.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-echo128}
secs=${SECS:-4}
rounds=${ROUNDS:-3}
port=${PORT:-17612}
tck=$(getconf CLK_TCK)
# name=environment (space separated; "tokio" runs the tokio peer).
variants=${VARIANTS:-"copy=RINGCORE_RECV_HOLD_LIMIT=0 hold= inc=RINGCORE_BUF_INC=1 bundle=RINGCORE_RECV_BUNDLE=1 inc+bundle=RINGCORE_BUF_INC=1,RINGCORE_RECV_BUNDLE=1 tokio=tokio"}

run() { # variant env scenario conns size depth
  local name=$1 envs=$2 scen=$3 conns=$4 size=$5 depth=$6 pid out s0 s1 envargs=()
  IFS=, read -ra kv <<<"$envs"
  for e in "${kv[@]}"; do [ -n "$e" ] && [ "$e" != tokio ] && envargs+=("$e"); done
  case $scen in http*) ex=http mode=http ;; *) ex=echo mode=echo ;; esac
  if [ "$envs" = tokio ]; then
    taskset -c 0 ./target/release/peer-tokio --addr 127.0.0.1:$port --mode $mode >/tmp/abl-srv.log 2>&1 &
  else
    env "${envargs[@]}" taskset -c 0 ./target/release/examples/$ex --addr 127.0.0.1:$port \
      --workers 1 --cpus 0 --backend uring >/tmp/abl-srv.log 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
  s0=$(awk '{print $14+$15}' /proc/$pid/stat)
  if [ $ex = http ]; then
    out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s benches/scripts/pipeline.lua \
      "http://127.0.0.1:$port/plaintext" -- "$depth")
  else
    out=$(./target/release/ringcore-load echo --addr 127.0.0.1:$port -c "$conns" --size "$size" \
      --depth "$depth" -d "$secs" --warmup 1 --cpu 1 --json 2>/tmp/abl-load.err) || out=""
  fi
  s1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill -INT $pid
  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
  kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  if [ -z "$out" ]; then echo "$name $scen c=$conns: load generator failed: $(head -1 /tmp/abl-load.err)"; return; fi
  python3 - "$name" "$scen" "$conns" "$size" "$depth" "$out" "$s0" "$s1" "$tck" "$secs" "$ex" <<'PY'
import json, re, sys
name, scen, conns, size, depth, out, s0, s1, tck, secs, ex = sys.argv[1:]
cpu_s = (int(s1) - int(s0)) / int(tck)
log = open("/tmp/abl-srv.log").read()
def m(n):
    x = re.search(r"ringcore_%s(?:_total)? (\d+)" % n, log)
    return int(x.group(1)) if x else None
if ex == "http":
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    p99 = p99.group(1) if p99 else "-"
    srv = reqs  # wrk has no warm-up: the server's CPU span is the run
else:
    r = json.loads(out)
    rps = r.get("rps") or 0
    reqs = r.get("requests") or r.get("completed") or 0
    p99 = "%sus" % (r.get("latency") or {}).get("p99_us", "-")
    bo = m("bytes_out")
    srv = bo // int(size) if bo else reqs * (1 + 1 / float(secs))
def per(v):
    return "-" if v is None or not srv else "%.3f" % (v / srv)
extra = " ".join("%s=%s" % (k, m(k)) for k in ("recv_holds", "recv_hold_fallbacks", "recv_bundles", "enobufs", "send_zc", "send_zc_copied") if m(k))
print(f"{name:11} {scen:9} c={conns:>3} d={depth:>2} rps={rps:>9.0f} cpu_us/req={cpu_s*1e6/max(srv,1):6.2f} "
      f"sys/req={per(m('syscalls'))} cqe/req={per(m('cqes'))} p99={p99} {extra}", flush=True)
PY
}

for round in $(seq "$rounds"); do
  echo "# round $round ($what)"
  case $what in
    echo128) scen="echo128:1:128:1 echo128:50:128:1 echo128:500:128:1" ;;
    echo500) scen="echo128:500:128:1" ;;
    echo16k) scen="echo16k:50:16384:1" ;;
    http) scen="http:100:0:1 http:100:0:16" ;;
    large) scen="echo256k:10:262144:1 echo1m:4:1048576:1" ;;
    *) echo "unknown scenario set $what" >&2; exit 2 ;;
  esac
  for sc in $scen; do
    IFS=: read -r name conns size depth <<<"$sc"
    for v in $variants; do
      run "${v%%=*}" "${v#*=}" "$name" "$conns" "$size" "$depth"
    done
  done
done
