//! The file server against a real client (curl: `-z`, `If-None-Match`,
//! `--compressed`, `-r` with several ranges, `If-Range`, redirects) and the
//! precompressed siblings of `gzip_static` (`Accept-Encoding` with q-values,
//! `Content-Encoding`, `Vary`, an `ETag` per encoding, ranges of the compressed
//! bytes), on both backends. The curl cases are skipped, with a message, where curl
//! is not installed.

mod support;

use ringcore::http::StaticFiles;
use ringcore::BackendKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};
use support::http::{get, HttpClient, Resp};
use support::{for_each_backend, start_server, TestServer};

const MTIME: u64 = 1_600_000_000;
const TEXT: &[u8] = b"ringcore serves this text, and a gzip of it, to curl.\n";

/// CRC-32 (IEEE), as gzip's trailer wants it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip member of `data` (< 64 KiB) in one stored (uncompressed) deflate
/// block: enough for a client to decode, no compressor needed.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// `<dir>/root`: `a.txt` with `a.txt.gz` (real gzip) and `a.txt.br` (stand-in
/// bytes: no client here decodes them), `b.txt` with only `b.txt.gz`, `sub/index.html`.
struct Tree {
    dir: PathBuf,
    root: PathBuf,
    gz: Vec<u8>,
}

const BR: &[u8] = b"not really brotli, but distinct bytes";

