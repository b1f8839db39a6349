//! The file server's preconditions (RFC 9110 13.2.2) over raw sockets on both
//! backends: `If-Match` (strong comparison, `*`, lists) and `If-Unmodified-Since`
//! answer 412 when they fail, before `If-None-Match`/`If-Modified-Since` (304) and
//! `If-Range`; and the request path's percent-decoding (per segment, `..` after
//! decoding refused, bad escapes and NUL 400).

mod support;

use ringcore::http::{format_http_date, StaticFiles};
use ringcore::BackendKind;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};
use support::http::{get, HttpClient, Resp};
use support::{for_each_backend, start_server, TestServer};

/// `Last-Modified` of `data.bin`: 2020-09-13 12:26:40 UTC.
const MTIME: u64 = 1_600_000_000;

/// `<tmp>/root` with `data.bin` (100 bytes) and `a b/c.txt`; removed on drop.
struct Tree {
    dir: PathBuf,
    root: PathBuf,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!("ringcore-fpre-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("a b")).unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        std::fs::write(root.join("data.bin"), data).unwrap();
        std::fs::write(root.join("a b/c.txt"), b"c\n").unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(root.join("data.bin"))
            .unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME))
            .unwrap();
        Tree { dir, root }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn date(secs: u64) -> String {
    String::from_utf8(format_http_date(secs).to_vec()).unwrap()
}

fn serve(backend: BackendKind, tree: &Tree) -> TestServer {
    let files = StaticFiles::builder(&tree.root).factory().unwrap();
    start_server(backend, |b| b, files)
}

/// Nothing stray on `c`; every connection closed once it is dropped.
fn finish(c: HttpClient, server: TestServer) {
    assert_eq!(c.buffered(), 0);
    drop(c);
    server.wait_counters("closed", |c| c.open_conns == 0);
    assert_eq!(server.stop().panics, 0);
}

fn ask(c: &mut HttpClient, method: &str, target: &str, extra: &str) -> Resp {
    c.send(&get(method, target, extra));
    c.read_response(method == "HEAD")
}

#[test]
fn if_match_and_if_unmodified_since_give_412_in_rfc_order() {
    let tree = Tree::new("pre");
    for_each_backend(|backend| {
        let server = serve(backend, &tree);
        let mut c = HttpClient::connect(server.addr);
        let tag = ask(&mut c, "GET", "/data.bin", "")
            .header("etag")
            .expect("ETag")
            .to_string();
        let (before, at, after) = (date(MTIME - 1), date(MTIME), date(MTIME + 60));
        let cases: Vec<(String, u16)> = vec![
            // If-Match: strong comparison; `*`; lists; several field lines.
            (format!("If-Match: {tag}\r\n"), 200),
            ("If-Match: *\r\n".into(), 200),
            (format!("If-Match: \"x\", {tag}\r\n"), 200),
            (format!("If-Match: \"x\"\r\nIf-Match: {tag}\r\n"), 200),
            ("If-Match: \"x\"\r\n".into(), 412),
            (format!("If-Match: W/{tag}\r\n"), 412),
            // If-Unmodified-Since: modified after the date is 412; garbage ignored.
            (format!("If-Unmodified-Since: {at}\r\n"), 200),
            (format!("If-Unmodified-Since: {after}\r\n"), 200),
            (format!("If-Unmodified-Since: {before}\r\n"), 412),
            ("If-Unmodified-Since: yesterday\r\n".into(), 200),
            // If-Match present: If-Unmodified-Since is not looked at.
            (
                format!("If-Match: {tag}\r\nIf-Unmodified-Since: {before}\r\n"),
                200,
            ),
            (
                format!("If-Match: \"x\"\r\nIf-Unmodified-Since: {after}\r\n"),
                412,
            ),
            // 412 comes before 304.
            (format!("If-Match: \"x\"\r\nIf-None-Match: {tag}\r\n"), 412),
            (
                format!("If-Unmodified-Since: {before}\r\nIf-Modified-Since: {at}\r\n"),
                412,
            ),
            // Passing 412 checks, the 304 checks still apply.
            (format!("If-Match: *\r\nIf-None-Match: {tag}\r\n"), 304),
            (
                format!("If-Unmodified-Since: {at}\r\nIf-Modified-Since: {at}\r\n"),
                304,
            ),
            // ... and If-Range with Range after them.
            (
                format!("If-Match: {tag}\r\nRange: bytes=0-9\r\nIf-Range: {tag}\r\n"),
                206,
            ),
            (
                format!("If-Match: {tag}\r\nRange: bytes=0-9\r\nIf-Range: \"x\"\r\n"),
                200,
            ),
            ("If-Match: \"x\"\r\nRange: bytes=0-9\r\n".to_string(), 412),
        ];
        for (extra, want) in &cases {
            for method in ["GET", "HEAD"] {
                let r = ask(&mut c, method, "/data.bin", extra);
                assert_eq!(r.status, *want, "{method} with {extra:?}");
                if r.status == 412 {
                    assert!(!r.says_close(), "412 keeps the connection");
                    if method == "GET" {
                        assert_eq!(r.body, b"Precondition Failed");
                    }
                }
                if r.status == 200 && method == "GET" {
                    assert_eq!(r.body.len(), 100, "{extra:?}");
                }
            }
        }
        // A missing file stays 404 whatever If-Match says (`*` means "exists").
        assert_eq!(
            ask(&mut c, "GET", "/missing", "If-Match: *\r\n").status,
            404
        );
        finish(c, server);
    });
}

#[test]
fn paths_are_decoded_per_segment() {
    let tree = Tree::new("path");
    for_each_backend(|backend| {
        let server = serve(backend, &tree);
        let mut c = HttpClient::connect(server.addr);
        for (target, want) in [
            ("/a%20b/c.txt", 200),
            ("/%61%20b/%63.txt", 200),
            ("/a%20b/./c.txt", 200),
            // An encoded slash is part of a name, never a separator: no file
            // is called "a b/c.txt".
            ("/a%20b%2Fc.txt", 404),
            ("/a%20b%2fc.txt", 404),
            // `..` refused after decoding, encoded or not.
            ("/a%20b/../data.bin", 403),
            ("/a%20b/%2e%2e/data.bin", 403),
            ("/%2E%2E/root/data.bin", 403),
            ("/..%2Fdata.bin", 404),
            // Malformed escapes and a decoded NUL: 400.
            ("/data.bin%", 400),
            ("/data.bin%4", 400),
            ("/data%zz.bin", 400),
            ("/data.bin%00", 400),
            ("/%ff", 400),
        ] {
            let r = ask(&mut c, "GET", target, "");
            assert_eq!(r.status, want, "{target}");
        }
        finish(c, server);
    });
}
