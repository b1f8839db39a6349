//! `ringcore-load`: a load generator built on ringcore's own client side (outbound
//! connect + the same callback handlers as a server), so each request costs what a
//! ringcore server's does.
//!
//! ```text
//! ringcore-load echo --addr 127.0.0.1:7000 --conns 50 --size 128 --duration 5 --cpu 1
//! ringcore-load echo --conns 50 --rate 50000          # open loop, 50k req/s in total
//! ringcore-load http --addr 127.0.0.1:8080 --path /plaintext --depth 16 --conns 256
//! ringcore-load hold --addr 127.0.0.1:7000 --conns 100000 --duration 10
//! ringcore-load udp --addr 127.0.0.1:7001 --size 64 --depth 32 --cpu 1
//! ```
//!
//! Closed loop (default): each connection keeps `--depth` requests in flight.
//! Open loop (`--rate R`): R requests per second in total, spread evenly over the
//! connections, pipelined, latency free of coordinated omission (see `client.rs`).

mod client;
mod echo;
mod http;
mod stats;
mod udp;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use client::{Client, Idle, Pace};
use ringcore::{BackendKind, ConnInfo, Connect, ConnectOptions, Runtime};
use serde_json::json;
use stats::{Shared, DONE, MEASURE};
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Load generator on ringcore's client side.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Fixed-size messages echoed back (every byte checked).
    Echo {
        #[command(flatten)]
        common: Common,
        /// Message size in bytes.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Messages in flight per connection (closed loop).
        #[arg(long, default_value_t = 1)]
        depth: usize,
    },
    /// Pipelined HTTP/1.1 GETs (status line and Content-Length framing checked).
    Http {
        #[command(flatten)]
        common: Common,
        /// Request path.
        #[arg(long, default_value = "/plaintext")]
        path: String,
        /// Host header (default: the target address).
        #[arg(long)]
        host: Option<String>,
        /// Requests in flight per connection (closed loop).
        #[arg(long, default_value_t = 1)]
        depth: usize,
    },
    /// UDP datagrams echoed back: one socket per generator worker (--conns is not
    /// used), --depth datagrams in flight each; reports datagrams/s, latency and lost
    /// datagrams (no reply within 200 ms).
    Udp {
        #[command(flatten)]
        common: Common,
        /// Datagram size in bytes (at least 8: a sequence number leads).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Datagrams in flight per generator socket (closed loop).
        #[arg(long, default_value_t = 32)]
        depth: usize,
        /// The generator's own sends use UDP GSO (UdpOptions::gso): the datagrams one
        /// turn sends leave as one UDP_SEGMENT send.
        #[arg(long)]
        gso: bool,
    },
    /// Open N idle connections and keep them open for --duration seconds.
    Hold {
        #[command(flatten)]
        common: Common,
        /// Source addresses 127.0.0.2, 127.0.0.3, ... to spread over (0: one per
        /// 25,000 connections).
        #[arg(long, default_value_t = 0)]
        sources: usize,
        /// Bytes each connection sends once on open and waits to get back (echo)
        /// before idling (0: none); measures idle memory after traffic.
        #[arg(long, default_value_t = 0)]
        ping: usize,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: SocketAddr,
    /// Connections in total (spread over the workers).
    #[arg(long, short = 'c', default_value_t = 50)]
    conns: usize,
    /// Seconds of measurement (hold: how long the connections stay open).
    #[arg(long, short = 'd', default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up before measuring (hold: the most time allowed to open).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Requests per second in total (open loop). Without it: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: most requests outstanding per connection.
    #[arg(long, default_value_t = 1024)]
    max_outstanding: usize,
    /// Pin the generator to this CPU (one worker).
    #[arg(long)]
    cpu: Option<usize>,
    /// Worker threads (ignored with --cpu).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Generator backend: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    backend: BackendKind,
    /// Connect timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Free-form label copied into the JSON result.
    #[arg(long)]
    label: Option<String>,
}

fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to an owned rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// What the controller thread hands back: measurement start and end, the process's CPU
/// (user, system) seconds at both, and how long opening took.
type Window = (
    Option<Instant>,
    Option<Instant>,
    (f64, f64),
    (f64, f64),
    f64,
);

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (common, mode_name) = match &cli.mode {
        Mode::Echo { common, .. } => (common, "echo"),
        Mode::Http { common, .. } => (common, "http"),
        Mode::Hold { common, .. } => (common, "hold"),
        Mode::Udp { common, .. } => (common, "udp"),
    };
    if common.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let workers = if common.cpu.is_some() {
        1
    } else {
        common.workers.max(1)
    };
    let mut b = Runtime::builder()
        .backend(common.backend)
        .workers(workers)
        .handle_signals(true)
        .drain_timeout(Duration::from_millis(300));
    if let Some(cpu) = common.cpu {
        b = b.cpus(vec![cpu]);
    }
    if matches!(cli.mode, Mode::Hold { .. }) {
        // Idle connections need no receive buffers to speak of.
        b = b.buf_count(64);
    }
    let rt = b.build().context("invalid runtime configuration")?;
    let per_worker = common.conns.div_ceil(workers);
    let conns = per_worker * workers;
    let mut opts =
        ConnectOptions::default().timeout(Duration::from_secs_f64(common.connect_timeout));
    if let Mode::Hold { sources, .. } = &cli.mode {
        let n = if *sources == 0 {
            conns.div_ceil(25_000)
        } else {
            *sources
        };
        let ips = (0..n)
            .map(|i| {
                let host = 2 + i as u32;
                IpAddr::V4(Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(127, 0, 0, 0)) + host,
                ))
            })
            .collect();
        opts = opts.sources(ips);
    }

    let shared = Shared::new();
    let handle = rt.handle();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let is_hold = matches!(cli.mode, Mode::Hold { .. });
    let ping = match &cli.mode {
        Mode::Hold { ping, .. } => *ping as u64,
        _ => 0,
    };
    let warmup = Duration::from_secs_f64(common.warmup.max(0.0));
    let duration = Duration::from_secs_f64(common.duration.max(0.0));
    let progress = std::io::stderr().is_terminal() && !common.json;

    // Controller: phases, progress line, shutdown.
    let ctl = {
        let shared = shared.clone();
        let conns = conns as u64;
        std::thread::spawn(move || -> Window {
            let t0 = Instant::now();
            let mut last = (t0, 0u64);
            let mut measure_start = None;
            let mut cpu_start = (0.0, 0.0);
            let mut open_time = 0.0;
            let tick = Duration::from_millis(if progress { 250 } else { 50 });
            loop {
                if done_rx.recv_timeout(tick).is_ok() {
                    return (
                        measure_start,
                        Some(Instant::now()),
                        cpu_start,
                        cpu_seconds(),
                        open_time,
                    );
                }
                let now = Instant::now();
                let done_opening = if ping > 0 {
                    shared.pinged.load(Ordering::Relaxed)
                } else {
                    shared.opened.load(Ordering::Relaxed)
                };
                let all_open =
                    done_opening + shared.connect_errors.load(Ordering::Relaxed) >= conns;
                if measure_start.is_none() {
                    let ready = if is_hold {
                        all_open || now - t0 >= warmup
                    } else {
                        now - t0 >= warmup
                    };
                    if ready {
                        open_time = (now - t0).as_secs_f64();
                        measure_start = Some(now);
                        cpu_start = cpu_seconds();
                        shared.phase.store(MEASURE, Ordering::Relaxed);
                        if is_hold {
                            eprintln!(
                                "hold: {} open, {} failed after {:.2} s",
                                shared.open.load(Ordering::Relaxed),
                                shared.connect_errors.load(Ordering::Relaxed),
                                open_time
                            );
                        }
                    }
                } else if now - measure_start.unwrap_or(now) >= duration {
                    let end = Instant::now();
                    let cpu_end = cpu_seconds();
                    shared.phase.store(DONE, Ordering::Relaxed);
                    handle.shutdown();
                    if progress {
                        eprintln!();
                    }
                    return (measure_start, Some(end), cpu_start, cpu_end, open_time);
                }
                if progress && now - last.0 >= Duration::from_secs(1) {
                    let r = shared.live_requests.load(Ordering::Relaxed);
                    let rate = (r - last.1) as f64 / (now - last.0).as_secs_f64();
                    last = (now, r);
                    let phase = if measure_start.is_some() {
                        "run "
                    } else {
                        "warm"
                    };
                    eprint!(
                        "\r[{phase} {:5.1}s] {:>10.0} req/s  open {:>6}  connect errors {}   ",
                        (now - t0).as_secs_f64(),
                        rate,
                        shared.open.load(Ordering::Relaxed),
                        shared.connect_errors.load(Ordering::Relaxed)
                    );
                    let _ = std::io::stderr().flush();
                }
            }
        })
    };

    let counter = Arc::new(AtomicUsize::new(0));
    let pace = |i: usize| {
        common.rate.map(|rate| {
            let interval = Duration::from_secs_f64(conns as f64 / rate.max(1e-3));
            Pace {
                interval,
                offset: interval.mul_f64((i % conns) as f64 / conns as f64),
                max_outstanding: common.max_outstanding,
            }
        })
    };
    let run = match &cli.mode {
        Mode::Echo { size, depth, .. } => {
            if *size == 0 {
                bail!("--size must be at least 1");
            }
            let (size, depth, shared) = (*size, *depth, shared.clone());
            let paces: Vec<Option<Pace>> = (0..conns).map(pace).collect();
            let paces = Arc::new(std::sync::Mutex::new(paces));
            rt.connect(common.addr, per_worker, opts, move |_: &ConnInfo| {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let p = paces
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(i)
                    .and_then(Option::take);
                Client::new(echo::Echo::new(echo::message(size)), &shared, depth, p)
            })
        }
        Mode::Http {
            path, host, depth, ..
        } => {
            let host = host.clone().unwrap_or_else(|| common.addr.to_string());
            let (path, depth, shared) = (path.clone(), *depth, shared.clone());
            let paces: Vec<Option<Pace>> = (0..conns).map(pace).collect();
            let paces = Arc::new(std::sync::Mutex::new(paces));
            rt.connect(common.addr, per_worker, opts, move |_: &ConnInfo| {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let p = paces
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(i)
                    .and_then(Option::take);
                Client::new(
                    http::Http::new(http::request(&host, &path)),
                    &shared,
                    depth,
                    p,
                )
            })
        }
        Mode::Udp {
            size, depth, gso, ..
        } => {
            use ringcore::{ServeUdp, UdpOptions, UdpSockets};
            if *size < 8 {
                bail!("--size must be at least 8 (a sequence number leads each datagram)");
            }
            let local: SocketAddr = if common.addr.is_ipv6() {
                "[::1]:0".parse()?
            } else {
                "127.0.0.1:0".parse()?
            };
            let opts = UdpOptions::default()
                .send_queue(depth.max(&1) * 2)
                .gso(*gso);
            let sockets = UdpSockets::bind_distinct(local, workers, &opts)
                .context("binding the generator's UDP sockets")?;
            let (target, size, depth, shared) = (common.addr, *size, *depth, shared.clone());
            rt.serve_udp(sockets, move |_| {
                udp::UdpLoad::new(target, size, depth, &shared)
            })
        }
        Mode::Hold { ping, .. } => {
            let shared = shared.clone();
            let ping = *ping;
            rt.connect(common.addr, per_worker, opts, move |_: &ConnInfo| {
                Idle::new(&shared, ping)
            })
        }
    };
    let _ = done_tx.send(());
    let (measure_start, measure_end, cpu0, cpu1, open_time) = ctl
        .join()
        .map_err(|_| anyhow::anyhow!("controller thread panicked"))?;
    run.with_context(|| format!("load generator failed against {}", common.addr))?;
    let metrics = rt.handle().metrics();
    let backend = ringcore::runtime::probe_backend(rt.config())
        .map(|b| b.name())
        .unwrap_or("unavailable");
    let counters: serde_json::Map<String, serde_json::Value> = metrics
        .total
        .fields()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();

    let c = shared.collector.lock().unwrap_or_else(|e| e.into_inner());
    let secs = match (measure_start, measure_end) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let (cpu_user, cpu_sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    let rps = if secs > 0.0 {
        c.requests as f64 / secs
    } else {
        0.0
    };
    let pct = |h: &hdrhistogram::Histogram<u64>| {
        json!({
            "p50_us": us(h.value_at_quantile(0.50)),
            "p90_us": us(h.value_at_quantile(0.90)),
            "p99_us": us(h.value_at_quantile(0.99)),
            "p999_us": us(h.value_at_quantile(0.999)),
            "max_us": us(h.max()),
            "mean_us": h.mean() / 1000.0,
            "count": h.len(),
        })
    };
    let (size, depth, path) = match &cli.mode {
        Mode::Echo { size, depth, .. } => (Some(*size), Some(*depth), None),
        Mode::Http { depth, path, .. } => (None, Some(*depth), Some(path.clone())),
        Mode::Udp { size, depth, .. } => (Some(*size), Some(*depth), None),
        Mode::Hold { .. } => (None, None, None),
    };
    let errors = c.protocol_errors
        + c.non_2xx
        + c.conn_errors
        + shared.connect_errors.load(Ordering::Relaxed);
    let result = json!({
        "label": common.label,
        "mode": mode_name,
        "addr": common.addr.to_string(),
        "conns": conns,
        "workers": workers,
        "cpu": common.cpu,
        "backend": backend,
        "client_counters": counters,
        "size": size,
        "depth": depth,
        "path": path,
        "rate_target": common.rate,
        "open_loop": common.rate.is_some(),
        "warmup_s": common.warmup,
        "duration_s": secs,
        "requests": c.requests,
        "bytes_in": c.bytes_in,
        "rps": rps,
        "opened": shared.opened.load(Ordering::Relaxed),
        "pinged": shared.pinged.load(Ordering::Relaxed),
        "open_time_s": open_time,
        "connect_errors": shared.connect_errors.load(Ordering::Relaxed),
        "conn_errors": c.conn_errors,
        "server_closes": c.server_closes,
        "protocol_errors": c.protocol_errors,
        "non_2xx": c.non_2xx,
        "backlogged_sends": c.backlogged,
        "errors": errors,
        "sent": c.sent,
        "lost": c.lost,
        "latency": pct(&c.latency),
        "schedule_latency": pct(&c.service),
        "client_cpu_user_s": cpu_user,
        "client_cpu_sys_s": cpu_sys,
        "client_busy_share": if secs > 0.0 { (cpu_user + cpu_sys) / secs / workers as f64 } else { 0.0 },
        "client_cpu_us_per_req": if c.requests > 0 { (cpu_user + cpu_sys) * 1e6 / c.requests as f64 } else { 0.0 },
    });
    if common.json {
        println!("{result}");
    } else {
        print_human(&result, mode_name);
    }
    if mode_name != "hold" && c.requests == 0 {
        bail!(
            "no request completed (is a server listening on {}?)",
            common.addr
        );
    }
    Ok(())
}

