//! Response rendering into a caller-owned `Vec<u8>` (the connection's write queue).
//!
//! ```text
//! HTTP/1.1 200 OK\r\n
//! Server: ringcore\r\n
//! Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n
//! Content-Type: text/plain\r\n            (if set)
//! Content-Length: 13\r\n                  (not for 1xx, 204, 304)
//! Connection: close\r\n                   (when closing; "keep-alive" for HTTP/1.0)
//! <extra header fields>\r\n
//! \r\n
//! Hello, World!                           (not for HEAD, 1xx, 204, 304)
//! ```

use super::{DateCache, Error};

/// What rendering a response needs to know about the request it answers; get it
/// from [`Request::reply`](super::Request::reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The request was `HEAD`: send the headers (with the `Content-Length` the body
    /// would have) but not the body.
    pub head: bool,
    /// The connection stays open after this response; `false` adds
    /// `Connection: close`.
    pub keep_alive: bool,
    /// The request's minor version; HTTP/1.0 keep-alive needs
    /// `Connection: keep-alive` echoed.
    pub minor: u8,
}

impl Default for Reply {
    /// A non-HEAD HTTP/1.1 request on a kept-alive connection.
    fn default() -> Self {
        Reply {
            head: false,
            keep_alive: true,
            minor: 1,
        }
    }
}

/// A response under construction, reusable across requests ([`Response::clear`]
/// keeps the buffers' capacity, so a steady connection allocates nothing).
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    content_type: Option<&'static str>,
    /// Extra header fields, already rendered as `Name: value\r\n`.
    fields: Vec<u8>,
    body: Vec<u8>,
    close: bool,
}

impl Default for Response {
    fn default() -> Self {
        Response::new()
    }
}

impl Response {
    /// An empty `200 OK` response.
    pub fn new() -> Self {
        Response {
            status: 200,
            content_type: None,
            fields: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// Back to an empty `200 OK`, keeping allocated capacity.
    pub fn clear(&mut self) {
        self.status = 200;
        self.content_type = None;
        self.fields.clear();
        self.body.clear();
        self.close = false;
    }

    /// The status code (default 200).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Sets the status code.
    pub fn set_status(&mut self, status: u16) -> &mut Self {
        self.status = status;
        self
    }

    /// Sets the `Content-Type` field.
    pub fn set_content_type(&mut self, content_type: &'static str) -> &mut Self {
        self.content_type = Some(content_type);
        self
    }

    /// Adds a header field. A name that is not a token, or a value holding CR, LF
    /// or NUL, is ignored (it would let the value forge fields: response splitting).
    /// Do not add `Content-Length`, `Date`, `Server` or `Connection`: they are
    /// rendered from the response and the request.
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let name_ok = !name.is_empty() && name.bytes().all(super::fields::is_token);
        if name_ok && !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
            self.fields.extend_from_slice(name.as_bytes());
            self.fields.extend_from_slice(b": ");
            self.fields.extend_from_slice(value);
            self.fields.extend_from_slice(b"\r\n");
        }
        self
    }

    /// The body so far.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body buffer, to write into directly.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// Replaces the body with a copy of `body`.
    pub fn set_body(&mut self, body: &[u8]) -> &mut Self {
        self.body.clear();
        self.body.extend_from_slice(body);
        self
    }

    /// Closes the connection after this response, whatever the request asked.
    pub fn set_close(&mut self) -> &mut Self {
        self.close = true;
        self
    }

    /// Appends the rendered response to `out`. Returns whether the connection stays
    /// open (the request allowed it and [`Response::set_close`] was not called).
    pub fn write_to(&self, out: &mut Vec<u8>, date: &DateCache, reply: Reply) -> bool {
        let reply = Reply {
            keep_alive: reply.keep_alive && !self.close,
            ..reply
        };
        render(
            out,
            date,
            reply,
            self.status,
            self.content_type,
            &self.fields,
            &self.body,
        );
        reply.keep_alive
    }
}

