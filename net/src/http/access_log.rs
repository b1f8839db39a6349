//! Access logging: one [`AccessRecord`] per answered request, handed to a hook; an
//! [`AccessLog`] that formats and writes records without blocking the worker.
//!
//! ```text
//!  worker: request parsed -> Observer::begin        (method, target, headers copied)
//!          response queued -> Observer::finish      (status and bytes read from the
//!                                                    response head) -> hook(&AccessRecord)
//!  hook:   AccessLog::record -> format one line into this thread's buffer (bounded;
//!          full => the line is dropped and counted); a full-enough buffer wakes the writer
//!  thread: "access-log" takes every buffer (at least every 100 ms), writes, flushes;
//!          SIGHUP (AccessLog::reopen) reopens the file
//! ```
//!
//! A hook is installed per connection with [`HttpConn::with_access_log`](super::HttpConn::with_access_log)
//! or [`StaticFiles::with_access_log`](super::StaticFiles::with_access_log); it runs on
//! the worker, so it must not block ([`AccessLog::record`] never does).
//!
//! Formats ([`AccessFormat`]):
//!
//! * `combined` (nginx/Apache combined log format plus the request time in seconds):
//!   `127.0.0.1 - - [02/Dec/2026:03:45:38 +0000] "GET /plaintext HTTP/1.1" 200 13 "-" "curl/8.5.0" 0.000041`
//! * `json`, one object per line:
//!   `{"time":"2026-12-02T03:45:38Z","client":"127.0.0.1:53012","method":"GET","path":"/plaintext","status":200,"bytes":13,"duration_us":41,"referer":"","user_agent":"curl/8.5.0"}`
//!
//! `bytes` counts the response body (`Content-Length`, nothing for `HEAD` and 304),
//! as nginx's `$body_bytes_sent` does for complete responses; the duration runs from
//! the parsed request head to the response queued for sending.

use super::{DateCache, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use super::access_writer::{AccessLog, DEFAULT_BUFFER_BYTES};

/// One answered request, as an access-log hook sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AccessRecord<'a> {
    /// The client's address (`None` if the socket could not tell).
    pub client: Option<SocketAddr>,
    /// The method (`-` for a request refused before its head could be read).
    pub method: &'a str,
    /// The request target as sent (`-` when unknown).
    pub target: &'a str,
    /// The minor HTTP version (`1` for HTTP/1.1).
    pub version_minor: u8,
    /// The status code sent.
    pub status: u16,
    /// Response body bytes.
    pub bytes: u64,
    /// From the request head parsed to the response queued, measured with the loop
    /// turns' clock (read once per turn, not per request): a response queued in the
    /// turn that parsed its head shows 0; one that waited (an offload job, an
    /// outbound call, a body) shows the time between the two turns.
    pub duration: Duration,
    /// The `Referer` header (empty if absent).
    pub referer: &'a [u8],
    /// The `User-Agent` header (empty if absent).
    pub user_agent: &'a [u8],
    /// The upstream that answered, for a forwarded request (the gateway); logged
    /// after the duration (combined) or as `"upstream"` (json) when present.
    pub upstream: Option<SocketAddr>,
}

/// What runs for every answered request (on the worker: it must not block).
pub type AccessHook = Arc<dyn Fn(&AccessRecord<'_>) + Send + Sync>;

/// The request fields an [`AccessRecord`] names, copied from the request head (so the
/// record can be made after the input is gone); shared by [`Observer`] and the
/// gateway's log.
pub(crate) struct RequestFields {
    method: String,
    target: String,
    minor: u8,
    referer: Vec<u8>,
    user_agent: Vec<u8>,
}

impl RequestFields {
    /// Longest target kept, in bytes (cut at a char boundary).
    const MAX_TARGET: usize = 4096;
    /// Longest `Referer` / `User-Agent` kept, in bytes.
    const MAX_HEADER: usize = 512;

    pub(crate) fn new() -> RequestFields {
        RequestFields {
            method: String::new(),
            target: String::new(),
            minor: 1,
            referer: Vec::new(),
            user_agent: Vec::new(),
        }
    }

    /// Copies `req`'s method, target, version, `Referer` and `User-Agent` (bounded).
    pub(crate) fn copy(&mut self, req: &Request<'_>) {
        let copy = |dst: &mut Vec<u8>, v: Option<&[u8]>| {
            let v = v.unwrap_or_default();
            dst.clear();
            dst.extend_from_slice(&v[..v.len().min(Self::MAX_HEADER)]);
        };
        self.method.clear();
        self.method.push_str(req.method());
        self.target.clear();
        self.target
            .push_str(cut_at_char(req.target(), Self::MAX_TARGET));
        self.minor = req.version_minor();
        copy(&mut self.referer, req.header("referer"));
        copy(&mut self.user_agent, req.header("user-agent"));
    }

    /// The record of a response; `named`: with the copied method and target, else
    /// `-` for both (nothing was copied for this response).
    pub(crate) fn record(
        &self,
        named: bool,
        client: Option<SocketAddr>,
        status: u16,
        bytes: u64,
        duration: Duration,
        upstream: Option<SocketAddr>,
    ) -> AccessRecord<'_> {
        let (method, target) = if named {
            (self.method.as_str(), self.target.as_str())
        } else {
            ("-", "-")
        };
        AccessRecord {
            client,
            method,
            target,
            version_minor: self.minor,
            status,
            bytes,
            duration,
            referer: &self.referer,
            user_agent: &self.user_agent,
            upstream,
        }
    }
}

