#![no_main]
use libfuzzer_sys::fuzz_target;
use ringcore_net::http::{Limits, RequestParser, Status};
// The first byte says where to split the input into two reads; nothing may panic.
fuzz_target!(|data: &[u8]| {
    let cut = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let mut parser = RequestParser::new(Limits::default());
    if let Ok(Status::Partial) = parser.parse(&data[..cut]) {
        let _ = parser.parse(data);
    }
});
