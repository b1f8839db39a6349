//! Request framing: the head through `httparse` plus our own strictness checks, then
//! the body by `Content-Length` or chunked coding.

use std::mem::MaybeUninit;

use super::chunked::{Chunked, ChunkedDecoder};
use super::fields::{parse_content_length, trim_ows, Codings};
use super::request::{HeaderSpan, Request};
use super::{Error, Limits};

/// Size of the parser's stack header table; `Limits::max_headers` is capped to it.
const HEADER_SLOTS: usize = 256;

/// Longest method token accepted (the longest registered method, `UPDATEREDIRECTREF`,
/// has 17 bytes). A longer one is answered `501`, as RFC 9112 section 3 asks of "a
/// method longer than any that it implements"; a shorter unknown method reaches the
/// router, which answers `405` with `Allow`.
pub const MAX_METHOD_BYTES: usize = 32;

/// Result of [`RequestParser::parse`] when the bytes are not (yet) an error.
#[derive(Debug)]
pub enum Status<'a> {
    /// The bytes hold no complete request yet: keep them, append what arrives next
    /// and call `parse` again with the whole unconsumed buffer.
    Partial,
    /// A complete request; it and any body occupy the first `consumed` bytes.
    Complete {
        /// The request, borrowed from the input and the parser.
        request: Request<'a>,
        /// Bytes of the input this request used; drop them before the next call.
        consumed: usize,
    },
}

impl Status<'_> {
    /// Whether more bytes are needed.
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial)
    }
}

/// How the body of the request being parsed is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// A validated request head, kept while its body is still arriving.
/// INVARIANT: offsets are into the caller's buffer, which keeps its prefix.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    pub(super) len: usize,
    pub(super) method: (usize, usize),
    pub(super) target: (usize, usize),
    pub(super) minor: u8,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1 with a body to come.
    pub(super) expect_continue: bool,
}

/// Incremental HTTP/1.1 request parser for one connection.
///
/// Feed it the connection's unconsumed bytes. After [`Status::Partial`] call again
/// with the same bytes plus whatever arrived (the parser remembers how far it got into
/// a body, so the prefix must not change; a shorter buffer restarts the request); after
/// [`Status::Complete`] drop `consumed` bytes and call again for the next pipelined
/// request.
///
/// ```
/// # use ringcore_net::http::{Limits, RequestParser, Status};
/// let mut parser = RequestParser::new(Limits::default());
/// let bytes = b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /";
/// let Ok(Status::Complete { request, consumed }) = parser.parse(bytes) else { panic!() };
/// assert_eq!((request.path(), consumed), ("/plaintext", 36));
/// assert!(parser.parse(&bytes[consumed..]).unwrap().is_partial());
/// ```
#[derive(Debug)]
pub struct RequestParser {
    pub(super) limits: Limits,
    /// Header index of the current request, reused between requests.
    pub(super) spans: Vec<HeaderSpan>,
    /// Decoded chunked body of the current request, reused between requests (with
    /// [`parse_event`](Self::parse_event): the decoded bytes of one call).
    pub(super) body: Vec<u8>,
    /// `Some` once the head is parsed and while its body is incomplete.
    pub(super) head: Option<Head>,
    pub(super) chunked: ChunkedDecoder,
    pub(super) served: u32,
    /// INVARIANT: only `true` while `head` is `Some` and the client awaits
    /// `100 Continue`; cleared when taken.
    pub(super) continue_pending: bool,
    /// Length of the buffer at the last call that left `head` set.
    partial_len: usize,
    /// Where a body read by [`parse_event`](Self::parse_event) stands.
    pub(super) stream: super::events::BodyState,
    /// The head of the last request whose body [`parse_event`](Self::parse_event)
    /// finished (for [`ended_request`](Self::ended_request)).
    pub(super) done: Option<Head>,
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            spans: Vec::with_capacity(16),
            body: Vec::new(),
            head: None,
            chunked: ChunkedDecoder::new(),
            served: 0,
            continue_pending: false,
            partial_len: 0,
            stream: super::events::BodyState::Off,
            done: None,
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Requests completed on this connection so far.
    pub fn requests_served(&self) -> u32 {
        self.served
    }

