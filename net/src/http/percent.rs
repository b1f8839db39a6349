//! Percent-decoding of request path segments (RFC 3986 2.1), shared by the router's
//! path parameters and the file server.
//!
//! A path is split at `/` first and each segment decoded on its own, so an encoded
//! slash (`%2F`) is a byte of a segment, never a separator. What a decoded `/` means
//! is the caller's choice: a `:name` parameter keeps it (the value is one segment),
//! a `*rest` catch-all and the file server refuse it.

use std::borrow::Cow;

/// Why a path segment could not be decoded; every one is answered `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%00`: a NUL byte, which no name may hold.
    Nul,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// `%2F` in a path of several segments (a `*rest` value, a file path): decoded,
    /// it could not be told from a separator.
    EncodedSlash,
}

impl DecodeError {
    /// A short text for the 400 body.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::BadEscape => "invalid percent-encoding in the path",
            DecodeError::Nul => "an encoded NUL (%00) in the path",
            DecodeError::NotUtf8 => "the decoded path is not UTF-8",
            DecodeError::EncodedSlash => "an encoded slash (%2F) inside a path segment",
        }
    }
}

/// Decodes one segment (or any string without separators): `%XX` becomes the byte
/// `XX`; `+` stays `+` (it means a space only in a query). Borrows when there is no
/// `%`.
///
/// # Errors
///
/// [`DecodeError`] for a bad escape, a decoded NUL or bytes that are not UTF-8.
pub fn decode_segment(seg: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !seg.contains('%') {
        return Ok(Cow::Borrowed(seg));
    }
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = |at: usize| {
            b.get(at)
                .and_then(|&c| (c as char).to_digit(16))
                .ok_or(DecodeError::BadEscape)
        };
        let byte = (hex(i + 1)? * 16 + hex(i + 2)?) as u8;
        if byte == 0 {
            return Err(DecodeError::Nul);
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::NotUtf8)
}

/// Decodes every `/`-separated segment of `path` and joins them with `/` again.
///
/// # Errors
///
/// As [`decode_segment`], for the first segment that fails; and
/// [`DecodeError::EncodedSlash`] when a segment decodes to a string holding `/`:
/// the result would hide a separator that was not one.
pub fn decode_segments(path: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !path.contains('%') {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let d = decode_segment(seg)?;
        if d.contains('/') {
            return Err(DecodeError::EncodedSlash);
        }
        out.push_str(&d);
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode_and_borrow_when_plain() {
        assert!(matches!(decode_segment("abc"), Ok(Cow::Borrowed("abc"))));
        assert_eq!(decode_segment("a%20b").unwrap(), "a b");
        assert_eq!(decode_segment("%e2%82%AC").unwrap(), "\u{20ac}");
        assert_eq!(decode_segment("a%2Fb").unwrap(), "a/b");
        assert_eq!(decode_segment("a+b").unwrap(), "a+b");
        assert_eq!(decode_segment("%25").unwrap(), "%");
    }

    #[test]
    fn bad_segments_are_refused() {
        for (s, e) in [
            ("%", DecodeError::BadEscape),
            ("a%4", DecodeError::BadEscape),
            ("%zz", DecodeError::BadEscape),
            ("%+1", DecodeError::BadEscape),
            ("a%00b", DecodeError::Nul),
            ("%ff", DecodeError::NotUtf8),
            ("%c3", DecodeError::NotUtf8),
        ] {
            assert_eq!(decode_segment(s), Err(e), "{s}");
        }
    }

    #[test]
    fn paths_decode_per_segment() {
        assert_eq!(decode_segments("/a%20b/c").unwrap(), "/a b/c");
        assert_eq!(decode_segments("/a/%2e%2e/c").unwrap(), "/a/../c");
        assert_eq!(decode_segments("/a%2Fb"), Err(DecodeError::EncodedSlash));
        assert_eq!(decode_segments("/a%2fb/c"), Err(DecodeError::EncodedSlash));
        assert_eq!(decode_segments("/a/%zz"), Err(DecodeError::BadEscape));
        assert!(matches!(decode_segments("/plain/x"), Ok(Cow::Borrowed(_))));
    }
}
