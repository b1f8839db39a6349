//! [`StaticFiles`]: serves a directory over HTTP/1.1, bodies by splice.
//!
//! The head is rendered into the connection's write queue and the body follows as a
//! [`Conn::send_file`] segment: file -> pipe -> socket by splice (linked SQEs on
//! io_uring, `splice(2)` on epoll), never through user space.
//!
//! HTTP semantics follow nginx's static module (`docs/fileserver.md` has the table):
//!
//! * `GET`/`HEAD`; other methods 405 with `Allow: GET, HEAD`.
//! * Validators: a strong `ETag` ([`validators`]) and `Last-Modified`;
//!   `If-Match` (strong comparison, `*`, lists) and, without it,
//!   `If-Unmodified-Since` answer 412 when they fail; then `If-None-Match` (weak
//!   comparison, `*`, lists) and, without it, `If-Modified-Since` (a date in the
//!   future or one that does not parse is ignored) answer 304 (RFC 9110 13.2.2
//!   order, [`validators::evaluate`]). `If-Range` with the current strong `ETag` or the exact
//!   `Last-Modified` date lets the `Range` apply; anything else gets the full 200.
//! * Ranges ([`range`]): one range is a 206; several disjoint ones (at most
//!   [`MAX_RANGES`]) a `multipart/byteranges` 206; overlapping or too many, the
//!   whole file; none satisfiable, 416.
//! * `Content-Type` from the `mime_guess` table ([`content_type`]).
//! * Directories: without a trailing slash 301 to `<path>/` (query kept); with one,
//!   its `index.html`, else a listing if [`StaticFilesBuilder::autoindex`] is on,
//!   else 403.
//! * Hidden paths (a segment starting with `.`) are 404 unless
//!   [`StaticFilesBuilder::allow_hidden`].
//! * [`StaticFilesBuilder::gzip_static`]: a `<file>.br` or `<file>.gz` sibling is
//!   served when `Accept-Encoding` allows it ([`encoding`]), with
//!   `Content-Encoding` and `Vary: Accept-Encoding`; ranges and validators then
//!   apply to the compressed bytes (its own `ETag`).
//! * [`StaticFilesBuilder::cache_control`] adds a `Cache-Control` field to 200, 206
//!   and 304 answers for files.
//! * [`StaticFilesBuilder::open_file_cache`] keeps open files per worker for a while,
//!   so repeated requests skip the helper thread (off by default; see its docs).
//!
//! A request is answered once its head is complete; a request body is read and
//! dropped as it arrives, never held (a client that sent `Expect: 100-continue` gets
//! the answer and a close instead of a wait for the body).
//!
//! Path safety: the target is percent-decoded segment by segment, so `%2F` is never a
//! separator (a segment holding one names nothing: 404); a malformed escape, a
//! decoded NUL or bytes that are not UTF-8 are 400; a backslash or any `..` segment,
//! decoded or not, is refused (403); the joined path is canonicalised (resolving symlinks) and
//! must stay under the canonical root, so a symlink pointing outside is refused too.
//!
//! Only regular files are served: a FIFO, socket or device under the root is 404 (see
//! [`open_regular`]). Path resolution (`realpath`, `stat`), open, `fstat` and
//! directory reads never run on the worker thread: a GET/HEAD hands them to the
//! worker's helper thread ([`Conn::offload`]) and pauses reading; the answer is queued
//! when the result comes back ([`Handler::on_offload`]),
//! then reading resumes (pipelined requests wait their turn). A connection that closed
//! meanwhile drops the result, closing the file. docs/design.md ("What may block a
//! worker").

mod cache;
pub mod encoding;
mod listing;
pub mod range;
mod resolve;
mod respond;
pub mod validators;

pub use encoding::{accepted, Encoding};
pub use listing::MAX_ENTRIES as MAX_LISTING_ENTRIES;
pub use range::{parse_ranges, Ranges, MAX_RANGES};
pub use resolve::{
    decode_path, location, lookup_counts, open_regular, resolve, resolve_target, LookupCounts,
    Target,
};
pub use respond::content_type;
pub use validators::{etag, parse_http_date};