/// Per connection: the request being answered, until its response is queued.
pub(crate) struct Observer {
    hook: AccessHook,
    client: Option<SocketAddr>,
    req: RequestFields,
    head_only: bool,
    start: Option<Instant>,
    /// A response streamed while its request body arrives: its status (from the
    /// head) and the bytes written for it so far.
    stream: Option<(u16, u64)>,
    /// Copy the method, target, Referer and User-Agent and count the body bytes (an
    /// access log); without, records carry `-`, empty headers and 0 bytes (response
    /// counters need only the status and duration).
    detail: bool,
}

impl Observer {
    pub(crate) fn new(client: Option<SocketAddr>, hook: AccessHook) -> Box<Observer> {
        Self::with_detail(client, hook, true)
    }

    /// An observer that copies nothing from the request (see `detail`).
    pub(crate) fn lean(hook: AccessHook) -> Box<Observer> {
        Self::with_detail(None, hook, false)
    }

    fn with_detail(client: Option<SocketAddr>, hook: AccessHook, detail: bool) -> Box<Observer> {
        Box::new(Observer {
            detail,
            hook,
            client,
            req: RequestFields::new(),
            head_only: false,
            start: None,
            stream: None,
        })
    }

    /// Output written for a response streamed while the body arrives (a piece of
    /// it; the first one starts with its head).
    pub(crate) fn streamed(&mut self, out: &[u8]) {
        if out.is_empty() {
            return;
        }
        match &mut self.stream {
            Some((_, bytes)) => *bytes += out.len() as u64,
            None => {
                let status = status_of(out).unwrap_or(0);
                let head_end = find(out, b"\r\n\r\n").map_or(out.len(), |i| i + 4);
                self.stream = Some((status, (out.len() - head_end) as u64));
            }
        }
    }

    /// A request head was parsed.
    pub(crate) fn begin(&mut self, req: &Request<'_>, date: &DateCache) {
        self.head_only = req.is_head();
        self.start = Some(clock(date));
        if !self.detail {
            return;
        }
        self.req.copy(req);
    }

    /// A response was queued: `out` starts with its head (an interim `100 Continue`
    /// before it is skipped). `body_follows`: the body is sent separately (a file),
    /// so its size is the head's `Content-Length`; otherwise the body is the rest
    /// of `out`.
    pub(crate) fn finish(&mut self, mut out: &[u8], body_follows: bool, date: &DateCache) {
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        while out.starts_with(CONTINUE) {
            out = &out[CONTINUE.len()..];
        }
        let (status, bytes) = match self.stream.take() {
            // The end of a streamed response: the rest of its (chunked) body.
            Some((status, bytes)) => (status, bytes + out.len() as u64),
            None => {
                let Some(status) = status_of(out) else {
                    return;
                };
                let bytes = if self.detail {
                    self.body_bytes(out, status, body_follows)
                } else {
                    0
                };
                (status, bytes)
            }
        };
        self.emit(status, bytes, clock(date));
    }

    /// Body bytes of the response at the start of `out`.
    fn body_bytes(&self, out: &[u8], status: u16, body_follows: bool) -> u64 {
        let head_end = find(out, b"\r\n\r\n").map_or(out.len(), |i| i + 4);
        let bodyless = self.head_only || status == 304 || status == 204 || status < 200;
        if bodyless {
            0
        } else if body_follows {
            content_length(&out[..head_end]).unwrap_or(0)
        } else {
            // One response per `finish`: its body is what follows its head.
            (out.len() - head_end) as u64
        }
    }

