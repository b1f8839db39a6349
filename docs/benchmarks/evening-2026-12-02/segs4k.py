import socket, subprocess, sys, re, time
port=int(sys.argv[1]); n=500
s=socket.create_connection(("127.0.0.1",port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req=b"GET /4k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
for i in range(n):
    s.sendall(req); need=None; buf=b""
    while True:
        buf+=s.recv(65536)
        if need is None and b"\r\n\r\n" in buf:
            h,_,_=buf.partition(b"\r\n\r\n"); cl=int(re.search(rb"Content-Length: (\d+)",h).group(1)); need=len(h)+4+cl
        if need is not None and len(buf)>=need: break
out=subprocess.run(["ss","-tin","sport = :%d"%port],capture_output=True,text=True).stdout
ds=int(re.search(r"data_segs_out:(\d+)",out).group(1))
print(f"server data segments per 4 KiB response: {ds/n:.2f}")
