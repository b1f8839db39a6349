//! Signals, shutdown and the shared command-line flags of the examples, run as child
//! processes on both backends: SIGINT/SIGTERM drain (logged), a second one exits at
//! once with 128 + signal, SIGHUP reopens the access log, flags beat environment
//! variables, `--cpus`/`--workers`/`--sqpoll` say what they cannot do, `--version`.

mod support;

use ringcore::BackendKind;
use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use support::for_each_backend;
use support::proc::{
    example, example_cmd, http_get, http_with_access_log, one_worker_cmd, wait_file, Proc,
};

/// SIGTERM starts the drain and says so; a connection still open holds the process;
/// a second signal (SIGINT) ends it at once with status 130, logged.
#[test]
fn second_signal_during_the_drain_exits_at_once() {
    for_each_backend(|b| {
        let mut p = Proc::spawn(one_worker_cmd("echo", b, &["--drain-timeout", "1h"]));
        let addr = p.addr_after("listening on");
        p.wait_line("ready: 1 worker(s)");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        support::proc::echo_round(&mut s, b"held open");
        p.signal(libc::SIGTERM);
        let l = p.wait_line("SIGTERM received: graceful drain started");
        assert!(l.contains("drain timeout 3600000 ms"), "{l}");
        assert!(l.contains("status 143"), "{l}");
        // Still draining: the held connection keeps working.
        support::proc::echo_round(&mut s, b"still served");
        assert!(p.running());
        p.signal(libc::SIGINT);
        let st = p.wait_exit();
        assert_eq!(st.code(), Some(130), "{st:?}");
        let lines = p.drain_lines();
        assert!(
            lines.iter().any(|l| l.contains("second SIGINT/SIGTERM")),
            "{lines:#?}"
        );
    });
}

/// With nothing open, SIGINT drains and exits 0; an idle keep-alive HTTP connection
/// does not hold the drain; `--drain-timeout` is the one in the log.
#[test]
fn sigint_drains_and_exits_zero() {
    for_each_backend(|b| {
        let mut p = Proc::spawn(example_cmd(
            "http",
            b,
            &[
                "--addr",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--drain-timeout",
                "250ms",
            ],
        ));
        let addr = p.addr_after("listening on");
        p.wait_line("ready: 2 worker(s)");
        let mut idle = support::http::HttpClient::connect(addr);
        idle.send(&support::http::get("GET", "/plaintext", ""));
        assert_eq!(idle.read_response(false).status, 200);
        p.signal(libc::SIGINT);
        let l = p.wait_line("SIGINT received: graceful drain started");
        assert!(l.contains("drain timeout 250 ms"), "{l}");
        let st = p.wait_exit();
        assert_eq!(st.code(), Some(0), "{st:?}");
        // The idle connection was closed by the drain.
        let mut rest = Vec::new();
        let _ = idle.s.read_to_end(&mut rest);
    });
}

/// SIGHUP reopens the access log: after a rename, new lines go to a new file at
/// the configured path; the server keeps running (never a silent kill).
#[test]
fn sighup_reopens_the_access_log() {
    for_each_backend(|b| {
        let (mut p, addr, log) = http_with_access_log(b, "hup");
        let dir = log.parent().unwrap();
        assert_eq!(http_get(addr, "/plaintext?first", "").0, 200);
        wait_file(&log, "the first line", |t| t.contains("/plaintext?first"));
        let rotated = dir.join("access.log.1");
        std::fs::rename(&log, &rotated).unwrap();
        p.signal(libc::SIGHUP);
        p.wait_line("access log reopened");
        assert_eq!(http_get(addr, "/plaintext?second", "").0, 200);
        let now = wait_file(&log, "the second line in the new file", |t| {
            t.contains("/plaintext?second")
        });
        assert!(!now.contains("?first"), "{now}");
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert!(old.contains("?first") && !old.contains("?second"), "{old}");
        assert!(p.running(), "SIGHUP killed the server");
        p.terminate_when_ready();
    });
}

/// Without an access log, SIGHUP is logged as ignored and the server keeps serving.
#[test]
fn sighup_without_a_log_is_ignored_not_fatal() {
    for_each_backend(|b| {
        let mut p = Proc::spawn(one_worker_cmd("echo", b, &[]));
        let addr = p.addr_after("listening on");
        p.wait_line("ready:");
        p.signal(libc::SIGHUP);
        p.wait_line("SIGHUP received: nothing to reopen");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        support::proc::echo_round(&mut s, b"alive");
        drop(s);
        p.terminate_when_ready();
    });
}

/// `--backend X` wins over `RINGCORE_BACKEND=Y`, and says so.
#[test]
fn explicit_backend_beats_the_environment() {
    for_each_backend(|b| {
        let other = if b == BackendKind::Uring {
            "epoll"
        } else {
            "uring"
        };
        let mut cmd = one_worker_cmd("echo", b, &[]);
        cmd.env("RINGCORE_BACKEND", other);
        let mut p = Proc::spawn(cmd);
        let l = p.wait_line("listening on");
        assert!(l.ends_with(&format!("backend {}", b.name())), "{l}");
        p.wait_line(&format!(
            "overrides RINGCORE_BACKEND={}",
            if other == "uring" {
                "io_uring"
            } else {
                "epoll"
            }
        ));
        p.terminate_when_ready();
    });
    // Without the flag, the environment decides.
    let mut cmd = Command::new(example("echo"));
    cmd.args(["--addr", "127.0.0.1:0", "--workers", "1"])
        .env("RINGCORE_BACKEND", "epoll");
    let mut p = Proc::spawn(cmd);
    let l = p.wait_line("listening on");
    assert!(l.ends_with("backend epoll"), "{l}");
    p.terminate_when_ready();
}

