#!/usr/bin/env python3
"""Misbehaving upstreams for the proxy scenarios, all on 127.0.0.1.

Prints one JSON line {"refused": port, "blackhole": port, "silent": port, "reset": port}
once every listener is ready, then serves until killed.

* refused:   a bound socket that never listens (connect gets RST).
* blackhole: listen(0) with the accept queue filled by our own connections and never
             accepted: further SYNs are dropped, connects hang.
* silent:    accepts and reads forever, never writes, never closes.
* reset:     accepts, reads the first bytes, sends 64 KiB, then resets (SO_LINGER 0).
"""
import json
import select
import socket
import struct
import sys
import threading


def bound(listen=None):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    if listen is not None:
        s.listen(listen)
    return s


def serve(lsock, mode):
    held = []
    lsock.setblocking(True)
    while True:
        c, _ = lsock.accept()
        if mode == "silent":
            held.append(c)
            c.setblocking(False)
            # Read whatever comes (keeps the window open); never answer, never close.
            threading.Thread(target=drain_forever, args=(c,), daemon=True).start()
        else:
            threading.Thread(target=reset_after, args=(c,), daemon=True).start()


def drain_forever(c):
    while True:
        r, _, _ = select.select([c], [], [], 1.0)
        if r:
            try:
                if not c.recv(65536):
                    return  # keep the socket (held list) open: a silent peer
            except BlockingIOError:
                pass
            except OSError:
                return


def reset_after(c):
    try:
        c.settimeout(5)
        c.recv(65536)
        c.sendall(b"r" * 65536)
    except OSError:
        pass
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def main():
    refused = bound()
    black = bound(listen=0)
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(black.getsockname())
        except BlockingIOError:
            pass
        fillers.append(f)
    silent = bound(listen=1024)
    reset = bound(listen=1024)
    for s, m in ((silent, "silent"), (reset, "reset")):
        threading.Thread(target=serve, args=(s, m), daemon=True).start()
    print(json.dumps({
        "refused": refused.getsockname()[1],
        "blackhole": black.getsockname()[1],
        "silent": silent.getsockname()[1],
        "reset": reset.getsockname()[1],
    }), flush=True)
    try:
        sys.stdin.read()  # until our parent closes stdin or kills us
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
