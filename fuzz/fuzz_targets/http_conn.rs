#![no_main]
use libfuzzer_sys::fuzz_target;
use ringcore_fuzz::{check_framing, drive, split};
use ringcore_net::http::{run_without_socket, HttpConn, Limits, Request, Response, Router};
use std::sync::Arc;
fn echo(req: &Request<'_>, res: &mut Response) {
    res.set_body(req.body());
}
// Bytes 0-1 pick read sizes, byte 2 the output high-water mark (so reading pauses
// and resumes). An HttpConn fed the stream in those reads answers with complete,
// Content-Length-framed responses: one per request the parser finds in the whole
// stream, up to the first that closes, then the error's own, and nothing else.
fuzz_target!(|data: &[u8]| {
    let [a, b, c, stream @ ..] = data else { return };
    let limits = Limits::default()
        .max_body_bytes(512)
        .max_requests_per_connection(8)
        .max_queued_output(1 + 2 * usize::from(*c));
    let mut conn = HttpConn::new(Arc::new(Router::new().post("/echo", echo)), limits.clone());
    let (out, closed) = run_without_socket(&mut conn, &split(stream, &[*a, *b]));
    let (reqs, err) = drive(&[stream], &limits);
    let stop = reqs.iter().position(|r| !r.keep_alive);
    let n = stop.map_or(reqs.len(), |i| i + 1);
    let err = err.filter(|_| stop.is_none());
    let got = check_framing(&out, |i| reqs.get(i).is_some_and(|r| r.method == "HEAD"));
    assert_eq!(
        got.len(),
        n + usize::from(err.is_some()),
        "responses vs requests {reqs:?} {err:?}"
    );
    assert_eq!(closed, stop.is_some() || err.is_some());
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, r)| r.close == (closed && i + 1 == got.len())));
    assert!(err.is_none_or(|status| got.last().map(|r| r.status) == Some(status)));
    for (req, res) in reqs.iter().zip(&got) {
        assert!(req.method != "POST" || req.target != "/echo" || res.body == req.body);
    }
});