    /// Whether the current request's head is complete and its body is still
    /// arriving (the header deadline no longer applies).
    pub fn in_body(&self) -> bool {
        self.head.is_some()
    }

    /// Whether the client is waiting for `HTTP/1.1 100 Continue` before sending the
    /// body of the current request (`Expect: 100-continue`); `true` at most once per
    /// request. Check it after a [`Status::Partial`] and, if set, send
    /// `b"HTTP/1.1 100 Continue\r\n\r\n"` ([`Session`](super::Session) does).
    pub fn take_expect_continue(&mut self) -> bool {
        std::mem::take(&mut self.continue_pending)
    }

    /// Parses the next request at the start of `buf` (the unconsumed bytes).
    ///
    /// # Errors
    ///
    /// An [`Error`] with the status to answer (400, 413, 414, 431, 501, 505); the
    /// caller must then close the connection. The parser is not usable afterwards.
    pub fn parse<'a>(&'a mut self, buf: &'a [u8]) -> Result<Status<'a>, Error> {
        // A buffer shorter than at the last `Partial` breaks the contract; start this
        // request over rather than index past the end.
        let resume = self.head.filter(|_| buf.len() >= self.partial_len);
        // `(method, target)`: from httparse (which checked both are UTF-8) when the
        // head is parsed by this call, else `None`: re-sliced from the head below.
        let (head, line) = match resume {
            Some(head) => (head, None),
            None => match self.parse_head(buf)? {
                Some((head, line)) => {
                    if head.framing == Framing::None {
                        // Fast path: no body, so nothing to remember across calls.
                        return Ok(self.complete(buf, head, Some(line), Some(&[]), 0));
                    }
                    self.body.clear();
                    self.chunked = ChunkedDecoder::new();
                    self.head = Some(head);
                    self.continue_pending = head.expect_continue;
                    (head, Some(line))
                }
                None => {
                    self.head = None;
                    return Ok(Status::Partial);
                }
            },
        };
        let rest = &buf[head.len..];
        self.partial_len = buf.len();
        let body_len = match head.framing {
            Framing::None => 0,
            Framing::Length(n) if rest.len() < n => return Ok(Status::Partial),
            Framing::Length(n) => n,
            Framing::Chunked => match self.chunked.feed(rest, &mut self.body, &self.limits) {
                Ok(Chunked::Partial) => return Ok(Status::Partial),
                Ok(Chunked::Complete(n)) => n,
                Err(e) => {
                    self.head = None;
                    return Err(e);
                }
            },
        };
        let body = match head.framing {
            Framing::Chunked => None,
            _ => Some(&rest[..body_len]),
        };
        Ok(self.complete(buf, head, line, body, body_len))
    }

