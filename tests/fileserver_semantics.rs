//! The file server's HTTP semantics (issue 9, nginx as the anchor) over real sockets
//! on both backends: `ETag` + `If-None-Match`, `If-Modified-Since` (a future date
//! ignored), `If-Range` (a mismatch gets the full 200), `Cache-Control`, several
//! ranges as `multipart/byteranges` (overlapping or too many: the whole file),
//! directories (301, index, 403, listing) and hidden paths.

mod support;

use ringcore::http::{format_http_date, StaticFiles, StaticFilesBuilder};
use ringcore::BackendKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::http::{get, HttpClient, Resp};
use support::{for_each_backend, start_server, TestServer};

/// `Last-Modified` of the served files: 2020-09-13 12:26:40 UTC.
const MTIME: u64 = 1_600_000_000;

/// A temporary tree: `<dir>/root` holding `data.bin` (1000 bytes `i % 251`),
/// `hello.txt`, `sub/index.html`, `list/` (no index: `b.txt`, `a <x>&.txt`, `.secret`,
/// `inner/`), `.env` and `.git/config`. Removed on drop.
struct Tree {
    dir: PathBuf,
    root: PathBuf,
    data: Vec<u8>,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!("ringcore-fsem-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        for d in ["sub", "list/inner", ".git"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let files: [(&str, &[u8]); 7] = [
            ("data.bin", &data),
            ("hello.txt", b"hello\n"),
            ("sub/index.html", b"<p>index</p>"),
            ("list/b.txt", b"b"),
            ("list/a <x>&.txt", b"a"),
            ("list/.secret", b"s"),
            (".env", b"SECRET=1"),
        ];
        for (name, bytes) in files {
            std::fs::write(root.join(name), bytes).unwrap();
        }
        std::fs::write(root.join(".git/config"), b"[core]").unwrap();
        set_mtime(&root.join("data.bin"), MTIME);
        Tree { dir, root, data }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn start(backend: BackendKind, b: StaticFilesBuilder) -> TestServer {
    start_server(backend, |b| b, b.factory().expect("serve the root"))
}

fn date(secs: u64) -> String {
    String::from_utf8(format_http_date(secs).to_vec()).unwrap()
}

/// One request on `c`, the response read (`head` for a HEAD).
fn ask(c: &mut HttpClient, method: &str, target: &str, extra: &str) -> Resp {
    c.send(&get(method, target, extra));
    c.read_response(method == "HEAD")
}

fn finish(c: HttpClient, server: TestServer) {
    assert_eq!(c.buffered(), 0, "nothing stray after the responses");
    drop(c);
    server.wait_counters("closed", |c| c.open_conns == 0);
    assert_eq!(server.stop().panics, 0);
}

#[test]
fn etag_and_if_none_match() {
    let tree = Tree::new("inm");
    for_each_backend(|backend| {
        let server = start(backend, StaticFiles::builder(&tree.root));
        let mut c = HttpClient::connect(server.addr);
        let r = ask(&mut c, "GET", "/data.bin", "");
        let tag = r.header("etag").expect("ETag").to_string();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
        assert_eq!(r.header("last-modified"), Some(date(MTIME).as_str()));
        assert_eq!(
            ask(&mut c, "HEAD", "/data.bin", "").header("etag"),
            Some(&tag[..])
        );
        for inm in [
            tag.clone(),
            format!("W/{tag}"),
            "*".to_string(),
            format!("\"x\", {tag}"),
        ] {
            let r = ask(
                &mut c,
                "GET",
                "/data.bin",
                &format!("If-None-Match: {inm}\r\n"),
            );
            assert_eq!(r.status, 304, "If-None-Match: {inm}");
            assert_eq!(r.header("etag"), Some(&tag[..]), "304 carries the ETag");
            assert_eq!(
                r.header("content-length"),
                None,
                "304 has no Content-Length"
            );
            let h = ask(
                &mut c,
                "HEAD",
                "/data.bin",
                &format!("If-None-Match: {inm}\r\n"),
            );
            assert_eq!(h.status, 304, "HEAD If-None-Match: {inm}");
        }
        // Two field lines form one list.
        let two = format!("If-None-Match: \"x\"\r\nIf-None-Match: {tag}\r\n");
        assert_eq!(ask(&mut c, "GET", "/data.bin", &two).status, 304);
        // A mismatched If-None-Match decides: If-Modified-Since is not looked at.
        let extra = format!(
            "If-None-Match: \"other\"\r\nIf-Modified-Since: {}\r\n",
            date(MTIME)
        );
        let r = ask(&mut c, "GET", "/data.bin", &extra);
        assert_eq!((r.status, r.body.len()), (200, 1000));
        // The file changes: so does its tag, and the old one no longer matches.
        std::fs::write(tree.root.join("hello.txt"), b"hello, again\n").unwrap();
        let old = ask(&mut c, "GET", "/hello.txt", "")
            .header("etag")
            .unwrap()
            .to_string();
        std::fs::write(tree.root.join("hello.txt"), b"changed\n").unwrap();
        let r = ask(
            &mut c,
            "GET",
            "/hello.txt",
            &format!("If-None-Match: {old}\r\n"),
        );
        assert_eq!((r.status, &r.body[..]), (200, &b"changed\n"[..]));
        assert_ne!(r.header("etag"), Some(&old[..]));
        finish(c, server);
    });
}

#[test]
fn if_modified_since_ignores_future_and_bad_dates() {
    let tree = Tree::new("ims");
    for_each_backend(|backend| {
        let server = start(backend, StaticFiles::builder(&tree.root));
        let mut c = HttpClient::connect(server.addr);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ims = |s: &str| format!("If-Modified-Since: {s}\r\n");
        assert_eq!(
            ask(&mut c, "GET", "/data.bin", &ims(&date(MTIME))).status,
            304
        );
        assert_eq!(
            ask(&mut c, "GET", "/data.bin", &ims(&date(MTIME + 86_400))).status,
            304
        );
        assert_eq!(
            ask(&mut c, "GET", "/data.bin", &ims(&date(MTIME - 1))).status,
            200
        );
        // A date in the future is invalid (RFC 9110 13.1.3): the full answer.
        let r = ask(&mut c, "GET", "/data.bin", &ims(&date(now + 86_400 * 365)));
        assert_eq!((r.status, r.body.len()), (200, 1000), "future date");
        let r = ask(
            &mut c,
            "GET",
            "/data.bin",
            &ims("Sun, 31 Foo 2020 00:00:00 GMT"),
        );
        assert_eq!(r.status, 200, "unparsable date");
        finish(c, server);
    });
}

#[test]
fn if_range_matching_gets_206_mismatched_gets_200() {
    let tree = Tree::new("ifrange");
    for_each_backend(|backend| {
        let server = start(backend, StaticFiles::builder(&tree.root));
        let mut c = HttpClient::connect(server.addr);
        let tag = ask(&mut c, "HEAD", "/data.bin", "")
            .header("etag")
            .unwrap()
            .to_string();
        let with = |v: &str| format!("Range: bytes=10-19\r\nIf-Range: {v}\r\n");
        for (v, want) in [
            (tag.clone(), 206),
            (date(MTIME), 206),
            ("\"stale\"".to_string(), 200),
            (format!("W/{tag}"), 200),
            (date(MTIME - 1), 200),
            (date(MTIME + 1), 200),
            ("not a validator".to_string(), 200),
        ] {
            let r = ask(&mut c, "GET", "/data.bin", &with(&v));
            assert_eq!(r.status, want, "If-Range: {v}");
            if want == 206 {
                assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
                assert_eq!(r.body, &tree.data[10..20]);
            } else {
                assert_eq!(r.header("content-range"), None, "no stitched part");
                assert_eq!(r.body, tree.data, "If-Range: {v}: the whole file");
            }
        }
        // If-Range without Range: ignored.
        let r = ask(&mut c, "GET", "/data.bin", &format!("If-Range: {tag}\r\n"));
        assert_eq!((r.status, r.body.len()), (200, 1000));
        finish(c, server);
    });
}

#[test]
fn cache_control_is_settable_and_checked() {
    let tree = Tree::new("cc");
    for_each_backend(|backend| {
        let b = StaticFiles::builder(&tree.root).cache_control("public, max-age=60");
        let server = start(backend, b);
        let mut c = HttpClient::connect(server.addr);
        let cc = |r: &Resp| r.header("cache-control").map(str::to_string);
        let want = Some("public, max-age=60".to_string());
        let r = ask(&mut c, "GET", "/data.bin", "");
        assert_eq!(cc(&r), want, "200");
        let tag = r.header("etag").unwrap().to_string();
        assert_eq!(
            cc(&ask(&mut c, "GET", "/data.bin", "Range: bytes=0-0\r\n")),
            want,
            "206"
        );
        let inm = format!("If-None-Match: {tag}\r\n");
        assert_eq!(cc(&ask(&mut c, "GET", "/data.bin", &inm)), want, "304");
        finish(c, server);
        let plain = start(backend, StaticFiles::builder(&tree.root));
        let mut c = HttpClient::connect(plain.addr);
        assert_eq!(
            cc(&ask(&mut c, "GET", "/data.bin", "")),
            None,
            "off by default"
        );
        finish(c, plain);
    });
    for bad in ["", "  ", "max-age=1\r\nX-Evil: 1", "a\0b"] {
        let err = StaticFiles::builder(&tree.root)
            .cache_control(bad)
            .factory()
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
}

/// The parts of a `multipart/byteranges` body: (part `Content-Range`, bytes).
fn parts(r: &Resp) -> Vec<(String, Vec<u8>)> {
    let ct = r.header("content-type").expect("Content-Type");
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {ct}"));
    let delim = format!("\r\n--{boundary}");
    let body = &r.body[..];
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        assert_eq!(
            &body[at..at + delim.len()],
            delim.as_bytes(),
            "delimiter at {at}"
        );
        at += delim.len();
        if body[at..].starts_with(b"--\r\n") {
            assert_eq!(at + 4, body.len(), "nothing after the close delimiter");
            return out;
        }
        let head_end = at + support::http::find(&body[at..], b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&body[at + 2..head_end]).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part Content-Range")
            .to_string();
        assert!(
            head.contains("Content-Type: application/octet-stream"),
            "{head}"
        );
        let (span, _) = range
            .strip_prefix("bytes ")
            .unwrap()
            .split_once('/')
            .unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        at = head_end + 4;
        out.push((range.clone(), body[at..=at + (b - a)].to_vec()));
        at += b - a + 1;
    }
}

#[test]
fn several_ranges_are_multipart_or_the_whole_file() {
    let tree = Tree::new("multi");
    for_each_backend(|backend| {
        let server = start(backend, StaticFiles::builder(&tree.root));
        let mut c = HttpClient::connect(server.addr);
        let d = &tree.data;
        let r = ask(&mut c, "GET", "/data.bin", "Range: bytes=0-1,5-9,-3\r\n");
        assert_eq!(r.status, 206);
        // Content-Length was exact: the body read by it parses to the end.
        assert_eq!(
            parts(&r),
            vec![
                ("bytes 0-1/1000".to_string(), d[0..2].to_vec()),
                ("bytes 5-9/1000".to_string(), d[5..10].to_vec()),
                ("bytes 997-999/1000".to_string(), d[997..].to_vec()),
            ]
        );
        // Asked order kept; an unsatisfiable range among them is dropped.
        let r = ask(
            &mut c,
            "GET",
            "/data.bin",
            "Range: bytes=900-901, 2000-, 0-0\r\n",
        );
        let p = parts(&r);
        assert_eq!(
            (p[0].0.as_str(), p[1].0.as_str()),
            ("bytes 900-901/1000", "bytes 0-0/1000")
        );
        // Only one left: a plain 206.
        let r = ask(&mut c, "GET", "/data.bin", "Range: bytes=3-4,5000-6000\r\n");
        assert_eq!(
            (r.status, r.header("content-range")),
            (206, Some("bytes 3-4/1000"))
        );
        assert_eq!(r.body, &d[3..5]);
        // HEAD: the multipart length, no body.
        let h = ask(&mut c, "HEAD", "/data.bin", "Range: bytes=0-1,5-9\r\n");
        assert_eq!(h.status, 206);
        assert!(h.content_length().unwrap() > 7);
        // Overlapping, or more than 16: the whole file (documented).
        let all = (0..17)
            .map(|i| format!("{0}-{0}", i * 10))
            .collect::<Vec<_>>();
        let all = all.join(",");
        for range in ["bytes=0-9,5-20".to_string(), format!("bytes={all}")] {
            let r = ask(&mut c, "GET", "/data.bin", &format!("Range: {range}\r\n"));
            assert_eq!((r.status, &r.body[..]), (200, &d[..]), "{range}");
        }
        finish(c, server);
    });
}

#[test]
fn directories_redirect_index_listing() {
    let tree = Tree::new("dirs");
    for_each_backend(|backend| {
        let server = start(backend, StaticFiles::builder(&tree.root));
        let mut c = HttpClient::connect(server.addr);
        for (target, loc) in [
            ("/sub", "/sub/"),
            ("/sub?x=1&y=%20", "/sub/?x=1&y=%20"),
            ("/list/inner", "/list/inner/"),
            ("//sub", "/sub/"),
        ] {
            let r = ask(&mut c, "GET", target, "");
            assert_eq!(
                (r.status, r.header("location")),
                (301, Some(loc)),
                "{target}"
            );
        }
        let r = ask(&mut c, "GET", "/sub/", "");
        assert_eq!((r.status, &r.body[..]), (200, &b"<p>index</p>"[..]));
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            ask(&mut c, "GET", "/list/", "").status,
            403,
            "no index, no listing"
        );
        finish(c, server);

        let server = start(backend, StaticFiles::builder(&tree.root).autoindex(true));
        let mut c = HttpClient::connect(server.addr);
        let r = ask(&mut c, "GET", "/list/", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let html = String::from_utf8(r.body.clone()).unwrap();
        let inner = html.find("<a href=\"inner/\">inner/</a>").expect(&html);
        let a = html
            .find("<a href=\"a%20%3Cx%3E%26.txt\">a &lt;x&gt;&amp;.txt</a>")
            .expect(&html);
        let b = html.find("<a href=\"b.txt\">b.txt</a>").expect(&html);
        assert!(
            inner < a && a < b,
            "directories first, then by name: {html}"
        );
        assert!(!html.contains("secret"), "hidden entries are not listed");
        let h = ask(&mut c, "HEAD", "/list/", "");
        assert_eq!(h.content_length(), Some(r.body.len() as u64));
        assert_eq!(
            ask(&mut c, "GET", "/sub/", "").body,
            b"<p>index</p>",
            "index first"
        );
        finish(c, server);
    });
}

#[test]
fn hidden_paths_are_404_unless_allowed() {
    let tree = Tree::new("hidden");
    for_each_backend(|backend| {
        let server = start(backend, StaticFiles::builder(&tree.root));
        let mut c = HttpClient::connect(server.addr);
        for t in [
            "/.env",
            "/%2eenv",
            "/.git/config",
            "/.git/",
            "/list/.secret",
            "/.git",
        ] {
            assert_eq!(ask(&mut c, "GET", t, "").status, 404, "{t}");
        }
        finish(c, server);
        let server = start(backend, StaticFiles::builder(&tree.root).allow_hidden(true));
        let mut c = HttpClient::connect(server.addr);
        assert_eq!(ask(&mut c, "GET", "/.env", "").body, b"SECRET=1");
        assert_eq!(ask(&mut c, "GET", "/.git/config", "").body, b"[core]");
        finish(c, server);
    });
}

/// This process's descriptors open on a file under `root`.
fn fds_under(root: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.starts_with(root))
        .count()
}

