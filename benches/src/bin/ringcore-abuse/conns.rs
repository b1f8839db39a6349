//! Many-connection clients: churn, hold, legit, fetch, reset storm, body pinning,
//! split requests.

use crate::net::{self, Got};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Outcome counts keyed by a short name.
#[derive(Default, Clone)]
pub struct Tally(Arc<Mutex<BTreeMap<String, u64>>>);

impl Tally {
    pub fn add(&self, k: impl Into<String>) {
        *self.0.lock().unwrap().entry(k.into()).or_default() += 1;
    }
    pub fn get(&self, k: &str) -> u64 {
        self.0.lock().unwrap().get(k).copied().unwrap_or(0)
    }
    pub fn json(&self) -> Value {
        json!(*self.0.lock().unwrap())
    }
}

/// What one connection does to prove the server serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// GET /plaintext, expect 200.
    Http,
    /// 16 bytes echoed back.
    Echo,
    /// Nothing: connect only.
    None,
}

async fn exchange(s: &mut TcpStream, proto: Proto, close: bool, t: Duration) -> Result<(), String> {
    match proto {
        Proto::None => Ok(()),
        Proto::Echo => net::echo_roundtrip(s, b"0123456789abcdef", t).await,
        Proto::Http => match net::roundtrip(s, &net::get("/plaintext", close), t).await {
            Got::Full(200) => Ok(()),
            Got::Full(c) => Err(format!("status{c}")),
            Got::CleanEof => Err("eof".into()),
            Got::Cut => Err("cut".into()),
            Got::Err(k) => Err(k),
        },
    }
}