use super::{write_error, DateCache, Event, Limits, Request, RequestParser};
use crate::{CloseReason, Conn, ConnInfo, Handler};
use resolve::{lookup, lookup_cached, Ask, Found};
use respond::{finish, simple, Body, Conditions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The file answering for a directory path ending in `/`.
pub const INDEX: &str = "index.html";

/// What every connection of one server shares: the root and the options.
#[derive(Debug)]
struct Config {
    /// Unique per server (the open-file cache's key; an address could be reused).
    id: u64,
    /// The canonical root directory.
    root: PathBuf,
    limits: Limits,
    cache_control: Option<String>,
    autoindex: bool,
    allow_hidden: bool,
    gzip_static: bool,
    open_file_cache: Option<cache::CacheConfig>,
    /// The root for lookups on the worker (`None`: every lookup goes to the helper
    /// thread); see [`StaticFilesBuilder::inline_lookup`].
    inline_root: Option<std::os::fd::OwnedFd>,
}

/// Options of a [`StaticFiles`] server; [`StaticFiles::builder`] makes one,
/// [`factory`](Self::factory) turns it into a connection factory.
#[derive(Debug, Clone)]
#[must_use]
pub struct StaticFilesBuilder {
    root: PathBuf,
    limits: Limits,
    cache_control: Option<String>,
    autoindex: bool,
    allow_hidden: bool,
    gzip_static: bool,
    open_file_cache: Option<cache::CacheConfig>,
    inline_lookup: bool,
}

impl StaticFilesBuilder {
    /// Request limits and timeouts (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A `Cache-Control` value (e.g. `public, max-age=60`) sent with every file's
    /// 200, 206 and 304 (default: none). Checked by [`factory`](Self::factory).
    pub fn cache_control(mut self, value: impl Into<String>) -> Self {
        self.cache_control = Some(value.into());
        self
    }

    /// List a directory that has no `index.html` as an HTML page (default: off,
    /// such a directory is 403). Hidden entries are listed only with
    /// [`allow_hidden`](Self::allow_hidden); at most
    /// [`MAX_LISTING_ENTRIES`] entries are shown.
    pub fn autoindex(mut self, on: bool) -> Self {
        self.autoindex = on;
        self
    }

    /// Serve paths with a segment starting with `.` (`/.env`, `/.git/config`)
    /// (default: off, they are 404).
    pub fn allow_hidden(mut self, on: bool) -> Self {
        self.allow_hidden = on;
        self
    }

    /// Serve a precompressed `<file>.br` / `<file>.gz` sibling, when present and
    /// accepted by the client's `Accept-Encoding`, instead of `<file>` (default:
    /// off). `<file>` itself must exist; it names the content type.
    pub fn gzip_static(mut self, on: bool) -> Self {
        self.gzip_static = on;
        self
    }

    /// Look a file up on the worker when that cannot block (default: on): when every
    /// component of the request path is in the kernel's dentry cache, none is a
    /// symlink and no mount point is crossed, `openat2` with `RESOLVE_CACHED` opens
    /// the file right away, saving the hand-off to the worker's helper thread and
    /// back (0.84 × the server CPU per 1 MiB file at 200 files/s on io_uring, 0.81 × on
    /// epoll; docs/benchmarks.md, "Side-by-side pairs").
    /// Anything else (a name not cached, a directory, a symlink, a hidden name,
    /// `gzip_static` siblings) still goes to the helper. Off by itself where the root
    /// is on a network or FUSE file system, or the kernel lacks `RESOLVE_CACHED`
    /// (5.12). [`lookup_counts`] counts both paths.
    pub fn inline_lookup(mut self, on: bool) -> Self {
        self.inline_lookup = on;
        self
    }

    /// Keep up to `entries` open files per worker, each answering for `valid`
    /// without a new lookup (default: off; `entries == 0` turns it off). Like
    /// nginx's `open_file_cache` + `open_file_cache_valid`: requests for a cached
    /// path are answered on the worker from a `dup` of the open file instead of
    /// going through the helper thread, which wins back small-file throughput; the
    /// price is that for up to `valid` after a file changes, answers may describe
    /// the old file. Best where files change by rename (atomic deploys). Each entry
    /// holds a file descriptor: `entries` x workers of them stay open.
    pub fn open_file_cache(mut self, entries: usize, valid: Duration) -> Self {
        self.open_file_cache = (entries > 0).then_some(cache::CacheConfig { entries, valid });
        self
    }

    /// A [`Factory`](crate::Factory) closure serving the root (canonicalised here).
    ///
    /// # Errors
    /// `InvalidInput` if the root is not a directory or the `Cache-Control` value is
    /// not a valid field value (control characters, or empty); the root's own error
    /// if it cannot be resolved.
    pub fn factory(
        self,
    ) -> std::io::Result<impl Fn(&ConnInfo) -> StaticFiles + Send + Sync + 'static> {
        let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
        let root = self
            .root
            .canonicalize()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.root.display())))?;
        if !root.is_dir() {
            return Err(invalid(format!("{} is not a directory", root.display())));
        }
        if let Some(cc) = &self.cache_control {
            let bad =
                cc.trim().is_empty() || cc.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f);
            if bad {
                return Err(invalid(format!(
                    "Cache-Control value {cc:?} is empty or holds control characters"
                )));
            }
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let inline_root = if self.inline_lookup {
            resolve::inline_root(&root)
        } else {
            None
        };
        let cfg = Arc::new(Config {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            root,
            limits: self.limits,
            cache_control: self.cache_control.map(|c| c.trim().to_string()),
            autoindex: self.autoindex,
            allow_hidden: self.allow_hidden,
            gzip_static: self.gzip_static,
            open_file_cache: self.open_file_cache,
            inline_root,
        });
        Ok(move |_: &ConnInfo| StaticFiles {
            cfg: cfg.clone(),
            parser: RequestParser::new(cfg.limits.clone()),
            head: Vec::new(),
            header_deadline: None,
            linger_until: None,
            linger_sent: false,
            waiting: None,
            observer: None,
        })
    }
}