/// `--sqpoll` with the epoll backend is refused with a message saying what to do,
/// whether epoll came from the flag or the environment.
#[test]
fn sqpoll_with_epoll_is_an_error() {
    let out = Command::new(example("http"))
        .args(["--backend", "epoll", "--sqpoll", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--sqpoll needs the io_uring backend"), "{err}");
    assert!(err.contains("--backend epoll"), "{err}");
    let out = Command::new(example("http"))
        .args(["--sqpoll", "--addr", "127.0.0.1:0"])
        .env("RINGCORE_BACKEND", "epoll")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("RINGCORE_BACKEND=epoll"), "{err}");
}

/// `--cpus` defines the worker count when `--workers` is absent; more workers than
/// allowed CPUs is a warning (and still runs).
#[test]
fn cpus_define_workers_and_oversubscription_warns() {
    for_each_backend(|b| {
        let cpu = ringcore::runtime::affinity::allowed_cpus()[0].to_string();
        let mut p = Proc::spawn(example_cmd(
            "echo",
            b,
            &["--addr", "127.0.0.1:0", "--cpus", &cpu],
        ));
        let l = p.wait_line("listening on");
        assert!(l.contains("with 1 worker(s)"), "{l}");
        p.terminate_when_ready();

        let n = ringcore::runtime::affinity::allowed_cpus().len() + 1;
        let w = n.to_string();
        let mut p = Proc::spawn(example_cmd(
            "echo",
            b,
            &["--addr", "127.0.0.1:0", "--workers", &w],
        ));
        let warn = p.wait_line("CPU(s) allowed for this process");
        assert!(warn.contains(&format!("{n} workers")), "{warn}");
        let l = p.wait_line("listening on");
        assert!(l.contains(&format!("with {n} worker(s)")), "{l}");
        p.terminate_when_ready();
    });
}

/// `--version` names the example, `--help` states the flag/environment precedence,
/// and every example (each file in examples/) takes `--drain-timeout`.
#[test]
fn version_help_and_drain_timeout_flag() {
    let names = [
        "echo",
        "fileserver",
        "gateway",
        "http",
        "proxy",
        "service",
        "udp-echo",
    ];
    // Every example is covered: a new file in examples/ must join the list.
    let mut files: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            .unwrap()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".rs")
                    .map(String::from)
            })
            .collect();
    files.sort();
    assert_eq!(files, names, "examples/ and this test's list differ");
    for name in names {
        let out = Command::new(example(name))
            .arg("--version")
            .output()
            .unwrap();
        let v = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            v.trim(),
            format!("ringcore-{name} {}", env!("CARGO_PKG_VERSION")),
            "{name}"
        );
        let out = Command::new(example(name)).arg("--help").output().unwrap();
        let h = String::from_utf8_lossy(&out.stdout);
        assert!(h.contains("--drain-timeout"), "{name}: {h}");
        assert!(
            h.contains("Precedence: this flag, then the RINGCORE_BACKEND environment variable"),
            "{name}: {h}"
        );
    }
    let out = Command::new(example("echo"))
        .args(["--drain-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a duration"), "{err}");
}

/// Stopped and continued (SIGSTOP/SIGCONT: job control, a cgroup freeze, a debugger
/// or `strace -p` attaching) while idle and while holding a connection: the worker's
/// wait (`epoll_wait` / `io_uring_enter`) returns EINTR, which must be retried, not
/// taken as an error. This is also where the EINTR the test clients see comes from:
/// their sockets have timeouts (SO_RCVTIMEO), and a timed socket call interrupted by
/// a stop/continue fails with EINTR even with no signal handler installed.
#[test]
fn stop_and_continue_keep_serving() {
    for_each_backend(|b| {
        let mut p = Proc::spawn(one_worker_cmd("echo", b, &[]));
        let addr = p.addr_after("listening on");
        p.wait_line("ready: 1 worker(s)");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        support::proc::echo_round(&mut s, b"before");
        for round in 0..3 {
            p.signal(libc::SIGSTOP);
            let pid = p.child.id();
            support::wait_until("the example to stop", || {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                    st.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('T'))
                })
            });
            p.signal(libc::SIGCONT);
            support::proc::echo_round(&mut s, format!("after stop {round}").as_bytes());
            let mut fresh = TcpStream::connect(addr).unwrap();
            fresh.set_read_timeout(Some(support::DEADLINE)).unwrap();
            support::proc::echo_round(&mut fresh, b"new connection");
        }
        assert!(
            p.running(),
            "the example exited after a stop/continue: {:#?}",
            p.seen
        );
        drop(s);
        p.terminate();
    });
}