/// Appends a complete response with `body` to `out`: the allocation-free path for
/// fixed answers such as `GET /plaintext`. Returns `reply.keep_alive`.
///
/// ```
/// # use ringcore_net::http::{write_response, DateCache, Reply};
/// # use std::time::SystemTime;
/// let (mut out, date) = (Vec::new(), DateCache::new(SystemTime::UNIX_EPOCH));
/// write_response(&mut out, &date, Reply::default(), 200, "text/plain", b"Hello, World!");
/// assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nServer: ringcore\r\nDate: Thu, 01 Jan 1970"));
/// assert!(out.ends_with(b"Content-Length: 13\r\n\r\nHello, World!"));
/// ```
pub fn write_response(
    out: &mut Vec<u8>,
    date: &DateCache,
    reply: Reply,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> bool {
    render(out, date, reply, status, Some(content_type), &[], body);
    reply.keep_alive
}

/// Appends the response for a codec error: its status, a one-line `text/plain`
/// body and `Connection: close`. Close the connection once it is sent.
pub fn write_error(out: &mut Vec<u8>, date: &DateCache, error: &Error) {
    let status = error.status();
    let mut body = [0u8; 64];
    let mut len = 0;
    for part in [
        itoa(u64::from(status)).as_bytes(),
        b" ",
        reason_phrase(status).as_bytes(),
        b"\n",
    ] {
        body[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    let reply = Reply {
        head: false,
        keep_alive: false,
        minor: 1,
    };
    render(
        out,
        date,
        reply,
        status,
        Some("text/plain; charset=utf-8"),
        &[],
        &body[..len],
    );
}

/// Appends the response; returns the offset in `out` of its `Date` value.
pub(super) fn render(
    out: &mut Vec<u8>,
    date: &DateCache,
    reply: Reply,
    status: u16,
    content_type: Option<&str>,
    fields: &[u8],
    body: &[u8],
) -> usize {
    // 1xx, 204 and 304 never carry a body, nor (here) a Content-Length.
    let bodiless = status < 200 || status == 204 || status == 304;
    let content_type = content_type.map(str::as_bytes);
    let length = body.len();
    let body = if reply.head || bodiless {
        &[][..]
    } else {
        body
    };
    // One reservation for the whole response: the fixed parts take < 160 bytes.
    out.reserve(160 + content_type.map_or(0, <[u8]>::len) + fields.len() + body.len());
    match status_head(status) {
        Some(line) => out.extend_from_slice(line),
        None => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(itoa(u64::from(status)).as_bytes());
            out.extend_from_slice(b" Unknown\r\nServer: ringcore\r\nDate: ");
        }
    }
    let date_at = out.len();
    out.extend_from_slice(date.as_bytes());
    if let Some(content_type) = content_type {
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(content_type);
    }
    if !bodiless {
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(itoa(length as u64).as_bytes());
    }
    if !reply.keep_alive {
        out.extend_from_slice(b"\r\nConnection: close");
    } else if reply.minor == 0 {
        out.extend_from_slice(b"\r\nConnection: keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    if !fields.is_empty() {
        out.extend_from_slice(fields);
    }
    out.extend_from_slice(b"\r\n");
    if !body.is_empty() {
        out.extend_from_slice(body);
    }
    date_at
}

/// Decimal digits of `n` without allocating (a 20-byte stack buffer).
struct Itoa {
    buf: [u8; 20],
    start: usize,
}

impl Itoa {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa(mut n: u64) -> Itoa {
    let mut out = Itoa {
        buf: [0; 20],
        start: 20,
    };
    loop {
        out.start -= 1;
        out.buf[out.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return out;
        }
    }
}

/// The status table: [`reason_phrase`] and, for the same codes, [`status_head`].
macro_rules! statuses {
    ($($code:literal => $reason:literal,)*) => {
        /// The reason phrase for `status` ("Unknown" for codes not listed).
        pub fn reason_phrase(status: u16) -> &'static str {
            match status {
                $($code => $reason,)*
                _ => "Unknown",
            }
        }

        /// The status line, `Server` field and `Date` name for a listed `status`:
        /// everything before the date, in one copy.
        fn status_head(status: u16) -> Option<&'static [u8]> {
            match status {
                $($code => Some(concat!(
                    "HTTP/1.1 ", $code, " ", $reason, "\r\nServer: ringcore\r\nDate: "
                ).as_bytes()),)*
                _ => None,
            }
        }
    };
}

statuses! {
    100 => "Continue",
    101 => "Switching Protocols",
    200 => "OK",
    201 => "Created",
    202 => "Accepted",
    204 => "No Content",
    206 => "Partial Content",
    301 => "Moved Permanently",
    302 => "Found",
    303 => "See Other",
    304 => "Not Modified",
    307 => "Temporary Redirect",
    308 => "Permanent Redirect",
    400 => "Bad Request",
    401 => "Unauthorized",
    403 => "Forbidden",
    404 => "Not Found",
    405 => "Method Not Allowed",
    408 => "Request Timeout",
    409 => "Conflict",
    411 => "Length Required",
    412 => "Precondition Failed",
    413 => "Content Too Large",
    414 => "URI Too Long",
    415 => "Unsupported Media Type",
    416 => "Range Not Satisfiable",
    417 => "Expectation Failed",
    426 => "Upgrade Required",
    429 => "Too Many Requests",
    431 => "Request Header Fields Too Large",
    500 => "Internal Server Error",
    501 => "Not Implemented",
    502 => "Bad Gateway",
    503 => "Service Unavailable",
    504 => "Gateway Timeout",
    505 => "HTTP Version Not Supported",
}

#[cfg(test)]
mod itoa_tests {
    #[test]
    fn itoa_renders_decimal() {
        for n in [0u64, 7, 10, 99, 100, 65535, u64::MAX] {
            assert_eq!(super::itoa(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn status_heads_match_reason_phrases() {
        for status in 100..600 {
            if let Some(head) = super::status_head(status) {
                let want = format!(
                    "HTTP/1.1 {status} {}\r\nServer: ringcore\r\nDate: ",
                    super::reason_phrase(status)
                );
                assert_eq!(head, want.as_bytes());
            } else {
                assert_eq!(super::reason_phrase(status), "Unknown");
            }
        }
    }
}
