//! Passing file descriptors over Unix stream connections (`SCM_RIGHTS`) on both
//! backends: client to server (the server reads the file it got and answers with its
//! content), server to client (`Conn::send_fds`), a connection that did not opt in
//! (the kernel drops the fds: nothing leaks), and a message with more fds than
//! `MAX_PASSED_FDS` (truncated control data: the fds are closed, the connection fails
//! with an error naming the limit).
//!
//! Leak checks look for fds pointing at each test's own marker file in
//! `/proc/self/fd`, so tests running in parallel threads do not disturb them.

mod support;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use ringcore::net::fdpass::MAX_PASSED_FDS;
use ringcore::{
    BackendKind, CloseReason, Conn, ConnInfo, Handler, Listeners, Serve, SocketOptions,
};
use std::io::{IoSlice, IoSliceMut, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Line(String),
    Fds(usize),
    Close(String),
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Line protocol: `read` answers with the content of the first fd received; `give`
/// passes a fresh file holding `from server` back; anything else is answered `ok`.
struct FdServer {
    opt_in: bool,
    log: Log,
    held: Vec<OwnedFd>,
    give: PathBuf,
}

impl Handler for FdServer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.opt_in {
            conn.receive_fds().expect("receive_fds from on_open");
            // Once reading started it is too late (checked by the next call: no-op
            // when already on).
            conn.receive_fds().expect("idempotent");
        }
    }
    fn on_fds(&mut self, _conn: &mut Conn<'_>, fds: Vec<OwnedFd>) {
        for fd in &fds {
            let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
            assert!(
                flags & libc::FD_CLOEXEC != 0,
                "received fds are close-on-exec"
            );
        }
        self.log.lock().unwrap().push(Seen::Fds(fds.len()));
        self.held.extend(fds);
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let mut used = 0;
        while let Some(end) = data[used..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&data[used..used + end]).into_owned();
            used += end + 1;
            self.log.lock().unwrap().push(Seen::Line(line.clone()));
            match line.as_str() {
                "read" => {
                    let fd = self
                        .held
                        .first()
                        .expect("a file was passed")
                        .try_clone()
                        .unwrap();
                    let mut f = std::fs::File::from(fd);
                    f.rewind().unwrap();
                    let mut s = String::new();
                    f.read_to_string(&mut s).unwrap();
                    conn.send(s.as_bytes());
                }
                "give" => {
                    let mut f = std::fs::File::create(&self.give).unwrap();
                    f.write_all(b"from server").unwrap();
                    let f = std::fs::File::open(&self.give).unwrap();
                    let e = conn.send_fds(b"", &[f.as_fd()]).unwrap_err();
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
                    conn.send_fds(b"F", &[f.as_fd()]).unwrap();
                    // Ours closes now; the queued duplicate travels.
                }
                _ => conn.send(b"ok\n"),
            }
        }
        used
    }
    fn on_close(&mut self, reason: CloseReason) {
        let r = match reason {
            CloseReason::Error(e) => format!("Error({:?}: {e})", e.kind()),
            r => format!("{r:?}"),
        };
        self.log.lock().unwrap().push(Seen::Close(r));
    }
}