/// The open-file cache answers from the file it opened until the entry expires
/// (a file replaced by rename is served in its old version meanwhile, as nginx's
/// `open_file_cache` does), then a new lookup picks up the new file; the cached
/// descriptors close when the server stops.
#[test]
fn open_file_cache_serves_until_revalidation() {
    let tree = Tree::new("ofc");
    let root = tree.root.canonicalize().unwrap();
    for_each_backend(|backend| {
        std::fs::write(tree.root.join("hello.txt"), b"version 1\n").unwrap();
        let b = StaticFiles::builder(&tree.root).open_file_cache(16, Duration::from_secs(3600));
        let server = start(backend, b);
        let mut c = HttpClient::connect(server.addr);
        assert_eq!(ask(&mut c, "GET", "/hello.txt", "").body, b"version 1\n");
        // Replaced by rename: the cached file (the old inode) still answers.
        let tmp = tree.dir.join("next");
        std::fs::write(&tmp, b"version 2!\n").unwrap();
        std::fs::rename(&tmp, tree.root.join("hello.txt")).unwrap();
        for _ in 0..3 {
            let r = ask(&mut c, "GET", "/hello.txt", "");
            assert_eq!(r.body, b"version 1\n", "cached for an hour");
            assert_eq!(r.content_length(), Some(10));
        }
        // Conditionals and ranges work on a cached answer too.
        let tag = ask(&mut c, "HEAD", "/hello.txt", "")
            .header("etag")
            .unwrap()
            .to_string();
        let r = ask(
            &mut c,
            "GET",
            "/hello.txt",
            &format!("If-None-Match: {tag}\r\n"),
        );
        assert_eq!(r.status, 304);
        let r = ask(&mut c, "GET", "/hello.txt", "Range: bytes=0-6\r\n");
        assert_eq!((r.status, &r.body[..]), (206, &b"version"[..]));
        // Pipelined hits answer in order.
        let mut two = get("GET", "/hello.txt", "");
        two.extend_from_slice(&get("GET", "/data.bin", ""));
        two.extend_from_slice(&get("GET", "/hello.txt", "Range: bytes=8-\r\n"));
        c.send(&two);
        assert_eq!(c.read_response(false).body, b"version 1\n");
        assert_eq!(c.read_response(false).body, tree.data);
        assert_eq!(c.read_response(false).body, b"1\n");
        finish(c, server);
        assert_eq!(
            fds_under(&root),
            0,
            "cached descriptors closed with the workers"
        );

        // A short validity: a new lookup soon sees the new file.
        let b = StaticFiles::builder(&tree.root).open_file_cache(16, Duration::from_millis(50));
        let server = start(backend, b);
        let mut c = HttpClient::connect(server.addr);
        std::fs::write(tree.root.join("hello.txt"), b"version 3\n").unwrap();
        assert_eq!(ask(&mut c, "GET", "/hello.txt", "").body, b"version 3\n");
        std::fs::write(&tmp, b"version 4\n").unwrap();
        std::fs::rename(&tmp, tree.root.join("hello.txt")).unwrap();
        support::wait_until("the entry to be revalidated", || {
            ask(&mut c, "GET", "/hello.txt", "").body == b"version 4\n"
        });
        finish(c, server);
    });
}
