#![no_main]
use libfuzzer_sys::fuzz_target;
use ringcore_fuzz::scratch_root;
use ringcore_net::http::files::range::Multipart;
use ringcore_net::http::files::validators::{none_match, not_modified_since, range_allowed};
use ringcore_net::http::files::{
    accepted, decode_path, location, parse_http_date, parse_ranges, resolve, resolve_target,
    Ranges, Target, MAX_RANGES,
};
use ringcore_net::http::format_http_date;

const TAG: &str = "\"1f-a-5f.0\"";

// Bytes 0-1: a file length; the rest is a Range value, an If-None-Match / If-Range /
// If-Modified-Since value, an Accept-Encoding value and a request path. Ranges lie
// inside the file, several are disjoint and at most MAX_RANGES, and a multipart
// body's announced length is its real one; a date (of a four-digit year) survives a
// round trip; If-Range is honoured only for the exact tag or date; Accept-Encoding
// yields each coding at most once; a resolved path is a regular file under the root,
// never outside, never hidden; `..` is always refused; a redirect stays on this host.
fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let len = u64::from(u16::from_le_bytes([*a, *b]));
    match parse_ranges(rest, len) {
        Ranges::One(start, end) => assert!(start < end && end <= len, "{start}..{end} of {len}"),
        Ranges::Many(parts) => {
            assert!((2..=MAX_RANGES).contains(&parts.len()));
            let mut sorted = parts.clone();
            sorted.sort_unstable();
            for w in sorted.windows(2) {
                assert!(w[0].1 <= w[1].0, "overlap {parts:?}");
            }
            let mp = Multipart::new(&parts, len, "text/plain", "b".into());
            let real: u64 = mp.parts.iter().map(|(h, _, n)| h.len() as u64 + n).sum();
            assert_eq!(real + mp.trailer.len() as u64, mp.content_length());
            for &(start, end) in &parts {
                assert!(start < end && end <= len, "{start}..{end} of {len}");
            }
        }
        Ranges::Full | Ranges::Unsatisfiable => {}
    }
    if let Some(t) = parse_http_date(rest).filter(|&t| t <= 253_402_300_799) {
        assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
        // A value that opens like an entity tag is one (the weekday is not checked).
        let tagged = rest.trim_ascii().starts_with(b"W/") || rest.trim_ascii().starts_with(b"\"");
        assert_eq!(range_allowed(rest, TAG, t), !tagged);
        assert!(not_modified_since(rest, t, t));
    }
    if range_allowed(rest, TAG, 5) {
        assert!(rest.trim_ascii() == TAG.as_bytes() || parse_http_date(rest) == Some(5));
    }
    if rest.trim_ascii() == TAG.as_bytes() {
        assert!(none_match([rest], TAG));
    }
    let codings = accepted([rest]);
    assert!(codings.len() <= 2 && (codings.len() < 2 || codings[0] != codings[1]));
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    let loc = location(path, Some("q"));
    assert!(loc.starts_with('/') && !loc.starts_with("//"), "{loc:?}");
    let (root, _) = scratch_root();
    let hidden = root.join(".hidden");
    if !hidden.exists() {
        let _ = std::fs::write(&hidden, b"h");
    }
    let resolved = resolve(root, path);
    match &resolved {
        Ok(p) => assert!(
            p.starts_with(root) && p.is_file() && p.canonicalize().ok().as_ref() == Some(p),
            "{path:?} -> {p:?}"
        ),
        Err(status) => assert!(*status == 403 || *status == 404),
    }
    if let Ok(Target::File(p) | Target::Dir(p)) = resolve_target(root, path, false) {
        let inside = p.strip_prefix(root).expect("under the root");
        assert!(
            !inside
                .to_string_lossy()
                .split('/')
                .any(|s| s.starts_with('.')),
            "{path:?} -> hidden {p:?}"
        );
    }
    let dotdot = decode_path(path).is_some_and(|d| d.split('/').any(|s| s == ".."));
    assert!(!dotdot || resolved == Err(403), "{path:?}");
});
