//! [`StaticFiles`]: serves a directory over HTTP/1.1, bodies by splice.
//!
//! The head is rendered into the connection's write queue and the body follows as a
//! [`Conn::send_file`] segment: file -> pipe -> socket by splice (linked SQEs on
//! io_uring, `splice(2)` on epoll), never through user space.
//!
//! Supported: `GET`/`HEAD`, `Content-Type` by extension, `Content-Length`,
//! `Last-Modified` / `If-Modified-Since` (304), one `Range` (206, or 416 when
//! unsatisfiable; several ranges are answered with the whole file), `index.html` for
//! directories, 404 / 403 / 405. A request is answered once its head is complete; a
//! request body is read and dropped as it arrives, never held (a client that sent
//! `Expect: 100-continue` gets the answer and a close instead of a wait for the body).
//!
//! Path safety: the target is percent-decoded; a decoded NUL, backslash or any `..`
//! segment is refused (403); the joined path is canonicalised (resolving symlinks) and
//! must stay under the canonical root, so a symlink pointing outside is refused too.
//!
//! Only regular files are served: a FIFO, socket or device under the root is 404 (see
//! [`open_regular`]). Path resolution (`realpath`, `stat`), open and `fstat` never run
//! on the worker thread: a GET/HEAD hands them to the worker's helper thread
//! ([`Conn::offload`]) and pauses reading; the answer is queued when the result comes
//! back ([`Handler::on_offload`](crate::Handler::on_offload)), then reading resumes
//! (pipelined requests wait their turn). A connection that closed meanwhile drops the
//! result, closing the file. docs/design.md ("What may block a worker").

use super::{
    format_http_date, reason_phrase, write_error, DateCache, Event, Limits, Request, RequestParser,
};
use crate::{CloseReason, Conn, ConnInfo, Handler};
use std::cell::RefCell;
use std::fs::File;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

thread_local! {
    static DATE: RefCell<DateCache> = RefCell::new(DateCache::new(SystemTime::now()));
}

/// A connection of a static file server.
pub struct StaticFiles {
    root: Arc<PathBuf>,
    parser: RequestParser,
    head: Vec<u8>,
    header_deadline: Option<Instant>,
    /// Lingering close after an error (as [`HttpConn`](super::HttpConn)): input is
    /// dropped until FIN, `lingering_timeout` between reads or this instant.
    linger_until: Option<Instant>,
    /// Lingering: the error response has been sent (the caps of the lingering
    /// proper run).
    linger_sent: bool,
    /// A GET/HEAD whose file the worker's helper thread is looking up; reading is
    /// paused until its answer is queued.
    waiting: Option<Pending>,
    /// The access-log hook and the request it is timing (none: no access log).
    observer: Option<Box<super::access_log::Observer>>,
}

impl StaticFiles {
    /// A [`Factory`](crate::Factory) closure serving `root` (canonicalised here).
    ///
    /// # Errors
    /// `root` does not exist or is not a directory.
    pub fn factory(
        root: impl AsRef<Path>,
        limits: Limits,
    ) -> std::io::Result<impl Fn(&ConnInfo) -> StaticFiles + Send + Sync + 'static> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        let root = Arc::new(root);
        Ok(move |_: &ConnInfo| StaticFiles {
            root: root.clone(),
            parser: RequestParser::new(limits.clone()),
            head: Vec::new(),
            header_deadline: None,
            linger_until: None,
            linger_sent: false,
            waiting: None,
            observer: None,
        })
    }

    /// Logs every response of this connection through `hook` (see
    /// [`access_log`](super::access_log)); `client` is the peer.
    pub fn with_access_log(
        mut self,
        client: Option<std::net::SocketAddr>,
        hook: super::AccessHook,
    ) -> StaticFiles {
        self.observer = Some(super::access_log::Observer::new(client, hook));
        self
    }

    /// The access log sees the response head in `self.head` (`file`: its body is
    /// sent separately, `Content-Length` bytes of it).
    fn observed(&mut self, file: bool) {
        if let Some(o) = &mut self.observer {
            o.finish(&self.head, file);
        }
    }
}