struct Env {
    path: PathBuf,
    dir: PathBuf,
    log: Log,
    handle: ringcore::Handle,
    join: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Env {
    fn start(backend: BackendKind, name: &str, opt_in: bool) -> Env {
        let dir = std::env::temp_dir().join(format!(
            "ringcore-fdpass-{name}-{}-{backend}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let l = Listeners::bind(
            format!("unix:{}", path.display()),
            1,
            &SocketOptions::default(),
        )
        .unwrap();
        let rt = support::base_builder(backend).build().unwrap();
        let handle = rt.handle();
        let log: Log = Arc::default();
        let (log2, give) = (log.clone(), dir.join("given"));
        let join = std::thread::spawn(move || {
            rt.serve(l, move |_: &ConnInfo| FdServer {
                opt_in,
                log: log2.clone(),
                held: Vec::new(),
                give: give.clone(),
            })
        });
        Env {
            path,
            dir,
            log,
            handle,
            join: Some(join),
        }
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.path).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        s
    }

    /// A file in the test's directory holding `content`, opened for reading.
    fn marker(&self, name: &str, content: &str) -> (PathBuf, std::fs::File) {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        (p, f)
    }

    fn seen(&self, n: usize) -> Vec<Seen> {
        support::wait_until(&format!("{n} callbacks"), || {
            self.log.lock().unwrap().len() >= n
        });
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(j) = self.join.take() {
            let r = j.join();
            if !std::thread::panicking() {
                r.unwrap().unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Open fds of this process that point at `path`.
fn open_on(path: &std::path::Path) -> usize {
    let p = path.to_string_lossy();
    support::fd_table().values().filter(|t| **t == *p).count()
}

fn send_with_fds(s: &UnixStream, data: &[u8], fds: &[RawFd]) {
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let n = loop {
        match sendmsg::<()>(s.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.unwrap(),
        }
    };
    assert_eq!(n, data.len());
}

fn recv_with_fds(s: &UnixStream, buf: &mut [u8]) -> (usize, Vec<OwnedFd>) {
    use std::os::fd::FromRawFd;
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = loop {
        match recvmsg::<()>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.unwrap(),
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: the kernel installed these fds for us; nobody else owns them.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    (msg.bytes, fds)
}

fn read_exact_str(s: &mut UnixStream, n: usize) -> String {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).unwrap();
    String::from_utf8(b).unwrap()
}

#[test]
fn client_passes_a_file_and_the_server_reads_it() {
    support::for_each_backend(|backend| {
        let env = Env::start(backend, "to-server", true);
        let (path, file) = env.marker("client-file", "content of the client's file");
        let mut s = env.connect();
        s.write_all(b"hi\n").unwrap();
        assert_eq!(read_exact_str(&mut s, 3), "ok\n");
        send_with_fds(&s, b"read\n", &[file.as_raw_fd()]);
        drop(file); // the server holds its own now
        assert_eq!(read_exact_str(&mut s, 28), "content of the client's file");
        let got = env.seen(3);
        assert_eq!(
            got[..3],
            [
                Seen::Line("hi".into()),
                Seen::Fds(1),
                Seen::Line("read".into())
            ],
            "the fds reach on_fds before the bytes they came with"
        );
        drop(s);
        env.seen(4);
        support::wait_until("the server closed the passed fd", || open_on(&path) == 0);
    });
}

#[test]
fn server_passes_a_file_to_the_client() {
    support::for_each_backend(|backend| {
        let env = Env::start(backend, "to-client", false);
        let mut s = env.connect();
        s.write_all(b"give\n").unwrap();
        let mut b = [0u8; 8];
        let (n, fds) = recv_with_fds(&s, &mut b);
        assert_eq!(&b[..n], b"F");
        assert_eq!(fds.len(), 1, "one fd with the byte");
        let mut f = std::fs::File::from(fds.into_iter().next().unwrap());
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "from server");
        // The server's duplicate is closed once sent; ours is the only one.
        let given = env.dir.join("given");
        support::wait_until("the server's duplicate closed", || open_on(&given) == 1);
        drop(f);
        assert_eq!(open_on(&given), 0);
        // Bytes after the fds keep their order.
        s.write_all(b"x\n").unwrap();
        assert_eq!(read_exact_str(&mut s, 3), "ok\n");
    });
}

#[test]
fn a_connection_not_opted_in_drops_passed_fds() {
    support::for_each_backend(|backend| {
        let env = Env::start(backend, "not-opted", false);
        let (path, file) = env.marker("dropped", "x");
        let mut s = env.connect();
        for _ in 0..50 {
            send_with_fds(&s, b"m\n", &[file.as_raw_fd(), file.as_raw_fd()]);
        }
        // 50 answers: every message was read (and its fds discarded by the kernel).
        let got = read_exact_str(&mut s, 150);
        assert_eq!(got, "ok\n".repeat(50));
        drop(file);
        assert_eq!(open_on(&path), 0, "no passed fd is open in the process");
        assert!(!env
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Seen::Fds(_))));
    });
}

#[test]
fn too_many_fds_in_one_message_close_the_connection_and_leak_nothing() {
    support::for_each_backend(|backend| {
        let env = Env::start(backend, "truncated", true);
        let (path, file) = env.marker("many", "x");
        let mut s = env.connect();
        let fds = vec![file.as_raw_fd(); MAX_PASSED_FDS + 4];
        send_with_fds(&s, b"m\n", &fds);
        drop(file);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // end of stream or a reset
        assert!(rest.is_empty(), "nothing delivered: {rest:?}");
        let got = env.seen(1);
        match &got[..] {
            [Seen::Close(r)] => assert!(
                r.starts_with("Error(InvalidData") && r.contains("MAX_PASSED_FDS"),
                "{r}"
            ),
            other => panic!("expected only the close, got {other:?}"),
        }
        support::wait_until("no passed fd left open", || open_on(&path) == 0);
    });
}

#[test]
fn send_fds_on_a_tcp_connection_is_unsupported() {
    struct Tcp(Arc<Mutex<Option<std::io::ErrorKind>>>);
    impl Handler for Tcp {
        fn on_open(&mut self, conn: &mut Conn<'_>) {
            let f = std::fs::File::open("/dev/null").unwrap();
            let e = conn.send_fds(b"x", &[f.as_fd()]).unwrap_err();
            let r = conn.receive_fds().unwrap_err();
            assert_eq!(e.kind(), r.kind());
            *self.0.lock().unwrap() = Some(e.kind());
            conn.close();
        }
        fn on_data(&mut self, _: &mut Conn<'_>, d: &[u8]) -> usize {
            d.len()
        }
    }
    support::for_each_backend(|backend| {
        let got = Arc::new(Mutex::new(None));
        let g2 = got.clone();
        let srv = support::start_server(backend, |b| b, move |_: &ConnInfo| Tcp(g2.clone()));
        let mut c = std::net::TcpStream::connect(srv.addr).unwrap();
        c.set_read_timeout(Some(support::DEADLINE)).unwrap();
        let _ = c.read_to_end(&mut Vec::new());
        support::wait_until("the handler ran", || got.lock().unwrap().is_some());
        assert_eq!(*got.lock().unwrap(), Some(std::io::ErrorKind::Unsupported));
        srv.stop();
    });
}
