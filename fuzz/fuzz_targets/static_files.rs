#![no_main]
use libfuzzer_sys::fuzz_target;
use ringcore_fuzz::scratch_root;
use ringcore_net::http::files::{decode_path, parse_range, resolve, RangeReq};
// Bytes 0-1: a file length; the rest is both a Range value and a request path. A range
// is inside the file; a resolved path is a regular file under the root, never outside,
// and a `..` segment is always refused.
fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let len = u64::from(u16::from_le_bytes([*a, *b]));
    if let RangeReq::Part(start, end) = parse_range(rest, len) {
        assert!(start < end && end <= len, "{start}..{end} of {len}");
    }
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    let (root, _outside) = scratch_root();
    match resolve(root, path) {
        Ok(p) => assert!(
            p.starts_with(root) && p.is_file() && p.canonicalize().ok() == Some(p.clone()),
            "{path:?} -> {p:?}"
        ),
        Err(status) => assert!(status == 403 || status == 404),
    }
    let dotdot = decode_path(path).is_some_and(|d| d.split('/').any(|s| s == ".."));
    assert!(!dotdot || resolve(root, path) == Err(403), "{path:?}");
});
