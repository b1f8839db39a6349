//! `Range: bytes=...` (RFC 9110 section 14) and `multipart/byteranges` bodies.
//!
//! One satisfiable range is a plain 206. Several are a `multipart/byteranges` 206,
//! parts in the order asked, unless they overlap or there are more than
//! [`MAX_RANGES`] of them: then the whole file is sent (200), as nginx does when the
//! parts would add up to more than the file. A header that does not parse is ignored
//! (200); one whose ranges all start past the end is 416.

use std::fmt::Write as _;

/// Most byte ranges served as parts of one response; a `Range` listing more gets
/// the whole file (200). Caps the work and the dup'ed file descriptors per request.
pub const MAX_RANGES: usize = 16;

/// A `Range` header interpreted against a file of a known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Send the whole file (no range, a range that does not parse, overlapping
    /// ranges, or more than [`MAX_RANGES`]).
    Full,
    /// One range: `start..end` (end exclusive), a plain 206.
    One(u64, u64),
    /// Several disjoint ranges, in the order asked: `multipart/byteranges`.
    Many(Vec<(u64, u64)>),
    /// No range overlaps the file: 416.
    Unsatisfiable,
}

/// One range spec: `Some(Some(range))`, `Some(None)` when it lies past the end, `None`
/// when it does not parse.
fn one_spec(spec: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let (a, b) = spec.split_once('-')?;
    let num = |x: &str| -> Option<u64> {
        if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            x.parse().ok()
        }
    };
    Some(match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix)? {
            n if n > 0 && len > 0 => Some((len.saturating_sub(n), len)),
            _ => None,
        },
        (start, "") => Some(num(start)?).filter(|&s| s < len).map(|s| (s, len)),
        (start, end) => {
            let (s, e) = (num(start)?, num(end)?);
            if s > e {
                return None;
            }
            (s < len).then(|| (s, e.saturating_add(1).min(len)))
        }
    })
}

/// Interprets a `Range` header value against a file of `len` bytes.
pub fn parse_ranges(v: &[u8], len: u64) -> Ranges {
    let Ok(s) = std::str::from_utf8(v) else {
        return Ranges::Full;
    };
    let s = s.trim();
    let Some(spec) = s
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &s[6..])
    else {
        return Ranges::Full;
    };
    let mut found = Vec::new();
    let mut specs = 0;
    // Empty list elements (`0-1,,5-9`) are allowed and skipped (RFC 9110 5.6.1).
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        specs += 1;
        if specs > MAX_RANGES {
            return Ranges::Full;
        }
        match one_spec(item, len) {
            None => return Ranges::Full,
            Some(Some(r)) => found.push(r),
            Some(None) => {}
        }
    }
    match found.len() {
        0 if specs == 0 => Ranges::Full,
        0 => Ranges::Unsatisfiable,
        1 => Ranges::One(found[0].0, found[0].1),
        _ => {
            let mut sorted = found.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[1].0 < w[0].1) {
                Ranges::Full
            } else {
                Ranges::Many(found)
            }
        }
    }
}

/// A `multipart/byteranges` body laid out before anything is sent, so its
/// `Content-Length` is exact: each part is its head (delimiter, `Content-Type`,
/// `Content-Range`) then file bytes; a closing delimiter ends it.
#[derive(Debug)]
pub struct Multipart {
    /// The boundary (without the leading `--`).
    pub boundary: String,
    /// Per part: its head, and the file range `(offset, len)` that follows it.
    pub parts: Vec<(Vec<u8>, u64, u64)>,
    /// The closing delimiter.
    pub trailer: Vec<u8>,
}

impl Multipart {
    /// Lays out `ranges` of a file of `len` bytes with content type `ctype`,
    /// separated by `boundary`.
    pub fn new(ranges: &[(u64, u64)], len: u64, ctype: &str, boundary: String) -> Multipart {
        let parts = ranges
            .iter()
            .map(|&(start, end)| {
                let mut h = String::with_capacity(96 + boundary.len());
                let _ = write!(
                    h,
                    "\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {start}-{}/{len}\r\n\r\n",
                    end - 1
                );
                (h.into_bytes(), start, end - start)
            })
            .collect();
        let trailer = format!("\r\n--{boundary}--\r\n").into_bytes();
        Multipart {
            boundary,
            parts,
            trailer,
        }
    }