    fn emit(&mut self, status: u16, bytes: u64, now: Instant) {
        let named = self.start.is_some() && self.detail;
        let duration = self
            .start
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let rec = self
            .req
            .record(named, self.client, status, bytes, duration, None);
        (self.hook)(&rec);
        self.start = None;
    }
}

/// The clock request durations are measured with: the loop turn's (no clock read per
/// request), or the real clock for a `DateCache` that was never ticked.
fn clock(date: &DateCache) -> Instant {
    date.turn_clock().unwrap_or_else(Instant::now)
}

/// The status code of the response head at the start of `out`.
pub(super) fn status_of(out: &[u8]) -> Option<u16> {
    if out.len() < 12 || !out.starts_with(b"HTTP/1.") {
        return None;
    }
    // Three ASCII digits, read in place (this runs once per response).
    out[9..12].iter().try_fold(0u16, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u16::from(b - b'0'))
    })
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn cut_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(super) fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Option<u64> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
        if !name.eq_ignore_ascii_case(b"content-length") {
            return None;
        }
        std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
    })
}

/// Line format of an [`AccessLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessFormat {
    /// nginx/Apache "combined", plus the request time in seconds.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for AccessFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "combined" => Ok(AccessFormat::Combined),
            "json" => Ok(AccessFormat::Json),
            _ => Err(format!("{s:?}: access log format is combined or json")),
        }
    }
}

/// `[02/Dec/2026:03:45:38 +0000]`-style and ISO 8601 renderings of `t` (UTC).
pub fn log_times(t: SystemTime) -> (String, String) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let d = super::format_http_date(secs);
    let s = std::str::from_utf8(&d).unwrap_or("Thu, 01 Jan 1970 00:00:00 GMT");
    let (day, mon, year, time) = (&s[5..7], &s[8..11], &s[12..16], &s[17..25]);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|&x| x == mon).unwrap_or(0) + 1;
    (
        format!("{day}/{mon}/{year}:{time} +0000"),
        format!("{year}-{m:02}-{day}T{time}Z"),
    )
}