/// Content-Type by file extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "xml" => "application/xml",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Percent-decodes a request path; `None` for bad escapes, NUL or backslash.
pub fn decode_path(p: &str) -> Option<String> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) || out.contains(&b'\\') {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Resolves a request path under `root`: `Err(403)` for escapes, `Err(404)` if missing.
pub fn resolve(root: &Path, target_path: &str) -> Result<PathBuf, u16> {
    let decoded = decode_path(target_path).ok_or(403u16)?;
    let rel = Path::new(decoded.trim_start_matches('/'));
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(403),
        }
    }
    let joined = root.join(rel);
    let canon = joined.canonicalize().map_err(|_| 404u16)?;
    if !canon.starts_with(root) {
        return Err(403);
    }
    if canon.is_dir() {
        let index = canon.join("index.html");
        return if index.is_file() { Ok(index) } else { Err(403) };
    }
    Ok(canon)
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
pub fn parse_http_date(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let mut it = s.split_ascii_whitespace();
    let _wd = it.next()?;
    let day: u64 = it.next()?.parse().ok()?;
    let mname = it.next()?;
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == mname)? as u64
        + 1;
    // IMF-fixdate years are exactly four digits (RFC 9110 5.6.7); anything longer is
    // not a date, and would overflow the day arithmetic below.
    let year = it.next()?;
    if year.len() != 4 || !year.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let year: i64 = year.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mon <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mon as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

/// A parsed single `Range: bytes=...` against a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeReq {
    /// No usable single range: send the whole file.
    Full,
    /// Send `start..end` (end exclusive).
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value.
pub fn parse_range(v: &[u8], len: u64) -> RangeReq {
    let Ok(s) = std::str::from_utf8(v) else {
        return RangeReq::Full;
    };
    let Some(spec) = s.trim().strip_prefix("bytes=") else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let num = |x: &str| -> Option<u64> {
        if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            x.parse().ok()
        }
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => RangeReq::Unsatisfiable,
            Some(n) if len > 0 => RangeReq::Part(len.saturating_sub(n), len),
            Some(_) => RangeReq::Unsatisfiable,
            None => RangeReq::Full,
        },
        (start, "") => match num(start) {
            Some(s) if s < len => RangeReq::Part(s, len),
            Some(_) => RangeReq::Unsatisfiable,
            None => RangeReq::Full,
        },
        (start, end) => match (num(start), num(end)) {
            (Some(s), Some(e)) if s <= e && s < len => {
                RangeReq::Part(s, e.saturating_add(1).min(len))
            }
            (Some(s), Some(e)) if s <= e => RangeReq::Unsatisfiable,
            _ => RangeReq::Full,
        },
    }
}

fn head(
    h: &mut Vec<u8>,
    date: &DateCache,
    status: u16,
    keep: bool,
    fields: &[(&str, &[u8])],
    len: u64,
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
    let _ = write!(h, "Content-Length: {len}\r\n");
    if !keep {
        h.extend_from_slice(b"Connection: close\r\n");
    }
    h.extend_from_slice(b"\r\n");
}

/// A GET/HEAD whose file is being looked up off the worker ([`Conn::offload`]).
struct Pending {
    keep: bool,
    head_only: bool,
    /// `If-Modified-Since`, parsed.
    ims: Option<u64>,
    /// The `Range` header value.
    range: Option<Vec<u8>>,
}

/// What the helper thread found for a request path: the resolved path, the open
/// regular file and its metadata, or the status to answer.
type Found = Result<(PathBuf, File, std::fs::Metadata), u16>;

/// Resolves and opens `target` under `root` ([`resolve`], then [`open_regular`]).
/// Runs on the worker's helper thread: every syscall here may block on a slow or
/// network file system.
fn lookup(root: &Path, target: &str) -> Found {
    let path = resolve(root, target)?;
    let (file, meta) = open_regular(&path).ok_or(404u16)?;
    Ok((path, file, meta))
}

/// What to do with a request once its head is in.
enum Answer {
    /// Answered (written to the head buffer): keep-alive or not.
    Done(bool),
    /// Look the file up off the worker, then [`finish`].
    Lookup(Pending, String),
}

