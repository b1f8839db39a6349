//! Validators and preconditions (RFC 9110 section 8.8 and 13): the strong `ETag`,
//! `Last-Modified`, and how `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` and `If-Range` are evaluated against them ([`Precondition`]
//! holds the RFC 9110 13.2.2 order).
//!
//! The `ETag` of a file is `"<inode>-<size>-<mtime seconds>.<mtime nanoseconds>"`
//! (hex): it changes when the file is rewritten in place (size or mtime), and when it
//! is replaced by a rename (inode). It is strong: a server restart or another worker
//! computes the same tag for the same bytes. A precompressed sibling (`.gz`, `.br`) is
//! a different file, so its representation has its own tag.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// The strong entity tag of a file, quotes included (see the module docs).
pub fn etag(meta: &Metadata) -> String {
    format!(
        "\"{:x}-{:x}-{:x}.{:x}\"",
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

/// The file's modification time in whole seconds since the epoch (0 before it), the
/// resolution of `Last-Modified`.
pub fn mtime_secs(meta: &Metadata) -> u64 {
    u64::try_from(meta.mtime()).unwrap_or(0)
}

/// One entity tag of a list: whether it is weak, and its opaque tag with quotes.
fn next_tag(s: &[u8]) -> Option<(bool, &[u8], &[u8])> {
    let s = s.trim_ascii_start();
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if s.first() != Some(&b'"') {
        return None;
    }
    let end = 1 + s[1..].iter().position(|&c| c == b'"')?;
    Some((weak, &s[..=end], &s[end + 1..]))
}

/// Whether an entity-tag list (all its field lines, in order) is `*` or lists a tag
/// for which `hit(weak, tag)` holds (`tag` with its quotes). A malformed list stops
/// at the first element that does not parse; what was parsed before it still counts.
fn list_matches<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    mut hit: impl FnMut(bool, &[u8]) -> bool,
) -> bool {
    for v in values {
        let mut rest = v.trim_ascii();
        if rest == b"*" {
            return true;
        }
        loop {
            rest = rest.trim_ascii_start();
            while let Some(r) = rest.strip_prefix(b",") {
                rest = r.trim_ascii_start();
            }
            if rest.is_empty() {
                break;
            }
            let Some((weak, tag, after)) = next_tag(rest) else {
                break;
            };
            if hit(weak, tag) {
                return true;
            }
            rest = after;
        }
    }
    false
}

/// `If-None-Match` (all its field lines, in order) against the current tag, by weak
/// comparison (RFC 9110 13.1.2: `W/"x"` matches `"x"`): true when a listed tag
/// matches, or the value is `*` (the file exists). A malformed list stops at the
/// first element that does not parse; what was parsed before it still counts.
pub fn none_match<'a>(values: impl IntoIterator<Item = &'a [u8]>, etag: &str) -> bool {
    list_matches(values, |_, tag| tag == etag.as_bytes())
}

/// `If-Match` (all its field lines, in order) against the current tag, by strong
/// comparison (RFC 9110 13.1.1: a weak tag never matches, not even `W/` plus the
/// current tag): true when a listed strong tag equals the current one, or the value
/// is `*` (the file exists, which it does when this is asked). A malformed list stops
/// at the first element that does not parse; what was parsed before it still counts.
pub fn match_strong<'a>(values: impl IntoIterator<Item = &'a [u8]>, etag: &str) -> bool {
    list_matches(values, |weak, tag| !weak && tag == etag.as_bytes())
}

/// `If-Unmodified-Since`: false when the file was modified after the date, i.e. a
/// 412 is due. A value that is not a valid HTTP-date is ignored (RFC 9110 13.1.4):
/// true.
pub fn unmodified_since(value: &[u8], mtime: u64) -> bool {
    match parse_http_date(value) {
        Some(since) => mtime <= since,
        None => true,
    }
}

/// The outcome of a GET/HEAD's preconditions, evaluated in the order of RFC 9110
/// 13.2.2 by [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// `If-Match` or `If-Unmodified-Since` failed: 412 Precondition Failed.
    Failed,
    /// `If-None-Match` or `If-Modified-Since` says the client's copy is current: 304.
    NotModified,
    /// Serve the representation (a `Range` is then subject to `If-Range`).
    Proceed,
}

/// The request's precondition fields, each with its field lines joined by `,`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Preconditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a [u8]>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a [u8]>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
}

