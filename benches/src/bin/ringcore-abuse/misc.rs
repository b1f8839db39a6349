//! Single-purpose hostile clients: slow probes, tunnel probes, byte streams, floods
//! that never read, header checks, lingering after a 400.

use crate::conns::Tally;
use crate::net;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// Kind of slow client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Slow {
    /// A request head one header line per interval.
    Loris,
    /// A body of 100,000 announced bytes, one byte per interval.
    Body,
    /// 20,000 pipelined GETs, then 32 response bytes read per interval (4 KiB
    /// receive buffer).
    Read,
}

/// `conns` slow connections of `kind`; per connection, the time from connect until the
/// server closed it (or `None` when still open after `secs`).
pub async fn slow(
    addr: SocketAddr,
    kind: Slow,
    conns: usize,
    secs: f64,
    interval: Duration,
    t: Duration,
) -> Value {
    let mut set = JoinSet::new();
    for _ in 0..conns {
        set.spawn(async move {
            let rcv = (kind == Slow::Read).then_some(4096);
            let s = net::connect(addr, None, rcv, t).await.ok()?;
            let start = Instant::now();
            let end = start + Duration::from_secs_f64(secs);
            let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
            let (mut rd, mut wr) = s.into_split();
            let first: Vec<u8> = match kind {
                Slow::Loris => b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n".to_vec(),
                Slow::Body => {
                    b"POST /plaintext HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
                        .to_vec()
                }
                Slow::Read => net::get("/plaintext", false).repeat(20_000),
            };
            let writer = tokio::spawn(async move {
                let _ = tokio::time::timeout_at(end.into(), wr.write_all(&first)).await;
                wr
            });
            let mut buf = vec![0u8; if kind == Slow::Read { 32 } else { 65536 }];
            let mut wr = None;
            let mut writer = Some(writer);
            loop {
                if Instant::now() >= end {
                    return Some(None);
                }
                if let Some(w) = writer.as_ref() {
                    if w.is_finished() {
                        wr = writer.take().unwrap().await.ok();
                    }
                }
                // A slow reader cannot see the server's close by reading: kilobytes
                // still wait in its receive buffer. Ask the socket (the fd stays open:
                // `rd` owns it).
                if kind == Slow::Read && net::peer_closed(fd) {
                    return Some(Some(start.elapsed().as_secs_f64()));
                }
                let step =
                    tokio::time::timeout(interval.min(end - Instant::now()), rd.read(&mut buf))
                        .await;
                match step {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(Some(start.elapsed().as_secs_f64())),
                    Ok(Ok(_)) if kind == Slow::Read => tokio::time::sleep(interval).await,
                    Ok(Ok(_)) => {}
                    Err(_) => {
                        if let Some(w) = wr.as_mut() {
                            let line: &[u8] = match kind {
                                Slow::Loris => b"X-Slow: x\r\n",
                                Slow::Body => b"x",
                                Slow::Read => b"",
                            };
                            if !line.is_empty() && w.write_all(line).await.is_err() {
                                return Some(Some(start.elapsed().as_secs_f64()));
                            }
                        }
                    }
                }
            }
        });
    }
    let mut closed = Vec::new();
    let (mut open, mut failed) = (0, 0);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Some(Some(s))) => closed.push(s),
            Ok(Some(None)) => open += 1,
            _ => failed += 1,
        }
    }
    closed.sort_by(f64::total_cmp);
    json!({"kind": format!("{kind:?}").to_lowercase(), "conns": conns, "closed": closed.len(),
           "still_open": open, "connect_failed": failed,
           "min_s": closed.first(), "max_s": closed.last(), "probe_secs": secs})
}

/// After sending its bytes, what a tunnel client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Then {
    /// Read until the proxy closes (or the timeout).
    Wait,
    /// Half-close (FIN), then read until close.
    Fin,
    /// Close at once (FIN), leaving the tunnel to the proxy.
    Close,
}

/// `count` concurrent clients of a proxy: send `send` bytes, then `then`; reports what
/// they saw, how many bytes came back, and when.
pub async fn tunnel(addr: SocketAddr, count: usize, send: usize, then: Then, t: Duration) -> Value {
    let tally = Tally::default();
    let mut set = JoinSet::new();
    for _ in 0..count {
        let tally = tally.clone();
        set.spawn(async move {
            let start = Instant::now();
            let mut s = match net::connect(addr, None, None, Duration::from_secs(5)).await {
                Ok(s) => s,
                Err(e) => {
                    tally.add(format!("connect_{}", net::kind(&e)));
                    return (start.elapsed().as_secs_f64(), 0);
                }
            };
            if let Err(e) = s.write_all(&vec![b'p'; send]).await {
                tally.add(format!("write_{}", net::kind(&e)));
            }
            match then {
                Then::Close => {
                    tally.add("closed_by_client");
                    return (0.0, 0);
                }
                Then::Fin => {
                    let _ = s.shutdown().await;
                }
                Then::Wait => {}
            }
            let mut got = 0usize;
            let mut buf = vec![0u8; 65536];
            let work = async {
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) => return "eof".to_string(),
                        Ok(n) => got += n,
                        Err(e) => return net::kind(&e),
                    }
                }
            };
            let what = tokio::time::timeout(t, work)
                .await
                .unwrap_or_else(|_| "no_answer_timeout".into());
            tally.add(what);
            (start.elapsed().as_secs_f64(), got)
        });
    }
    let mut times = Vec::new();
    let mut bytes = Vec::new();
    while let Some(Ok((secs, got))) = set.join_next().await {
        times.push(secs);
        bytes.push(got);
    }
    times.sort_by(f64::total_cmp);
    json!({"count": count, "outcomes": tally.json(), "time_max_s": times.last(),
           "time_median_s": times.get(times.len() / 2), "bytes_max": bytes.iter().max(),
           "bytes_min": bytes.iter().min()})
}

