//! Outbound HTTP calls from a route ([`Router::call`](super::Router::call)): the
//! route describes a request to a backend ([`Call`]); [`HttpConn`](super::HttpConn)
//! opens a connection to it with [`Conn::connect_with`] on the same worker, sends the
//! request, reads the response ([`CallConn`]), and hands it back through the mailbox
//! ([`Conn::notify`]); the route's answer closure then fills in the client's
//! response. The client connection reads no further request meanwhile, exactly as
//! for an offload route.
//!
//! ```text
//! client conn: request -> route(&req) -> Call --connect_with--> CallConn (same worker)
//!                                                               send request, read reply
//! client conn: on_message(CallDone) <------------- notify ---- reply complete / error
//!              answer(reply, &mut Response) -> response sent
//! ```

use super::client::{parse_response_head, ResponseBody, ResponseHead};
use super::Response;
use crate::ConnectRequest;
use crate::{CloseReason, Conn, ConnId, Connecting, Handler, Notifier};
use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Default bound on a call's connect and on each wait for the backend's bytes: 10 s.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest backend response body a call keeps: 1 MiB (a longer one is an error,
/// `502` by default). Set per call with [`Call::max_body`].
pub const DEFAULT_CALL_MAX_BODY: usize = 1024 * 1024;

type Answer = Box<dyn FnOnce(Result<CallReply, io::Error>, &mut Response) + Send>;

/// A request to a backend that a [call route](super::Router::call) asks for, and
/// how its reply becomes the client's response.
pub struct Call {
    pub(crate) addr: SocketAddr,
    pub(crate) request: Vec<u8>,
    pub(crate) head_request: bool,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) answer: Answer,
}

impl Call {
    /// A `GET` of `target` (`/path?query`) on `addr`, HTTP/1.1 with
    /// `Connection: close`. Without [`answer`](Self::answer) the backend's status,
    /// `Content-Type` and body are passed through; a failure is `502` (`504` on a
    /// timeout).
    pub fn get(addr: SocketAddr, target: &str) -> Call {
        let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        Call::raw(addr, req.into_bytes())
    }

    /// A call sending `request` as it is: a complete HTTP/1.1 request (head and
    /// body). It should say `Connection: close`; the reply is read until its framing
    /// ends either way, and the connection is then closed.
    pub fn raw(addr: SocketAddr, request: Vec<u8>) -> Call {
        Call {
            head_request: request.starts_with(b"HEAD "),
            addr,
            request,
            timeout: DEFAULT_CALL_TIMEOUT,
            max_body: DEFAULT_CALL_MAX_BODY,
            answer: Box::new(pass_through),
        }
    }

    /// Bounds the connect, and then each wait for the backend's next bytes (default
    /// [`DEFAULT_CALL_TIMEOUT`]): past it the answer gets an error of kind
    /// `TimedOut`.
    pub fn timeout(mut self, t: Duration) -> Call {
        self.timeout = t;
        self
    }

    /// The largest reply body kept (default [`DEFAULT_CALL_MAX_BODY`]); a longer one
    /// is an error of kind `InvalidData`.
    pub fn max_body(mut self, bytes: usize) -> Call {
        self.max_body = bytes;
        self
    }

