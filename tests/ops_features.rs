//! The examples' fast-path switches (`--features name=value,...` /
//! `RINGCORE_FEATURES`, examples/common/features.rs), run as child processes on both
//! backends: the listing, bad names and values refused with a message that says what
//! to use, the flag beating the environment, and a switch reaching the `Builder`
//! (SQPOLL's kernel thread appears).

mod support;

use ringcore::BackendKind;
use std::net::TcpStream;
use std::process::Command;
use support::for_each_backend;
use support::proc::{echo_round, example, one_worker_cmd, Proc};

/// Whether the process has an io_uring SQPOLL kernel thread (`iou-sqp-PID`).
fn has_sqpoll_thread(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten().any(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.starts_with("iou-sqp"))
            })
        })
        .unwrap_or(false)
}

/// `--features help` and `--features list` name every switch and exit 0.
#[test]
fn help_and_list_name_every_switch() {
    let out = Command::new(example("echo"))
        .args(["--features", "help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let h = String::from_utf8_lossy(&out.stdout);
    for name in ["sqpoll", "splice", "pool_trim", "malloc_trim"] {
        assert!(h.contains(name), "{name} missing from: {h}");
    }
    let out = Command::new(example("http"))
        .env("RINGCORE_FEATURES", "list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let l = String::from_utf8_lossy(&out.stdout);
    assert!(
        l.lines().any(|x| x == "splice\tinline\t1\tfile"),
        "no splice row in: {l}"
    );
}

/// An unknown name or a bad value stops start-up with a message naming what is
/// accepted, whether it came from the flag or the environment.
#[test]
fn bad_switches_are_refused_with_what_to_use() {
    let out = Command::new(example("echo"))
        .args(["--addr", "127.0.0.1:0", "--features", "turbo=on"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown feature \"turbo\""), "{err}");
    assert!(err.contains("sqpoll, splice"), "{err}");
    assert!(err.contains("--features"), "{err}");

    let out = Command::new(example("echo"))
        .args(["--addr", "127.0.0.1:0"])
        .env("RINGCORE_FEATURES", "splice=sideways")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("RINGCORE_FEATURES"), "{err}");
    assert!(
        err.contains("expected on, off, inline, drain or ring"),
        "{err}"
    );

    let out = Command::new(example("echo"))
        .args(["--addr", "127.0.0.1:0", "--features", "sqpoll"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("expected name=value"), "{err}");
}

/// The flag beats the environment (and says so); the resolved switches are logged
/// at start-up; `sqpoll=on` reaches the `Builder` (io_uring: the SQPOLL thread runs;
/// epoll: a warning that it is ignored), and the server still serves.
#[test]
fn flag_beats_environment_and_reaches_the_builder() {
    for_each_backend(|b| {
        let mut cmd = one_worker_cmd("echo", b, &["--features", "sqpoll=on,pool_trim=off"]);
        cmd.env("RINGCORE_FEATURES", "splice=ring");
        let mut p = Proc::spawn(cmd);
        p.wait_line("overrides RINGCORE_FEATURES=splice=ring");
        let l = p.wait_line("features:");
        assert!(
            l.ends_with("features: sqpoll=on splice=inline pool_trim=off malloc_trim=on"),
            "{l}"
        );
        if b == BackendKind::Epoll {
            p.wait_line("feature sqpoll=on ignored");
        }
        let addr = p.addr_after("listening on");
        p.wait_line("ready:");
        assert_eq!(
            has_sqpoll_thread(p.child.id()),
            b == BackendKind::Uring,
            "SQPOLL thread presence on {b:?}"
        );
        let mut s = TcpStream::connect(addr).unwrap();
        echo_round(&mut s, b"switches");
        drop(s);
        p.signal(libc::SIGTERM);
        assert_eq!(p.wait_exit().code(), Some(0));
    });
}
