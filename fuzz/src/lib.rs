//! Shared pieces of ringcore's fuzz targets: a reference driver for the request parser,
//! an independent chunked decoder, a checker for the server's response framing, and
//! the scratch directory the path-resolution target serves.

use ringcore_net::http::{Limits, RequestParser, Status};

/// A parsed request, owned, for comparisons between two runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
    /// Bytes of the stream the request used.
    pub consumed: usize,
}

/// The connection loop in miniature: append each read to the unconsumed bytes and
/// parse until `Partial`. Returns the requests and the status of the error that
/// ended the stream, if any.
pub fn drive(reads: &[&[u8]], limits: &Limits) -> (Vec<Owned>, Option<u16>) {
    let mut parser = RequestParser::new(limits.clone());
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            let consumed = match parser.parse(&buf) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete { request, consumed }) => {
                    out.push(Owned {
                        method: request.method().into(),
                        target: request.target().into(),
                        headers: request
                            .headers()
                            .map(|(n, v)| (n.into(), v.into()))
                            .collect(),
                        body: request.body().into(),
                        keep_alive: request.keep_alive(),
                        consumed,
                    });
                    consumed
                }
                Err(e) => return (out, Some(e.status())),
            };
            assert!(
                consumed > 0 && consumed <= buf.len(),
                "consumed {consumed} of {}",
                buf.len()
            );
            buf.drain(..consumed);
        }
    }
    (out, None)
}

/// Splits `data` into reads whose lengths (1..=256) cycle through the bytes of `sizes`;
/// one read if `sizes` is empty.
pub fn split<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![data];
    }
    let (mut reads, mut at, mut i) = (Vec::new(), 0, 0);
    while at < data.len() {
        let n = (1 + usize::from(sizes[i % sizes.len()])).min(data.len() - at);
        reads.push(&data[at..at + n]);
        (at, i) = (at + n, i + 1);
    }
    reads
}

/// A chunked body decoded by the grammar alone (RFC 9112 section 7.1), independent of
/// the codec: `Some((body, bytes used))` if `wire` starts with a complete chunked
/// body whose size lines are hex digits plus anything not holding CR or LF, and whose
/// trailer lines hold no bare CR or LF. Stricter checks are the codec's business.
pub fn reference_chunked(wire: &[u8]) -> Option<(Vec<u8>, usize)> {
    let line = |at: usize| -> Option<(&[u8], usize)> {
        let lf = at + wire.get(at..)?.iter().position(|&b| b == b'\n')?;
        (lf > at && wire[lf - 1] == b'\r').then(|| (&wire[at..lf - 1], lf + 1))
    };
    let (mut body, mut at) = (Vec::new(), 0);
    loop {
        let (size_line, next) = line(at)?;
        let digits = size_line
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let size = u64::from_str_radix(std::str::from_utf8(&size_line[..digits]).ok()?, 16).ok()?;
        at = next;
        if size == 0 {
            loop {
                let (trailer, next) = line(at)?;
                at = next;
                if trailer.is_empty() {
                    return Some((body, at));
                }
            }
        }
        let end = at.checked_add(usize::try_from(size).ok()?)?;
        body.extend_from_slice(wire.get(at..end)?);
        (wire.get(end..end + 2)? == b"\r\n").then_some(())?;
        at = end + 2;
    }
}

/// One response found by [`check_framing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    pub status: u16,
    pub close: bool,
    pub body: Vec<u8>,
}

/// Splits a server's output into complete HTTP/1.1 responses, given whether each final
/// response answers a `HEAD`. Panics unless every response has a complete head and is
/// delimited by `Content-Length` (absent only for 1xx, 204 and 304, and with no
/// body then) and the output ends exactly after the last one. Interim (1xx) responses
/// are checked and left out of the result.
pub fn check_framing(mut out: &[u8], mut is_head: impl FnMut(usize) -> bool) -> Vec<Framed> {
    let mut found = Vec::new();
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut headers);
        let len = match res.parse(out) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "not a complete response head ({other:?}): {:?}",
                String::from_utf8_lossy(out)
            ),
        };
        assert_eq!(res.version, Some(1), "not HTTP/1.1");
        let status = res.code.unwrap_or(0);
        let field = |name: &str| {
            let mut all = res
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name));
            let first = all.next().map(|h| h.value);
            assert!(all.next().is_none(), "duplicate {name}");
            first
        };
        assert!(
            field("transfer-encoding").is_none(),
            "the server never sends chunked"
        );
        let length = field("content-length").map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .expect("Content-Length")
        });
        let close = field("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let bodiless = status < 200 || status == 204 || status == 304;
        assert_eq!(
            length.is_none(),
            bodiless,
            "status {status}: Content-Length {length:?}"
        );
        let body_len = if bodiless || is_head(found.len()) {
            0
        } else {
            length.unwrap_or(0)
        };
        assert!(
            out.len() - len >= body_len,
            "body cut short: {} of {body_len}",
            out.len() - len
        );
        if status >= 200 {
            found.push(Framed {
                status,
                close,
                body: out[len..len + body_len].to_vec(),
            });
        }
        out = &out[len + body_len..];
    }
    found
}

/// A directory tree to resolve paths in, made once per process:
/// `<tmp>/root/{a.txt, sub/b.txt, sub/index.html, empty/, in -> a.txt,
/// out -> ../secret, up -> .., abs -> <tmp>}` next to `<tmp>/secret`.
/// Returns the canonical root and the canonical outside directory.
pub fn scratch_root() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::symlink;
    static ROOT: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let top = std::env::temp_dir().join(format!("ringcore-fuzz-{}", std::process::id()));
        let root = top.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        std::fs::write(root.join("sub/b.txt"), b"b").unwrap();
        std::fs::write(root.join("sub/index.html"), b"i").unwrap();
        std::fs::write(top.join("secret"), b"s").unwrap();
        let _ = symlink("a.txt", root.join("in"));
        let _ = symlink("../secret", root.join("out"));
        let _ = symlink("..", root.join("up"));
        let _ = symlink(&top, root.join("abs"));
        (root.canonicalize().unwrap(), top.canonicalize().unwrap())
    })
}
