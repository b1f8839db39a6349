//! A server in a child process: the test binary re-executes itself, filtered to one
//! test, with [`CHILD_ENV`] naming the role and backend. Used where the server needs
//! process-wide settings the test harness must not change (a low `RLIMIT_NOFILE`, the
//! default SIGPIPE disposition).
//!
//! Protocol: the child prints `PORT <port>`; then for each line on its stdin it answers
//! `metrics` with `COUNTERS name=value ...`, a test's own commands as that test says
//! ([`child_protocol`], [`ChildServer::command`]), and `quit` (or EOF) by shutting down
//! and printing `FINAL name=value ...` before it exits.

use super::{start_server, TestServer};
use ringcore::{BackendKind, Builder, Counters, Factory};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};

/// `role:backend` in the child; unset in the parent.
pub const CHILD_ENV: &str = "RINGCORE_TEST_CHILD";

/// In a child process: its role and backend.
pub fn child_role() -> Option<(String, BackendKind)> {
    let v = std::env::var(CHILD_ENV).ok()?;
    // The library logs through `tracing`: print its messages bare on stderr, one
    // per line, so the parent can match them.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    let (role, backend) = v
        .split_once(':')
        .expect("RINGCORE_TEST_CHILD is role:backend");
    Some((
        role.to_string(),
        BackendKind::parse(backend).expect("backend name"),
    ))
}

fn format_counters(c: &Counters) -> String {
    c.fields()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counters parsed from a child's line, by name.
#[derive(Debug, Clone)]
pub struct ChildCounters(HashMap<String, u64>);

impl ChildCounters {
    /// The counter `name` (panics if the child did not report it).
    pub fn get(&self, name: &str) -> u64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("child reported no counter {name}"))
    }

    fn parse(s: &str) -> ChildCounters {
        ChildCounters(
            s.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.parse().expect("counter value")))
                .collect(),
        )
    }
}

/// Child side: serve `factory` and follow the protocol on stdin/stdout until `quit`.
pub fn child_serve<F: Factory>(
    backend: BackendKind,
    tweak: impl FnOnce(Builder) -> Builder,
    factory: F,
) {
    let server: TestServer = start_server(backend, tweak, factory);
    child_protocol(server.addr.port(), || server.counters(), |_| None);
    child_final(&server.stop());
}

/// Child side, for a server the caller started: prints `PORT port`, then answers
/// `metrics` with `counters()`, and any other line with what `command` returns for it
/// (one line; `None` ends the protocol, as `quit` and EOF do). Returns at the end: the
/// caller then stops its server and reports with [`child_final`].
pub fn child_protocol(
    port: u16,
    counters: impl Fn() -> Counters,
    mut command: impl FnMut(&str) -> Option<String>,
) {
    // The harness printed "test name ... " without a newline: start a fresh line.
    println!("\nPORT {port}");
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        let n = stdin.lock().read_line(&mut line).expect("read stdin");
        match line.trim() {
            _ if n == 0 => break,
            "quit" => break,
            "metrics" => println!("COUNTERS {}", format_counters(&counters())),
            cmd => match command(cmd) {
                Some(reply) => println!("{reply}"),
                None => break,
            },
        }
    }
}

/// Child side: the last line, with the server's final counters.
pub fn child_final(last: &Counters) {
    println!("FINAL {}", format_counters(last));
}

/// Parent side: a running child server.
pub struct ChildServer {
    /// Where the child listens.
    pub addr: SocketAddr,
    proc: std::process::Child,
    stdin: ChildStdin,
    /// The child's stdout, line by line (a reader thread feeds it, so waits can time out).
    lines: Receiver<String>,
}

/// Starts this test binary again running only `test` (its full path, e.g.
/// `emfile_backs_off`) as a child with `role` on `backend`.
pub fn spawn_child(test: &str, role: &str, backend: BackendKind) -> ChildServer {
    let exe = std::env::current_exe().expect("current_exe");
    let mut proc = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{role}:{}", backend.name()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child server");
    let stdin = proc.stdin.take().expect("child stdin");
    let stdout = BufReader::new(proc.stdout.take().expect("child stdout"));
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut c = ChildServer {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        proc,
        stdin,
        lines,
    };
    let port = c.expect_line("PORT ");
    c.addr.set_port(port.parse().expect("port number"));
    c
}

impl ChildServer {
    /// Reads stdout lines until one starts with `prefix`; returns the rest. Panics with
    /// the child's exit status if it ended first.
    fn expect_line(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(super::DEADLINE) {
                Ok(line) => {
                    if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "child server printed no {prefix:?} line within {:?}",
                        super::DEADLINE
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.proc.wait().expect("wait for the child");
                    panic!("child server ended before printing {prefix:?}: {status}");
                }
            }
        }
    }

    /// The child's current counters.
    pub fn counters(&mut self) -> ChildCounters {
        writeln!(self.stdin, "metrics").expect("ask the child for metrics");
        ChildCounters::parse(&self.expect_line("COUNTERS "))
    }

    /// Sends the test's own command `cmd`; returns the rest of the child's reply line,
    /// the one that starts with `reply`.
    pub fn command(&mut self, cmd: &str, reply: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("send the child a command");
        self.expect_line(reply)
    }

    /// Polls the child's counters until `cond` holds (see [`super::wait_until`]).
    pub fn wait_counters(
        &mut self,
        what: &str,
        mut cond: impl FnMut(&ChildCounters) -> bool,
    ) -> ChildCounters {
        let mut last = None;
        super::wait_until(what, || {
            let c = self.counters();
            let ok = cond(&c);
            last = Some(c);
            ok
        });
        last.expect("polled at least once")
    }

    /// Asks the child to shut down; returns its final counters and exit status.
    pub fn finish(mut self) -> (ChildCounters, ExitStatus) {
        writeln!(self.stdin, "quit").expect("tell the child to quit");
        let last = ChildCounters::parse(&self.expect_line("FINAL "));
        let status = self.proc.wait().expect("wait for the child");
        (last, status)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // Closing stdin makes the child quit; if it is wedged, do not leave it behind.
        if let Ok(None) = self.proc.try_wait() {
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
    }
}