fn simple(
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
    head(out, date, status, keep, &f, body.len() as u64);
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// Answers what can be answered from the head alone (405); a GET/HEAD needs its file.
fn answer(out: &mut Vec<u8>, req: &Request<'_>, date: &DateCache) -> Answer {
    let keep = req.keep_alive();
    if req.method() != "GET" && req.method() != "HEAD" {
        simple(
            out,
            date,
            405,
            keep,
            req.is_head(),
            &[("Allow", b"GET, HEAD")],
        );
        return Answer::Done(keep);
    }
    let pending = Pending {
        keep,
        head_only: req.is_head(),
        ims: req.header("if-modified-since").and_then(parse_http_date),
        range: req.header("range").map(<[u8]>::to_vec),
    };
    Answer::Lookup(pending, req.path().to_string())
}

/// Answers a GET/HEAD whose lookup finished; returns keep-alive and the file segment
/// to send after the head, if any.
fn finish(
    out: &mut Vec<u8>,
    p: &Pending,
    found: Found,
    date: &DateCache,
) -> (bool, Option<(File, u64, u64)>) {
    let keep = p.keep;
    let (path, file, meta) = match found {
        Ok(f) => f,
        Err(status) => {
            simple(out, date, status, keep, p.head_only, &[]);
            return (keep, None);
        }
    };
    let len = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let lm = format_http_date(mtime);
    let ctype = content_type(&path);
    if let Some(ims) = p.ims {
        if mtime <= ims {
            head(out, date, 304, keep, &[("Last-Modified", &lm)], 0);
            // 304 carries no body and its Content-Length must not mislead: strip it.
            if let Some(pos) = find(out, b"Content-Length: 0\r\n") {
                out.drain(pos..pos + 19);
            }
            return (keep, None);
        }
    }
    let range = p
        .range
        .as_deref()
        .map_or(RangeReq::Full, |v| parse_range(v, len));
    let (status, start, end) = match range {
        RangeReq::Full => (200, 0, len),
        RangeReq::Part(s, e) => (206, s, e),
        RangeReq::Unsatisfiable => {
            let cr = format!("bytes */{len}");
            simple(
                out,
                date,
                416,
                keep,
                p.head_only,
                &[("Content-Range", cr.as_bytes())],
            );
            return (keep, None);
        }
    };
    let cr = format!("bytes {start}-{}/{len}", end.saturating_sub(1));
    let mut fields: Vec<(&str, &[u8])> = vec![
        ("Content-Type", ctype.as_bytes()),
        ("Last-Modified", &lm),
        ("Accept-Ranges", b"bytes"),
    ];
    if status == 206 {
        fields.push(("Content-Range", cr.as_bytes()));
    }
    head(out, date, status, keep, &fields, end - start);
    if p.head_only || end == start {
        return (keep, None);
    }
    (keep, Some((file, start, end - start)))
}

/// Opens `path` for reading if it is a regular file; `None` otherwise (missing,
/// unreadable, or not a regular file: nginx answers 404 to those too).
///
/// `O_NONBLOCK` keeps the open itself from blocking on a FIFO (a blocking open of a
/// FIFO waits for a writer, forever, holding the worker); the type is then checked on
/// the opened fd with `fstat`, so there is no window between the check and the use.
/// `O_NOFOLLOW`: `path` is canonical (no symlink in it), so a symlink found here was
/// swapped in after [`resolve`] checked the path and is refused. `O_CLOEXEC` is added
/// by the standard library. On a regular file `O_NONBLOCK` changes nothing.
pub fn open_regular(path: &Path) -> Option<(File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    meta.file_type().is_file().then_some((file, meta))
}

fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}

impl StaticFiles {
    /// Lingering close after an error response (see `docs/http.md`): FIN after the
    /// response, then input dropped until the peer's FIN or the lingering caps, so
    /// unread input cannot turn the close into a reset that destroys the response.
    fn linger(&mut self, conn: &mut Conn<'_>) {
        let limits = self.parser.limits();
        let now = conn.now();
        let until = now + limits.lingering_time;
        self.linger_until = Some(until);
        self.header_deadline = None;
        conn.shutdown_write();
        // Until the response is sent, only the total applies (as in HttpConn).
        conn.set_timer(Some(until));
    }
}

