//! Composing a response once the helper thread's [`Found`] is back: preconditions,
//! ranges, the head fields, and the body plan (file segments and bytes).

use super::range::{boundary, parse_ranges, Multipart, Ranges};
use super::resolve::Found;
use super::validators::{etag, evaluate, mtime_secs, range_allowed, Precondition, Preconditions};
use super::Config;
use crate::http::{format_http_date, reason_phrase, DateCache};
use std::borrow::Cow;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;

/// The `Content-Type` of a file, from its extension by the `mime_guess` table;
/// `text/*` and JavaScript get `; charset=utf-8`, an unknown extension is
/// `application/octet-stream`.
pub fn content_type(path: &Path) -> Cow<'static, str> {
    let Some(mime) = mime_guess::from_path(path).first_raw() else {
        return Cow::Borrowed("application/octet-stream");
    };
    if mime.starts_with("text/") || mime == "application/javascript" {
        Cow::Owned(format!("{mime}; charset=utf-8"))
    } else {
        Cow::Borrowed(mime)
    }
}

/// What the request asked, kept while its file is looked up.
#[derive(Debug, Default)]
pub(super) struct Conditions {
    /// Keep the connection open after the answer.
    pub keep: bool,
    /// A HEAD request: no body.
    pub head_only: bool,
    /// `If-Match`, every field line joined with `,`.
    pub if_match: Option<Vec<u8>>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<Vec<u8>>,
    /// `If-None-Match`, every field line joined with `,`.
    pub if_none_match: Option<Vec<u8>>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<Vec<u8>>,
    /// `Range`.
    pub range: Option<Vec<u8>>,
    /// `If-Range`.
    pub if_range: Option<Vec<u8>>,
}

/// The body that follows a head.
#[derive(Debug)]
pub(super) enum Body {
    /// Nothing (HEAD, 304, an error whose text is in the head buffer).
    None,
    /// Rendered bytes (a directory listing).
    Bytes(Vec<u8>),
    /// `len` bytes of the file from `offset`.
    File(File, u64, u64),
    /// A `multipart/byteranges` body: part heads and file ranges, then the trailer.
    /// Each range has its own descriptor (a dup), since a queued segment owns one.
    Multi(Vec<(Vec<u8>, File, u64, u64)>, Vec<u8>),
}

/// Writes a response head: status line, `Server`, `Date`, `fields`, then
/// `Content-Length` if given, and `Connection: close` unless `keep`.
pub fn head(
    h: &mut Vec<u8>,
    date: &DateCache,
    status: u16,
    keep: bool,
    fields: &[(&str, &[u8])],
    len: Option<u64>,
) {
    let _ = write!(
        h,
        "HTTP/1.1 {status} {}\r\nServer: ringcore\r\nDate: ",
        reason_phrase(status)
    );
    h.extend_from_slice(date.as_bytes());
    h.extend_from_slice(b"\r\n");
    for (k, v) in fields {
        h.extend_from_slice(k.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v);
        h.extend_from_slice(b"\r\n");
    }
    if let Some(len) = len {
        let _ = write!(h, "Content-Length: {len}\r\n");
    }
    if !keep {
        h.extend_from_slice(b"Connection: close\r\n");
    }
    h.extend_from_slice(b"\r\n");
}

