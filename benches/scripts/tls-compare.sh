#!/usr/bin/env bash
# TLS benchmarks: new connections per second (full handshake; resumed from tickets),
# and requests per second over kept-alive TLS at depth 1 and 16, against ringcore's
# http example (--tls-cert, io_uring and epoll), nginx (ssl, same certificate, config in
# benches/nginx/tls.conf) and the
# tokio-rustls peer. One ECDSA P-256 certificate; the client (tls-load) offers only
# TLS13_AES_128_GCM_SHA256 + X25519, so every server runs the same suite. Server pinned
# to CPU 0 (one worker), client to CPU 1. Server CPU per operation from /proc/PID/stat.
# Rounds alternate the servers; compare ratios within one run.
#
#   cargo build --release --examples && cargo build --release -p ringcore-benches
#   benches/scripts/tls-compare.sh [seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
rounds=${2:-2}
port=${TLS_BENCH_PORT:-8443}
tck=$(getconf CLK_TCK)
dir=$(mktemp -d /tmp/ringcore-tls-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
# A CA and a leaf signed by it (rustls refuses a self-signed CA certificate as a leaf).
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
# shellcheck disable=SC2086
openssl req -x509 $ec -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 -subj "/CN=bench CA" 2>/dev/null
# shellcheck disable=SC2086
openssl req $ec -keyout "$dir/key.pem" -out "$dir/leaf.csr" -subj /CN=localhost 2>/dev/null
printf "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n" >"$dir/ext.cnf"
openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -out "$dir/cert.pem" -days 2 -extfile "$dir/ext.cnf" 2>/dev/null
mkdir -p "$dir/nginx"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" benches/nginx/tls.conf >"$dir/nginx.conf"
start() {
  case $1 in
    nginx) taskset -c 0 nginx -c "$dir/nginx.conf" >"$dir/srv.log" 2>&1 & ;;
    tokio-rustls) taskset -c 0 ./target/release/peer-tokio-tls --addr 127.0.0.1:$port \
        --cert "$dir/cert.pem" --key "$dir/key.pem" >"$dir/srv.log" 2>&1 & ;;
    ringcore-*) taskset -c 0 ./target/release/examples/http --addr 127.0.0.1:$port --workers 1 \
        --cpus 0 --backend "${1#ringcore-}" --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" \
        >"$dir/srv.log" 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$port " && break; sleep 0.05; done
}
# CPU of the server: nginx's worker is a child of the master.
cpu() {
  local p=$pid
  if [ "$1" = nginx ]; then p=$(pgrep -P "$pid" | head -1); fi
  awk '{print $14+$15}' /proc/"$p"/stat
}
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
printf "%-15s %-9s %-5s %12s %16s %8s %7s\n" server mode depth ops/s server_us/op resumed errors
for round in $(seq "$rounds"); do
  for mode in full resumed requests1 requests16; do
    for s in ringcore-uring ringcore-epoll nginx tokio-rustls; do
      start "$s"
      case $mode in
        full) args="--mode full --threads 4" ;;
        resumed) args="--mode resumed --threads 4" ;;
        requests1) args="--mode requests --conns 16 --depth 1" ;;
        requests16) args="--mode requests --conns 16 --depth 16" ;;
      esac
      c0=$(cpu "$s")
      # shellcheck disable=SC2086
      out=$(taskset -c 1 ./target/release/tls-load --addr 127.0.0.1:$port --ca "$dir/ca.pem" \
        --secs "$secs" $args)
      c1=$(cpu "$s")
      stop
      echo "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); s, m, c0, c1, tck, secs = sys.argv[1:7]
ops = r["ops"]; us = (int(c1) - int(c0)) / int(tck) * 1e6 / ops if ops else float("nan")
# server CPU covers warm-up + measured seconds: scale to the measured part
us *= float(secs) / (float(secs) + 1.0)
d, rate, res, err = r["depth"], r["ops_per_sec"], r["resumed"], r["errors"]
print(f"{s:15s} {m:9s} {d:5d} {rate:12.0f} {us:16.2f} {res:8d} {err:7d}")
' "$s" "$mode" "$c0" "$c1" "$tck" "$secs"
    done
  done
done
