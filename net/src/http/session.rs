//! The per-connection loop: parse pipelined requests, answer each, stop on close.
//!
//! Bodies are read as [events](super::Event): the head decides (through the router)
//! whether the body is streamed to a [`BodyHandler`], collected for a buffered route
//! (capped by [`Limits::max_buffered_body`] and the worker's
//! [`Limits::worker_body_budget`]) or read and dropped (404, 405, fixed routes). So
//! the caller never has to hold more than a request head of unconsumed input.
//!
//! `Expect: 100-continue` is answered with `100 Continue` only when the route will
//! read the body (buffered, offload and streaming routes). A request the router
//! answers without its body (404, 405, `OPTIONS`, a fixed route) gets its final
//! status at once, with `Connection: close`, and [`Progress::linger`] asks the
//! caller to close with a lingering close (the client may still send the body).
//! A body over the route's limit is `413` before any body byte is read when its
//! `Content-Length` says so (no `100 Continue` either), when it gets there if chunked.
//!
//! An [offload route](Router::offload) leaves a job behind ([`Session::take_offload`]);
//! the session serves nothing more until [`Session::complete_offload`] gets the
//! job's response.

use super::access_log::{AccessHook, Observer};
use super::body::Reservation;
use super::body_out::OutState;
use super::router::{BodyKind, Served};
use super::{
    write_error, write_response, BodyHandler, BodyOut, DateCache, Error, Event, Limits, OffloadJob,
    Reply, Request, RequestParser, Response, Router,
};

/// What [`Session::on_data`] did with the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes of the input used; drop them from the buffer. Any rest is the start of
    /// a request (or of a body piece): keep it, and keep (or arm) the header
    /// deadline while it is non-empty and the parser is not in a body.
    pub consumed: usize,
    /// Send what was written, then close the connection (a request without
    /// keep-alive, the per-connection request limit, or a codec error).
    pub close: bool,
    /// The status of the error response written, if the codec refused the request
    /// (the caller should close with a lingering close).
    pub error: Option<u16>,
    /// Parsing stopped early because the output budget was used up: call again
    /// with the rest once the output has drained.
    pub paused: bool,
    /// A response was sent before the request's body was read (a request with
    /// `Expect: 100-continue` the route answers without its body): the body may
    /// still come, so close with a lingering close, as after an error.
    pub linger: bool,
}

impl Progress {
    /// Nothing served: the output budget was already used up.
    pub(crate) fn paused_at(consumed: usize) -> Progress {
        Progress {
            paused: true,
            ..Progress::open(consumed)
        }
    }

    fn open(consumed: usize) -> Progress {
        Progress {
            consumed,
            close: false,
            error: None,
            paused: false,
            linger: false,
        }
    }
}

/// How the body of the current request is being read.
enum Body {
    /// Between requests.
    None,
    /// Collected into `Session::buffered` for a buffered route, up to this many bytes.
    Buffer(usize),
    /// Read and dropped; the route ignores it.
    Discard,
    /// Handed to a streaming route's handler.
    Stream(Box<dyn BodyHandler>, super::Reply),
}

/// An HTTP/1.1 server connection without the connection: a [`RequestParser`] plus
/// a reusable [`Response`] and the body being read.
///
/// The connection handler calls [`Session::on_data`] with its unconsumed bytes
/// whenever more arrive, sends what was appended to `out`, drops
/// [`Progress::consumed`] bytes, and closes once `close` is set.
pub struct Session {
    parser: RequestParser,
    response: Response,
    body: Body,
    /// A copy of the head of a request whose body is collected or dropped.
    head: Vec<u8>,
    /// The collected body of a buffered route.
    buffered: Vec<u8>,
    /// This connection's share of the worker's body budget.
    reserved: Reservation,
    /// The body being read declared its length (its budget was reserved whole).
    declared: bool,
    /// A response being streamed while the body arrives ([`BodyOut`]).
    out_state: OutState,
    /// The job of an offload route, until the caller takes it.
    job: Option<OffloadJob>,
    /// An offload route's request waits for its response (rendered for this).
    waiting: Option<Reply>,
    /// The access-log hook and the request it is timing (none: no access log).
    observer: Option<Box<Observer>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("parser", &self.parser)
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.abort_body();
    }
}

