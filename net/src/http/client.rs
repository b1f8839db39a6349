//! The client side of the codec: an upstream's response head
//! ([`parse_response_head`]) and its body in pieces ([`ResponseBody`]), for a proxy
//! or any handler that talks HTTP/1.1 to a backend over [`Conn::connect`](crate::Conn::connect).
//!
//! Framing follows RFC 9112 section 6.3: no body after `HEAD`, `1xx`, `204` and `304`;
//! `Transfer-Encoding` ending in `chunked` wins over `Content-Length`; another transfer
//! coding, or neither header, means the body runs until the upstream closes. A
//! `Content-Length` that is not one number (or disagrees with a repeat) is an error:
//! the response cannot be framed safely.

use super::chunked::{Chunked, ChunkedDecoder};
use super::{Error, Limits};

/// Most header fields accepted in a response head.
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (`HEAD` request, `1xx`, `204`, `304`).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// Minor HTTP version (`HTTP/1.x`).
    pub minor: u8,
    /// Header fields in order, as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// The upstream keeps the connection open after this response.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// True for an interim (`1xx`) response other than `101`: the real one follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Why an upstream response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError(pub String);

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad upstream response: {}", self.0)
    }
}

impl std::error::Error for ResponseError {}

fn bad(what: impl Into<String>) -> ResponseError {
    ResponseError(what.into())
}

/// Parses a response head at the start of `buf`: `Ok(None)` if incomplete, else the
/// head and its length in bytes. `head_request`: the request was `HEAD` (no body).
///
/// # Errors
/// Malformed heads, more than [`MAX_RESPONSE_HEADERS`] fields, an unusable
/// `Content-Length`.
pub fn parse_response_head(
    buf: &[u8],
    head_request: bool,
) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut res = httparse::Response::new(&mut fields);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    let status = res.code.ok_or_else(|| bad("no status"))?;
    let minor = res.version.unwrap_or(1);
    let headers: Vec<(String, Vec<u8>)> = res
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect();
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut close = minor == 0;
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(value).map_err(|_| bad("Content-Length"))?;
            for part in text.split(',') {
                let n: u64 = part
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("Content-Length {text:?}")))?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad("conflicting Content-Length values"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value
                .rsplit(|&b| b == b',')
                .next()
                .map(|c| c.trim_ascii())
                .unwrap_or_default();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    close = false;
                }
            }
        }
    }
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        BodyFraming::None
    } else {
        match (chunked, length) {
            (Some(true), _) => BodyFraming::Chunked,
            (Some(false), _) => BodyFraming::Close,
            (None, Some(n)) => BodyFraming::Length(n),
            (None, None) => BodyFraming::Close,
        }
    };
    let keep_alive = !close && framing != BodyFraming::Close;
    let head = ResponseHead {
        status,
        reason: res.reason.unwrap_or("").to_string(),
        minor,
        headers,
        framing,
        keep_alive,
    };
    Ok(Some((head, len)))
}

/// A response body read in pieces, framing removed.
#[derive(Debug)]
pub struct ResponseBody {
    framing: BodyFraming,
    /// Bytes still to come for [`BodyFraming::Length`].
    left: u64,
    chunked: ChunkedDecoder,
    limits: Limits,
    done: bool,
}

/// What [`ResponseBody::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes used; drop them before the next call.
    pub consumed: usize,
    /// The body is complete.
    pub done: bool,
}

impl ResponseBody {
    /// A reader for a body framed as `framing`.
    pub fn new(framing: BodyFraming) -> ResponseBody {
        ResponseBody {
            framing,
            left: match framing {
                BodyFraming::Length(n) => n,
                _ => 0,
            },
            chunked: ChunkedDecoder::new(),
            limits: Limits::default().max_body_bytes(usize::MAX),
            done: matches!(framing, BodyFraming::None | BodyFraming::Length(0)),
        }
    }

    /// True once the whole body was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes what `input` holds, appending body bytes to `out`.
    ///
    /// # Errors
    /// Malformed chunked coding.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Fed, Error> {
        if self.done {
            return Ok(Fed {
                consumed: 0,
                done: true,
            });
        }
        let consumed = match self.framing {
            BodyFraming::None => 0,
            BodyFraming::Close => {
                out.extend_from_slice(input);
                input.len()
            }
            BodyFraming::Length(_) => {
                let take = input
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                self.left -= take as u64;
                self.done = self.left == 0;
                take
            }
            BodyFraming::Chunked => {
                let status = self.chunked.feed(input, out, &self.limits)?;
                let used = self.chunked.take_pos();
                if let Chunked::Complete(_) = status {
                    self.done = true;
                }
                used
            }
        };
        Ok(Fed {
            consumed,
            done: self.done,
        })
    }

    /// The upstream closed: true if that ends the body properly (close-delimited, or
    /// already complete); false if the body was cut short.
    pub fn on_eof(&mut self) -> bool {
        if self.framing == BodyFraming::Close {
            self.done = true;
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, head_req: bool) -> (ResponseHead, usize) {
        parse_response_head(raw.as_bytes(), head_req)
            .unwrap()
            .expect("complete")
    }

    #[test]
    fn framing_rules() {
        let (h, n) = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
        assert_eq!(
            (h.framing, n, h.keep_alive),
            (BodyFraming::Length(5), 38, true)
        );
        let (h, _) = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, BodyFraming::Chunked);
        let (h, _) = head("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Close, false));
        let (h, _) = head(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, BodyFraming::None);
        let (h, _) = head("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert_eq!(h.framing, BodyFraming::None);
        let (h, _) = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!h.keep_alive);
        let (h, _) = head("HTTP/1.1 100 Continue\r\n\r\n", false);
        assert!(h.is_interim());
        assert!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", false).is_err()
        );
        assert!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err()
        );
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-", false)
            .unwrap()
            .is_none());
        assert!(parse_response_head(b"garbage\r\n\r\n", false).is_err());
    }

    #[test]
    fn chunked_body_in_pieces() {
        let wire = b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 1..wire.len() {
            let mut b = ResponseBody::new(BodyFraming::Chunked);
            let mut out = Vec::new();
            let mut buf = wire[..split].to_vec();
            let mut rest = &wire[split..];
            loop {
                let fed = b.feed(&buf, &mut out).unwrap();
                buf.drain(..fed.consumed);
                if fed.done {
                    break;
                }
                assert!(!rest.is_empty(), "split {split}: body not done");
                buf.push(rest[0]);
                rest = &rest[1..];
            }
            buf.extend_from_slice(rest);
            assert_eq!(out, b"hello world", "split {split}");
            assert_eq!(buf, b"NEXT", "split {split}");
        }
    }

    #[test]
    fn length_body_and_eof() {
        let mut b = ResponseBody::new(BodyFraming::Length(4));
        let mut out = Vec::new();
        let fed = b.feed(b"abcdef", &mut out).unwrap();
        assert_eq!((fed.consumed, fed.done, &out[..]), (4, true, &b"abcd"[..]));
        let mut cut = ResponseBody::new(BodyFraming::Length(4));
        cut.feed(b"ab", &mut out).unwrap();
        assert!(!cut.on_eof(), "a short body is not complete");
        let mut close = ResponseBody::new(BodyFraming::Close);
        close.feed(b"xyz", &mut out).unwrap();
        assert!(close.on_eof());
    }
}
