//! Shared helpers for the integration tests: run a scenario on every backend, start an
//! echo server on a thread, wait for counters, and count open fds.
//!
//! * [`client`]: blocking std clients, payload generation (xorshift) and checking;
//! * [`tls`]: certificates made at test time (rcgen) and a blocking rustls client;
//! * [`child`]: re-executing the test binary as a child server process (fd limits,
//!   default SIGPIPE disposition) and talking to it over stdin/stdout;
//! * [`proc`]: running the example binaries as child processes (the operability
//!   tests `ops_*`): build, spawn with flags and environment, read stderr lines,
//!   signal, wait for exit;
//! * [`udp`]: UDP servers on a thread, client sockets, blocking receives.
//!
//! Nothing here sleeps to synchronise: clients block on sockets with generous timeouts,
//! and conditions on the server side are awaited by polling its counters against a
//! deadline ([`wait_until`]).

#![allow(dead_code)]

pub mod child;
pub mod client;
pub mod http;
pub mod proc;
pub mod tls;
pub mod udp;

use ringcore::{
    BackendKind, Builder, Conn, ConnInfo, Counters, Factory, Handle, Handler, Listeners, Runtime,
    Serve, SocketOptions,
};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a condition may take before a test gives up (generous: CI machines stall).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Message of the epoll backend while it is being written.
const EPOLL_NOT_BUILT: &str = "not built yet";

/// Why `backend` cannot start here, if it cannot (opens and closes one instance).
pub fn backend_unavailable(backend: BackendKind) -> Option<String> {
    let rt = Runtime::builder()
        .workers(1)
        .backend(backend)
        .handle_signals(false)
        .raise_nofile(false)
        .build()
        .expect("default configuration is valid");
    ringcore::runtime::probe_backend(rt.config())
        .err()
        .map(|e| e.to_string())
}

/// The backends this run covers: both, or the one `RINGCORE_BACKEND` forces.
pub fn backends() -> Vec<BackendKind> {
    let forced = std::env::var("RINGCORE_BACKEND")
        .ok()
        .and_then(|v| BackendKind::parse(&v))
        .filter(|b| *b != BackendKind::Auto);
    let mut out = Vec::new();
    for b in [BackendKind::Uring, BackendKind::Epoll] {
        if forced.is_some_and(|f| f != b) {
            eprintln!(
                "skipping backend {b}: RINGCORE_BACKEND forces {}",
                forced.unwrap()
            );
            continue;
        }
        match backend_unavailable(b) {
            None => out.push(b),
            Some(e) if b == BackendKind::Epoll && e.contains(EPOLL_NOT_BUILT) => {
                eprintln!("skipping backend epoll: {e}");
            }
            Some(e) => panic!("backend {b} cannot start: {e}"),
        }
    }
    out
}

/// Runs `f` once per available backend (io_uring, then epoll), naming the backend in
/// the output so a failure says which one broke.
pub fn for_each_backend(f: impl Fn(BackendKind)) {
    for b in backends() {
        eprintln!("--- backend {b} ---");
        f(b);
    }
}

/// The builder every test starts from: one unpinned worker, no signal handlers.
pub fn base_builder(backend: BackendKind) -> Builder {
    Runtime::builder()
        .workers(1)
        .pin(false)
        .backend(backend)
        .handle_signals(false)
}

/// Every byte received is sent back.
pub struct Echo;

impl Handler for Echo {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }
}

/// The echo factory.
pub fn echo_factory(_: &ConnInfo) -> Echo {
    Echo
}

/// A server running `serve` on its own thread.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its runtime's handle.
    pub handle: Handle,
    /// The backend it runs.
    pub backend: BackendKind,
    join: Option<JoinHandle<io::Result<()>>>,
}

/// Runs `serve` with `rt` on a server thread named `name`; returns the runtime's handle
/// and the thread.
pub fn spawn_serving(
    rt: Runtime,
    name: String,
    serve: impl FnOnce(&Runtime) -> io::Result<()> + Send + 'static,
) -> (Handle, JoinHandle<io::Result<()>>) {
    let handle = rt.handle();
    let join = std::thread::Builder::new()
        .name(name)
        .spawn(move || serve(&rt))
        .expect("spawn the server thread");
    (handle, join)
}

/// Serves `listeners` (bound by the caller: a Unix path, a dual-stack address, ...)
/// with `factory` on `workers` workers of `backend`, on a server thread. Stop it with
/// the handle's `shutdown` and join the thread.
pub fn serve_on<F: Factory>(
    backend: BackendKind,
    workers: usize,
    listeners: Listeners,
    factory: F,
) -> (Handle, JoinHandle<io::Result<()>>) {
    let rt = base_builder(backend)
        .workers(workers)
        .build()
        .expect("runtime");
    let h = rt.handle();
    let j = std::thread::spawn(move || rt.serve(listeners, factory));
    (h, j)
}

