#![no_main]
use libfuzzer_sys::fuzz_target;
use ringcore_fuzz::scratch_root;
use ringcore_net::http::files::{decode_path, parse_http_date, parse_range, resolve, RangeReq};
use ringcore_net::http::format_http_date;
// Bytes 0-1: a file length; the rest is a Range value, an If-Modified-Since date and a
// request path. A range lies inside the file; a date (of a four-digit year) survives a round trip; a resolved
// path is a regular file under the root, never outside; `..` is always refused.
fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let len = u64::from(u16::from_le_bytes([*a, *b]));
    if let RangeReq::Part(start, end) = parse_range(rest, len) {
        assert!(start < end && end <= len, "{start}..{end} of {len}");
    }
    if let Some(t) = parse_http_date(rest).filter(|&t| t <= 253_402_300_799) {
        assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
    }
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    let (root, _) = scratch_root();
    let resolved = resolve(root, path);
    match &resolved {
        Ok(p) => assert!(
            p.starts_with(root) && p.is_file() && p.canonicalize().ok().as_ref() == Some(p),
            "{path:?} -> {p:?}"
        ),
        Err(status) => assert!(*status == 403 || *status == 404),
    }
    let dotdot = decode_path(path).is_some_and(|d| d.split('/').any(|s| s == ".."));
    assert!(!dotdot || resolved == Err(403), "{path:?}");
});
