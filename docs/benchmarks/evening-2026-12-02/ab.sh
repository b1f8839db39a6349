#!/usr/bin/env bash
# usage: ab.sh BIN backend -> files/s, server cpu us/file, data segs per MiB (server), acks per MiB, gen cpu/file
bin=$1; be=$2; port=7413; rel=/work/main/target/release; work=/tmp/ab; rm -rf $work; mkdir -p $work
taskset -c 0 $bin --root /tmp/www --addr 127.0.0.1:$port --workers 1 --backend $be >$work/log 2>&1 &
pid=$!
for _ in $(seq 100); do ss -ltn | grep -q ":$port " && break; sleep 0.05; done
/usr/bin/time -f "%U %S" -o $work/time $rel/ringcore-load http --path /1mib.bin --conns 10 --addr 127.0.0.1:$port --cpu 1 --duration 4 --warmup 1 --json > $work/load.json 2>/dev/null &
lp=$!
sleep 1
s1=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep 3
s2=$(awk '{print $14+$15}' /proc/$pid/stat)
ss -tin "sport = :$port" > $work/ss.txt
wait $lp
kill -INT $pid; sleep 0.3; kill -9 $pid 2>/dev/null; wait 2>/dev/null
python3 - $work/load.json $work/time $s1 $s2 $work/ss.txt <<'PY'
import json,sys,re,os
r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
u,s=map(float,open(sys.argv[2]).read().split()[-2:])
tck=os.sysconf('SC_CLK_TCK')
srv=(int(sys.argv[4])-int(sys.argv[3]))/tck
t=open(sys.argv[5]).read()
bs=sum(int(x) for x in re.findall(r'bytes_sent:(\d+)',t)); ds=sum(int(x) for x in re.findall(r'data_segs_out:(\d+)',t)); si=sum(int(x) for x in re.findall(r' segs_in:(\d+)',t))
mib=bs/1048576
print(f"{r['rps']:.0f} files/s  srv {srv/(r['rps']*3)*1e6:.0f} us/file  dsegs/MiB {ds/mib:.1f} acks/MiB {si/mib:.1f}  gen {(u+s)/(r['rps']*5)*1e6:.0f} us/file")
PY