impl StaticFiles {
    /// After an answer was queued: closes (or lingers, if `unread` input or a body
    /// is still to come) when the connection is not kept; true if it was not.
    fn after_answer(&mut self, conn: &mut Conn<'_>, keep: bool, unread: bool) -> bool {
        if keep && !conn.is_draining() {
            return false;
        }
        if unread || self.parser.in_body() {
            // Pipelined bytes or a body we will not read: linger, so they cannot
            // reset the connection under its last response.
            self.linger(conn);
        } else {
            conn.close();
        }
        true
    }
}

impl Handler for StaticFiles {
    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn std::any::Any + Send>) {
        let Some(pending) = self.waiting.take() else {
            return;
        };
        // A lookup that panicked: answer 500 rather than leave the request hanging.
        let found = result.downcast::<Found>().map_or(Err(500), |f| *f);
        DATE.with(|d| d.borrow_mut().update(SystemTime::now()));
        let date = DATE.with(|d| d.borrow().clone());
        self.head.clear();
        let (keep, body) = finish(&mut self.head, &pending, found, &date);
        self.observed(body.is_some());
        conn.send(&self.head);
        if let Some((file, off, len)) = body {
            conn.send_file(file, off, len);
        }
        if !self.after_answer(conn, keep, conn.unconsumed() > 0) {
            // Pipelined input that waited is offered again (on_data) after this.
            conn.resume_reading();
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        if self.linger_until.is_some() && !self.linger_sent {
            // The error response is out: the lingering proper begins.
            let limits = self.parser.limits();
            let until = conn.now() + limits.lingering_time;
            self.linger_sent = true;
            self.linger_until = Some(until);
            conn.set_timer(Some((conn.now() + limits.lingering_timeout).min(until)));
        }
    }

    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_idle_timeout(Some(self.parser.limits().keep_alive_timeout));
        conn.set_max_pending(self.parser.limits().max_buffered_input());
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if let Some(until) = self.linger_until {
            if self.linger_sent {
                let next = conn.now() + self.parser.limits().lingering_timeout;
                conn.set_timer(Some(next.min(until)));
            }
            return data.len();
        }
        if self.waiting.is_some() {
            // Reading is paused while a lookup is out; keep whatever came meanwhile.
            return 0;
        }
        let mut consumed = 0;
        DATE.with(|d| d.borrow_mut().update(SystemTime::now()));
        loop {
            let date = DATE.with(|d| d.borrow().clone());
            self.head.clear();
            // A request is answered as soon as its head is in; a body (no method
            // served here takes one) is dropped piece by piece as it arrives, never
            // collected (issue 8 defect 11).
            let answered = match self.parser.parse_event(&data[consumed..]) {
                Ok(Event::Partial) => break,
                Ok(Event::Request {
                    request,
                    consumed: n,
                })
                | Ok(Event::Head {
                    request,
                    consumed: n,
                    ..
                }) => {
                    consumed += n;
                    if let Some(o) = &mut self.observer {
                        o.begin(&request);
                    }
                    answer(&mut self.head, &request, &date)
                }
                Ok(Event::Body { consumed: n, .. }) | Ok(Event::End { consumed: n }) => {
                    consumed += n;
                    continue;
                }
                Err(e) => {
                    write_error(&mut self.head, &date, &e);
                    self.observed(false);
                    conn.send(&self.head);
                    self.linger(conn);
                    return data.len();
                }
            };
            // `Expect: 100-continue` answered with a final status: the client may
            // never send the body we would wait to skip, so close after the answer
            // (RFC 9110 10.1.1).
            let expect = self.parser.take_expect_continue();
            match answered {
                Answer::Done(keep) => {
                    self.observed(false);
                    conn.send(&self.head);
                    if self.after_answer(conn, keep && !expect, consumed < data.len()) {
                        return data.len();
                    }
                }
                Answer::Lookup(mut pending, path) => {
                    // Resolve, open and fstat off the worker (decision 14); reading
                    // stops until the answer is queued, so pipelined requests wait.
                    pending.keep &= !expect;
                    let root = self.root.clone();
                    conn.offload(move || lookup(&root, &path));
                    self.waiting = Some(pending);
                    conn.pause_reading();
                    if self.header_deadline.take().is_some() {
                        conn.set_timer(None);
                    }
                    return consumed;
                }
            }
        }
        if consumed < data.len() && !self.parser.in_body() {
            // A request completed in this call: the rest is a new request whose first
            // byte just arrived, with its own deadline.
            if self.header_deadline.is_none() || consumed > 0 {
                let at = conn.now() + self.parser.limits().header_timeout;
                self.header_deadline = Some(at);
                conn.set_timer(Some(at));
            }
        } else if self.header_deadline.take().is_some() {
            conn.set_timer(None);
        }
        consumed
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        // Between requests (nothing partial buffered): close once the queue is sent.
        if self.header_deadline.is_none() && !self.parser.in_body() && self.waiting.is_none() {
            conn.close();
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        if self.linger_until.is_some() {
            conn.abort();
        } else if self.header_deadline.take().is_some() {
            conn.close_with(CloseReason::IdleTimeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(b"bytes=0-9", 100), RangeReq::Part(0, 10));
        assert_eq!(parse_range(b"bytes=90-", 100), RangeReq::Part(90, 100));
        assert_eq!(parse_range(b"bytes=-5", 100), RangeReq::Part(95, 100));
        assert_eq!(parse_range(b"bytes=-500", 100), RangeReq::Part(0, 100));
        assert_eq!(parse_range(b"bytes=50-1000", 100), RangeReq::Part(50, 100));
        assert_eq!(parse_range(b"bytes=100-", 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=200-300", 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-1,5-6", 100), RangeReq::Full);
        assert_eq!(parse_range(b"items=0-1", 100), RangeReq::Full);
        assert_eq!(parse_range(b"bytes=9-1", 100), RangeReq::Full);
        assert_eq!(parse_range(b"bytes=-0", 100), RangeReq::Unsatisfiable);
    }

    /// Found by `fuzz/fuzz_targets/static_files.rs`: `e + 1` overflows (a panic with
    /// debug assertions; in release `Part(5, 0)`, then `end - start` wraps into a huge
    /// `Content-Length`). Fixed: the end saturates.
    #[test]
    fn range_end_at_u64_max() {
        let max = u64::MAX;
        assert_eq!(
            parse_range(format!("bytes=5-{max}").as_bytes(), 100),
            RangeReq::Part(5, 100)
        );
        assert_eq!(
            parse_range(format!("bytes=0-{max}").as_bytes(), 0),
            RangeReq::Unsatisfiable
        );
    }

    /// Found by `fuzz/fuzz_targets/static_files.rs`: an If-Modified-Since year near
    /// `i64::MAX` overflows `era * 146_097` (files.rs:166), a smaller huge year
    /// `d * 86_400` (files.rs:170): a panic with debug assertions, a wrapped time in
    /// release. Such a date is not a valid IMF-fixdate (four-digit year): `None`.
    #[test]
    fn date_with_huge_year() {
        for year in ["9223372036854775807", "100000000000000"] {
            let date = format!("Sun, 06 Nov {year} 08:49:37 GMT");
            assert_eq!(parse_http_date(date.as_bytes()), None, "{date}");
        }
    }

    #[test]
    fn dates_round_trip() {
        for secs in [0u64, 784_111_777, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
        }
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date(b"garbage"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mkdir, symlink, realpath: syscalls
    fn traversal_is_refused() {
        let dir = std::env::temp_dir().join(format!("ringcore-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.txt"), b"a").unwrap();
        let root = dir.join("sub").canonicalize().unwrap();
        std::fs::write(dir.join("secret"), b"s").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("link"));
        assert!(resolve(&root, "/a.txt").is_ok());
        assert_eq!(resolve(&root, "/../secret"), Err(403));
        assert_eq!(resolve(&root, "/%2e%2e/secret"), Err(403));
        assert_eq!(resolve(&root, "/%2E%2E%2Fsecret"), Err(403));
        assert_eq!(resolve(&root, "/link"), Err(403));
        assert_eq!(resolve(&root, "/a.txt%00"), Err(403));
        assert_eq!(resolve(&root, "/missing"), Err(404));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
