//! `ringcore-abuse`: hostile and soak clients for the reliability scenarios
//! (`benches/scripts/reliability/run.sh`). Each subcommand prints one JSON object on
//! stdout. Built on tokio (current-thread), not on ringcore, so a runtime defect
//! cannot hide itself on the client side.
//!
//! ```text
//! ringcore-abuse churn --addr 127.0.0.1:8080 --n 1000000 --conns 64 --sources 16
//! ringcore-abuse hold --addr 127.0.0.1:7000 --conns 15000 --proto echo --secs 10
//! ringcore-abuse slow --addr 127.0.0.1:8080 --kind loris --conns 50 --secs 20
//! ringcore-abuse reset-storm --addr 127.0.0.1:8080 --conns 10000 --rounds 2 --pid 1234
//! ```

mod conns;
mod misc;
mod net;

use clap::{Parser, Subcommand};
use conns::Proto;
use misc::{Flood, Slow, Then};
use std::net::SocketAddr;
use std::time::Duration;

/// Hostile and soak clients; one JSON object on stdout per run.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Server address.
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Per-operation timeout in seconds (connect, one exchange).
    #[arg(long, global = true, default_value_t = 5.0)]
    timeout: f64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// N connect / request / close cycles.
    Churn {
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        #[arg(long, default_value_t = 64)]
        conns: usize,
        /// Source addresses 127.0.0.2.. to spread over (0: kernel's choice).
        #[arg(long, default_value_t = 16)]
        sources: usize,
        #[arg(long, value_enum, default_value = "http")]
        proto: Proto,
    },
    /// Open connections, prove each is served, hold them, check again.
    Hold {
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        #[arg(long, default_value_t = 16)]
        sources: usize,
        #[arg(long, value_enum, default_value = "http")]
        proto: Proto,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// File written once every connection is open.
        #[arg(long)]
        ready: Option<String>,
    },
    /// A legitimate client: one fresh-connection GET per interval.
    Legit {
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// Keep-alive GET loops counting complete / clean-closed / cut responses.
    Fetch {
        #[arg(long, default_value_t = 16)]
        conns: usize,
        #[arg(long, default_value = "/plaintext")]
        path: String,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// Connections that send part of a request, all reset at once.
    ResetStorm {
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        #[arg(long, default_value_t = 16)]
        sources: usize,
        /// Server pid (its /proc/<pid>/fd is watched).
        #[arg(long)]
        pid: u32,
        /// Most seconds to wait for the fds to return.
        #[arg(long, default_value_t = 15.0)]
        wait: f64,
    },
    /// Connections that each send most of a large body, then wait.
    BodyPin {
        #[arg(long, default_value_t = 2000)]
        conns: usize,
        #[arg(long, default_value_t = 1 << 20)]
        content_length: usize,
        #[arg(long, default_value_t = (1 << 20) - 1)]
        body: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        #[arg(long)]
        ready: Option<String>,
    },
    /// Keep-alive GETs written in one or two segments.
    Split {
        #[arg(long, default_value_t = 50)]
        conns: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        #[arg(long)]
        split: bool,
    },
    /// Slow clients: time until the server closes each.
    Slow {
        #[arg(long, value_enum)]
        kind: Slow,
        #[arg(long, default_value_t = 50)]
        conns: usize,
        #[arg(long, default_value_t = 20.0)]
        secs: f64,
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
    /// Proxy clients: send, then wait / half-close / close.
    Tunnel {
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 1000)]
        send: usize,
        #[arg(long, value_enum, default_value = "wait")]
        then: Then,
    },
    /// Seeded byte streams through an echo path, compared on return.
    Stream {
        #[arg(long, default_value_t = 4)]
        conns: usize,
        #[arg(long, default_value_t = 8 << 20)]
        bytes: usize,
    },
    /// Write without ever reading.
    Flood {
        #[arg(long, value_enum)]
        kind: Flood,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        #[arg(long, default_value_t = 1 << 30)]
        max: usize,
        #[arg(long, default_value_t = 3.0)]
        hold: f64,
        #[arg(long)]
        ready: Option<String>,
    },
    /// Downloads that never read, then close.
    Stuck {
        #[arg(long, default_value_t = 100)]
        conns: usize,
        #[arg(long, default_value = "/big.bin")]
        path: String,
        #[arg(long, default_value_t = 2.0)]
        secs: f64,
    },
    /// Host-header and method checks.
    Hostcheck,
    /// A 400, then a client that keeps sending.
    Linger400 {
        #[arg(long, default_value_t = 40.0)]
        secs: f64,
        /// Valid GETs sent (unread) before the malformed request.
        #[arg(long, default_value_t = 2000)]
        pipelined: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let a = cli.addr;
    let t = Duration::from_secs_f64(cli.timeout);
    let out = rt.block_on(async move {
        match cli.cmd {
            Cmd::Churn {
                n,
                conns,
                sources,
                proto,
            } => conns::churn(a, n, conns, sources, proto, t).await,
            Cmd::Hold {
                conns,
                sources,
                proto,
                secs,
                ready,
            } => conns::hold(a, conns, sources, proto, secs, ready, t).await,
            Cmd::Legit { secs, interval_ms } => {
                conns::legit(a, secs, Duration::from_millis(interval_ms), t).await
            }
            Cmd::Fetch { conns, path, secs } => conns::fetch(a, conns, path, secs, t).await,
            Cmd::ResetStorm {
                conns,
                rounds,
                sources,
                pid,
                wait,
            } => conns::reset_storm(a, conns, rounds, sources, pid, wait, t).await,
            Cmd::BodyPin {
                conns,
                content_length,
                body,
                secs,
                ready,
            } => conns::body_pin(a, conns, content_length, body, secs, ready, t).await,
            Cmd::Split { conns, secs, split } => conns::split(a, conns, secs, split, t).await,
            Cmd::Slow {
                kind,
                conns,
                secs,
                interval_ms,
            } => misc::slow(a, kind, conns, secs, Duration::from_millis(interval_ms), t).await,
            Cmd::Tunnel { count, send, then } => misc::tunnel(a, count, send, then, t).await,
            Cmd::Stream { conns, bytes } => misc::stream(a, conns, bytes, t).await,
            Cmd::Flood {
                kind,
                secs,
                max,
                hold,
                ready,
            } => misc::flood(a, kind, secs, max, hold, ready).await,
            Cmd::Stuck { conns, path, secs } => misc::stuck(a, conns, path, secs).await,
            Cmd::Hostcheck => misc::hostcheck(a, t).await,
            Cmd::Linger400 { secs, pipelined } => misc::linger400(a, secs, pipelined).await,
        }
    });
    println!("{out}");
}