/// Appends `v` as the inside of a JSON string (quotes, backslashes and control
/// bytes escaped; invalid UTF-8 replaced).
pub fn json_escape(out: &mut String, v: &[u8]) {
    for c in String::from_utf8_lossy(v).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Appends `v` for a quoted field of the combined format (`"` and control bytes
/// as `\xHH`, as nginx escapes them).
fn clf_escape(out: &mut String, v: &[u8]) {
    if v.is_empty() {
        out.push('-');
        return;
    }
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            use std::fmt::Write as _;
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

/// Renders `r` as one line (with its newline) in `format`, timestamped `now`.
pub fn format_record(r: &AccessRecord<'_>, format: AccessFormat, now: SystemTime) -> String {
    let mut s = String::with_capacity(192);
    format_into(&mut s, r, format, now);
    s
}

thread_local! {
    /// The last second rendered, per thread: `(unix seconds, clf, iso)`.
    static TIMES: std::cell::RefCell<(u64, String, String)> =
        const { std::cell::RefCell::new((u64::MAX, String::new(), String::new())) };
}

/// Appends `r` as one line (with its newline) in `format` to `s`, timestamped `now`
/// (the time rendering is cached per thread for the current second).
pub fn format_into(s: &mut String, r: &AccessRecord<'_>, format: AccessFormat, now: SystemTime) {
    use std::fmt::Write as _;
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    TIMES.with(|t| {
        let mut t = t.borrow_mut();
        if t.0 != secs {
            let (clf, iso) = log_times(now);
            *t = (secs, clf, iso);
        }
        match format {
            AccessFormat::Combined => {
                match r.client {
                    Some(a) => {
                        let _ = write!(s, "{}", a.ip());
                    }
                    None => s.push('-'),
                }
                s.push_str(" - - [");
                s.push_str(&t.1);
                s.push_str("] \"");
                clf_escape(s, r.method.as_bytes());
                s.push(' ');
                clf_escape(s, r.target.as_bytes());
                let _ = write!(
                    s,
                    " HTTP/1.{}\" {} {} \"",
                    r.version_minor, r.status, r.bytes
                );
                clf_escape(s, r.referer);
                s.push_str("\" \"");
                clf_escape(s, r.user_agent);
                let _ = write!(s, "\" {:.6}", r.duration.as_secs_f64());
                if let Some(u) = r.upstream {
                    let _ = write!(s, " {u}");
                }
                s.push('\n');
            }
            AccessFormat::Json => {
                s.push_str("{\"time\":\"");
                s.push_str(&t.2);
                s.push_str("\",\"client\":\"");
                if let Some(a) = r.client {
                    let _ = write!(s, "{a}");
                }
                s.push_str("\",\"method\":\"");
                json_escape(s, r.method.as_bytes());
                s.push_str("\",\"path\":\"");
                json_escape(s, r.target.as_bytes());
                let _ = write!(
                    s,
                    "\",\"status\":{},\"bytes\":{},\"duration_us\":{},\"referer\":\"",
                    r.status,
                    r.bytes,
                    r.duration.as_micros()
                );
                json_escape(s, r.referer);
                s.push_str("\",\"user_agent\":\"");
                json_escape(s, r.user_agent);
                s.push('"');
                if let Some(u) = r.upstream {
                    let _ = write!(s, ",\"upstream\":\"{u}\"");
                }
                s.push_str("}\n");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_of_reads_the_three_digits_of_a_status_line() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 404 Not Found\r\n"), Some(404));
        assert_eq!(status_of(b"HTTP/1.1 599 X\r\n"), Some(599));
        assert_eq!(status_of(b"HTTP/1.1 2x0 OK\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 -20 OK\r\n"), None);
        assert_eq!(status_of(b"HTTP/2 200 OK\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 20"), None);
    }

    fn rec<'a>() -> AccessRecord<'a> {
        AccessRecord {
            client: Some("10.0.0.1:5000".parse().unwrap()),
            method: "GET",
            target: "/a\"b",
            version_minor: 1,
            status: 200,
            bytes: 13,
            duration: Duration::from_micros(1500),
            referer: b"",
            user_agent: b"curl/8",
            upstream: None,
        }
    }

    #[test]
    fn combined_and_json_lines() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784111777);
        let c = format_record(&rec(), AccessFormat::Combined, t);
        assert_eq!(
            c,
            "10.0.0.1 - - [06/Nov/1994:08:49:37 +0000] \"GET /a\\x22b HTTP/1.1\" 200 13 \"-\" \"curl/8\" 0.001500\n"
        );
        let j = format_record(&rec(), AccessFormat::Json, t);
        assert_eq!(
            j,
            "{\"time\":\"1994-11-06T08:49:37Z\",\"client\":\"10.0.0.1:5000\",\"method\":\"GET\",\
             \"path\":\"/a\\\"b\",\"status\":200,\"bytes\":13,\"duration_us\":1500,\
             \"referer\":\"\",\"user_agent\":\"curl/8\"}\n"
        );
    }

    #[test]
    fn observer_reads_status_and_body_bytes() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut o = Observer::new(
            None,
            Arc::new(move |r: &AccessRecord<'_>| {
                s2.lock()
                    .unwrap()
                    .push((r.method.to_string(), r.status, r.bytes))
            }),
        );
        let date = DateCache::new(SystemTime::UNIX_EPOCH);
        // A refused request: no head was parsed.
        o.finish(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            false,
            &date,
        );
        // The body follows in `out`, and two responses' bytes are not mixed up.
        o.finish(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc",
            false,
            &date,
        );
        // A file: the body is sent separately.
        o.finish(
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 99\r\n\r\n",
            true,
            &date,
        );
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            vec![
                ("-".to_string(), 400, 0),
                ("-".to_string(), 404, 3),
                ("-".to_string(), 206, 99)
            ]
        );
    }

    /// Through a `Session` and a `Router`: one record per response, with the status
    /// and body bytes of each, for plain, streamed (answered while the body arrives),
    /// offloaded and refused requests.
    /// Durations come from the loop turns' clocks the responses were written with
    /// (`DateCache::tick`), not from clock reads per request: a response queued in
    /// the turn that parsed its head takes 0; an offloaded one, the turns between.
    #[test]
    fn durations_use_the_turn_clock() {
        use crate::http::{DateCache, Request, Response, Router, Session};
        let router = Router::new()
            .get("/a", |_: &Request<'_>, res: &mut Response| {
                res.set_body(b"abc");
            })
            .offload("GET", "/slow", |_: &Request<'_>| {
                |res: &mut Response| {
                    res.set_body(b"later");
                }
            });
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut session = Session::new(crate::http::Limits::default());
        session.set_response_hook(Arc::new(move |r: &AccessRecord<'_>| {
            s2.lock().unwrap().push((r.status, r.duration))
        }));
        let t0 = Instant::now();
        let wall = || SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut date = DateCache::new(wall());
        date.tick(t0, wall);
        let mut out = Vec::new();
        let reqs: &[u8] =
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
        let p = session.on_data(reqs, &router, &date, &mut out);
        assert_eq!(p.consumed, reqs.len());
        let res = session.take_offload().expect("the offload job").run();
        // The result comes back three turns and 2.5 ms later.
        date.tick(t0 + Duration::from_micros(2500), wall);
        assert!(session.complete_offload(Some(&res), &date, &mut out));
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            vec![(200, Duration::ZERO), (200, Duration::from_micros(2500))]
        );
    }

    #[test]
    fn session_records_every_kind_of_response() {
        use crate::http::{
            BodyHandler, BodyOut, DateCache, Limits, Request, Response, Router, Session,
        };
        struct Upper;
        impl BodyHandler for Upper {
            fn on_body(&mut self, _: &[u8]) {}
            fn on_body_out(&mut self, piece: &[u8], out: &mut BodyOut<'_>) {
                out.start(201, "text/plain")
                    .write(&piece.to_ascii_uppercase());
            }
            fn on_end(&mut self, _: &mut Response) {}
        }
        let router = Router::new()
            .get("/a", |_: &Request<'_>, res: &mut Response| {
                res.set_body(b"abc");
            })
            .stream("POST", "/up", |_: &Request<'_>| {
                Box::new(Upper) as Box<dyn BodyHandler>
            })
            .offload("GET", "/slow", |_: &Request<'_>| {
                |res: &mut Response| {
                    res.set_status(202).set_body(b"later");
                }
            });
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut session = Session::new(Limits::default());
        session.set_access_hook(
            Some("127.0.0.1:9".parse().unwrap()),
            Arc::new(move |r: &AccessRecord<'_>| {
                s2.lock().unwrap().push((
                    r.method.to_string(),
                    r.target.to_string(),
                    r.status,
                    r.bytes,
                ))
            }),
        );
        let date = DateCache::new(SystemTime::now());
        let mut out = Vec::new();
        let reqs: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
            GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
        let p = session.on_data(reqs, &router, &date, &mut out);
        assert_eq!(p.consumed, reqs.len());
        let job = session.take_offload().expect("the offload job");
        let res = job.run();
        assert!(session.complete_offload(Some(&res), &date, &mut out));
        let p = session.on_data(b"BAD\x01 / HTTP/1.1\r\n\r\n", &router, &date, &mut out);
        assert_eq!(p.error, Some(400));
        let seen = seen.lock().unwrap();
        let got: Vec<(&str, &str, u16)> = seen
            .iter()
            .map(|(m, t, s, _)| (m.as_str(), t.as_str(), *s))
            .collect();
        assert_eq!(
            got,
            vec![
                ("GET", "/a", 200),
                ("HEAD", "/a", 200),
                ("GET", "/missing", 404),
                ("POST", "/up", 201),
                ("GET", "/slow", 202),
                ("-", "-", 400),
            ]
        );
        assert_eq!(seen[0].3, 3);
        assert_eq!(seen[1].3, 0, "HEAD sends no body");
        assert!(seen[3].3 >= 5, "streamed bytes: {}", seen[3].3);
        assert_eq!(seen[4].3, 5);
    }

    /// A target longer than the logged 4 KiB whose cut falls inside a multi-byte
    /// character is cut before that character (it panicked: a `str` sliced at a byte
    /// that is no char boundary).
    #[test]
    fn long_target_is_cut_at_a_char_boundary() {
        use crate::http::{DateCache, Limits, Router, Session};
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut session = Session::new(Limits::default());
        session.set_access_hook(
            None,
            Arc::new(move |r: &AccessRecord<'_>| {
                s2.lock().unwrap().push((r.target.to_string(), r.status))
            }),
        );
        let date = DateCache::new(SystemTime::now());
        let mut out = Vec::new();
        // '/', 4,094 ASCII bytes, then a 2-byte character across byte 4,096.
        let target = format!("/{}\u{e9}", "a".repeat(4094));
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let p = session.on_data(req.as_bytes(), &Router::new(), &date, &mut out);
        assert_eq!(p.consumed, req.len());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, target[..4095]);
        assert_eq!(seen[0].1, 404);
    }
}