/// A short text response (errors, redirects): the reason phrase as its body.
pub fn simple(
    out: &mut Vec<u8>,
    date: &DateCache,
    status: u16,
    keep: bool,
    head_only: bool,
    extra: &[(&str, &[u8])],
) {
    let body = reason_phrase(status).as_bytes();
    let mut f: Vec<(&str, &[u8])> = vec![("Content-Type", b"text/plain")];
    f.extend_from_slice(extra);
    head(out, date, status, keep, &f, Some(body.len() as u64));
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// Answers a GET/HEAD whose lookup finished: writes the head (and a short body) to
/// `out`, returns keep-alive and the body to send after it. `now` (seconds since
/// the epoch) judges `If-Modified-Since` dates in the future.
pub(super) fn finish(
    out: &mut Vec<u8>,
    cfg: &Config,
    c: &Conditions,
    found: Found,
    date: &DateCache,
    now: u64,
) -> (bool, Body) {
    let keep = c.keep;
    let (path, file, meta, encoding) = match found {
        Found::File {
            path,
            file,
            meta,
            encoding,
        } => (path, file, meta, encoding),
        Found::Status(status) => {
            simple(out, date, status, keep, c.head_only, &[]);
            return (keep, Body::None);
        }
        Found::Redirect(loc) => {
            simple(
                out,
                date,
                301,
                keep,
                c.head_only,
                &[("Location", loc.as_bytes())],
            );
            return (keep, Body::None);
        }
        Found::Listing(html) => {
            let f: [(&str, &[u8]); 1] = [("Content-Type", b"text/html; charset=utf-8")];
            head(out, date, 200, keep, &f, Some(html.len() as u64));
            let body = if c.head_only {
                Body::None
            } else {
                Body::Bytes(html)
            };
            return (keep, body);
        }
    };
    let len = meta.len();
    let tag = etag(&meta);
    let mtime = mtime_secs(&meta);
    let lm = format_http_date(mtime);
    let ctype = content_type(&path);
    // Fields every representation of this file carries, 200, 206 and 304 alike.
    let mut fields: Vec<(&str, &[u8])> = Vec::with_capacity(8);
    fields.push(("Last-Modified", &lm));
    fields.push(("ETag", tag.as_bytes()));
    if let Some(cc) = &cfg.cache_control {
        fields.push(("Cache-Control", cc.as_bytes()));
    }
    if cfg.gzip_static {
        // Another Accept-Encoding may get another representation of this URL.
        fields.push(("Vary", b"Accept-Encoding"));
    }
    // RFC 9110 13.2.2: If-Match (else If-Unmodified-Since) first, then
    // If-None-Match (else If-Modified-Since); If-Range below, with Range only.
    let pre = Preconditions {
        if_match: c.if_match.as_deref(),
        if_unmodified_since: c.if_unmodified_since.as_deref(),
        if_none_match: c.if_none_match.as_deref(),
        if_modified_since: c.if_modified_since.as_deref(),
    };
    match evaluate(&pre, &tag, mtime, now) {
        Precondition::Failed => {
            simple(out, date, 412, keep, c.head_only, &[]);
            return (keep, Body::None);
        }
        Precondition::NotModified => {
            head(out, date, 304, keep, &fields, None);
            return (keep, Body::None);
        }
        Precondition::Proceed => {}
    }
    fields.push(("Content-Type", ctype.as_bytes()));
    fields.push(("Accept-Ranges", b"bytes"));
    if let Some(enc) = encoding {
        fields.push(("Content-Encoding", enc.token().as_bytes()));
    }
    let ranges = match (&c.range, &c.if_range) {
        (None, _) => Ranges::Full,
        (Some(_), Some(ir)) if !range_allowed(ir, &tag, mtime) => Ranges::Full,
        (Some(r), _) => parse_ranges(r, len),
    };
    match ranges {
        Ranges::Full => {
            head(out, date, 200, keep, &fields, Some(len));
            (keep, single(c, file, 0, len))
        }
        Ranges::One(start, end) => {
            let cr = format!("bytes {start}-{}/{len}", end - 1);
            fields.push(("Content-Range", cr.as_bytes()));
            head(out, date, 206, keep, &fields, Some(end - start));
            (keep, single(c, file, start, end - start))
        }
        Ranges::Unsatisfiable => {
            let cr = format!("bytes */{len}");
            simple(
                out,
                date,
                416,
                keep,
                c.head_only,
                &[("Content-Range", cr.as_bytes())],
            );
            (keep, Body::None)
        }
        Ranges::Many(list) => {
            let mp = Multipart::new(&list, len, &ctype, boundary());
            let body = if c.head_only {
                Some(Body::None)
            } else {
                multi_body(&file, mp.parts.clone(), mp.trailer.clone())
            };
            let Some(body) = body else {
                // No descriptor for a part (EMFILE): the whole file, by one.
                head(out, date, 200, keep, &fields, Some(len));
                return (keep, single(c, file, 0, len));
            };
            let ct = format!("multipart/byteranges; boundary={}", mp.boundary);
            // The parts carry the type; the whole is multipart.
            fields.retain(|(k, _)| *k != "Content-Type");
            fields.push(("Content-Type", ct.as_bytes()));
            head(out, date, 206, keep, &fields, Some(mp.content_length()));
            (keep, body)
        }
    }
}

/// A plain body: the file range, unless HEAD or empty.
fn single(c: &Conditions, file: File, offset: u64, len: u64) -> Body {
    if c.head_only || len == 0 {
        Body::None
    } else {
        Body::File(file, offset, len)
    }
}

/// One descriptor per part (`dup`); `None` if one cannot be had.
fn multi_body(file: &File, parts: Vec<(Vec<u8>, u64, u64)>, trailer: Vec<u8>) -> Option<Body> {
    let mut out = Vec::with_capacity(parts.len());
    for (h, off, n) in parts {
        match file.try_clone() {
            Ok(f) => out.push((h, f, off, n)),
            Err(e) => {
                tracing::warn!(error = %e, "multipart/byteranges: cannot dup the file; sending it whole");
                return None;
            }
        }
    }
    Some(Body::Multi(out, trailer))
}

#[cfg(test)]
mod tests {
    use super::content_type;
    use std::path::Path;

    #[test]
    fn content_types_from_the_table() {
        let ct = |p: &str| content_type(Path::new(p)).into_owned();
        assert_eq!(ct("a.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a.TXT"), "text/plain; charset=utf-8");
        assert_eq!(ct("a.css"), "text/css; charset=utf-8");
        assert!(
            ct("a.js").ends_with("javascript; charset=utf-8"),
            "{}",
            ct("a.js")
        );
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a.json"), "application/json");
        assert_eq!(ct("a.wasm"), "application/wasm");
        assert_eq!(ct("a.bin"), "application/octet-stream");
        assert_eq!(ct("noext"), "application/octet-stream");
        assert_eq!(ct("a.unknownext"), "application/octet-stream");
    }
}
