//! Backend selection where io_uring is blocked, and the `RINGCORE_BACKEND` override.
//!
//! Each test re-executes this test binary as a child process (the pattern of
//! `support::child`: the test's own name as the filter, [`CHILD_ENV`] naming the role)
//! because what it changes is process-wide: a seccomp filter that cannot be removed, or
//! an environment variable. The seccomp filter is a six-instruction classic BPF program
//! installed through libc that makes `io_uring_setup` fail the way Docker's default
//! profile (EPERM) or gVisor / a kernel without io_uring (ENOSYS) do, and allows every
//! other syscall.
//!
//! * `Auto` must serve echo on epoll, say so in exactly one stderr line naming the
//!   errno, and report epoll from `probe_backend`;
//! * `Uring` must fail (probe and serve), naming io_uring, the errno and what to do;
//! * `RINGCORE_BACKEND=bogus` must fail `build()` naming the variable;
//!   `RINGCORE_BACKEND=epoll` must override a builder asking for io_uring, without
//!   touching io_uring at all (the child is killed by seccomp if it calls
//!   `io_uring_setup`).

#![cfg(target_arch = "x86_64")]

mod support;

use ringcore::{BackendKind, Serve};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use support::child::{child_role, child_serve, CHILD_ENV};
use support::client::{connect, echo_check, Rng};
use support::{base_builder, echo_factory, DEADLINE};

/// The line `Driver::open` logs when `Auto` falls back.
const FALLBACK_LINE: &str = "ringcore: io_uring unavailable (";

// ---------------------------------------------------------------------------------
// The seccomp filter (child side).

/// `AUDIT_ARCH_X86_64` from `<linux/audit.h>`: `EM_X86_64 | __AUDIT_ARCH_64BIT |
/// __AUDIT_ARCH_LE` (not exported by the libc crate).
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// Offsets in `struct seccomp_data { int nr; __u32 arch; ... }`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

/// What the filter does to `io_uring_setup`.
#[derive(Clone, Copy, Debug)]
enum Block {
    /// Fail it with this errno.
    Errno(i32),
    /// Kill the process (proves it is never called).
    Kill,
}

impl Block {
    fn from_name(s: &str) -> Block {
        match s {
            "eperm" => Block::Errno(libc::EPERM),
            "enosys" => Block::Errno(libc::ENOSYS),
            "einval" => Block::Errno(libc::EINVAL),
            "enomem" => Block::Errno(libc::ENOMEM),
            "kill" => Block::Kill,
            other => panic!("unknown seccomp variant {other}"),
        }
    }

    fn action(self) -> u32 {
        match self {
            Block::Errno(e) => libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA),
            Block::Kill => libc::SECCOMP_RET_KILL_PROCESS,
        }
    }
}

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Installs, on every thread of this process, a filter that applies `block` to
/// `io_uring_setup` (x86_64 syscall 425) and allows everything else.
fn install_seccomp(block: Block) {
    let mut prog = [
        // 0: A = arch
        stmt(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            SECCOMP_DATA_ARCH,
        ),
        // 1: not x86_64 -> 5 (allow: this filter only knows x86_64 numbers)
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            0,
            3,
        ),
        // 2: A = syscall number
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, SECCOMP_DATA_NR),
        // 3: io_uring_setup -> 4, anything else -> 5
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_io_uring_setup as u32,
            0,
            1,
        ),
        // 4: block
        stmt(libc::BPF_RET | libc::BPF_K, block.action()),
        // 5: allow
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    assert_eq!(libc::SYS_io_uring_setup, 425);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(
        r,
        0,
        "prctl(PR_SET_NO_NEW_PRIVS): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fprog` points at `prog`, a valid filter that outlives the call (the
    // kernel copies it). TSYNC applies it to every thread already running (the harness
    // and reader threads), not only this one and its future children.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    assert_eq!(
        r,
        0,
        "seccomp(SECCOMP_SET_MODE_FILTER): {}",
        std::io::Error::last_os_error()
    );
}