/// Evaluates a GET/HEAD's preconditions against a file's tag and `Last-Modified`
/// (`now`, seconds since the epoch, judges future dates), in RFC 9110 13.2.2 order:
///
/// 1. `If-Match` present: no strong match (and not `*`) is 412;
/// 2. else `If-Unmodified-Since` present and a valid date: modified after it is 412;
/// 3. `If-None-Match` present: a weak match (or `*`) is 304;
/// 4. else `If-Modified-Since`: not modified since a valid, non-future date is 304;
/// 5. otherwise proceed (`If-Range`, step 5 of the RFC, applies with `Range` only).
pub fn evaluate(p: &Preconditions<'_>, etag: &str, mtime: u64, now: u64) -> Precondition {
    let passed = match (p.if_match, p.if_unmodified_since) {
        (Some(im), _) => match_strong([im], etag),
        (None, Some(ius)) => unmodified_since(ius, mtime),
        (None, None) => true,
    };
    if !passed {
        return Precondition::Failed;
    }
    let not_modified = match (p.if_none_match, p.if_modified_since) {
        (Some(inm), _) => none_match([inm], etag),
        (None, Some(ims)) => not_modified_since(ims, mtime, now),
        (None, None) => false,
    };
    if not_modified {
        Precondition::NotModified
    } else {
        Precondition::Proceed
    }
}

/// `If-Modified-Since`: true when the file is not newer than the date, i.e. a 304 is
/// due. A date after `now` (seconds since the epoch) is invalid and ignored (RFC 9110
/// 13.1.3), as is one that does not parse.
pub fn not_modified_since(value: &[u8], mtime: u64, now: u64) -> bool {
    match parse_http_date(value) {
        Some(since) if since <= now => mtime <= since,
        _ => false,
    }
}