fn xorshift(state: &mut u64, out: &mut [u8]) {
    for chunk in out.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let b = state.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn fnv(h: &mut u64, data: &[u8]) {
    for &b in data {
        *h ^= b as u64;
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

/// `conns` connections each stream `bytes` seeded pseudo-random bytes through an echo
/// path and compare what comes back (order and content), with FNV-1a hashes.
pub async fn stream(addr: SocketAddr, conns: usize, bytes: usize, t: Duration) -> Value {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for c in 0..conns {
        set.spawn(async move {
            let s = match net::connect(addr, None, None, Duration::from_secs(10)).await {
                Ok(s) => s,
                Err(e) => return json!({"error": net::kind(&e)}),
            };
            let (mut rd, mut wr) = s.into_split();
            let seed = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1);
            let writer = tokio::spawn(async move {
                let (mut st, mut h, mut off) = (seed, 0xcbf2_9ce4_8422_2325u64, 0);
                let mut block = vec![0u8; 65536];
                while off < bytes {
                    let n = block.len().min(bytes - off);
                    xorshift(&mut st, &mut block[..n]);
                    fnv(&mut h, &block[..n]);
                    if wr.write_all(&block[..n]).await.is_err() {
                        break;
                    }
                    off += n;
                }
                let _ = wr.shutdown().await;
                (off, h)
            });
            let (mut st, mut h) = (seed, 0xcbf2_9ce4_8422_2325u64);
            let mut expect = vec![0u8; 65536];
            let (mut have, mut exp_len) = (0usize, 0usize);
            let (mut got, mut mismatch) = (0usize, None);
            let mut buf = vec![0u8; 65536];
            let read = async {
                while got < bytes {
                    let n = match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    fnv(&mut h, &buf[..n]);
                    for &b in &buf[..n] {
                        if have == exp_len {
                            exp_len = expect.len().min(bytes.saturating_sub(got));
                            if exp_len == 0 {
                                mismatch.get_or_insert(got);
                                break;
                            }
                            xorshift(&mut st, &mut expect[..exp_len]);
                            have = 0;
                        }
                        if b != expect[have] {
                            mismatch.get_or_insert(got);
                        }
                        have += 1;
                        got += 1;
                    }
                }
            };
            let timed_out = tokio::time::timeout(t, read).await.is_err();
            let (sent, hs) = match tokio::time::timeout(Duration::from_secs(1), writer).await {
                Ok(Ok(v)) => v,
                _ => (0, 0),
            };
            json!({"sent": sent, "received": got, "first_mismatch": mismatch, "timed_out": timed_out,
                   "hash_sent": format!("{hs:016x}"), "hash_recv": format!("{h:016x}"),
                   "ok": got == bytes && sent == bytes && mismatch.is_none() && hs == h})
        });
    }
    let mut per = Vec::new();
    while let Some(Ok(v)) = set.join_next().await {
        per.push(v);
    }
    let ok = per.iter().all(|v| v["ok"] == json!(true));
    let recv: u64 = per.iter().filter_map(|v| v["received"].as_u64()).sum();
    let secs = start.elapsed().as_secs_f64();
    json!({"ok": ok, "conns": per, "bytes_each": bytes, "received_total": recv, "secs": secs,
           "mbit_s": recv as f64 * 8.0 / secs / 1e6})
}

/// What a flood writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Flood {
    /// Raw bytes (for an echo server).
    Echo,
    /// Pipelined `GET /plaintext`.
    Pipeline,
    /// Pipelined `GET /metrics` (a response ~40x the request).
    Metrics,
}

/// Writes without ever reading (4 KiB receive buffer) for `secs` or until `max`
/// bytes or until the server stops taking bytes for 3 s; then holds the connection
/// `hold` seconds and closes.
pub async fn flood(
    addr: SocketAddr,
    kind: Flood,
    secs: f64,
    max: usize,
    hold: f64,
    ready: Option<String>,
) -> Value {
    let mut s = match net::connect(addr, None, Some(4096), Duration::from_secs(5)).await {
        Ok(s) => s,
        Err(e) => return json!({"error": net::kind(&e)}),
    };
    let block: Vec<u8> = match kind {
        Flood::Echo => vec![b'e'; 65536],
        Flood::Pipeline => net::get("/plaintext", false).repeat(65536 / 40),
        Flood::Metrics => net::get("/metrics", false).repeat(65536 / 40),
    };
    let start = Instant::now();
    let (mut sent, mut how, mut off) = (0usize, "time", 0usize);
    while start.elapsed().as_secs_f64() < secs {
        if sent >= max {
            how = "max_bytes";
            break;
        }
        // Continue the byte stream where the last (partial) write left it, so every
        // request stays well-formed.
        match tokio::time::timeout(Duration::from_secs(3), s.write(&block[off..])).await {
            Ok(Ok(n)) => {
                sent += n;
                off = (off + n) % block.len();
            }
            Ok(Err(_)) => {
                how = "server_closed";
                break;
            }
            Err(_) => {
                how = "server_stopped_reading";
                break;
            }
        }
    }
    let flood_secs = start.elapsed().as_secs_f64();
    if let Some(f) = ready {
        let _ = std::fs::write(f, "ready\n");
    }
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    json!({"sent": sent, "ended_by": how, "flood_secs": flood_secs, "mb_s": sent as f64 / flood_secs / 1e6})
}

/// Header checks on fresh connections: each raw request and the status it got.
pub async fn hostcheck(addr: SocketAddr, t: Duration) -> Value {
    let long = "A".repeat(100);
    let cases: Vec<(&str, String)> = vec![
        (
            "valid_1_1",
            "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ),
        ("missing_host_1_1", "GET /plaintext HTTP/1.1\r\n\r\n".into()),
        (
            "duplicate_host",
            "GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
        ),
        ("missing_host_1_0", "GET /plaintext HTTP/1.0\r\n\r\n".into()),
        (
            "long_method",
            format!("{long} /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, req) in cases {
        let v = match net::connect(addr, None, None, t).await {
            Err(e) => json!(net::kind(&e)),
            Ok(mut s) => match net::roundtrip(&mut s, req.as_bytes(), t).await {
                net::Got::Full(c) => json!(c),
                net::Got::CleanEof => json!("eof"),
                net::Got::Cut => json!("cut"),
                net::Got::Err(k) => json!(k),
            },
        };
        out.insert(name.into(), v);
    }
    Value::Object(out)
}

/// Sends `pipelined` valid GETs and a malformed request without reading (4 KiB
/// receive buffer, so the responses back up), then keeps sending ~10 MB/s of garbage
/// for up to `secs`; then reads what arrived: did the 400 come, and when did the
/// server stop taking bytes.
pub async fn linger400(addr: SocketAddr, secs: f64, pipelined: usize) -> Value {
    let s = match net::connect(addr, None, Some(4096), Duration::from_secs(5)).await {
        Ok(s) => s,
        Err(e) => return json!({"error": net::kind(&e)}),
    };
    let (mut rd, mut wr) = s.into_split();
    let start = Instant::now();
    let mut first = net::get("/plaintext", false).repeat(pipelined);
    first.extend_from_slice(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nBad header line\r\n\r\n");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let block = vec![b'g'; 65536];
    let (mut sent, mut stopped) = (0usize, None);
    if pipelined == 0 {
        // Read the answer first (nothing backs up).
        let _ = wr.write_all(&first).await;
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), rd.read(&mut buf)).await {
            got.extend_from_slice(&buf[..n]);
        }
    } else if let Ok(Err(_)) | Err(_) =
        tokio::time::timeout(Duration::from_secs(5), wr.write_all(&first)).await
    {
        stopped = Some(start.elapsed().as_secs_f64());
    }
    while stopped.is_none() && start.elapsed().as_secs_f64() < secs {
        match tokio::time::timeout(Duration::from_secs(2), wr.write_all(&block)).await {
            Ok(Ok(())) => sent += block.len(),
            Ok(Err(_)) => stopped = Some(start.elapsed().as_secs_f64()),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(6)).await;
    }
    drop(wr);
    let mut end = "open".to_string();
    let read_all = async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return "eof".to_string(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return net::kind(&e),
            }
        }
    };
    if let Ok(e) = tokio::time::timeout(Duration::from_secs(3), read_all).await {
        end = e;
    }
    let text = String::from_utf8_lossy(&got);
    let status400 = text.contains("HTTP/1.1 400");
    json!({"pipelined": pipelined, "got_400": status400, "responses": text.matches("HTTP/1.1 ").count(),
           "sent_after": sent, "server_stopped_taking_at_s": stopped, "read_end": end,
           "probe_secs": secs})
}

/// `conns` downloads of `path` that never read (4 KiB receive buffer) for `secs`, then
/// close: the server is left with that many stalled sends (file segments, pipes).
pub async fn stuck(addr: SocketAddr, conns: usize, path: String, secs: f64) -> Value {
    let tally = Tally::default();
    let mut held = Vec::new();
    for _ in 0..conns {
        match net::connect(addr, None, Some(4096), Duration::from_secs(5)).await {
            Ok(mut s) => match s.write_all(&net::get(&path, false)).await {
                Ok(()) => held.push(s),
                Err(e) => tally.add(format!("write_{}", net::kind(&e))),
            },
            Err(e) => tally.add(format!("connect_{}", net::kind(&e))),
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let n = held.len();
    drop(held);
    json!({"stuck": n, "errors": tally.json()})
}