/// A connection of a static file server.
pub struct StaticFiles {
    cfg: Arc<Config>,
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
    waiting: Option<(Conditions, Option<cache::Key>)>,
    /// The access-log hook and the request it is timing (none: no access log).
    observer: Option<Box<super::access_log::Observer>>,
}

impl StaticFiles {
    /// Options for a server of `root`, all off: see [`StaticFilesBuilder`].
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// use ringcore_net::http::StaticFiles;
    /// let factory = StaticFiles::builder("./public")
    ///     .cache_control("public, max-age=60")
    ///     .gzip_static(true)
    ///     .autoindex(true)
    ///     .factory()?;
    /// # let _ = factory; Ok(()) }
    /// ```
    pub fn builder(root: impl AsRef<Path>) -> StaticFilesBuilder {
        StaticFilesBuilder {
            root: root.as_ref().to_path_buf(),
            limits: Limits::default(),
            cache_control: None,
            autoindex: false,
            allow_hidden: false,
            gzip_static: false,
            open_file_cache: None,
            inline_lookup: true,
        }
    }

    /// A [`Factory`](crate::Factory) closure serving `root` (canonicalised here) with
    /// the default options; [`builder`](Self::builder) sets the others.
    ///
    /// # Errors
    /// `root` does not exist or is not a directory.
    pub fn factory(
        root: impl AsRef<Path>,
        limits: Limits,
    ) -> std::io::Result<impl Fn(&ConnInfo) -> StaticFiles + Send + Sync + 'static> {
        Self::builder(root).limits(limits).factory()
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

    /// Like [`with_access_log`](Self::with_access_log), for response counters only:
    /// records carry the status and duration (method and target `-`, bytes 0).
    pub fn with_response_hook(mut self, hook: super::AccessHook) -> StaticFiles {
        self.observer = Some(super::access_log::Observer::lean(hook));
        self
    }

    /// The access log sees the response head in `self.head` (`separate`: its body
    /// is sent apart from it, `Content-Length` bytes of it).
    fn observed(&mut self, separate: bool, date: &DateCache) {
        if let Some(o) = &mut self.observer {
            o.finish(&self.head, separate, date);
        }
    }
}

/// What to do with a request once its head is in.
enum Answer {
    /// Answered (written to the head buffer): keep-alive or not.
    Done(bool),
    /// Look the file up off the worker, then [`finish`].
    Lookup(Box<Conditions>, Ask),
}

/// Every field line named `name`, joined with `,` (a list field may be split over
/// several lines, RFC 9110 5.3).
fn joined(req: &Request<'_>, name: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for (_, v) in req.headers().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
        match &mut out {
            None => out = Some(v.to_vec()),
            Some(o) => {
                o.push(b',');
                o.extend_from_slice(v);
            }
        }
    }
    out
}