    /// The request `head` is complete, its body (`wire_len` bytes after the head in
    /// `buf`; `body`, or the decoded chunked body when `None`) too: reset for the next request and borrow it. `line` is the
    /// method and target as httparse returned them, if this call parsed the head.
    pub(super) fn complete<'a>(
        &'a mut self,
        buf: &'a [u8],
        head: Head,
        line: Option<(&'a str, &'a str)>,
        body: Option<&'a [u8]>,
        wire_len: usize,
    ) -> Status<'a> {
        self.head = None;
        self.continue_pending = false;
        self.served = self.served.saturating_add(1);
        let (method, target) = line.unwrap_or_else(|| {
            // A head parsed by an earlier call: httparse accepted both parts as UTF-8
            // then, so this never falls back to "".
            let text =
                |(start, end): (usize, usize)| std::str::from_utf8(&buf[start..end]).unwrap_or("");
            (text(head.method), text(head.target))
        });
        let request = Request {
            method,
            target,
            minor: head.minor,
            head: &buf[..head.len],
            spans: &self.spans,
            body: body.unwrap_or(&self.body),
            keep_alive: head.keep_alive && self.served < self.limits.max_requests_per_connection,
            params: &[],
            raw_params: &[],
        };
        Status::Complete {
            request,
            consumed: head.len + wire_len,
        }
    }

    /// Parses and checks the head; `Ok(None)` means it is not complete yet. With the
    /// head come its method and target, borrowed from `buf`.
    #[allow(clippy::type_complexity)]
    pub(super) fn parse_head<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(Head, (&'a str, &'a str))>, Error> {
        // Only the first max_head_bytes are ever looked at, so the verdict does not
        // depend on how the stream was split into reads.
        let window = &buf[..buf.len().min(self.limits.max_head_bytes)];
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); HEADER_SLOTS];
        let slots = &mut slots[..self.limits.max_headers.min(HEADER_SLOTS)];
        let mut req = httparse::Request::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, window, slots)
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > window.len() => {
                return Err(head_too_large(window))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(map_httparse(e, window)),
        };
        check_raw_head(&buf[..len])?;
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(Error::bad_request("incomplete request line"));
        };
        if method.len() > MAX_METHOD_BYTES {
            return Err(Error::new(501, "method longer than any implemented"));
        }
        if target.len() > self.limits.max_target_bytes {
            return Err(Error::new(
                414,
                "request target longer than max_target_bytes",
            ));
        }

        self.spans.clear();
        let mut content_length = None;
        let mut codings = Codings::default();
        let (mut close, mut keep, mut expect_continue) = (false, false, false);
        let mut hosts = 0u32;
        for h in req.headers.iter() {
            self.spans.push(HeaderSpan {
                name: span(buf, h.name.as_bytes()),
                value: span(buf, h.value),
            });
            if h.name.eq_ignore_ascii_case("content-length") {
                if content_length.is_some() {
                    return Err(Error::bad_request("duplicate Content-Length"));
                }
                content_length = Some(parse_content_length(h.value)?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                codings.add(h.value);
            } else if h.name.eq_ignore_ascii_case("host") {
                hosts += 1;
            } else if h.name.eq_ignore_ascii_case("expect") {
                expect_continue = trim_ows(h.value).eq_ignore_ascii_case(b"100-continue");
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',').map(trim_ows) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        // RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request
        // without Host and to any request with more than one Host field.
        if hosts > 1 {
            return Err(Error::bad_request("more than one Host field"));
        }
        if hosts == 0 && minor == 1 {
            return Err(Error::bad_request("HTTP/1.1 request without Host"));
        }

        let framing = match (codings.present, content_length) {
            (true, Some(_)) => {
                return Err(Error::bad_request(
                    "both Content-Length and Transfer-Encoding",
                ))
            }
            (true, None) if minor == 0 => {
                return Err(Error::bad_request("Transfer-Encoding in HTTP/1.0"))
            }
            (true, None) => codings.check().map(|()| Framing::Chunked)?,
            (false, Some(n)) if n > self.limits.max_body_bytes as u64 => {
                return Err(Error::new(413, "Content-Length larger than max_body_bytes"))
            }
            (false, Some(0)) | (false, None) => Framing::None,
            // n <= max_body_bytes, a usize.
            (false, Some(n)) => Framing::Length(n as usize),
        };
        let head = Head {
            len,
            method: span(buf, method.as_bytes()),
            target: span(buf, target.as_bytes()),
            minor,
            framing,
            keep_alive: if minor == 1 { !close } else { keep && !close },
            expect_continue: expect_continue && minor == 1 && framing != Framing::None,
        };
        Ok(Some((head, (method, target))))
    }
}

/// `(start, end)` of `part` inside `buf` (both from the same parse).
fn span(buf: &[u8], part: &[u8]) -> (usize, usize) {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    if part.is_empty() || part.len() > buf.len() || start > buf.len() - part.len() {
        return (0, 0); // empty values may not point into `buf`
    }
    (start, start + part.len())
}

