//! `http` mode: pipelined `GET`s; every response's status line and
//! `Content-Length` framing is checked before it counts.

use crate::client::{Parsed, Protocol};
use crate::stats::WorkerStats;
use std::rc::Rc;

/// HTTP/1.1 keep-alive GETs of one path.
pub struct Http {
    request: Rc<[u8]>,
}

/// The request bytes for `path` on `host`.
pub fn request(host: &str, path: &str) -> Rc<[u8]> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")
        .into_bytes()
        .into()
}

impl Http {
    pub fn new(request: Rc<[u8]>) -> Self {
        Http { request }
    }
}

/// Whether the response announces that the server closes the connection after it.
fn announces_close(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && std::str::from_utf8(h.value).is_ok_and(|v| v.trim().eq_ignore_ascii_case("close"))
    })
}

fn content_length(headers: &[httparse::Header<'_>]) -> Result<usize, ()> {
    let mut len = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| ())?.trim();
            let n: usize = v.parse().map_err(|_| ())?;
            if len.is_some_and(|l| l != n) {
                return Err(());
            }
            len = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(()); // the servers under test answer with a length
        }
    }
    len.ok_or(())
}

impl Protocol for Http {
    fn request(&self) -> &[u8] {
        &self.request
    }

    fn parse(&mut self, data: &[u8], stats: &mut WorkerStats) -> Parsed {
        let mut off = 0;
        let mut responses = 0;
        loop {
            if off == data.len() {
                break;
            }
            let mut headers = [httparse::EMPTY_HEADER; 24];
            let mut res = httparse::Response::new(&mut headers);
            let head = match res.parse(&data[off..]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    return Parsed {
                        responses,
                        consumed: off,
                        error: true,
                    }
                }
            };
            if res.version != Some(1) {
                return Parsed {
                    responses,
                    consumed: off,
                    error: true,
                };
            }
            let Ok(body) = content_length(res.headers) else {
                return Parsed {
                    responses,
                    consumed: off,
                    error: true,
                };
            };
            if data.len() - off < head + body {
                break;
            }
            let code = res.code.unwrap_or(0);
            if !(200..300).contains(&code) {
                stats.non_2xx += 1;
            }
            if announces_close(res.headers) {
                // The server ends keep-alive here (e.g. a requests-per-connection
                // limit); the generator does not reconnect, so say so in the result.
                stats.server_closes += 1;
            }
            off += head + body;
            responses += 1;
        }
        Parsed {
            responses,
            consumed: off,
            error: false,
        }
    }
}
