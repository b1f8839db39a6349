#!/usr/bin/env bash
# Where the server CPU goes under TLS: `perf record -g` of ringcore's http example
# (--tls-cert, io_uring, one worker on CPU 0) and of peer-tokio-tls, each under the same
# tls-load run (client on CPU 1), then the samples grouped by component (kernel,
# rustls, ring crypto, ringcore's TLS layer, HTTP codec, runtime, tokio, libc).
#
#   cargo build --release --example http && cargo build --release -p ringcore-benches
#   benches/scripts/tls-profile.sh [full|1|16] [seconds]     # handshakes or depth
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-16}
secs=${2:-10}
port=8453
dir=$(mktemp -d /tmp/ringcore-tls-prof.XXXXXX)
trap 'rm -rf "$dir"' EXIT
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
# shellcheck disable=SC2086
openssl req -x509 $ec -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 -subj "/CN=bench CA" 2>/dev/null
# shellcheck disable=SC2086
openssl req $ec -keyout "$dir/key.pem" -out "$dir/leaf.csr" -subj /CN=localhost 2>/dev/null
printf "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n" >"$dir/ext.cnf"
openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -out "$dir/cert.pem" -days 2 -extfile "$dir/ext.cnf" 2>/dev/null
if [ "$what" = full ]; then load="--mode full --threads 4"; else load="--mode requests --conns 16 --depth $what"; fi
for s in ringcore tokio-rustls; do
  if [ "$s" = ringcore ]; then
    taskset -c 0 ./target/release/examples/http --addr 127.0.0.1:$port --workers 1 --cpus 0 \
      --backend uring --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" >"$dir/srv.log" 2>&1 &
  else
    taskset -c 0 ./target/release/peer-tokio-tls --addr 127.0.0.1:$port --cert "$dir/cert.pem" \
      --key "$dir/key.pem" >"$dir/srv.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$port " && break; sleep 0.05; done
  perf record -g -F 2000 -p "$pid" -o "$dir/$s.data" -- sleep $((secs + 1)) >/dev/null 2>&1 &
  perf_pid=$!
  # shellcheck disable=SC2086
  out=$(taskset -c 1 ./target/release/tls-load --addr 127.0.0.1:$port --ca "$dir/ca.pem" --secs "$secs" $load)
  wait "$perf_pid" || true
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  perf report -i "$dir/$s.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    python3 -c '
import json, re, sys
name, load = sys.argv[1], json.loads(sys.argv[2])
text = sys.stdin.read()
events = int(re.search(r"Event count \(approx.\): (\d+)", text).group(1))
groups = {}
def group(kind, sym):
    if kind == "k": return "kernel"
    if "clock_gettime" in sym or "Timespec" in sym: return "clock reads"
    if "ringcore_net::tls" in sym: return "ringcore TLS layer"
    if "rustls" in sym: return "rustls"
    if "ring_core" in sym or "ring::" in sym or sym.startswith(("fe", "x25519")): return "ring (crypto)"
    if "ringcore_net::http" in sym or "httparse" in sym or "split_requests" in sym or "from_utf8" in sym: return "HTTP codec + stats"
    if "ringcore" in sym: return "runtime + net"
    if "tokio" in sym or "mio" in sym: return "tokio + mio"
    if re.search(r"mem(move|cpy|set)|malloc|free|realloc", sym): return "libc memcpy + malloc"
    return "other"
for line in text.splitlines():
    m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if m:
        g = group(m.group(2), m.group(3).strip())
        groups[g] = groups.get(g, 0.0) + float(m.group(1))
ops = load["ops"]
print(f"{name}: {ops} ops, {events / 1e3 / ops:.2f} us of sampled server CPU per op")
for g, p in sorted(groups.items(), key=lambda x: -x[1]):
    print(f"  {g:22s} {p:5.1f} %  {events * p / 100 / 1e3 / ops:7.3f} us/op")
' "$s" "$out"
done
