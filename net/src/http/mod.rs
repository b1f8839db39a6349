//! An I/O-free HTTP/1.1 server codec (feature `http`), built on `httparse`.
//!
//! Nothing in this module touches a socket. The connection handler owns the bytes:
//!
//! ```text
//!  recv bytes --> unconsumed buffer --> RequestParser::parse --> Partial      (wait for more)
//!                        ^                      |            \-> Error        (write_error, close)
//!                        |  drop `consumed`     v
//!                        +------------- Complete { request, consumed }
//!                                               |
//!                        Router / your fn (&Request, &mut Response)
//!                                               |
//!                        Response::write_to(out, &DateCache, request.reply()) --> send(out)
//! ```
//!
//! [`Session`] packages that loop: give it the connection's unconsumed bytes and it
//! returns how many it consumed and whether the connection must close.
//!
//! Limits ([`Limits`]) follow nginx's defaults; every framing ambiguity that could let a
//! front proxy and this server disagree about where a request ends (request smuggling)
//! is answered with an error status and a closed connection. `docs/http.md` lists the
//! rules and status codes.
//!
//! # Errors
//!
//! Every [`Error`] carries the status to answer (400, 408, 413, 414, 431, 501, 503 or
//! 505); after any error the caller writes [`write_error`] and closes the connection
//! ([`HttpConn`] with a lingering close), since the position of the next request in
//! the stream is unknown.
//!
//! # Bodies
//!
//! [`RequestParser::parse_event`] yields a request body in pieces; [`Session`] streams
//! them to a [`BodyHandler`] ([`Router::stream`]) or collects them, capped, for a
//! buffered route. See [`BodyHandler`] for the two ways a route can take a body.

pub mod access_log;
mod access_writer;
mod body;
mod body_out;
mod call;
mod chunked;
mod client;
mod conn;
mod date;
mod events;
mod fields;
pub mod files;
mod gateway;
mod gateway_back;
mod gateway_log;
mod gateway_pick;
mod harness;
mod limits;
mod parse;
mod pattern;
mod percent;
mod request;
mod response;
mod router;
mod session;
pub mod stats;

#[cfg(test)]
mod tests;

pub use access_log::{AccessFormat, AccessHook, AccessLog, AccessRecord};
pub use body::{worker_buffered_bytes, BodyHandler, StreamRoute};
pub use body_out::BodyOut;
pub use call::{pass_through, Call, CallReply, DEFAULT_CALL_MAX_BODY, DEFAULT_CALL_TIMEOUT};
pub use client::{
    parse_response_head, BodyFraming, Fed, ResponseBody, ResponseError, ResponseHead,
    MAX_RESPONSE_HEADERS,
};
pub use conn::HttpConn;
pub use date::{format_http_date, turn_date, DateCache, HTTP_DATE_LEN};
pub use events::Event;
pub use files::{StaticFiles, StaticFilesBuilder};
pub use gateway::{GatewayConfig, GatewayConn};
pub use gateway_back::gateway_idle_connections;
pub use gateway_pick::gateway_upstream_down;
#[doc(hidden)]
pub use harness::run_without_socket;
pub use limits::{Limits, MinRate};
pub use parse::{RequestParser, Status, MAX_METHOD_BYTES};
pub use pattern::MAX_PARAMS;
pub use percent::{decode_segment, DecodeError};
pub use request::{Headers, Request};
pub use response::{reason_phrase, write_error, write_response, Reply, Response};
pub use router::{OffloadJob, Route, Router};
pub use session::{Progress, Session};
pub use stats::ResponseStats;

use std::fmt;

/// A request the codec refuses; the connection must be closed after answering it.
///
/// INVARIANT: `status` is one of 400, 408, 413, 414, 431, 501, 503, 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    status: u16,
    reason: &'static str,
}

impl Error {
    pub(crate) const fn new(status: u16, reason: &'static str) -> Self {
        Error { status, reason }
    }

    pub(crate) const fn bad_request(reason: &'static str) -> Self {
        Error::new(400, reason)
    }

    /// The error a caller reports when the header deadline
    /// ([`Limits::header_timeout`]) passes before a request head is complete:
    /// `408 Request Timeout`.
    pub const fn header_timeout() -> Self {
        Error::new(408, "request head not received before the header deadline")
    }

    /// The error a caller reports when the body-read deadline
    /// ([`Limits::body_timeout`]) passes between two reads of a body:
    /// `408 Request Timeout`.
    pub const fn body_timeout() -> Self {
        Error::new(408, "no request body bytes within the body deadline")
    }

    /// The HTTP status code to answer with (400, 408, 413, 414, 431, 501, 503 or 505).
    pub const fn status(&self) -> u16 {
        self.status
    }

    /// What was wrong with the request, for logs (not sent to the client).
    pub const fn reason(&self) -> &'static str {
        self.reason
    }

    /// Always `true`: after a codec error the framing of the rest of the stream is
    /// unknown, so the caller must answer (see [`write_error`]) and close the
    /// connection without reading further requests.
    pub const fn must_close(&self) -> bool {
        true
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            reason_phrase(self.status),
            self.reason
        )
    }
}

impl std::error::Error for Error {}
