//! systemd conventions, on both backends, with the examples as child processes: a
//! fake `NOTIFY_SOCKET` (a unix datagram socket owned by the test, by path and by
//! abstract name) receives `READY=1` once every worker listens and `STOPPING=1` when
//! the drain begins; a listener created here and passed as fd 3 with `LISTEN_PID`
//! and `LISTEN_FDS` (socket activation) is served by several workers; the
//! `LISTEN_*` variables are gone from the environment once the sockets are taken (a
//! child of the server does not inherit them); `STATUS=` lines every
//! `--status-interval` carry the connection counts.

mod support;

use ringcore::BackendKind;
use std::io::BufRead;
use std::net::TcpListener;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use support::for_each_backend;
use support::proc::{example_cmd, http_get, one_worker_cmd, scratch, Proc};

/// Receives datagrams until one contains `pat` (deadline via the socket timeout).
fn recv_until(sock: &UnixDatagram, pat: &str, seen: &mut Vec<String>) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {pat:?} from the server ({e}); got {seen:#?}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        seen.push(msg.clone());
        if msg.contains(pat) {
            return msg;
        }
    }
}

#[test]
fn notify_socket_gets_ready_then_stopping() {
    for_each_backend(|b| {
        // io_uring run: a path; epoll run: an abstract name (both forms systemd uses).
        let (sock, env) = if b == BackendKind::Uring {
            let p = scratch("notify").join("notify.sock");
            (
                UnixDatagram::bind(&p).unwrap(),
                p.to_str().unwrap().to_string(),
            )
        } else {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("ringcore-ops-notify-{}", std::process::id());
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            (UnixDatagram::bind_addr(&a).unwrap(), format!("@{name}"))
        };
        sock.set_read_timeout(Some(support::DEADLINE)).unwrap();
        let mut cmd = example_cmd("http", b, &["--addr", "127.0.0.1:0", "--workers", "2"]);
        cmd.env("NOTIFY_SOCKET", &env);
        let mut p = Proc::spawn(cmd);
        let addr = p.addr_after("listening on");
        let mut seen = Vec::new();
        let ready = recv_until(&sock, "READY=1", &mut seen);
        assert!(
            ready.contains(&format!("MAINPID={}", p.child.id())),
            "{ready}"
        );
        assert!(ready.contains("STATUS=serving on 2 worker(s)"), "{ready}");
        // READY means listening: a request is served at once.
        assert_eq!(http_get(addr, "/plaintext", "").0, 200);
        assert!(!seen.iter().any(|m| m.contains("STOPPING")), "{seen:#?}");
        p.signal(libc::SIGTERM);
        let stopping = recv_until(&sock, "STOPPING=1", &mut seen);
        assert!(stopping.contains("STATUS=draining"), "{stopping}");
        assert_eq!(p.wait_exit().code(), Some(0));
        // READY came exactly once, before STOPPING.
        let r = seen.iter().filter(|m| m.contains("READY=1")).count();
        assert_eq!(r, 1, "{seen:#?}");
    });
}

/// `cmd` runs with `fd` as descriptor 3 and `LISTEN_PID` set to its own pid (by a
/// `sh` that execs the example, keeping the pid), `LISTEN_FDS=1`.
fn activated(cmd: Command, fd: RawFd) -> Command {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg("LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"")
        .arg("sh")
        .arg(prog)
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.env("LISTEN_FDS", "1");
    // SAFETY: only dup2/fcntl between fork and exec (async-signal-safe); `fd` is open
    // in the parent for the whole spawn.
    unsafe {
        sh.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) != 3 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    sh
}

/// One inherited listener, two workers: each worker accepts on a duplicate of it;
/// `--addr` is not bound (a port held here would make that fail).
#[test]
fn socket_activation_serves_on_the_inherited_listener() {
    for_each_backend(|b| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_addr = busy.local_addr().unwrap().to_string();
        let cmd = example_cmd("http", b, &["--addr", &busy_addr, "--workers", "2"]);
        let mut p = Proc::spawn(activated(cmd, listener.as_raw_fd()));
        drop(listener); // the child has its own descriptor now
        let l = p.wait_line("socket activation: serving on inherited");
        assert!(
            l.contains(&addr.to_string()) && l.contains("2 worker(s)"),
            "{l}"
        );
        let l = p.wait_line("listening on");
        assert!(l.contains(&addr.to_string()), "{l}");
        p.wait_line("ready: 2 worker(s)");
        // Many connections at once, so both workers' accepts take part.
        let clients: Vec<_> = (0..16)
            .map(|_| {
                let mut c = support::http::HttpClient::connect(addr);
                c.send(&support::http::get("GET", "/plaintext", ""));
                c
            })
            .collect();
        for mut c in clients {
            let r = c.read_response(false);
            assert_eq!((r.status, &r.body[..]), (200, &b"Hello, World!"[..]));
        }
        let (st, body) = http_get(addr, "/metrics", "");
        assert_eq!(st, 200);
        let m = String::from_utf8_lossy(&body);
        assert!(m.contains("ringcore_workers 2\n"), "{m}");
        p.terminate();
        drop(busy);
    });
}

