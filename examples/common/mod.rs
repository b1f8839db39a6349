//! Command-line flags and start-up every example shares: workers, backend, SQPOLL, CPU
//! pinning, drain timeout, logging, socket activation and systemd status.
//!
//! Precedence, everywhere: an explicit flag beats an environment variable, which beats
//! the default (`--backend uring` wins over `RINGCORE_BACKEND=epoll`).

#![allow(dead_code)] // not every example uses every helper

pub mod access;
pub mod features;
pub mod tls;

use anyhow::{bail, Context};
use clap::Args;
use ringcore::{BackendKind, Handle, Listeners, Runtime, SocketOptions};
use std::time::Duration;

/// Runtime flags (flattened into each example's arguments).
#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// Worker threads, one per core (default: one per --cpus entry, else every CPU this
    /// process may run on). More workers than allowed CPUs is allowed but warned about.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Backend: auto (io_uring, falling back to epoll), uring or epoll. Precedence: this
    /// flag, then the RINGCORE_BACKEND environment variable, then auto.
    #[arg(long)]
    pub backend: Option<BackendKind>,
    /// Enable SQPOLL (a kernel thread polls the submission queue). io_uring only: an
    /// error with --backend epoll (or RINGCORE_BACKEND=epoll), a warning when auto
    /// falls back to epoll.
    #[arg(long)]
    pub sqpoll: bool,
    /// Pin workers to these CPUs (comma-separated), e.g. --cpus 0,2. Without --workers,
    /// one worker per listed CPU.
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// How long open connections may finish after SIGINT/SIGTERM before the rest are
    /// closed, e.g. 5s, 500ms, 0 (a second SIGINT/SIGTERM exits at once).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Fast-path switches as name=value pairs, comma-separated (e.g. sqpoll=on,splice=ring;
    /// `--features help` lists them). Precedence: this flag, then the RINGCORE_FEATURES
    /// environment variable, then each switch's default.
    #[arg(long, value_name = "NAME=VALUE,...")]
    pub features: Option<String>,
    /// Under systemd (NOTIFY_SOCKET set): how often a STATUS= line with the connection
    /// counts is sent, e.g. 5s, 500ms; 0 sends none.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub status_interval: Duration,
}

/// Parses `5s`, `500ms`, `2m` or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 5s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range (0 to 24 h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl RuntimeArgs {
    /// Builds the runtime these flags describe, warning about (or refusing) settings
    /// that cannot do what they say.
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        let env = BackendKind::from_env().context("bad RINGCORE_BACKEND")?;
        if let (Some(flag), Some(env)) = (self.backend, env) {
            if flag != env {
                tracing::info!(
                    "--backend {} overrides RINGCORE_BACKEND={}",
                    flag.name(),
                    env.name()
                );
            }
        }
        let wanted = self.backend.or(env).unwrap_or(BackendKind::Auto);
        if self.sqpoll && wanted == BackendKind::Epoll {
            bail!(
                "--sqpoll needs the io_uring backend, but the backend is epoll \
                 ({}): drop --sqpoll or use --backend uring",
                if self.backend.is_some() {
                    "--backend epoll"
                } else {
                    "RINGCORE_BACKEND=epoll"
                }
            );
        }
        let allowed = ringcore::runtime::affinity::allowed_cpus();
        let workers = match (self.workers, self.cpus.is_empty()) {
            (Some(w), _) => w,
            (None, false) => self.cpus.len(),
            (None, true) => allowed.len().max(1),
        };
        if workers > allowed.len() {
            tracing::warn!(
                "{workers} workers but only {} CPU(s) allowed for this process \
                 (sched_getaffinity): workers will share CPUs",
                allowed.len()
            );
        }
        for c in &self.cpus {
            if !allowed.contains(c) {
                tracing::warn!(
                    "--cpus {c}: CPU {c} is not in this process's allowed set {allowed:?}; \
                     pinning to it will fail and that worker runs unpinned"
                );
            }
        }
        let mut b = Runtime::builder()
            .backend(wanted)
            .backend_from_env(false)
            .workers(workers)
            .drain_timeout(self.drain_timeout);
        let (fb, summary) = features::apply(b, self.features.as_deref())?;
        b = fb;
        if self.sqpoll {
            b = b.sqpoll(Duration::from_millis(100), None);
        }
        if !self.cpus.is_empty() {
            b = b.cpus(self.cpus.clone());
        }
        let rt = b.build().context("invalid runtime configuration")?;
        tracing::info!("features: {summary}");
        let sqpoll = rt.config().sqpoll.is_some();
        if sqpoll && !self.sqpoll && backend_name(&rt) == "epoll" {
            tracing::warn!(
                "feature sqpoll=on ignored: the backend is epoll (SQPOLL is an io_uring option)"
            );
        }
        if self.sqpoll && backend_name(&rt) == "epoll" {
            tracing::warn!(
                "--sqpoll ignored: io_uring is unavailable here and the runtime fell back \
                 to epoll"
            );
        }
        Ok(rt)
    }
}

