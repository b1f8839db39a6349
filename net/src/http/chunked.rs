//! Incremental decoder for `Transfer-Encoding: chunked` request bodies
//! (RFC 9112 section 7.1).
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! The decoder is resumable: it remembers how far into the body bytes it got, and the
//! caller feeds it the same bytes again, extended, after a `Partial`. Chunk data is
//! copied into the caller's `Vec` as it arrives; trailers are checked and dropped.

use super::fields::is_token;
use super::{Error, Limits};

/// Longest chunk-size line (size, extensions, CRLF) we accept.
const MAX_SIZE_LINE: usize = 1024;
const TOO_LONG: Error = Error::bad_request("chunk-size line too long");
const TRAILERS_TOO_LARGE: Error = Error::new(431, "trailer section larger than max_head_bytes");

/// Where the decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line at `pos`.
    Size,
    /// Inside chunk data; this many bytes of it are still to come.
    Data(u64),
    /// Chunk data done; expecting its CRLF at `pos`.
    DataEnd,
    /// After the last chunk: trailer lines until an empty line.
    Trailers,
}

/// Outcome of one [`ChunkedDecoder::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// More bytes are needed.
    Partial,
    /// The body ended; this many bytes of the input belonged to it.
    Complete(usize),
}

/// Resumable chunked-body decoder.
///
/// INVARIANT: `pos` is an offset into the body bytes the caller feeds, which must
/// start with the same bytes on every call until `Complete` or an error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkedDecoder {
    state: State,
    pos: usize,
    /// Decoded body bytes so far (checked against `max_body_bytes`).
    body_len: u64,
    /// Trailer bytes and fields so far (checked against the head limits).
    trailer_bytes: usize,
    trailer_fields: usize,
}

impl ChunkedDecoder {
    pub(crate) const fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            pos: 0,
            body_len: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
        }
    }

    /// For streaming: the input bytes decoded so far, which the caller may now drop;
    /// the next [`feed`](Self::feed) starts at the new front of the input.
    pub(crate) fn take_pos(&mut self) -> usize {
        std::mem::take(&mut self.pos)
    }

    /// Decodes what `input` (the bytes after the request head) holds, appending
    /// chunk data to `out`.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limits: &Limits,
    ) -> Result<Chunked, Error> {
        loop {
            let rest = &input[self.pos..];
            match self.state {
                State::Size => {
                    let Some((line, used)) = take_line(rest, MAX_SIZE_LINE, TOO_LONG)? else {
                        return Ok(Chunked::Partial);
                    };
                    let size = parse_size_line(line)?;
                    let max = limits.max_body_bytes as u64;
                    if size > max.saturating_sub(self.body_len) {
                        return Err(Error::new(413, "chunked body larger than max_body_bytes"));
                    }
                    self.pos += used;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(remaining) => {
                    if rest.is_empty() {
                        return Ok(Chunked::Partial);
                    }
                    let take = rest
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..take]);
                    self.pos += take;
                    self.body_len += take as u64;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => match rest {
                    [] | [b'\r'] => return Ok(Chunked::Partial),
                    [b'\r', b'\n', ..] => {
                        self.pos += 2;
                        self.state = State::Size;
                    }
                    _ => return Err(Error::bad_request("chunk data not followed by CRLF")),
                },
                State::Trailers => {
                    let budget = limits.max_head_bytes.saturating_sub(self.trailer_bytes);
                    let Some((line, used)) = take_line(rest, budget, TRAILERS_TOO_LARGE)? else {
                        return Ok(Chunked::Partial);
                    };
                    self.pos += used;
                    if line.is_empty() {
                        return Ok(Chunked::Complete(self.pos));
                    }
                    self.trailer_bytes += used;
                    self.trailer_fields += 1;
                    if self.trailer_fields > limits.max_headers {
                        return Err(Error::new(431, "too many trailer fields"));
                    }
                    check_trailer_line(line)?;
                }
            }
        }
    }
}

/// Splits one CRLF-terminated line off `input`: `Ok(None)` if no LF yet (and the
/// line may still fit), else the line without its CRLF and the bytes it used.
fn take_line(input: &[u8], max: usize, too_long: Error) -> Result<Option<(&[u8], usize)>, Error> {
    let window = &input[..input.len().min(max)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if input.len() >= max {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    match lf.checked_sub(1).map(|cr| input[cr]) {
        Some(b'\r') => Ok(Some((&input[..lf - 1], lf + 1))),
        _ => Err(Error::bad_request("bare LF in chunked body")),
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then nothing or `;` extensions (ignored).
fn parse_size_line(line: &[u8]) -> Result<u64, Error> {
    let mut size: u64 = 0;
    let mut digits = 0;
    while let Some(d) = line.get(digits).and_then(|&b| hex_value(b)) {
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or(Error::bad_request("chunk size overflows"))?;
        digits += 1;
    }
    if digits == 0 {
        return Err(Error::bad_request("chunk size is not hexadecimal"));
    }
    let after = &line[digits..];
    if after.is_empty() {
        return Ok(size);
    }
    // BWS ";" chunk-ext: the extensions themselves are ignored, but must be printable.
    let ext = &after[after
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    let printable = |&b: &u8| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
    if ext.first() == Some(&b';') && ext.iter().all(printable) {
        Ok(size)
    } else {
        Err(Error::bad_request("invalid chunk size line"))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A trailer field: `token ":" value`, no folding, no control bytes but HTAB.
fn check_trailer_line(line: &[u8]) -> Result<(), Error> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(Error::bad_request("trailer line without ':'"));
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return Err(Error::bad_request("invalid trailer field name"));
    }
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Error::bad_request("invalid byte in trailer value"));
    }
    Ok(())
}