    /// How the backend's reply (or the error: `ConnectionRefused`, `TimedOut`,
    /// `InvalidData` for a malformed or oversized reply, `UnexpectedEof` for one cut
    /// short, ...) fills in the client's response (a fresh `200 OK`). Runs on the
    /// worker: it must not block.
    pub fn answer(
        mut self,
        f: impl FnOnce(Result<CallReply, io::Error>, &mut Response) + Send + 'static,
    ) -> Call {
        self.answer = Box::new(f);
        self
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A backend's complete reply to a [`Call`].
#[derive(Debug, Clone)]
pub struct CallReply {
    /// The response head (status, fields).
    pub head: ResponseHead,
    /// The body, framing removed (chunked decoded).
    pub body: Vec<u8>,
}

/// The default answer: the reply's status, `Content-Type` and body; `502 Bad
/// Gateway` for an error (`504 Gateway Timeout` for a timeout), the error in the body.
pub fn pass_through(reply: Result<CallReply, io::Error>, res: &mut Response) {
    match reply {
        Ok(r) => {
            res.set_status(r.head.status).set_body(&r.body);
            if let Some(ct) = r.head.header("content-type") {
                res.header("Content-Type", ct);
            }
        }
        Err(e) => {
            let status = if e.kind() == io::ErrorKind::TimedOut {
                504
            } else {
                502
            };
            res.set_status(status)
                .set_content_type("text/plain")
                .set_body(format!("{} {}: {e}\n", status, super::reason_phrase(status)).as_bytes());
        }
    }
}

/// The message a [`CallConn`] sends its client connection once the call is over.
pub(crate) struct CallDone(pub(crate) Result<CallReply, io::Error>);

/// A call in flight, kept by the client connection.
pub(crate) struct Pending {
    answer: Option<Answer>,
    /// The call's connection: cancelled (at any stage, its connect included) if the
    /// client connection closes first.
    call: Connecting,
}

impl Pending {
    /// Starts `call` for the client connection `conn`.
    pub(crate) fn start(conn: &mut Conn<'_>, call: Call) -> Pending {
        let Call {
            addr,
            request,
            head_request,
            timeout,
            max_body,
            answer,
        } = call;
        let handler = CallConn {
            addr,
            front: conn.notifier(),
            request,
            head_request,
            timeout,
            max_body,
            input: Vec::new(),
            head: None,
            body: Vec::new(),
            done: false,
        };
        let call = conn.connect_with(ConnectRequest::new(addr).timeout(timeout), handler);
        Pending {
            answer: Some(answer),
            call,
        }
    }

    /// A message for the client connection: the call's outcome turned into the
    /// response (`Some`). Anything else is handed back.
    pub(crate) fn on_message(
        &mut self,
        _from: ConnId,
        msg: Box<dyn Any>,
    ) -> Result<Option<Response>, Box<dyn Any>> {
        let done = msg.downcast::<CallDone>()?;
        let mut res = Response::new();
        if let Some(answer) = self.answer.take() {
            answer(done.0, &mut res);
        }
        Ok(Some(res))
    }

    /// The client connection closes with the call still running: the call's
    /// connection is aborted (a pending connect is cancelled).
    pub(crate) fn cancel(&mut self) {
        self.call.cancel();
    }
}

/// The backend side of a call: sends the request, reads the reply, reports once.
struct CallConn {
    addr: SocketAddr,
    /// Speaks for the client connection (usable in `on_close`): the outcome is sent
    /// to the client as if from itself.
    front: Notifier,
    request: Vec<u8>,
    head_request: bool,
    timeout: Duration,
    max_body: usize,
    /// Received and not yet parsed.
    input: Vec<u8>,
    head: Option<(ResponseHead, ResponseBody)>,
    body: Vec<u8>,
    /// The outcome was sent to the front.
    done: bool,
}

impl CallConn {
    /// Reports `outcome` to the client connection, once.
    fn report(&mut self, outcome: Result<CallReply, io::Error>) {
        if self.done {
            return;
        }
        self.done = true;
        self.front.notify(self.front.id(), CallDone(outcome));
    }

    fn fail(&mut self, conn: &mut Conn<'_>, kind: io::ErrorKind, why: String) {
        self.report(Err(io::Error::new(kind, why)));
        conn.abort();
    }

    /// Parses what arrived; reports and closes once the reply is complete.
    fn advance(&mut self, conn: &mut Conn<'_>) {
        if self.head.is_none() {
            match parse_response_head(&self.input, self.head_request) {
                Ok(None) => return,
                Ok(Some((head, len))) if head.is_interim() => {
                    self.input.drain(..len);
                    return self.advance(conn);
                }
                Ok(Some((head, len))) => {
                    self.input.drain(..len);
                    let body = ResponseBody::new(head.framing);
                    self.head = Some((head, body));
                }
                Err(e) => {
                    return self.fail(conn, io::ErrorKind::InvalidData, e.to_string());
                }
            }
        }
        let Some((_, reader)) = self.head.as_mut() else {
            return;
        };
        match reader.feed(&self.input, &mut self.body) {
            Ok(fed) => {
                self.input.drain(..fed.consumed);
                if self.body.len() > self.max_body {
                    let why = format!("backend reply body over {} bytes", self.max_body);
                    return self.fail(conn, io::ErrorKind::InvalidData, why);
                }
                if fed.done {
                    self.finish(conn);
                }
            }
            Err(e) => self.fail(conn, io::ErrorKind::InvalidData, e.to_string()),
        }
    }

    fn finish(&mut self, conn: &mut Conn<'_>) {
        if let Some((head, _)) = self.head.take() {
            let body = std::mem::take(&mut self.body);
            self.report(Ok(CallReply { head, body }));
        }
        conn.close();
    }
}

impl Handler for CallConn {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_owned(std::mem::take(&mut self.request));
        // Quiet for the call's timeout: give up (the connect had its own).
        conn.set_idle_timeout(Some(self.timeout));
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if !self.done {
            self.input.extend_from_slice(data);
            self.advance(conn);
        }
        data.len()
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        let ended = self.head.as_mut().is_some_and(|(_, b)| b.on_eof());
        if ended {
            self.finish(conn);
        } else {
            let why = format!("backend {} closed before its reply was complete", self.addr);
            self.fail(conn, io::ErrorKind::UnexpectedEof, why);
        }
    }

    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        let why = format!("no complete reply within {:?}", self.timeout);
        self.fail(conn, io::ErrorKind::TimedOut, why);
    }

    fn on_close(&mut self, reason: CloseReason) {
        let e = match reason {
            CloseReason::Error(e) => e,
            other => io::Error::other(format!("backend connection closed: {other:?}")),
        };
        self.report(Err(e));
    }
}