/// `n` connect / request / close cycles over `conns` concurrent loops.
pub async fn churn(
    addr: SocketAddr,
    n: usize,
    conns: usize,
    sources: usize,
    proto: Proto,
    t: Duration,
) -> Value {
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let errs = Tally::default();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..conns {
        let (next, ok, errs) = (next.clone(), ok.clone(), errs.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                match net::connect(addr, net::source(i, sources), None, t).await {
                    Err(e) => errs.add(net::kind(&e)),
                    Ok(mut s) => match exchange(&mut s, proto, true, t).await {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if proto == Proto::Http {
                                // `Connection: close`: let the server close first, so
                                // TIME_WAIT stays on its side (as with real clients).
                                let mut b = [0u8; 64];
                                let _ = tokio::time::timeout(t, s.read(&mut b)).await;
                            }
                        }
                        Err(k) => errs.add(k),
                    },
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    json!({"cycles": n, "ok": ok, "errors": errs.json(), "secs": secs, "rate": ok as f64 / secs})
}

/// Opens `conns` connections in batches of `batch`, each proving service with one
/// exchange; returns the streams and the outcome tally.
pub async fn open_many(
    addr: SocketAddr,
    conns: usize,
    sources: usize,
    proto: Proto,
    t: Duration,
    batch: usize,
    first: &[u8],
) -> (Vec<TcpStream>, Tally) {
    let tally = Tally::default();
    let mut held = Vec::with_capacity(conns);
    let mut i = 0;
    while i < conns {
        let mut set = JoinSet::new();
        for j in i..(i + batch).min(conns) {
            let first = first.to_vec();
            let tally = tally.clone();
            set.spawn(async move {
                let mut s = match net::connect(addr, net::source(j, sources), None, t).await {
                    Ok(s) => s,
                    Err(e) => {
                        tally.add(format!("connect_{}", net::kind(&e)));
                        return None;
                    }
                };
                if !first.is_empty() {
                    if let Err(e) = s.write_all(&first).await {
                        tally.add(format!("write_{}", net::kind(&e)));
                        return Some(s);
                    }
                }
                match exchange(&mut s, proto, false, t).await {
                    Ok(()) => tally.add("ok"),
                    Err(k) => tally.add(format!("exchange_{k}")),
                }
                Some(s)
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Some(s)) = r {
                held.push(s);
            }
        }
        i += batch;
    }
    (held, tally)
}

/// Holds `conns` connections open for `secs`, then checks every one still answers.
pub async fn hold(
    addr: SocketAddr,
    conns: usize,
    sources: usize,
    proto: Proto,
    secs: f64,
    ready: Option<String>,
    t: Duration,
) -> Value {
    let start = Instant::now();
    let (held, tally) = open_many(addr, conns, sources, proto, t, 1000, b"").await;
    let open_secs = start.elapsed().as_secs_f64();
    if let Some(f) = ready {
        let _ = std::fs::write(f, "ready\n");
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let after = Tally::default();
    let mut set = JoinSet::new();
    for mut s in held.into_iter() {
        let after = after.clone();
        set.spawn(async move {
            match exchange(&mut s, proto, false, t).await {
                Ok(()) => after.add("ok"),
                Err(k) => after.add(k),
            }
        });
    }
    while set.join_next().await.is_some() {}
    json!({"conns": conns, "opened": tally.json(), "open_secs": open_secs, "after_hold": after.json(),
           "ok_after": after.get("ok")})
}

/// One fresh-connection GET every `interval` for `secs`: the legitimate client.
pub async fn legit(addr: SocketAddr, secs: f64, interval: Duration, t: Duration) -> Value {
    let start = Instant::now();
    let (mut ok, fail, mut worst) = (0u64, Tally::default(), 0f64);
    while start.elapsed().as_secs_f64() < secs {
        let t0 = Instant::now();
        let r = match net::connect(addr, None, None, t).await {
            Ok(mut s) => exchange(&mut s, Proto::Http, true, t).await,
            Err(e) => Err(net::kind(&e)),
        };
        worst = f64::max(worst, t0.elapsed().as_secs_f64());
        match r {
            Ok(()) => ok += 1,
            Err(k) => fail.add(k),
        }
        tokio::time::sleep(interval).await;
    }
    let total = ok + fail.0.lock().unwrap().values().sum::<u64>();
    json!({"ok": ok, "total": total, "pct": 100.0 * ok as f64 / total.max(1) as f64,
           "fail": fail.json(), "worst_ms": worst * 1000.0})
}

/// Keep-alive GET loops on `conns` connections for `secs`, reconnecting after a close;
/// counts complete responses, clean closes and responses cut mid-way.
pub async fn fetch(addr: SocketAddr, conns: usize, path: String, secs: f64, t: Duration) -> Value {
    let tally = Tally::default();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut set = JoinSet::new();
    for _ in 0..conns {
        let (tally, path) = (tally.clone(), path.clone());
        set.spawn(async move {
            'conn: while Instant::now() < deadline {
                let mut s = match net::connect(addr, None, None, t).await {
                    Ok(s) => s,
                    Err(e) => {
                        tally.add(format!("connect_{}", net::kind(&e)));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let req = net::get(&path, false);
                while Instant::now() < deadline {
                    match net::roundtrip(&mut s, &req, t).await {
                        Got::Full(200) => tally.add("complete"),
                        Got::Full(c) => tally.add(format!("status{c}")),
                        Got::CleanEof => {
                            tally.add("clean_close");
                            continue 'conn;
                        }
                        Got::Cut => {
                            tally.add("cut_mid_response");
                            continue 'conn;
                        }
                        Got::Err(k) => {
                            tally.add(format!("err_{k}"));
                            continue 'conn;
                        }
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    json!({"outcomes": tally.json(), "cut": tally.get("cut_mid_response"), "complete": tally.get("complete")})
}

/// `rounds` times: `conns` connections each send part of a request, then all are
/// reset at once; measures how fast the server's fd count returns to its baseline.
pub async fn reset_storm(
    addr: SocketAddr,
    conns: usize,
    rounds: usize,
    sources: usize,
    pid: u32,
    wait: f64,
    t: Duration,
) -> Value {
    let mut out = Vec::new();
    for _ in 0..rounds {
        let base = net::fd_count(pid).unwrap_or(0);
        let partial = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nX-Partial: ";
        let (held, tally) = open_many(addr, conns, sources, Proto::None, t, 1000, partial).await;
        let opened = held.len();
        // Wait until the server has accepted them all (or stops making progress).
        let t0 = Instant::now();
        let mut peak = 0;
        while t0.elapsed() < Duration::from_secs(20) {
            peak = net::fd_count(pid).unwrap_or(0);
            if peak >= base + opened {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for s in &held {
            let _ = net::set_reset_on_close(s);
        }
        let reset_at = Instant::now();
        drop(held);
        let mut back_ms = None;
        let mut at_1s = None;
        let mut last = 0;
        while reset_at.elapsed().as_secs_f64() < wait {
            last = net::fd_count(pid).unwrap_or(0);
            if at_1s.is_none() && reset_at.elapsed() >= Duration::from_secs(1) {
                at_1s = Some(last);
            }
            if last <= base + 1 {
                back_ms = Some(reset_at.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        out.push(
            json!({"base_fds": base, "opened": opened, "open": tally.json(), "peak_fds": peak,
                        "back_ms": back_ms, "fds_at_1s": at_1s, "fds_last": last}),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    json!({"rounds": out})
}

/// `conns` connections each send a request head announcing `cl` bytes and then
/// `body` bytes of it, and wait `secs` before closing.
pub async fn body_pin(
    addr: SocketAddr,
    conns: usize,
    cl: usize,
    body: usize,
    secs: f64,
    ready: Option<String>,
    t: Duration,
) -> Value {
    let start = Instant::now();
    let tally = Tally::default();
    let sent = Arc::new(AtomicU64::new(0));
    let mut held = Vec::new();
    let mut i = 0;
    let payload = Arc::new(vec![b'x'; body]);
    while i < conns {
        let mut set = JoinSet::new();
        for _ in i..(i + 250).min(conns) {
            let (tally, sent, payload) = (tally.clone(), sent.clone(), payload.clone());
            set.spawn(async move {
                let mut s = match net::connect(addr, None, None, t).await {
                    Ok(s) => s,
                    Err(e) => {
                        tally.add(format!("connect_{}", net::kind(&e)));
                        return None;
                    }
                };
                let head = format!(
                    "POST /plaintext HTTP/1.1\r\nHost: localhost\r\nContent-Length: {cl}\r\n\r\n"
                );
                let _ = s.write_all(head.as_bytes()).await;
                let mut off = 0;
                while off < payload.len() {
                    let end = (off + 65536).min(payload.len());
                    match tokio::time::timeout(
                        Duration::from_secs(3),
                        s.write_all(&payload[off..end]),
                    )
                    .await
                    {
                        Ok(Ok(())) => {
                            sent.fetch_add((end - off) as u64, Ordering::Relaxed);
                            off = end;
                        }
                        Ok(Err(e)) => {
                            tally.add(format!("write_{}", net::kind(&e)));
                            return Some(s);
                        }
                        Err(_) => {
                            tally.add("stalled");
                            return Some(s);
                        }
                    }
                }
                tally.add("body_sent");
                Some(s)
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Some(s)) = r {
                held.push(s);
            }
        }
        i += 250;
    }
    let send_secs = start.elapsed().as_secs_f64();
    if let Some(f) = ready {
        let _ = std::fs::write(f, "ready\n");
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    // How many did the server close meanwhile?
    let mut closed = 0;
    let mut buf = [0u8; 4096];
    for s in &held {
        loop {
            match s.try_read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed += 1;
                    break;
                }
            }
        }
    }
    json!({"conns": conns, "held": held.len(), "bytes_sent": sent.load(Ordering::Relaxed),
           "outcomes": tally.json(), "send_secs": send_secs, "closed_by_server": closed})
}

/// Closed-loop keep-alive GETs on `conns` connections for `secs`; with `split`, each
/// request is written in two segments.
pub async fn split(addr: SocketAddr, conns: usize, secs: f64, split: bool, t: Duration) -> Value {
    let done = Arc::new(AtomicU64::new(0));
    let errs = Tally::default();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..conns {
        let (done, errs) = (done.clone(), errs.clone());
        set.spawn(async move {
            let Ok(mut s) = net::connect(addr, None, None, t).await else {
                errs.add("connect");
                return;
            };
            let req = net::get("/plaintext", false);
            let mut buf = Vec::new();
            while Instant::now() < deadline {
                let cut = if split { req.len() / 2 } else { req.len() };
                if s.write_all(&req[..cut]).await.is_err() {
                    errs.add("write");
                    return;
                }
                if split {
                    tokio::task::yield_now().await;
                    if s.write_all(&req[cut..]).await.is_err() {
                        errs.add("write");
                        return;
                    }
                }
                match tokio::time::timeout(t, net::read_response(&mut s, &mut buf)).await {
                    Ok(Got::Full(200)) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errs.add("response");
                        return;
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    json!({"split": split, "reqs": n, "rps": n as f64 / secs, "errors": errs.json()})
}