/// Starts `factory` on a server thread with `tweak` applied to [`base_builder`].
pub fn start_server<F: Factory>(
    backend: BackendKind,
    tweak: impl FnOnce(Builder) -> Builder,
    factory: F,
) -> TestServer {
    start_server_opts(backend, tweak, &SocketOptions::default(), factory)
}

/// [`start_server`] with these listener (and so accepted-socket) options.
pub fn start_server_opts<F: Factory>(
    backend: BackendKind,
    tweak: impl FnOnce(Builder) -> Builder,
    opts: &SocketOptions,
    factory: F,
) -> TestServer {
    let rt = tweak(base_builder(backend))
        .build()
        .expect("runtime configuration");
    assert_eq!(
        rt.config().backend,
        backend,
        "the runtime must run the backend under test"
    );
    let listeners =
        Listeners::bind("127.0.0.1:0", rt.config().workers, opts).expect("bind a test listener");
    let addr = listeners.local_addr();
    TestServer::spawn(rt, addr, move |rt| rt.serve(listeners, factory))
}

/// Starts the [`Echo`] server.
pub fn start_echo(backend: BackendKind, tweak: impl FnOnce(Builder) -> Builder) -> TestServer {
    start_server(backend, tweak, echo_factory)
}

impl TestServer {
    /// Runs `serve` (which serves on `addr`, bound by the caller) with `rt` on a server
    /// thread.
    pub fn spawn(
        rt: Runtime,
        addr: SocketAddr,
        serve: impl FnOnce(&Runtime) -> io::Result<()> + Send + 'static,
    ) -> TestServer {
        let backend = rt.config().backend;
        let (handle, join) = spawn_serving(rt, format!("server-{backend}"), serve);
        TestServer {
            addr,
            handle,
            backend,
            join: Some(join),
        }
    }

    /// The summed counters as last published.
    pub fn counters(&self) -> Counters {
        self.handle.metrics().total
    }

    /// Waits until `cond` holds on the counters (panics with `what` after [`DEADLINE`],
    /// or if the server thread ended); returns the counters that satisfied it.
    pub fn wait_counters(&self, what: &str, mut cond: impl FnMut(&Counters) -> bool) -> Counters {
        let mut last = self.counters();
        wait_until(what, || {
            if self.join.as_ref().is_some_and(|j| j.is_finished()) {
                panic!("server ended while waiting for {what}");
            }
            last = self.counters();
            cond(&last)
        });
        last
    }

    /// True once `serve` has returned (the thread is still to be joined).
    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(|j| j.is_finished())
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        self.handle.shutdown();
    }

    /// Waits for `serve` to return and asserts it returned `Ok`; returns the final counters.
    pub fn join(mut self) -> Counters {
        let join = self.join.take().expect("joined once");
        match join.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("serve on {} returned an error: {e}", self.backend),
            Err(_) => panic!("the server thread panicked"),
        }
        self.counters()
    }

    /// Shuts down, waits for `serve` to return `Ok`, and returns the final counters.
    pub fn stop(self) -> Counters {
        self.handle.shutdown();
        self.join()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A failed test still stops its server so the binary's other tests go on.
        if let Some(j) = self.join.take() {
            self.handle.shutdown();
            let _ = j.join();
        }
    }
}

/// Polls `cond` until it holds; panics naming `what` after [`DEADLINE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < end,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// This process's open fds and what they point at (the listing's own fd excluded).
pub fn fd_table() -> BTreeMap<i32, String> {
    let mut out = BTreeMap::new();
    let dir = std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd");
    for e in dir.flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let target = std::fs::read_link(e.path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The directory being listed is an fd too, and gone when this returns.
        if !target.is_empty() {
            out.insert(fd, target);
        }
    }
    out.retain(|_, t| !(t.starts_with("/proc/") && t.ends_with("/fd")));
    out
}

/// Number of open fds (see [`fd_table`]).
pub fn fd_count() -> usize {
    fd_table().len()
}

/// Asserts the fd table equals `before`, listing the difference if not.
pub fn assert_no_fd_leak(before: &BTreeMap<i32, String>) {
    let now = fd_table();
    if &now != before {
        let leaked: Vec<_> = now
            .iter()
            .filter(|(fd, t)| before.get(fd) != Some(t))
            .collect();
        let lost: Vec<_> = before
            .iter()
            .filter(|(fd, t)| now.get(fd) != Some(t))
            .collect();
        panic!(
            "fd leak: {} open before, {} now; new or changed: {leaked:?}; gone: {lost:?}",
            before.len(),
            now.len()
        );
    }
}

/// An upstream on a thread that echoes every connection until its end of stream,
/// then shuts its side down (for proxies and tunnels under test).
pub fn echo_upstream() -> SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                let _ = s.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}
