//! Shared pieces of the benchmark package: the plaintext response every HTTP peer
//! sends (byte for byte what ringcore's `/plaintext` sends) and request framing for the
//! hand-rolled peers.

#![warn(missing_docs)]

pub mod tokio_peer;

use std::time::{SystemTime, UNIX_EPOCH};

/// The body of `/plaintext`.
pub const PLAINTEXT_BODY: &[u8] = b"Hello, World!";

/// Bytes before the date in a plaintext response.
const HEAD_BEFORE_DATE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: ringcore\r\nDate: ";
/// Bytes after the date, body included.
const HEAD_AFTER_DATE: &[u8] =
    b"\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

/// Length of one plaintext response.
pub const PLAINTEXT_RESPONSE_LEN: usize = HEAD_BEFORE_DATE.len() + 29 + HEAD_AFTER_DATE.len();

/// A per-thread cache of the rendered plaintext response; the date is re-rendered at
/// most once per second.
pub struct PlaintextCache {
    secs: u64,
    response: Vec<u8>,
}

impl Default for PlaintextCache {
    fn default() -> Self {
        Self::new()
    }
}

impl PlaintextCache {
    /// A cache rendered for now.
    pub fn new() -> Self {
        let mut c = PlaintextCache {
            secs: u64::MAX,
            response: Vec::with_capacity(PLAINTEXT_RESPONSE_LEN),
        };
        c.refresh();
        c
    }

    /// Re-renders the date if the second changed; returns the response bytes.
    pub fn refresh(&mut self) -> &[u8] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.secs = secs;
            self.response.clear();
            self.response.extend_from_slice(HEAD_BEFORE_DATE);
            self.response
                .extend_from_slice(&ringcore::http::format_http_date(secs));
            self.response.extend_from_slice(HEAD_AFTER_DATE);
        }
        &self.response
    }
}

/// Counts the complete requests (`\r\n\r\n`-terminated heads, no bodies: the peers
/// only serve GET) at the start of `buf`; returns (requests, bytes they use).
pub fn split_requests(buf: &[u8]) -> (usize, usize) {
    let mut n = 0;
    let mut used = 0;
    let mut from = 0;
    while let Some(end) = find_head_end(&buf[from..]) {
        n += 1;
        used = from + end;
        from = used;
    }
    (n, used)
}

/// Offset just past the first `\r\n\r\n` in `buf`.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 4 <= buf.len() {
        // Jump to the next '\n' (memchr-like; the heads here are small).
        match buf[i + 3..].iter().position(|&b| b == b'\n') {
            None => return None,
            Some(p) => {
                let j = i + 3 + p; // buf[j] == '\n'
                if j >= 3 && &buf[j - 3..=j] == b"\r\n\r\n" {
                    return Some(j + 1);
                }
                i = j - 2;
            }
        }
    }
    None
}

/// Which protocol a peer server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerMode {
    /// Every byte received is sent back.
    Echo,
    /// Every `\r\n\r\n`-terminated request is answered with the plaintext response.
    Http,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pipelined_heads() {
        let r = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut b = Vec::new();
        for _ in 0..3 {
            b.extend_from_slice(r);
        }
        b.extend_from_slice(b"GET / HT");
        assert_eq!(split_requests(&b), (3, r.len() * 3));
        assert_eq!(split_requests(b"\r\n\r\n"), (1, 4));
        assert_eq!(split_requests(b"\r\n\r"), (0, 0));
        assert_eq!(find_head_end(b"a\r\n\r\nb"), Some(5));
        assert_eq!(find_head_end(b"\n\n\r\n\r\n"), Some(6));
    }

    #[test]
    fn response_matches_ringcore_layout() {
        let mut c = PlaintextCache::new();
        let r = c.refresh().to_vec();
        assert_eq!(r.len(), PLAINTEXT_RESPONSE_LEN);
        assert!(r.starts_with(b"HTTP/1.1 200 OK\r\nServer: ringcore\r\nDate: "));
        assert!(r.ends_with(b"Content-Length: 13\r\n\r\nHello, World!"));
    }
}
