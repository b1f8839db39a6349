//! The header fields that decide framing: `Content-Length` and `Transfer-Encoding`
//! values, and the token / OWS grammar they share.

use super::Error;

/// One `Content-Length` value: digits only (OWS around them trimmed), no sign, no
/// list, no overflow; anything else is 400.
pub(crate) fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::bad_request("malformed Content-Length"));
    }
    digits
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(Error::bad_request("Content-Length overflows"))
}

/// The transfer codings named by all `Transfer-Encoding` fields, in order.
#[derive(Debug, Default)]
pub(crate) struct Codings {
    pub(crate) present: bool,
    chunked: bool,
    chunked_last: bool,
    unknown: bool,
    malformed: bool,
}

impl Codings {
    pub(crate) fn add(&mut self, value: &[u8]) {
        self.present = true;
        for coding in value.split(|&b| b == b',').map(trim_ows) {
            if coding.is_empty() || !coding.iter().all(|&b| is_token(b)) {
                self.malformed = true;
            } else if coding.eq_ignore_ascii_case(b"chunked") {
                self.malformed |= self.chunked; // repeated
                self.chunked = true;
                self.chunked_last = true;
            } else {
                self.unknown = true;
                self.chunked_last = false;
            }
        }
    }

    /// Only a single, final `chunked` is accepted.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.malformed {
            Err(Error::bad_request("malformed Transfer-Encoding"))
        } else if self.chunked && !self.chunked_last {
            Err(Error::bad_request(
                "chunked is not the final transfer coding",
            ))
        } else if self.unknown {
            Err(Error::new(501, "unsupported transfer coding"))
        } else {
            Ok(())
        }
    }
}

/// `tchar` of RFC 9110 section 5.6.2.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}