fn print_human(r: &serde_json::Value, mode: &str) {
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let u = |k: &str| r[k].as_u64().unwrap_or(0);
    println!(
        "{mode} {} conns={} backend={} {}",
        r["addr"].as_str().unwrap_or(""),
        u("conns"),
        r["backend"].as_str().unwrap_or("?"),
        if r["open_loop"].as_bool() == Some(true) {
            format!("open loop at {:.0} req/s", f("rate_target"))
        } else {
            "closed loop".into()
        }
    );
    if mode == "udp" {
        println!(
            "  {} datagrams echoed in {:.2} s = {:.0} datagrams/s; sent {}, lost {} (no reply in 200 ms), bad replies {}",
            u("requests"),
            f("duration_s"),
            f("rps"),
            u("sent"),
            u("lost"),
            u("protocol_errors")
        );
    } else if mode == "hold" {
        println!(
            "  opened {} (round trip done: {}) in {:.2} s, held {:.1} s, connect errors {}, lost {}",
            u("opened"),
            u("pinged"),
            f("open_time_s"),
            f("duration_s"),
            u("connect_errors"),
            u("conn_errors")
        );
    } else {
        println!(
            "  {} requests in {:.2} s = {:.0} req/s; errors {} (protocol {}, non-2xx {}, lost conns {}, connect {}); server-closed conns {}",
            u("requests"),
            f("duration_s"),
            f("rps"),
            u("errors"),
            u("protocol_errors"),
            u("non_2xx"),
            u("conn_errors"),
            u("connect_errors"),
            u("server_closes")
        );
    }
    for (name, key) in [("latency", "latency"), ("schedule", "schedule_latency")] {
        if name == "schedule" && r["open_loop"].as_bool() != Some(true) {
            continue;
        }
        let l = &r[key];
        let g = |k: &str| l[k].as_f64().unwrap_or(0.0);
        println!(
            "  {name:<8} p50 {:.1} us  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1})",
            g("p50_us"),
            g("p90_us"),
            g("p99_us"),
            g("p999_us"),
            g("max_us"),
            g("mean_us")
        );
    }
    println!(
        "  generator CPU: {:.2} s user + {:.2} s sys = {:.0}% busy, {:.2} us/request",
        f("client_cpu_user_s"),
        f("client_cpu_sys_s"),
        f("client_busy_share") * 100.0,
        f("client_cpu_us_per_req")
    );
}