// ---------------------------------------------------------------------------------
// Child side.

/// Child side: `true` if this process is a child (the test body then returns).
///
/// Roles (`role:backend` in [`CHILD_ENV`]):
/// * `serve-<eperm|enosys|kill|none>`: seccomp as named; build with the builder asking
///   for `backend` and print `CONFIG <backend after RINGCORE_BACKEND>` and
///   `BACKEND <probe_backend>`; then serve echo with two workers (protocol of
///   `support::child`);
/// * `fail-<eperm|enosys>`: seccomp, then build on `backend`, probe and serve, printing
///   `BUILD ...`, `PROBE ...` and `SERVE ...` lines, and exit;
/// * `build`: print what `build()` on `backend` gives (`BUILD_OK <backend>` or
///   `BUILD_ERR <kind> <message>`), and exit.
fn run_child() -> bool {
    let Some((role, backend)) = child_role() else {
        return false;
    };
    // The harness printed "test name ... " without a newline: start a fresh line.
    println!();
    let (what, variant) = role.split_once('-').unwrap_or((role.as_str(), "none"));
    match what {
        "serve" => {
            if variant != "none" {
                install_seccomp(Block::from_name(variant));
            }
            // `backend` is what the builder asks for; `RINGCORE_BACKEND` may override it.
            let rt = base_builder(backend)
                .build()
                .expect("runtime configuration");
            let effective = rt.config().backend;
            println!("CONFIG {}", effective.name());
            match ringcore::runtime::probe_backend(rt.config()) {
                Ok(b) => println!("BACKEND {}", b.name()),
                Err(e) => println!("BACKEND error {e}"),
            }
            drop(rt);
            child_serve(
                effective,
                |b| b.backend(backend).workers(2).raise_nofile(false),
                echo_factory,
            );
        }
        "fail" => {
            install_seccomp(Block::from_name(variant));
            let rt = match base_builder(backend).raise_nofile(false).build() {
                Ok(rt) => {
                    println!("BUILD_OK {}", rt.config().backend.name());
                    rt
                }
                Err(e) => {
                    println!("BUILD_ERR {e}");
                    return true;
                }
            };
            match ringcore::runtime::probe_backend(rt.config()) {
                Ok(b) => {
                    // Serving would block forever: report and stop here.
                    println!("PROBE_OK {}", b.name());
                    return true;
                }
                Err(e) => println!("PROBE_ERR {e}"),
            }
            match rt.serve("127.0.0.1:0", echo_factory) {
                Ok(()) => println!("SERVE_OK"),
                Err(e) => println!("SERVE_ERR {e}"),
            }
        }
        "build" => match base_builder(backend).raise_nofile(false).build() {
            Ok(rt) => println!("BUILD_OK {}", rt.config().backend.name()),
            Err(e) => println!("BUILD_ERR {:?} {e}", e.kind()),
        },
        other => panic!("unknown child role {other}"),
    }
    true
}

// ---------------------------------------------------------------------------------
// Parent side.

/// A child process whose stdout is read line by line and whose stderr is collected.
struct Proc {
    proc: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

/// Starts this test binary running only `test` as a child with `role` on `backend`.
/// `RINGCORE_BACKEND` is removed from its environment unless `env` sets it.
fn spawn(test: &str, role: &str, backend: BackendKind, env: Option<&str>) -> Proc {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        test,
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, format!("{role}:{}", backend.name()))
    .env_remove("RINGCORE_BACKEND")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(v) = env {
        cmd.env("RINGCORE_BACKEND", v);
    }
    let mut proc = cmd.spawn().expect("spawn the child");
    let stdin = proc.stdin.take();
    let stdout = BufReader::new(proc.stdout.take().expect("child stdout"));
    let mut stderr = proc.stderr.take().expect("child stderr");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    Proc {
        proc,
        stdin,
        lines,
        stderr: Some(stderr),
    }
}