impl Tree {
    fn new(tag: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!("ringcore-fcurl-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let gz = gzip_stored(TEXT);
        for (name, bytes) in [
            ("a.txt", TEXT),
            ("a.txt.gz", &gz[..]),
            ("a.txt.br", BR),
            ("b.txt", TEXT),
            ("b.txt.gz", &gz[..]),
            ("sub/index.html", b"<p>index</p>"),
        ] {
            std::fs::write(root.join(name), bytes).unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(root.join(name))
                .unwrap();
            f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME))
                .unwrap();
        }
        Tree { dir, root, gz }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(backend: BackendKind, root: &Path, gzip_static: bool) -> TestServer {
    let factory = StaticFiles::builder(root)
        .gzip_static(gzip_static)
        .factory()
        .expect("serve the root");
    start_server(backend, |b| b, factory)
}

fn ask(c: &mut HttpClient, target: &str, extra: &str) -> Resp {
    c.send(&get("GET", target, extra));
    c.read_response(false)
}

#[test]
fn gzip_static_siblings_by_accept_encoding() {
    let tree = Tree::new("gz");
    for_each_backend(|backend| {
        let server = start(backend, &tree.root, true);
        let mut c = HttpClient::connect(server.addr);
        let ae = |v: &str| format!("Accept-Encoding: {v}\r\n");
        let plain = ask(&mut c, "/a.txt", "");
        assert_eq!(plain.body, TEXT);
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(
            plain.header("vary"),
            Some("Accept-Encoding"),
            "identity varies too"
        );
        assert_eq!(
            plain.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let plain_tag = plain.header("etag").unwrap().to_string();
        for (accept, body, coding) in [
            ("gzip", &tree.gz[..], Some("gzip")),
            ("gzip, deflate, br", BR, Some("br")),
            ("br;q=0.5, gzip", &tree.gz[..], Some("gzip")),
            ("*", BR, Some("br")),
            ("gzip;q=0", TEXT, None),
            ("br;q=0, gzip;q=0", TEXT, None),
            ("identity", TEXT, None),
        ] {
            let r = ask(&mut c, "/a.txt", &ae(accept));
            assert_eq!(r.status, 200, "{accept}");
            assert_eq!(r.body, body, "{accept}");
            assert_eq!(r.header("content-encoding"), coding, "{accept}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept}");
            assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
            if coding.is_some() {
                assert_ne!(
                    r.header("etag"),
                    Some(&plain_tag[..]),
                    "{accept}: ETag per encoding"
                );
            }
        }
        // Only a .gz next to b.txt: br alone gets the plain file.
        assert_eq!(ask(&mut c, "/b.txt", &ae("br")).body, TEXT);
        assert_eq!(ask(&mut c, "/b.txt", &ae("br, gzip")).body, tree.gz);
        // Ranges and validators apply to the compressed representation.
        let r = ask(
            &mut c,
            "/a.txt",
            &format!("{}Range: bytes=0-3\r\n", ae("gzip")),
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &tree.gz[..4]);
        let want = format!("bytes 0-3/{}", tree.gz.len());
        assert_eq!(r.header("content-range"), Some(want.as_str()));
        let gz_tag = r.header("etag").unwrap().to_string();
        let inm = |t: &str| format!("If-None-Match: {t}\r\n");
        assert_eq!(
            ask(&mut c, "/a.txt", &(ae("gzip") + &inm(&gz_tag))).status,
            304
        );
        assert_eq!(
            ask(&mut c, "/a.txt", &inm(&gz_tag)).status,
            200,
            "other encoding"
        );
        drop(c);
        server.wait_counters("closed", |c| c.open_conns == 0);
        server.stop();

        let off = start(backend, &tree.root, false);
        let mut c = HttpClient::connect(off.addr);
        let r = ask(&mut c, "/a.txt", &ae("gzip, br"));
        assert_eq!(
            (r.body.as_slice(), r.header("vary")),
            (TEXT, None),
            "off by default"
        );
        assert_eq!(r.header("content-encoding"), None);
        drop(c);
        off.wait_counters("closed", |c| c.open_conns == 0);
        off.stop();
    });
}

/// What curl got: status, header lines (lowercased names), body.
struct Got {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

fn curl_missing() -> bool {
    let missing = Command::new("curl").arg("--version").output().is_err();
    if missing {
        eprintln!("skipped: curl is not installed");
    }
    missing
}

fn curl(dir: &Path, url: &str, args: &[&str]) -> Got {
    let (h, b) = (dir.join("curl-headers"), dir.join("curl-body"));
    // curl writes no body file for a bodyless answer: none left from before.
    let _ = std::fs::remove_file(&b);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&h)
        .arg("-o")
        .arg(&b)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("curl -w status");
    Got {
        status,
        headers: std::fs::read_to_string(&h).unwrap_or_default(),
        body: std::fs::read(&b).unwrap_or_default(),
    }
}

#[test]
fn curl_conditionals_ranges_and_compressed() {
    if curl_missing() {
        return;
    }
    let tree = Tree::new("curl");
    for_each_backend(|backend| {
        let server = start(backend, &tree.root, true);
        let url = |p: &str| format!("http://{}{p}", server.addr);
        let g = curl(&tree.dir, &url("/a.txt"), &[]);
        assert_eq!((g.status, g.body.as_slice()), (200, TEXT));
        let tag = g.header("etag").expect("ETag").to_string();

        // --compressed: curl asks for gzip/br, gets the sibling, and decodes it.
        // Only b.txt has no .br (curl would ask for br first and not decode our
        // stand-in bytes), so it is the one to fetch.
        let g = curl(&tree.dir, &url("/b.txt"), &["--compressed"]);
        assert_eq!(g.header("content-encoding"), Some("gzip"));
        assert_eq!(
            (g.status, g.body.as_slice()),
            (200, TEXT),
            "decoded by curl"
        );

        // -z: If-Modified-Since from a date, and from a local file's mtime.
        let newer = tree.dir.join("newer");
        std::fs::write(&newer, b"x").unwrap();
        let f = std::fs::File::options().write(true).open(&newer).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME + 60))
            .unwrap();
        let newer = newer.to_str().unwrap();
        assert_eq!(curl(&tree.dir, &url("/a.txt"), &["-z", newer]).status, 304);
        let old = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(curl(&tree.dir, &url("/a.txt"), &["-z", old]).status, 200);

        let inm = format!("If-None-Match: {tag}");
        let g = curl(&tree.dir, &url("/a.txt"), &["-H", &inm]);
        assert_eq!((g.status, g.body.len()), (304, 0));

        // -r with several ranges: multipart/byteranges, the parts in the body.
        let g = curl(&tree.dir, &url("/a.txt"), &["-r", "0-1,5-9"]);
        assert_eq!(g.status, 206);
        let ct = g.header("content-type").unwrap();
        assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
        let body = String::from_utf8_lossy(&g.body);
        assert!(body.contains("Content-Range: bytes 0-1/"), "{body}");
        assert!(body.contains("\r\n\r\nri\r\n"), "{body}");
        assert!(body.contains(&format!(
            "\r\n\r\n{}\r\n",
            std::str::from_utf8(&TEXT[5..10]).unwrap()
        )));

        // If-Range with a stale tag: the whole file, never a stitched part.
        let g = curl(
            &tree.dir,
            &url("/a.txt"),
            &["-r", "0-3", "-H", "If-Range: \"stale\""],
        );
        assert_eq!((g.status, g.body.as_slice()), (200, TEXT));
        let ir = format!("If-Range: {tag}");
        let g = curl(&tree.dir, &url("/a.txt"), &["-r", "0-3", "-H", &ir]);
        assert_eq!((g.status, g.body.as_slice()), (206, &TEXT[..4]));

        // A directory without its slash: 301, which curl -L follows to the index.
        let g = curl(&tree.dir, &url("/sub?q=1"), &[]);
        assert_eq!((g.status, g.header("location")), (301, Some("/sub/?q=1")));
        let g = curl(&tree.dir, &url("/sub"), &["-L"]);
        assert_eq!((g.status, g.body.as_slice()), (200, &b"<p>index</p>"[..]));
        server.wait_counters("closed", |c| c.open_conns == 0);
        server.stop();
    });
}