    /// The body's length: every part head, part and the trailer.
    pub fn content_length(&self) -> u64 {
        self.parts
            .iter()
            .map(|(h, _, n)| h.len() as u64 + n)
            .sum::<u64>()
            + self.trailer.len() as u64
    }
}

/// A boundary unlikely to occur in a file: 16 hex digits from a per-thread counter
/// mixed with the time (splitmix64), so two responses never share one.
pub fn boundary() -> String {
    use std::cell::Cell;
    thread_local! {
        static NEXT: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        );
    }
    let mut z = NEXT.with(|n| {
        let v = n.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        n.set(v);
        v
    });
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", z ^ (z >> 31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        use Ranges::*;
        assert_eq!(parse_ranges(b"bytes=0-9", 100), One(0, 10));
        assert_eq!(parse_ranges(b"bytes=90-", 100), One(90, 100));
        assert_eq!(parse_ranges(b"bytes=-5", 100), One(95, 100));
        assert_eq!(parse_ranges(b"bytes=-500", 100), One(0, 100));
        assert_eq!(parse_ranges(b"bytes=50-1000", 100), One(50, 100));
        assert_eq!(parse_ranges(b"Bytes=0-0", 100), One(0, 1));
        assert_eq!(parse_ranges(b"bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_ranges(b"bytes=200-300", 100), Unsatisfiable);
        assert_eq!(parse_ranges(b"items=0-1", 100), Full);
        assert_eq!(parse_ranges(b"bytes=9-1", 100), Full);
        assert_eq!(parse_ranges(b"bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_ranges(b"bytes=", 100), Full);
        assert_eq!(parse_ranges(b"bytes=0-1;x", 100), Full);
    }

    #[test]
    fn several_ranges() {
        use Ranges::*;
        assert_eq!(
            parse_ranges(b"bytes=0-1,5-9", 100),
            Many(vec![(0, 2), (5, 10)])
        );
        assert_eq!(
            parse_ranges(b"bytes=50-59, 0-1", 100),
            Many(vec![(50, 60), (0, 2)]),
            "order kept"
        );
        assert_eq!(
            parse_ranges(b"bytes=0-1,,2-3", 100),
            Many(vec![(0, 2), (2, 4)])
        );
        assert_eq!(
            parse_ranges(b"bytes=0-1,200-300", 100),
            One(0, 2),
            "one left"
        );
        assert_eq!(parse_ranges(b"bytes=200-,300-", 100), Unsatisfiable);
        assert_eq!(parse_ranges(b"bytes=0-5,3-9", 100), Full, "overlap");
        assert_eq!(parse_ranges(b"bytes=0-1,x", 100), Full, "one bad spec");
        let many = (0..17)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect::<Vec<_>>();
        assert_eq!(
            parse_ranges(format!("bytes={}", many.join(",")).as_bytes(), 100),
            Full
        );
        let sixteen = (0..16)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect::<Vec<_>>();
        assert!(matches!(
            parse_ranges(format!("bytes={}", sixteen.join(",")).as_bytes(), 100),
            Many(v) if v.len() == 16
        ));
    }

    /// Found by `fuzz/fuzz_targets/static_files.rs`: `e + 1` overflows (a panic with
    /// debug assertions; in release an end before the start, then `end - start` wraps
    /// into a huge `Content-Length`). Fixed: the end saturates.
    #[test]
    fn range_end_at_u64_max() {
        let max = u64::MAX;
        assert_eq!(
            parse_ranges(format!("bytes=5-{max}").as_bytes(), 100),
            Ranges::One(5, 100)
        );
        assert_eq!(
            parse_ranges(format!("bytes=0-{max}").as_bytes(), 0),
            Ranges::Unsatisfiable
        );
    }

    #[test]
    fn multipart_length_is_exact() {
        let m = Multipart::new(&[(0, 2), (5, 10)], 100, "text/plain", "B".into());
        let mut body = Vec::new();
        let file: Vec<u8> = (0..100u8).collect();
        for (h, off, n) in &m.parts {
            body.extend_from_slice(h);
            body.extend_from_slice(&file[*off as usize..(*off + *n) as usize]);
        }
        body.extend_from_slice(&m.trailer);
        assert_eq!(body.len() as u64, m.content_length());
        assert!(body.starts_with(b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/100\r\n\r\n\x00\x01\r\n--B\r\n"));
        assert!(body.ends_with(b"\x09\r\n--B--\r\n"));
        assert_ne!(boundary(), boundary());
    }
}