impl Proc {
    /// The rest of the next stdout line starting with one of `prefixes` (and which
    /// prefix), skipping others. Panics, with the child's stderr, if it ends first.
    fn expect_any(&mut self, prefixes: &[&str]) -> (String, String) {
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(line) => {
                    let line = line.trim_end();
                    for p in prefixes {
                        if let Some(rest) = line.strip_prefix(p) {
                            return (p.to_string(), rest.to_string());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("child printed none of {prefixes:?} within {DEADLINE:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let (status, err) = self.wait();
                    panic!(
                        "child ended ({status}) before printing any of {prefixes:?}; \
                         its stderr:\n{err}"
                    );
                }
            }
        }
    }

    fn expect_line(&mut self, prefix: &str) -> String {
        self.expect_any(&[prefix]).1
    }

    /// Closes stdin (a serving child quits), waits for the exit; status and stderr.
    fn wait(&mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.proc.wait().expect("wait for the child");
        let err = self
            .stderr
            .take()
            .map(|h| h.join().expect("stderr reader"))
            .unwrap_or_default();
        (status, err)
    }

    /// Tells a serving child to quit; waits for `FINAL`, then the exit.
    fn quit(&mut self) -> (ExitStatus, String) {
        if let Some(stdin) = &mut self.stdin {
            writeln!(stdin, "quit").expect("tell the child to quit");
        }
        self.expect_line("FINAL ");
        self.wait()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.proc.try_wait() {
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
    }
}

/// Lines of `stderr` that are the fallback notice.
fn fallback_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with(FALLBACK_LINE))
        .collect()
}

/// Echoes a few payloads over several connections to `addr` (both workers get some).
fn check_echo(addr: SocketAddr) {
    let mut rng = Rng::new(addr.port() as u64);
    let mut conns: Vec<_> = (0..4).map(|_| connect(addr)).collect();
    for s in &mut conns {
        for n in [1, 100, 70_000] {
            echo_check(s, &rng.bytes(n), 4096);
        }
    }
}