/// What httparse does not check (bare LF), and what it does but must never slip
/// through (NUL, bare CR, obs-fold): all 400.
fn check_raw_head(head: &[u8]) -> Result<(), Error> {
    // Fast path, branch-free so it vectorizes: no NUL, every CR followed by LF,
    // every LF preceded by CR and not followed by SP/HTAB. Only a failure pays for
    // the scan below that names the problem.
    let Some((&first, _)) = head.split_first() else {
        return Ok(());
    };
    // Byte pairs (a, b) = (head[i], head[i + 1]), 16 at a time so the loop body is
    // a fixed-width vector compare, then the rest one by one.
    let bad_pair = |a: u8, b: u8| {
        (a == 0) | ((a == b'\r') ^ (b == b'\n')) | ((a == b'\n') & ((b == b' ') | (b == b'\t')))
    };
    let (a, b) = (&head[..head.len() - 1], &head[1..]);
    let mut bad = first == b'\n';
    let (mut a16, mut b16) = (a.chunks_exact(16), b.chunks_exact(16));
    for (a, b) in (&mut a16).zip(&mut b16) {
        let (a, b): (&[u8; 16], &[u8; 16]) = (a.try_into().unwrap(), b.try_into().unwrap());
        let mut any = false;
        for i in 0..16 {
            any |= bad_pair(a[i], b[i]);
        }
        bad |= any;
    }
    for (&a, &b) in a16.remainder().iter().zip(b16.remainder()) {
        bad |= bad_pair(a, b);
    }
    if !bad && head.last() == Some(&b'\n') {
        return Ok(());
    }
    for (i, &b) in head.iter().enumerate() {
        match b {
            0 => return Err(Error::bad_request("NUL byte in request head")),
            b'\r' if head.get(i + 1) != Some(&b'\n') => {
                return Err(Error::bad_request("bare CR in request head"))
            }
            b'\n' if i == 0 || head[i - 1] != b'\r' => {
                return Err(Error::bad_request("bare LF in request head"))
            }
            b'\n' if matches!(head.get(i + 1), Some(b' ' | b'\t')) => {
                return Err(Error::bad_request("obsolete line folding in request head"))
            }
            _ => {}
        }
    }
    Err(Error::bad_request("malformed line ending in request head"))
}

/// The head did not end within `max_head_bytes`: 414 if even the request line did not.
fn head_too_large(window: &[u8]) -> Error {
    let start = window
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if window[start..].contains(&b'\n') {
        Error::new(431, "request head larger than max_head_bytes")
    } else {
        Error::new(414, "request line longer than max_head_bytes")
    }
}

fn map_httparse(e: httparse::Error, window: &[u8]) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::new(431, "more header fields than max_headers"),
        httparse::Error::Version if is_unsupported_version(window) => {
            Error::new(505, "HTTP version not 1.0 or 1.1")
        }
        httparse::Error::Version => Error::bad_request("malformed HTTP version"),
        httparse::Error::HeaderName => Error::bad_request("invalid header name"),
        httparse::Error::HeaderValue => Error::bad_request("invalid header value"),
        httparse::Error::NewLine => Error::bad_request("invalid line ending"),
        _ => Error::bad_request("malformed request line"),
    }
}

/// Whether the version httparse refused is a well-formed other version (505) or
/// garbage (400). Decided by the first byte that cannot belong to `HTTP/1.0` or
/// `HTTP/1.1` (where httparse stopped), so the verdict never depends on how much
/// of the line had arrived: a digit in a version digit's place means 505.
fn is_unsupported_version(window: &[u8]) -> bool {
    let start = window
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let line = window[start..]
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    // method SP target SP version: httparse allows exactly one SP between them.
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or(&[]);
    match version.strip_prefix(b"HTTP/") {
        Some([b'1', b'.', minor, ..]) => minor.is_ascii_digit(),
        Some([b'1', ..]) => false,
        Some([major, ..]) => major.is_ascii_digit(),
        _ => false,
    }
}