/// Answers what can be answered from the head alone (405); a GET/HEAD needs its file.
fn answer(out: &mut Vec<u8>, cfg: &Config, req: &Request<'_>, date: &DateCache) -> Answer {
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
    let owned = |name: &str| req.header(name).map(<[u8]>::to_vec);
    let conditions = Conditions {
        keep,
        head_only: req.is_head(),
        if_match: joined(req, "if-match"),
        if_unmodified_since: owned("if-unmodified-since"),
        if_none_match: joined(req, "if-none-match"),
        if_modified_since: owned("if-modified-since"),
        range: owned("range"),
        if_range: owned("if-range"),
    };
    let accept = if cfg.gzip_static {
        accepted(
            req.headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case("accept-encoding"))
                .map(|(_, v)| v),
        )
    } else {
        Vec::new()
    };
    let ask = Ask {
        path: req.path().to_string(),
        query: req.query().map(str::to_string),
        accept,
    };
    Answer::Lookup(Box::new(conditions), ask)
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
    /// Queues the answer to `pending` once its lookup is `found`: the head, then the
    /// body (file segments by splice, or bytes).
    fn respond(&mut self, conn: &mut Conn<'_>, pending: &Conditions, found: Found) {
        let date = crate::http::turn_date(conn.now());
        let secs = date.unix_secs();
        self.head.clear();
        let (_, body) = finish(&mut self.head, &self.cfg, pending, found, &date, secs);
        self.observed(!matches!(body, Body::None), &date);
        conn.send(&self.head);
        match body {
            Body::None => {}
            Body::Bytes(b) => conn.send_owned(b),
            Body::File(file, off, len) => conn.send_file(file, off, len),
            Body::Multi(parts, trailer) => {
                for (part_head, file, off, len) in parts {
                    conn.send(&part_head);
                    conn.send_file(file, off, len);
                }
                conn.send(&trailer);
            }
        }
    }

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
        let Some((pending, key)) = self.waiting.take() else {
            return;
        };
        // A lookup that panicked: answer 500 rather than leave the request hanging.
        let found = result
            .downcast::<Found>()
            .map_or(Found::Status(500), |f| *f);
        if let (Some(key), Some(c)) = (key, self.cfg.open_file_cache) {
            cache::put(key, &found, c, conn.now());
        }
        self.respond(conn, &pending, found);
        if !self.after_answer(conn, pending.keep, conn.unconsumed() > 0) {
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
        let date = crate::http::turn_date(conn.now());
        loop {
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
                        o.begin(&request, &date);
                    }
                    answer(&mut self.head, &self.cfg, &request, &date)
                }
                Ok(Event::Body { consumed: n, .. }) | Ok(Event::End { consumed: n }) => {
                    consumed += n;
                    continue;
                }
                Err(e) => {
                    write_error(&mut self.head, &date, &e);
                    self.observed(false, &date);
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
                    self.observed(false, &date);
                    conn.send(&self.head);
                    if self.after_answer(conn, keep && !expect, consumed < data.len()) {
                        return data.len();
                    }
                }
                Answer::Lookup(mut pending, ask) => {
                    pending.keep &= !expect;
                    let key = self
                        .cfg
                        .open_file_cache
                        .map(|_| cache::Key::new(self.cfg.id, &ask.path, &ask.accept));
                    if let Some(found) = key.as_ref().and_then(|k| cache::get(k, conn.now())) {
                        // A fresh cached lookup: answered here, no hand-off.
                        self.respond(conn, &pending, found);
                        if self.after_answer(conn, pending.keep, consumed < data.len()) {
                            return data.len();
                        }
                        continue;
                    }
                    if let Some(found) = lookup_cached(&self.cfg, &ask) {
                        // Every name cached: opened here without blocking.
                        if let (Some(key), Some(c)) = (key, self.cfg.open_file_cache) {
                            cache::put(key, &found, c, conn.now());
                        }
                        self.respond(conn, &pending, found);
                        if self.after_answer(conn, pending.keep, consumed < data.len()) {
                            return data.len();
                        }
                        continue;
                    }
                    // Resolve, open and fstat off the worker (decision 14); reading
                    // stops until the answer is queued, so pipelined requests wait.
                    resolve::count_helper_lookup();
                    let cfg = self.cfg.clone();
                    conn.offload(move || lookup(&cfg, &ask));
                    self.waiting = Some((*pending, key));
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
