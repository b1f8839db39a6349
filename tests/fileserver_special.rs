//! The static file server serves only regular files: a FIFO or a Unix socket under the
//! root is refused with 404 (as nginx: "is not a regular file") without blocking the
//! worker, and other requests keep being served meanwhile. And its error responses
//! survive a client that keeps sending (lingering close).

mod support;

use ringcore::http::{Limits, StaticFiles};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;
use support::client::connect_small_rcvbuf;
use support::http::{get, pipeline_garbage_then_junk, HttpClient};
use support::{for_each_backend, start_server};

/// `<tmp>/root` with `hello.txt`, a FIFO `fifo.txt`, a FIFO `dir/index.html` and a
/// Unix socket `sock`; removed on drop.
struct Tree {
    dir: PathBuf,
    root: PathBuf,
    _sock: std::os::unix::net::UnixListener,
}

fn mkfifo(path: &std::path::Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(r, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let dir =
            std::env::temp_dir().join(format!("ringcore-special-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(root.join("hello.txt"), b"hello\n").unwrap();
        mkfifo(&root.join("fifo.txt"));
        mkfifo(&root.join("dir/index.html"));
        let sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        Tree {
            dir,
            root,
            _sock: sock,
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// On drop (declared after the server, so dropped before it when a failure unwinds):
/// opens the FIFOs for writing, nonblocking, which succeeds only if a reader is stuck
/// in `open`: it releases a worker blocked there, so the server can shut down and the
/// failure is reported instead of hanging the test.
struct Release(PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        for f in ["fifo.txt", "dir/index.html"] {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(self.0.join(f));
        }
    }
}

use std::os::unix::fs::OpenOptionsExt;

#[test]
fn fifo_and_socket_are_404_and_do_not_block_the_worker() {
    for_each_backend(|backend| {
        let tree = Tree::new(&backend.to_string());
        let factory = StaticFiles::factory(&tree.root, Limits::default()).expect("root");
        let server = start_server(backend, |b| b, factory);
        let _release = Release(tree.root.clone());
        // A keep-alive client served before, between and after the special files.
        let mut good = HttpClient::connect(server.addr);
        let mut fetch_hello = |what: &str| {
            good.send(&get("GET", "/hello.txt", ""));
            let r = good.read_response(false);
            assert_eq!((r.status, &r.body[..]), (200, &b"hello\n"[..]), "{what}");
        };
        fetch_hello("before");
        // A directory whose index.html is no regular file is a directory without an
        // index: 403, as before.
        for (target, what, want) in [
            ("/fifo.txt", "a FIFO", 404),
            ("/dir/", "a FIFO as index.html", 403),
            ("/dir/index.html", "a FIFO named index.html", 404),
            ("/sock", "a Unix socket", 404),
        ] {
            for method in ["GET", "HEAD"] {
                let mut c = HttpClient::connect(server.addr);
                // Failure detection only: before the fix the worker blocked forever.
                c.set_read_timeout(Duration::from_secs(10));
                c.send(&get(method, target, ""));
                let r = c.read_response(method == "HEAD");
                assert_eq!(r.status, want, "{method} {what}");
            }
            fetch_hello(what);
        }
        server.wait_counters("clients gone", |c| c.open_conns <= 1);
        drop(good);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn error_response_survives_a_client_that_keeps_sending() {
    for_each_backend(|backend| {
        let tree = Tree::new(&format!("linger-{backend}"));
        let limits = Limits::default()
            .max_requests_per_connection(u32::MAX)
            .lingering_time(Duration::from_secs(3))
            .lingering_timeout(Duration::from_millis(1000));
        let factory = StaticFiles::factory(&tree.root, limits).expect("root");
        let server = start_server(backend, |b| b, factory);
        let s = connect_small_rcvbuf(server.addr, 4096);
        // HEAD: responses held in memory (no file segments), so they sit in the
        // server's socket buffer when the error comes.
        let req = get("HEAD", "/hello.txt", "");
        let (mut c, _, writer) = pipeline_garbage_then_junk(s, &req, 2000, true);
        c.expect_closed();
        server.wait_counters("the lingering connection closed", |c| c.open_conns == 0);
        writer.join().expect("writer");
        assert_eq!(server.stop().panics, 0);
    });
}

/// Issue 8 defect 11 for `StaticFiles`: a request body is not collected before the
/// answer. A POST announcing a 1 MiB body gets its 405 as soon as its head is in,
/// with the body still outstanding (before the fix the parser held the request until
/// all of it had arrived, pinning up to 1 MiB per connection); the body is then read
/// and dropped, and the connection serves the next request. A GET with a small body
/// and a chunked one are answered and their bodies skipped the same way.
#[test]
fn request_bodies_are_discarded_not_collected() {
    for_each_backend(|backend| {
        let tree = Tree::new(&format!("body-{backend}"));
        let factory = StaticFiles::factory(&tree.root, Limits::default()).expect("root");
        let server = start_server(backend, |b| b, factory);
        let mut c = HttpClient::connect(server.addr);
        // Failure detection only: before the fix no answer came until the body did.
        c.set_read_timeout(Duration::from_secs(10));
        let len = 1 << 20;
        c.send(&get(
            "POST",
            "/hello.txt",
            &format!("Content-Length: {len}\r\n"),
        ));
        c.send(&[b'x'; 100]);
        let r = c
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("no 405 before the body arrived: {e}"));
        assert_eq!(r.status, 405);
        assert!(!r.says_close(), "keep-alive after a discarded body");
        // The rest of the body, then a pipelined GET: the body is skipped.
        let mut rest = vec![b'x'; len - 100];
        rest.extend_from_slice(&get("GET", "/hello.txt", ""));
        c.send(&rest);
        let r = c.read_response(false);
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"hello\n"[..]),
            "after the body"
        );
        // A GET with a body, a chunked POST and a GET, pipelined.
        let mut req = get("GET", "/hello.txt", "Content-Length: 5\r\n");
        req.extend_from_slice(b"abcde");
        req.extend_from_slice(&get("POST", "/x", "Transfer-Encoding: chunked\r\n"));
        req.extend_from_slice(b"3\r\nabc\r\n0\r\n\r\n");
        req.extend_from_slice(&get("GET", "/hello.txt", ""));
        c.send(&req);
        for (i, want) in [200, 405, 200].into_iter().enumerate() {
            let r = c.read_response(false);
            assert_eq!(r.status, want, "pipelined response {i}");
        }
        drop(c);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}