/// `Auto` under a seccomp filter failing `io_uring_setup` with `errno`: serves echo on
/// epoll and logs exactly one line naming the errno (`expect` are alternatives).
fn auto_falls_back(test: &str, variant: &str, expect: &[&str]) {
    let mut child = spawn(test, &format!("serve-{variant}"), BackendKind::Auto, None);
    let config = child.expect_line("CONFIG ");
    let probed = child.expect_line("BACKEND ");
    let port: u16 = child.expect_line("PORT ").parse().expect("port number");
    if probed != "epoll" {
        let (status, err) = child.wait();
        panic!(
            "Auto did not fall back to epoll: probe_backend gave {probed:?}; \
             child {status}; stderr:\n{err}"
        );
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    check_echo(addr);
    let (status, err) = child.quit();
    assert!(status.success(), "child failed ({status}); stderr:\n{err}");
    assert_eq!(config, "auto", "nothing overrides the builder's Auto");
    assert_eq!(
        probed, "epoll",
        "probe_backend must report the fallback; stderr:\n{err}"
    );
    let lines = fallback_lines(&err);
    assert_eq!(
        lines.len(),
        1,
        "exactly one fallback line for the process (probe + 2 workers); stderr:\n{err}"
    );
    let line = lines[0];
    assert!(
        expect.iter().any(|e| line.contains(e)),
        "the fallback line names the errno (one of {expect:?}): {line}"
    );
    assert!(
        line.contains("io_uring_setup") && line.contains("epoll"),
        "the fallback line says what failed and which backend runs: {line}"
    );
    assert!(
        line.contains("RINGCORE_BACKEND=epoll"),
        "the fallback line says what the user can do: {line}"
    );
}

/// `Uring` under the same filter: build succeeds (nothing is opened yet), probe and
/// serve fail with a message naming io_uring, the errno and the advice; no fallback.
fn uring_fails(test: &str, variant: &str, errno_text: &[&str], advice: &[&str]) {
    let mut child = spawn(test, &format!("fail-{variant}"), BackendKind::Uring, None);
    let (p, built) = child.expect_any(&["BUILD_OK ", "BUILD_ERR "]);
    let (p2, probe) = child.expect_any(&["PROBE_OK ", "PROBE_ERR "]);
    let (p3, serve) = if p2 == "PROBE_ERR " {
        child.expect_any(&["SERVE_OK", "SERVE_ERR "])
    } else {
        (String::new(), String::new())
    };
    let (status, err) = child.wait();
    assert!(status.success(), "child failed ({status}); stderr:\n{err}");
    assert_eq!(p, "BUILD_OK ", "build() opens no backend: {built}");
    assert_eq!(built, "io_uring");
    assert_eq!(
        p2, "PROBE_ERR ",
        "probe with Uring must fail under seccomp, got {probe}"
    );
    assert_eq!(
        p3, "SERVE_ERR ",
        "serve with Uring must fail under seccomp, not run"
    );
    for (what, msg) in [("probe", &probe), ("serve", &serve)] {
        assert!(
            msg.contains("backend io_uring requested but unavailable")
                && msg.contains("io_uring_setup"),
            "{what} error names io_uring and the failing call: {msg}"
        );
        assert!(
            errno_text.iter().all(|e| msg.contains(e)),
            "{what} error names the errno ({errno_text:?}): {msg}"
        );
        assert!(
            advice.iter().all(|a| msg.contains(a)),
            "{what} error says what to do ({advice:?}): {msg}"
        );
    }
    assert!(
        fallback_lines(&err).is_empty(),
        "Uring must fail loudly, never fall back; stderr:\n{err}"
    );
}

#[test]
fn auto_falls_back_to_epoll_when_io_uring_setup_is_eperm() {
    if run_child() {
        return;
    }
    auto_falls_back(
        "auto_falls_back_to_epoll_when_io_uring_setup_is_eperm",
        "eperm",
        &["Operation not permitted", "os error 1)"],
    );
}

#[test]
fn auto_falls_back_to_epoll_when_io_uring_setup_is_enosys() {
    if run_child() {
        return;
    }
    auto_falls_back(
        "auto_falls_back_to_epoll_when_io_uring_setup_is_enosys",
        "enosys",
        &["Function not implemented", "os error 38"],
    );
}

#[test]
fn uring_fails_loudly_when_io_uring_setup_is_eperm() {
    if run_child() {
        return;
    }
    uring_fails(
        "uring_fails_loudly_when_io_uring_setup_is_eperm",
        "eperm",
        &["Operation not permitted", "os error 1)"],
        &["seccomp", "kernel.io_uring_disabled", "epoll backend"],
    );
}

#[test]
fn uring_fails_loudly_when_io_uring_setup_is_enosys() {
    if run_child() {
        return;
    }
    uring_fails(
        "uring_fails_loudly_when_io_uring_setup_is_enosys",
        "enosys",
        &["Function not implemented", "os error 38"],
        &["no io_uring", "epoll backend"],
    );
}

#[test]
fn env_backend_bogus_fails_build() {
    if run_child() {
        return;
    }
    for builder_backend in [BackendKind::Auto, BackendKind::Uring, BackendKind::Epoll] {
        let mut child = spawn(
            "env_backend_bogus_fails_build",
            "build",
            builder_backend,
            Some("bogus"),
        );
        let (p, msg) = child.expect_any(&["BUILD_OK ", "BUILD_ERR "]);
        let (status, err) = child.wait();
        assert!(status.success(), "child failed ({status}); stderr:\n{err}");
        assert_eq!(
            p, "BUILD_ERR ",
            "RINGCORE_BACKEND=bogus must fail build() (builder asked for \
             {builder_backend}), got {msg}"
        );
        assert!(
            msg.starts_with("InvalidInput ")
                && msg.contains("RINGCORE_BACKEND")
                && msg.contains("bogus")
                && msg.contains("uring, epoll, auto"),
            "the error names the variable, the value and the choices: {msg}"
        );
    }
}

#[test]
fn env_backend_epoll_overrides_builder_uring() {
    if run_child() {
        return;
    }
    // The builder asks for io_uring; RINGCORE_BACKEND=epoll wins, and io_uring is never
    // touched: the child's seccomp filter kills it if it calls io_uring_setup.
    let mut child = spawn(
        "env_backend_epoll_overrides_builder_uring",
        "serve-kill",
        BackendKind::Uring,
        Some("epoll"),
    );
    let config = child.expect_line("CONFIG ");
    let probed = child.expect_line("BACKEND ");
    let port: u16 = child.expect_line("PORT ").parse().expect("port number");
    check_echo(SocketAddr::from(([127, 0, 0, 1], port)));
    let (status, err) = child.quit();
    assert!(
        status.success(),
        "child failed ({status}; SIGSYS means io_uring_setup was called); stderr:\n{err}"
    );
    assert_eq!(
        config, "epoll",
        "RINGCORE_BACKEND=epoll overrides .backend(Uring)"
    );
    assert_eq!(probed, "epoll");
    assert!(
        fallback_lines(&err).is_empty(),
        "a forced epoll logs no fallback line; stderr:\n{err}"
    );
}

#[test]
fn env_backend_uring_overrides_builder_epoll() {
    if run_child() {
        return;
    }
    // The reverse: the builder asks for epoll, RINGCORE_BACKEND=uring forces io_uring,
    // which the filter blocks: a loud failure, not a silent epoll.
    let mut child = spawn(
        "env_backend_uring_overrides_builder_epoll",
        "fail-eperm",
        BackendKind::Epoll,
        Some("uring"),
    );
    let (p, built) = child.expect_any(&["BUILD_OK ", "BUILD_ERR "]);
    let (p2, probe) = child.expect_any(&["PROBE_OK ", "PROBE_ERR "]);
    let (status, err) = child.wait();
    assert!(status.success(), "child failed ({status}); stderr:\n{err}");
    assert_eq!((p.as_str(), built.as_str()), ("BUILD_OK ", "io_uring"));
    assert_eq!(p2, "PROBE_ERR ", "got {probe}");
    assert!(
        probe.contains("io_uring") && probe.contains("Operation not permitted"),
        "{probe}"
    );
}

// EINVAL (set-up flags unknown to an older kernel) and ENOMEM (RLIMIT_MEMLOCK too low
// for the ring on kernels before 5.12) are on the fallback list too.
// (The errno survives the runtime's context wrapping: `ringcore_runtime::error`.)

#[test]
fn auto_falls_back_to_epoll_when_io_uring_setup_is_einval() {
    if run_child() {
        return;
    }
    auto_falls_back(
        "auto_falls_back_to_epoll_when_io_uring_setup_is_einval",
        "einval",
        &["Invalid argument", "os error 22"],
    );
}

#[test]
fn auto_falls_back_to_epoll_when_io_uring_setup_is_enomem() {
    if run_child() {
        return;
    }
    auto_falls_back(
        "auto_falls_back_to_epoll_when_io_uring_setup_is_enomem",
        "enomem",
        &["Cannot allocate memory", "os error 12"],
    );
}

#[test]
fn uring_fails_loudly_when_io_uring_setup_is_enomem() {
    if run_child() {
        return;
    }
    uring_fails(
        "uring_fails_loudly_when_io_uring_setup_is_enomem",
        "enomem",
        &["Cannot allocate memory", "os error 12"],
        &["ulimit -l"],
    );
}