/// `If-Range` (RFC 9110 13.1.5): true when the `Range` may be honoured. An entity tag
/// must match the current one by strong comparison (a weak tag never matches); a date
/// must equal `Last-Modified` exactly (as nginx compares). Anything else, including a
/// value that does not parse, means the representation changed: the full 200.
pub fn range_allowed(value: &[u8], etag: &str, mtime: u64) -> bool {
    let v = value.trim_ascii();
    if v.starts_with(b"W/") {
        return false;
    }
    if v.first() == Some(&b'"') {
        return v == etag.as_bytes();
    }
    parse_http_date(v) == Some(mtime)
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
pub fn parse_http_date(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let mut it = s.split_ascii_whitespace();
    let _wd = it.next()?;
    let day: u64 = it.next()?.parse().ok()?;
    let mname = it.next()?;
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == mname)? as u64
        + 1;
    // IMF-fixdate years are exactly four digits (RFC 9110 5.6.7); anything longer is
    // not a date, and would overflow the day arithmetic below.
    let year = it.next()?;
    if year.len() != 4 || !year.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let year: i64 = year.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mon <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mon as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::format_http_date;

    const TAG: &str = "\"1f-a-5f.0\"";

    #[test]
    fn if_none_match_weak_comparison_lists_and_star() {
        let m = |v: &[u8]| none_match([v], TAG);
        assert!(m(b"\"1f-a-5f.0\""));
        assert!(m(b"W/\"1f-a-5f.0\""), "weak comparison for GET/HEAD");
        assert!(m(b"\"x\", \"1f-a-5f.0\""));
        assert!(m(b" , W/\"x\" ,\"1f-a-5f.0\" "));
        assert!(m(b"*"));
        assert!(!m(b"\"x\""));
        assert!(!m(b"1f-a-5f.0"), "unquoted is not a tag");
        assert!(!m(b"\"1f-a-5f.0"), "unterminated");
        assert!(!m(b""));
        assert!(
            none_match([&b"\"x\""[..], &b"\"1f-a-5f.0\""[..]], TAG),
            "two lines"
        );
    }

    #[test]
    fn if_match_strong_comparison_lists_and_star() {
        let m = |v: &[u8]| match_strong([v], TAG);
        assert!(m(b"\"1f-a-5f.0\""));
        assert!(!m(b"W/\"1f-a-5f.0\""), "a weak tag never matches If-Match");
        assert!(m(b"W/\"1f-a-5f.0\", \"1f-a-5f.0\""));
        assert!(m(b"\"x\" , \"1f-a-5f.0\""));
        assert!(m(b"*"));
        assert!(!m(b"\"x\""));
        assert!(!m(b""));
        assert!(!m(b"1f-a-5f.0"), "unquoted is not a tag");
    }

    #[test]
    fn if_unmodified_since_garbage_is_ignored() {
        let d = |s: u64| format_http_date(s);
        assert!(unmodified_since(&d(100), 100));
        assert!(unmodified_since(&d(200), 100));
        assert!(!unmodified_since(&d(99), 100));
        assert!(unmodified_since(b"not a date", 100));
    }

    #[test]
    fn preconditions_in_rfc_order() {
        use Precondition::*;
        let d = format_http_date;
        let ev = |p: Preconditions<'_>| evaluate(&p, TAG, 100, 1000);
        let tag = TAG.as_bytes();
        let (old, new) = (d(50), d(150));
        let p = Preconditions::default;
        assert_eq!(ev(p()), Proceed);
        // 1. If-Match decides over If-Unmodified-Since, whatever the date says.
        let ok = Preconditions {
            if_match: Some(tag),
            if_unmodified_since: Some(&old),
            ..p()
        };
        assert_eq!(ev(ok), Proceed);
        let bad = Preconditions {
            if_match: Some(b"\"x\""),
            if_unmodified_since: Some(&new),
            ..p()
        };
        assert_eq!(ev(bad), Failed);
        // 2. If-Unmodified-Since alone.
        assert_eq!(
            ev(Preconditions {
                if_unmodified_since: Some(&old),
                ..p()
            }),
            Failed
        );
        assert_eq!(
            ev(Preconditions {
                if_unmodified_since: Some(&new),
                ..p()
            }),
            Proceed
        );
        // 412 wins over 304.
        let both = Preconditions {
            if_match: Some(b"\"x\""),
            if_none_match: Some(tag),
            ..p()
        };
        assert_eq!(ev(both), Failed);
        // 3./4. as before; If-None-Match decides over If-Modified-Since.
        let inm = Preconditions {
            if_match: Some(b"*"),
            if_none_match: Some(tag),
            ..p()
        };
        assert_eq!(ev(inm), NotModified);
        let other = Preconditions {
            if_none_match: Some(b"\"x\""),
            if_modified_since: Some(&new),
            ..p()
        };
        assert_eq!(ev(other), Proceed);
        assert_eq!(
            ev(Preconditions {
                if_modified_since: Some(&new),
                ..p()
            }),
            NotModified
        );
    }

    #[test]
    fn if_modified_since_future_and_garbage_are_ignored() {
        let d = |s: u64| format_http_date(s);
        assert!(not_modified_since(&d(100), 100, 1000));
        assert!(not_modified_since(&d(200), 100, 1000));
        assert!(!not_modified_since(&d(99), 100, 1000));
        assert!(!not_modified_since(&d(2000), 100, 1000), "future date");
        assert!(!not_modified_since(b"yesterday", 100, 1000));
    }

    #[test]
    fn if_range_strong_only() {
        assert!(range_allowed(TAG.as_bytes(), TAG, 5));
        assert!(
            !range_allowed(b"W/\"1f-a-5f.0\"", TAG, 5),
            "weak never matches"
        );
        assert!(!range_allowed(b"\"other\"", TAG, 5));
        assert!(range_allowed(&format_http_date(5), TAG, 5));
        assert!(!range_allowed(&format_http_date(4), TAG, 5), "older date");
        assert!(!range_allowed(&format_http_date(6), TAG, 5), "newer date");
        assert!(!range_allowed(b"garbage", TAG, 5));
    }

    /// Found by `fuzz/fuzz_targets/static_files.rs`: an If-Modified-Since year near
    /// `i64::MAX` overflows `era * 146_097`, a smaller huge year `d * 86_400`: a panic
    /// with debug assertions, a wrapped time in release. Such a date is not a valid
    /// IMF-fixdate (four-digit year): `None`.
    #[test]
    fn date_with_huge_year() {
        for year in ["9223372036854775807", "100000000000000"] {
            let date = format!("Sun, 06 Nov {year} 08:49:37 GMT");
            assert_eq!(parse_http_date(date.as_bytes()), None, "{date}");
        }
    }

    #[test]
    fn dates_round_trip() {
        for secs in [0u64, 784_111_777, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
        }
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date(b"garbage"), None);
    }
}
