#![no_main]
use libfuzzer_sys::fuzz_target;
use ringcore_fuzz::{drive, reference_chunked, split};
use ringcore_net::http::Limits;
const HEAD: &[u8] = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
// The input is a chunked body, read in pieces sized by byte 0. Whatever the split, a
// body the codec accepts must be the grammar's own decoding, ending where the grammar
// says (no smuggling); one the grammar completes is never left waiting for more.
fuzz_target!(|data: &[u8]| {
    let [sizes, wire @ ..] = data else { return };
    let stream = [HEAD, wire].concat();
    let (reqs, err) = drive(&split(&stream, &[*sizes]), &Limits::default());
    let reference = reference_chunked(wire);
    match (reqs.first(), err) {
        (Some(req), _) => assert_eq!(
            reference,
            Some((req.body.clone(), req.consumed - HEAD.len()))
        ),
        (None, Some(status)) => assert!([400, 413, 431].contains(&status), "{status}"),
        (None, None) => assert_eq!(reference, None, "complete body left waiting"),
    }
});