impl RuntimeArgs {
    /// What every TCP server example does first: the runtime these flags describe
    /// ([`runtime`](Self::runtime)), the listeners to serve on ([`listeners`]:
    /// systemd's, else `addr` bound once per worker), and the systemd status lines
    /// every `--status-interval` ([`report_status`]).
    pub fn start(&self, addr: &str) -> anyhow::Result<(Runtime, Listeners)> {
        let rt = self.runtime()?;
        let listeners = listeners(addr, &rt)?;
        report_status(rt.handle(), self.status_interval);
        Ok((rt, listeners))
    }
}

/// The start-up line `NAME: listening on AT with N worker(s), backend B` on stderr
/// (the operability tests and scripts wait for "listening on").
pub fn announce(name: &str, at: impl std::fmt::Display, rt: &Runtime) {
    eprintln!(
        "{name}: listening on {at} with {} worker(s), backend {}",
        rt.config().workers,
        backend_name(rt),
    );
}

/// Installs the log subscriber every example uses: human-readable lines on stderr,
/// filtered by `RUST_LOG` (default `info`, e.g. `RUST_LOG=ringcore_net=debug`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// The backend a runtime's workers will run on, for the start-up line.
pub fn backend_name(rt: &Runtime) -> &'static str {
    ringcore::runtime::probe_backend(rt.config())
        .map(|b| b.name())
        .unwrap_or("unavailable")
}

/// Resolves an upstream address given as `flag VALUE` (`HOST:PORT`, `[v6]:PORT`) to
/// its first socket address; the error names the flag and says what was wrong.
pub fn resolve(flag: &str, value: &str) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    value
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {flag} {value} (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("{flag} {value} resolves to no address"))
}

/// The listeners to serve on: the sockets systemd passed (socket activation:
/// `LISTEN_PID` is this process, `LISTEN_FDS` ≥ 1), else `addr` bound once per worker.
pub fn listeners(addr: &str, rt: &Runtime) -> anyhow::Result<Listeners> {
    let workers = rt.config().workers;
    if let Some(l) = ringcore::net::systemd::activated_listeners(workers)
        .context("socket activation (LISTEN_FDS) failed")?
    {
        return Ok(l);
    }
    Listeners::bind(addr, workers, &SocketOptions::default())
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Under systemd (`NOTIFY_SOCKET` set): sends a `STATUS=` line with the connection
/// counts every `every` (0: never), from a helper thread, while the process runs.
pub fn report_status(handle: Handle, every: Duration) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() || every.is_zero() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("status".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let m = handle.metrics().total;
            let line = format!(
                "STATUS=serving: {} open connection(s), {} accepted",
                m.open_conns, m.accepts
            );
            let _ = ringcore::net::systemd::notify(&line);
        });
}

/// After serving, in this order: stops the `--metrics-addr` endpoint, writes what is
/// still queued for the access log (reporting dropped lines), then turns the serve
/// result into the example's exit.
pub fn teardown(
    served: std::io::Result<()>,
    metrics: Option<MetricsServer>,
    log: Option<&ringcore::http::AccessLog>,
) -> anyhow::Result<()> {
    if let Some(m) = metrics {
        m.stop();
    }
    access::close(log);
    served.context("server failed")
}

type Render = Box<dyn Fn() -> String + Send + Sync>;
static METRICS_TEXT: std::sync::OnceLock<Render> = std::sync::OnceLock::new();

fn metrics_route(_: &ringcore::http::Request<'_>, res: &mut ringcore::http::Response) {
    let text = METRICS_TEXT.get().map(|f| f()).unwrap_or_default();
    res.set_content_type("text/plain; version=0.0.4")
        .set_body(text.as_bytes());
}

/// A `/metrics` endpoint on its own address (`--metrics-addr`): one more worker, on
/// the main runtime's backend, serving `render()` as Prometheus text. It drains with
/// the main server on SIGINT/SIGTERM; [`MetricsServer::stop`] ends it otherwise.
pub struct MetricsServer {
    handle: Handle,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves `render` at `/metrics` (call once per process).
    pub fn start(
        addr: &str,
        main: &Runtime,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> anyhow::Result<MetricsServer> {
        use ringcore::Serve;
        let _ = METRICS_TEXT.set(Box::new(render));
        let rt = Runtime::builder()
            .workers(1)
            .pin(false)
            .backend(main.config().backend)
            .backend_from_env(false)
            .handle_signals(false)
            .drain_timeout(Duration::from_millis(500))
            .build()?;
        let l = Listeners::bind(addr, 1, &SocketOptions::default())
            .with_context(|| format!("--metrics-addr {addr}"))?;
        tracing::info!("metrics on http://{}/metrics", l.local_addr());
        let router = ringcore::http::Router::new().get("/metrics", metrics_route);
        let factory = ringcore::http::HttpConn::factory(router, ringcore::http::Limits::default());
        let handle = rt.handle();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || rt.serve(l, factory))?;
        Ok(MetricsServer { handle, thread })
    }

    /// Shuts the endpoint down and waits for it.
    pub fn stop(self) {
        self.handle.shutdown();
        if let Ok(Err(e)) = self.thread.join() {
            tracing::warn!("metrics endpoint: {e}");
        }
    }
}
