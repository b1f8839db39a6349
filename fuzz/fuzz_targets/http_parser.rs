#![no_main]
use libfuzzer_sys::fuzz_target;
use ringcore_fuzz::{drive, split};
use ringcore_net::http::Limits;
// Bytes 0-1 pick read sizes, byte 2 tight limits. The requests and the error must not
// depend on how the stream is split into reads, and every limit holds.
fuzz_target!(|data: &[u8]| {
    let [a, b, tight, stream @ ..] = data else {
        return;
    };
    let limits = match tight & 1 {
        0 => Limits::default(),
        _ => Limits::default()
            .max_head_bytes(96)
            .max_body_bytes(48)
            .max_headers(4)
            .max_requests_per_connection(3),
    };
    let whole = drive(&[stream], &limits);
    assert_eq!(drive(&split(stream, &[*a, *b]), &limits), whole);
    assert!(whole.0.iter().map(|r| r.consumed).sum::<usize>() <= stream.len());
    for r in &whole.0 {
        assert!(r.body.len() <= limits.max_body_bytes && r.headers.len() <= limits.max_headers);
    }
    if let Some(status) = whole.1 {
        assert!([400, 413, 414, 431, 501, 505].contains(&status), "{status}");
    }
});