/// What answers requests: a router, or a plain function (buffered bodies only).
trait Respond {
    fn kind(&self, req: &Request<'_>) -> BodyKind;
    fn respond(
        &mut self,
        req: &Request<'_>,
        res: &mut Response,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> Served;
}

impl Respond for &Router {
    fn kind(&self, req: &Request<'_>) -> BodyKind {
        self.body_kind(req)
    }
    fn respond(
        &mut self,
        req: &Request<'_>,
        res: &mut Response,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> Served {
        self.dispatch(req, res, date, out)
    }
}

struct FnRespond<F>(F);

impl<F: FnMut(&Request<'_>, &mut Response)> Respond for FnRespond<F> {
    fn kind(&self, _: &Request<'_>) -> BodyKind {
        BodyKind::Buffer(None)
    }
    fn respond(
        &mut self,
        req: &Request<'_>,
        res: &mut Response,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> Served {
        res.clear();
        (self.0)(req, res);
        Served::Done(res.write_to(out, date, req.reply()))
    }
}

impl Session {
    /// A session enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Session {
            parser: RequestParser::new(limits),
            response: Response::new(),
            body: Body::None,
            head: Vec::new(),
            buffered: Vec::new(),
            reserved: Reservation::default(),
            declared: false,
            out_state: OutState::default(),
            job: None,
            waiting: None,
            observer: None,
        }
    }

    /// Calls `hook` with an [`AccessRecord`](super::AccessRecord) for every response
    /// this session writes (error responses included); `client` is the peer.
    pub fn set_access_hook(&mut self, client: Option<std::net::SocketAddr>, hook: AccessHook) {
        self.observer = Some(Observer::new(client, hook));
    }

    /// Like [`set_access_hook`](Self::set_access_hook), for response counters: the
    /// records carry the status and duration only (method and target `-`, no
    /// client, no headers, bytes 0), which costs less per request.
    pub fn set_response_hook(&mut self, hook: AccessHook) {
        self.observer = Some(Observer::lean(hook));
    }

    /// The access log sees the response appended to `out` since `mark`.
    fn observed(&mut self, out: &[u8], mark: usize, date: &DateCache) {
        if let Some(o) = &mut self.observer {
            o.finish(&out[mark..], false, date);
        }
    }

    /// The job an [offload route](Router::offload) left, to run off the worker
    /// (once; later calls return `None`). Until its response is given to
    /// [`complete_offload`](Self::complete_offload) the session serves nothing
    /// more: `on_data` returns [`Progress::paused`] and consumes nothing.
    pub fn take_offload(&mut self) -> Option<OffloadJob> {
        self.job.take()
    }

    /// Whether a request waits for an offload job's response.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Renders the response of the offload job into `out` (`None`: the job
    /// panicked, answered `500 Internal Server Error`), after which requests are
    /// served again. Returns whether the connection stays open. Does nothing (and
    /// returns `true`) when no request waits.
    pub fn complete_offload(
        &mut self,
        res: Option<&Response>,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(reply) = self.waiting.take() else {
            return true;
        };
        self.job = None;
        let mark = out.len();
        let keep = match res {
            Some(res) => res.write_to(out, date, reply),
            None => write_response(
                out,
                date,
                reply,
                500,
                "text/plain",
                b"Internal Server Error\n",
            ),
        };
        self.observed(out, mark, date);
        keep
    }

    /// The parser, e.g. for [`RequestParser::limits`] or [`RequestParser::in_body`].
    pub fn parser(&self) -> &RequestParser {
        &self.parser
    }

    /// Answers every complete request at the start of `data` through `router`,
    /// appending the responses to `out` (and `100 Continue` when a client sent
    /// `Expect: 100-continue` and waits for it).
    pub fn on_data(
        &mut self,
        data: &[u8],
        router: &Router,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> Progress {
        self.serve(data, date, out, usize::MAX, router)
    }

    /// Like [`Session::on_data`], but starts no new request once `max_out` bytes
    /// were appended to `out` by this call ([`Progress::paused`] then says so): the
    /// caller's output high-water mark ([`Limits::max_queued_output`]).
    pub fn on_data_bounded(
        &mut self,
        data: &[u8],
        router: &Router,
        date: &DateCache,
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Progress {
        self.serve(data, date, out, max_out, router)
    }

    /// Like [`Session::on_data`], with any function as the handler (every body is
    /// buffered). It gets a cleared `200 OK` response to fill in.
    pub fn on_data_with<F>(
        &mut self,
        data: &[u8],
        date: &DateCache,
        out: &mut Vec<u8>,
        handler: F,
    ) -> Progress
    where
        F: FnMut(&Request<'_>, &mut Response),
    {
        self.serve(data, date, out, usize::MAX, FnRespond(handler))
    }

    /// Ends a body being read without a response (the caller answers, e.g. `408`
    /// at the body deadline, and closes): a streaming handler gets
    /// [`BodyHandler::on_abort`], a buffered body is dropped.
    pub fn abort_body(&mut self) {
        if let Body::Stream(mut h, _) = std::mem::replace(&mut self.body, Body::None) {
            h.on_abort();
        }
        self.drop_buffer();
        self.out_state.clear();
    }

    fn drop_buffer(&mut self) {
        self.reserved.release();
        self.buffered.clear();
        if self.buffered.capacity() > 64 * 1024 {
            self.buffered = Vec::new();
        }
    }

    fn fail(
        &mut self,
        data_len: usize,
        error: &Error,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> Progress {
        // A streamed response already under way cannot be followed by another:
        // the connection just closes (the client sees the body cut short).
        let mark = out.len();
        if !self.out_state.started {
            write_error(out, date, error);
        }
        self.observed(out, mark, date);
        self.abort_body();
        Progress {
            consumed: data_len,
            close: true,
            error: Some(error.status()),
            ..Progress::open(data_len)
        }
    }

    /// The loop behind all of them.
    fn serve<R: Respond>(
        &mut self,
        data: &[u8],
        date: &DateCache,
        out: &mut Vec<u8>,
        max_out: usize,
        mut respond: R,
    ) -> Progress {
        let start = out.len();
        let mut consumed = 0;
        let limits = self.parser.limits();
        let (default_cap, budget) = (limits.max_buffered_body, limits.worker_body_budget);
        loop {
            if self.waiting.is_some() {
                // An offload route's response comes first; nothing more until then.
                return Progress::paused_at(consumed);
            }
            if matches!(self.body, Body::None)
                && !self.parser.in_body()
                && out.len() - start >= max_out
                && consumed < data.len()
            {
                return Progress::paused_at(consumed);
            }
            let event = match self.parser.parse_event(&data[consumed..]) {
                Ok(e) => e,
                Err(error) => return self.fail(data.len(), &error, date, out),
            };
            match event {
                Event::Partial => {
                    if self.parser.take_expect_continue() {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    return Progress::open(consumed);
                }
                Event::Request {
                    request,
                    consumed: used,
                } => {
                    consumed += used;
                    let mark = out.len();
                    if let Some(o) = &mut self.observer {
                        o.begin(&request, date);
                    }
                    let served = respond.respond(&request, &mut self.response, date, out);
                    if let Some(o) = &mut self.observer {
                        o.finish(&out[mark..], false, date);
                    }
                    match served {
                        Served::Done(true) => {}
                        Served::Done(false) => {
                            return Progress {
                                close: true,
                                ..Progress::open(consumed)
                            }
                        }
                        Served::Job(job) => {
                            let reply = request.reply();
                            self.wait(job, reply);
                        }
                    }
                }
                Event::Head {
                    request,
                    consumed: used,
                    length: declared,
                } => {
                    consumed += used;
                    if let Some(o) = &mut self.observer {
                        o.begin(&request, date);
                    }
                    self.declared = declared.is_some();
                    self.body = match respond.kind(&request) {
                        BodyKind::Stream(handler) => Body::Stream(handler, request.reply()),
                        BodyKind::Discard if declared != Some(0) && expects_continue(&request) => {
                            // The client waits for a go-ahead the route does not need:
                            // answer now and close (the body may follow anyway).
                            let req = Request {
                                keep_alive: false,
                                ..request
                            };
                            let mark = out.len();
                            let _ = respond.respond(&req, &mut self.response, date, out);
                            if let Some(o) = &mut self.observer {
                                o.finish(&out[mark..], false, date);
                            }
                            let _ = self.parser.take_expect_continue();
                            return Progress {
                                close: true,
                                linger: true,
                                ..Progress::open(data.len())
                            };
                        }
                        kind => {
                            self.head.clear();
                            self.head.extend_from_slice(request.head);
                            match kind {
                                BodyKind::Buffer(cap) => {
                                    let cap = cap.unwrap_or(default_cap);
                                    if declared.is_some_and(|n| n > cap as u64) {
                                        let e =
                                            Error::new(413, "body larger than the route's limit");
                                        return self.fail(data.len(), &e, date, out);
                                    }
                                    if !self.reserved.grow(declared.unwrap_or(0) as usize, budget) {
                                        let e = Error::new(503, "worker body budget exhausted");
                                        return self.fail(data.len(), &e, date, out);
                                    }
                                    Body::Buffer(cap)
                                }
                                _ => Body::Discard,
                            }
                        }
                    };
                }
                Event::Body {
                    data: piece,
                    consumed: used,
                } => {
                    consumed += used;
                    if piece.is_empty() {
                        continue;
                    }
                    match &mut self.body {
                        Body::Stream(h, reply) => {
                            let mark = out.len();
                            let mut w = BodyOut {
                                out: &mut *out,
                                state: &mut self.out_state,
                                date,
                                reply: *reply,
                            };
                            h.on_body_out(piece, &mut w);
                            if let Some(o) = &mut self.observer {
                                o.streamed(&out[mark..]);
                            }
                        }
                        Body::Buffer(cap) => {
                            let declared = self.declared;
                            let after = self.buffered.len() + piece.len();
                            if after > *cap {
                                let e = Error::new(413, "body larger than the route's limit");
                                return self.fail(data.len(), &e, date, out);
                            }
                            if !declared && !self.reserved.grow(piece.len(), budget) {
                                let e = Error::new(503, "worker body budget exhausted");
                                return self.fail(data.len(), &e, date, out);
                            }
                            self.buffered.extend_from_slice(piece);
                        }
                        Body::Discard | Body::None => {}
                    }
                }
                Event::End { consumed: used } => {
                    consumed += used;
                    let mark = out.len();
                    let served = match std::mem::replace(&mut self.body, Body::None) {
                        Body::Stream(mut h, reply) => {
                            self.response.clear();
                            h.on_end(&mut self.response);
                            Served::Done(if self.out_state.started {
                                BodyOut {
                                    out: &mut *out,
                                    state: &mut self.out_state,
                                    date,
                                    reply,
                                }
                                .finish(self.response.body())
                            } else {
                                self.response.write_to(out, date, reply)
                            })
                        }
                        _ => {
                            let served = match self.parser.ended_request(&self.head, &self.buffered)
                            {
                                Some(req) => {
                                    let reply = req.reply();
                                    match respond.respond(&req, &mut self.response, date, out) {
                                        Served::Job(job) => {
                                            self.job = Some(job);
                                            self.waiting = Some(reply);
                                            Served::Done(true)
                                        }
                                        done => done,
                                    }
                                }
                                None => Served::Done(false),
                            };
                            self.drop_buffer();
                            served
                        }
                    };
                    self.observed(out, mark, date);
                    if let Served::Done(false) = served {
                        return Progress {
                            close: true,
                            ..Progress::open(consumed)
                        };
                    }
                }
            }
        }
    }

    /// An offload route answers later: keep its job for the caller.
    fn wait(&mut self, job: OffloadJob, reply: Reply) {
        self.job = Some(job);
        self.waiting = Some(reply);
    }
}

/// Whether the client sent `Expect: 100-continue` (and so may wait for a go-ahead
/// before sending the body).
fn expects_continue(req: &Request<'_>) -> bool {
    req.minor >= 1
        && req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
}
