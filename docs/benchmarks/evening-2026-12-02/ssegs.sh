#!/usr/bin/env bash
# prints avg data segment size the server sent, per connection, near the end of a 4 s load
srv=$1; port=7412; rel=/work/main/target/release; work=/tmp/ssegs-$srv; rm -rf $work; mkdir -p $work/tmp
case $srv in
  uring|epoll) taskset -c 0 $rel/examples/fileserver --root /tmp/www --addr 127.0.0.1:$port --workers 1 --backend $srv >$work/log 2>&1 & ;;
  nginx) sed "s/7411/$port/; s#/tmp/segs-nginx#$work#g" /tmp/segs-nginx/nginx.conf > $work/nginx.conf; taskset -c 0 nginx -c $work/nginx.conf -p $work >$work/log 2>&1 & ;;
esac
pid=$!
for _ in $(seq 100); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
$rel/ringcore-load http --path /1mib.bin --conns 10 --addr 127.0.0.1:$port --cpu 1 --duration 4 --warmup 0 --json > $work/load.json 2>/dev/null &
sleep 3
ss -tin "sport = :$port" > $work/ss.txt
wait $!
kill -INT $pid; sleep 0.3; kill -9 $pid 2>/dev/null; wait 2>/dev/null
python3 - $work/ss.txt <<'PY'
import re,sys
t=open(sys.argv[1]).read()
bs=[int(x) for x in re.findall(r'bytes_sent:(\d+)',t)]
ds=[int(x) for x in re.findall(r'data_segs_out:(\d+)',t)]
so=[int(x) for x in re.findall(r' segs_out:(\d+)',t)]
si=[int(x) for x in re.findall(r' segs_in:(\d+)',t)]
print(f"conns {len(bs)} avg data seg {sum(bs)/max(1,sum(ds)):.0f} B; per MiB: data segs {sum(ds)/(sum(bs)/1048576):.1f}, segs_in {sum(si)/(sum(bs)/1048576):.1f}")
PY