/// A passed descriptor that is not a listening TCP socket is refused with a
/// message naming it; nothing is served.
#[test]
fn socket_activation_refuses_a_datagram_socket() {
    for_each_backend(|b| {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let cmd = one_worker_cmd("echo", b, &[]);
        let mut p = Proc::spawn(activated(cmd, udp.as_raw_fd()));
        let st = p.wait_exit();
        let lines = p.drain_lines().join("\n");
        assert_eq!(st.code(), Some(1), "{lines}");
        assert!(
            lines.contains("inherited fd 3 is not a stream socket"),
            "{lines}"
        );
    });
}

/// `LISTEN_PID` naming another process: not ours, so `--addr` is bound as usual.
#[test]
fn listen_pid_of_another_process_is_ignored() {
    for_each_backend(|b| {
        let mut cmd = one_worker_cmd("echo", b, &[]);
        cmd.env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
        let mut p = Proc::spawn(cmd);
        let addr = p.addr_after("listening on");
        p.wait_line("ready:");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        support::proc::echo_round(&mut s, b"bound, not inherited");
        assert!(!p.seen.iter().any(|l| l.contains("socket activation")));
        drop(s);
        p.terminate();
    });
}

/// Under systemd the examples send `STATUS=` lines with the connection counts every
/// `--status-interval`: a held connection shows as open, then as gone once closed.
#[test]
fn notify_socket_gets_periodic_status_lines() {
    for_each_backend(|b| {
        let path = scratch(&format!("status-{}", b.name())).join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(support::DEADLINE)).unwrap();
        let mut cmd = one_worker_cmd("echo", b, &["--status-interval", "50ms"]);
        cmd.env("NOTIFY_SOCKET", &path);
        let mut p = Proc::spawn(cmd);
        let addr = p.addr_after("listening on");
        let mut seen = Vec::new();
        recv_until(&sock, "READY=1", &mut seen);
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        support::proc::echo_round(&mut s, b"counted");
        recv_until(
            &sock,
            "STATUS=serving: 1 open connection(s), 1 accepted",
            &mut seen,
        );
        drop(s);
        recv_until(
            &sock,
            "STATUS=serving: 0 open connection(s), 1 accepted",
            &mut seen,
        );
        p.terminate();
    });
}

const ACTIVATED_ROLE: &str = "activated";

/// The child side of [`socket_activation_unsets_the_listen_variables`]: takes the
/// inherited socket, reports what it and a child of its own see of `LISTEN_*` (and
/// of descriptor 3), then serves an echo on the socket until stdin ends.
fn activated_child(b: BackendKind) {
    use ringcore::{ConnInfo, Serve};
    let l = ringcore::net::systemd::activated_listeners(1)
        .expect("socket activation")
        .expect("LISTEN_PID names this process");
    let mine: Vec<String> = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]
        .iter()
        .map(|v| std::env::var(v).unwrap_or_else(|_| "unset".into()))
        .collect();
    // The harness printed "test name ... " without a newline: start a fresh line.
    println!("\nSELF {}", mine.join(" "));
    let out = Command::new("/bin/sh")
        .arg("-c")
        // No command substitution: its pipe could itself be fd 3 in the shell.
        .arg(
            "printf '%s %s %s ' \"${LISTEN_PID-unset}\" \"${LISTEN_FDS-unset}\" \
             \"${LISTEN_FDNAMES-unset}\"; \
             if [ -e /proc/self/fd/3 ]; then echo fd3=open; else echo fd3=closed; fi",
        )
        .output()
        .expect("run sh");
    println!("CHILD {}", String::from_utf8_lossy(&out.stdout).trim());
    let rt = support::base_builder(b).build().unwrap();
    let h = rt.handle();
    let j = std::thread::spawn(move || rt.serve(l, |_: &ConnInfo| support::Echo));
    println!("SERVING");
    let _ = std::io::stdin().read_line(&mut String::new());
    h.shutdown();
    j.join().unwrap().unwrap();
}

/// Socket activation takes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` out of the
/// environment once it has the sockets (systemd's convention, `sd_listen_fds(1)`):
/// neither the server nor a child it starts sees them, and the socket itself is
/// close-on-exec. The server here is this test binary run again as a child.
#[test]
fn socket_activation_unsets_the_listen_variables() {
    if let Some((role, b)) = support::child::child_role() {
        assert_eq!(role, ACTIVATED_ROLE);
        activated_child(b);
        return;
    }
    for_each_backend(|b| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "socket_activation_unsets_the_listen_variables",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            support::child::CHILD_ENV,
            format!("{ACTIVATED_ROLE}:{}", b.name()),
        )
        .env("LISTEN_FDNAMES", "web");
        let mut sh = activated(cmd, listener.as_raw_fd());
        sh.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = sh.spawn().expect("spawn the child");
        drop(listener); // the child has its own descriptor now
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = |prefix: &str| loop {
            let l = lines
                .next()
                .unwrap_or_else(|| panic!("the child ended before {prefix:?}"))
                .unwrap();
            if let Some(rest) = l.strip_prefix(prefix) {
                return rest.to_string();
            }
        };
        assert_eq!(next("SELF "), "unset unset unset");
        assert_eq!(next("CHILD "), "unset unset unset fd3=closed");
        next("SERVING");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        support::proc::echo_round(&mut s, b"on the inherited socket");
        drop(s);
        drop(child.stdin.take()); // the child stops at the end of its stdin
        let st = child.wait().unwrap();
        assert!(st.success(), "{st}");
    });
}
