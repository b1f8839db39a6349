//! Running the example binaries as child processes for the operability tests: build
//! them (once per test binary, through cargo), start them with flags and environment,
//! read their stderr line by line, send signals, wait for exit. Every wait has a
//! deadline ([`super::DEADLINE`]); nothing sleeps to synchronise.

use super::DEADLINE;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The path of example `name`, built by `cargo build --example` with the profile of
/// this test binary (a no-op when it is up to date, as after `cargo test`).
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    // target/<profile>/deps/<this test> -> target/<profile>
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--example", name]);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("run cargo build --example");
    assert!(st.success(), "cargo build --example {name} failed");
    let p = profile_dir.join("examples").join(name);
    assert!(p.exists(), "{} missing after the build", p.display());
    built.insert(name.to_string(), p.clone());
    p
}

/// A running example process.
pub struct Proc {
    /// The child.
    pub child: Child,
    lines: Receiver<String>,
    /// Every stderr line read so far (for failure messages).
    pub seen: Vec<String>,
}

impl Proc {
    /// Starts `cmd` (made with [`example_cmd`]) with stderr captured.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn the example");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                eprintln!("  [child] {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `pat` (panics at the deadline or EOF).
    pub fn wait_line(&mut self, pat: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(pat)) {
            return l.clone();
        }
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(pat) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {pat:?} within {DEADLINE:?}; saw {:#?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "stderr ended before a line with {pat:?}; saw {:#?}",
                        self.seen
                    )
                }
            }
        }
    }

    /// Reads the rest of stderr (after the process exited).
    pub fn drain_lines(&mut self) -> Vec<String> {
        while let Ok(l) = self.lines.recv_timeout(DEADLINE) {
            self.seen.push(l);
        }
        self.seen.clone()
    }

    /// The address in the start-up line (`... 127.0.0.1:PORT ...` after `marker`).
    pub fn addr_after(&mut self, marker: &str) -> SocketAddr {
        let l = self.wait_line(marker);
        let rest = &l[l.find(marker).unwrap() + marker.len()..];
        let start = rest.find("127.0.0.1:").expect("an address in the line");
        let a: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        a.parse().expect("a socket address")
    }

    /// Sends signal `sig`.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid (not reaped yet: we hold the Child).
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the process to exit (panics at the deadline, killing it).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                panic!(
                    "the example did not exit within {DEADLINE:?}; saw {:#?}",
                    self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM and asserts a clean exit (status 0) within the deadline.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
        let st = self.wait_exit();
        assert_eq!(
            st.code(),
            Some(0),
            "exit after SIGTERM: {st}; saw {:#?}",
            self.seen
        );
    }

    /// Waits for the `ready:` line, then [`terminate`](Self::terminate)s.
    pub fn terminate_when_ready(&mut self) {
        self.wait_line("ready:");
        self.terminate();
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A command running example `name` on `backend` (as `--backend`), with `args`.
pub fn example_cmd(name: &str, backend: ringcore::BackendKind, args: &[&str]) -> Command {
    let mut c = Command::new(example(name));
    let b = match backend {
        ringcore::BackendKind::Uring => "uring",
        ringcore::BackendKind::Epoll => "epoll",
        _ => "auto",
    };
    c.args(["--backend", b]).args(args);
    c.env_remove("RINGCORE_BACKEND")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env("RUST_LOG", "info");
    c
}

/// [`example_cmd`] for a server on one worker at an ephemeral loopback port
/// (`--addr 127.0.0.1:0 --workers 1`), followed by `args`.
pub fn one_worker_cmd(name: &str, backend: ringcore::BackendKind, args: &[&str]) -> Command {
    let mut c = example_cmd(name, backend, &["--addr", "127.0.0.1:0", "--workers", "1"]);
    c.args(args);
    c
}

/// One HTTP/1.1 GET on a new connection; `(status, body)`.
pub fn http_get(addr: SocketAddr, target: &str, extra: &str) -> (u16, Vec<u8>) {
    let mut c = super::http::HttpClient::connect(addr);
    c.send(&super::http::get("GET", target, extra));
    let r = c.read_response(false);
    (r.status, r.body)
}

/// Polls the file at `p` until `cond` holds for its contents (deadline).
pub fn wait_file(p: &std::path::Path, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    super::wait_until(what, || {
        text = std::fs::read_to_string(p).unwrap_or_default();
        cond(&text)
    });
    text
}

/// Echoes through a proxy-style check: writes `data` on `s`, reads it back whole.
pub fn echo_round(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).unwrap();
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, data);
}

/// A scratch directory under the system temp dir, unique to this process and `tag`.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringcore-ops-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The http example on `backend`, one worker, logging to `access.log` in a fresh
/// scratch directory (`tag` plus the backend's name): the process, its address and
/// the log's path.
pub fn http_with_access_log(
    backend: ringcore::BackendKind,
    tag: &str,
) -> (Proc, SocketAddr, PathBuf) {
    let log = scratch(&format!("{tag}-{}", backend.name())).join("access.log");
    let mut p = Proc::spawn(one_worker_cmd(
        "http",
        backend,
        &["--access-log", log.to_str().unwrap()],
    ));
    let addr = p.addr_after("listening on");
    (p, addr, log)
}
