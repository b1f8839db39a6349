//! A tiny blocking HTTP/1.1 client for the tests: send raw bytes, read responses
//! (status line, header fields, a `Content-Length` body), and check that the server
//! closed the connection after the last one.

use super::client::{connect, IO_TIMEOUT};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD, 1xx, 204 and 304).
    pub body: Vec<u8>,
}

impl Resp {
    /// The value of the first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a `Connection` field lists `close`.
    pub fn says_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// `Content-Length`, parsed.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
        })
    }
}

/// A raw client connection with a read buffer.
pub struct HttpClient {
    /// The socket.
    pub s: TcpStream,
    buf: Vec<u8>,
}

/// How the server ended a connection after the responses read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// A clean EOF.
    Eof,
    /// A reset.
    Reset,
}

impl HttpClient {
    /// Connects (with the test timeouts).
    pub fn connect(addr: SocketAddr) -> HttpClient {
        HttpClient::from_stream(connect(addr))
    }

    /// Wraps a connected stream.
    pub fn from_stream(s: TcpStream) -> HttpClient {
        HttpClient { s, buf: Vec::new() }
    }

    /// Sends `bytes` (all of them).
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send a request");
    }

    /// Sends `bytes`; a write error (the server closed first) is not a failure.
    pub fn send_lenient(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes);
    }

    /// Reads once more into the buffer; `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.s.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one response; `head` says whether it answers a HEAD request (no body).
    /// Interim `1xx` responses are returned like any other.
    pub fn try_read_response(&mut self, head: bool) -> Result<Resp, String> {
        let end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            match self.fill() {
                Ok(0) if self.buf.is_empty() => return Err("EOF before a response".into()),
                Ok(0) => {
                    return Err(format!(
                        "EOF inside a response head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "reading a response head ({} bytes so far): {e}",
                        self.buf.len()
                    ))
                }
            }
        };
        let text = std::str::from_utf8(&self.buf[..end])
            .map_err(|_| "response head is not UTF-8".to_string())?
            .to_string();
        self.buf.drain(..end + 4);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(format!("bad status line {status_line:?}"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        for l in lines {
            let (k, v) = l
                .split_once(':')
                .ok_or_else(|| format!("bad header line {l:?}"))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        let bodyless = head || status < 200 || status == 204 || status == 304;
        if !bodyless {
            let len = resp
                .content_length()
                .ok_or_else(|| format!("{status} response without Content-Length"))?
                as usize;
            let have = self.buf.len().min(len);
            let mut body: Vec<u8> = self.buf.drain(..have).collect();
            if body.len() < len {
                let at = body.len();
                body.resize(len, 0);
                let mut off = at;
                while off < len {
                    match self.s.read(&mut body[off..]) {
                        Ok(0) => return Err(format!("EOF after {off} of {len} body bytes")),
                        Ok(n) => off += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(format!("after {off} of {len} body bytes: {e}")),
                    }
                }
            }
            resp.body = body;
        }
        Ok(resp)
    }

    /// Reads one response or panics.
    pub fn read_response(&mut self, head: bool) -> Resp {
        self.try_read_response(head)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Asserts that nothing follows the responses read so far and that the server
    /// closes the connection (a read returns 0, or a reset), within [`IO_TIMEOUT`].
    pub fn expect_closed(&mut self) -> Closed {
        loop {
            assert!(
                self.buf.is_empty(),
                "unexpected bytes after the last response: {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
            );
            match self.fill() {
                Ok(0) => return Closed::Eof,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Closed::Reset,
                Err(e) => panic!("the server did not close the connection: {e}"),
            }
        }
    }

    /// Sets the read timeout (restore with [`IO_TIMEOUT`]).
    pub fn set_read_timeout(&self, t: Duration) {
        self.s.set_read_timeout(Some(t)).expect("read timeout");
    }

    /// Whether bytes are buffered but not yet returned as a response.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Restores the default read timeout on `c`.
pub fn default_timeout(c: &HttpClient) {
    c.set_read_timeout(IO_TIMEOUT);
}

/// Position of `needle` in `h`.
pub fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}

/// A request without a body.
pub fn get(method: &str, target: &str, extra: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").into_bytes()
}

/// The lingering-close scenario (issue 8, #16): over `s` (a client with a small receive
/// window, so the responses sit in the server's send queue when the error comes), `n`
/// pipelined copies of `request`, then a bad request, while a writer thread never stops
/// sending junk. Every response must come (200; `head`: HEAD responses, no bodies),
/// then the 400, which is returned with the client (to check the close) and the writer
/// (which returns the junk bytes it wrote once the server closed the connection).
pub fn pipeline_garbage_then_junk(
    s: TcpStream,
    request: &[u8],
    n: usize,
    head: bool,
) -> (HttpClient, Resp, std::thread::JoinHandle<usize>) {
    let mut c = HttpClient::from_stream(s.try_clone().expect("clone the client stream"));
    let mut req: Vec<u8> = request.repeat(n);
    req.extend_from_slice(b"GARBAGE\r\n\r\n");
    c.send(&req);
    let writer = std::thread::spawn(move || write_until_closed(s));
    for i in 0..n {
        let r = c
            .try_read_response(head)
            .unwrap_or_else(|e| panic!("response {i} of {n}: {e}"));
        assert_eq!(r.status, 200, "response {i}");
    }
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("the 400 was lost: {e}"));
    assert_eq!(r.status, 400);
    (c, r, writer)
}

/// Writes junk to `w` until the server closes the connection (broken pipe or reset);
/// returns the bytes written.
pub fn write_until_closed(mut w: TcpStream) -> usize {
    let junk = vec![b'j'; 64 * 1024];
    let mut total = 0;
    loop {
        match w.write(&junk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ),
                    "the writer stopped on {e}, not on the server's close"
                );
                return total;
            }
        }
    }
}

/// The plaintext route's body.
pub const HELLO: &[u8] = b"Hello, World!";

/// Route: `text/plain` [`HELLO`].
pub fn plaintext(_: &ringcore::http::Request<'_>, res: &mut ringcore::http::Response) {
    res.set_content_type("text/plain").set_body(HELLO);
}

/// Route: the request body back, as `application/octet-stream`.
pub fn echo(req: &ringcore::http::Request<'_>, res: &mut ringcore::http::Response) {
    res.set_content_type("application/octet-stream")
        .set_body(req.body());
}

/// A gate offloaded jobs wait at until the test opens it; counts jobs created (on the
/// worker, by routes that count them) and finished.
#[derive(Default)]
pub struct Gate {
    open: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
    /// Jobs created (counted by the route).
    pub created: std::sync::atomic::AtomicUsize,
    /// Jobs finished (counted by the job).
    pub finished: std::sync::atomic::AtomicUsize,
}

impl Gate {
    /// Blocks until [`open`](Self::open) was called.
    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }

    /// Lets every waiting and future job through.
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}
