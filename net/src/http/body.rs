//! Request bodies in pieces: the [`BodyHandler`] a [streaming route](super::Router::stream)
//! returns, and the per-worker budget of buffered bodies.
//!
//! A route sees a request body in one of two ways:
//!
//! * **Buffered** ([`Router::route`](super::Router::route), `get`, `post`): the body is
//!   collected, up to [`Limits::max_buffered_body`](super::Limits::max_buffered_body)
//!   (64 KiB by default; larger is `413`), and the route runs once with the whole of
//!   it in [`Request::body`](super::Request::body). All buffered bodies of one worker
//!   together stay under
//!   [`Limits::worker_body_budget`](super::Limits::worker_body_budget) (`503` beyond).
//! * **Streamed** ([`Router::stream`](super::Router::stream)): when the request head is
//!   complete the route is called with the head and returns a [`BodyHandler`], which
//!   then gets the body (chunked coding already decoded) piece by piece as it
//!   arrives, up to [`Limits::max_body_bytes`](super::Limits::max_body_bytes), and
//!   fills in the response at the end. The connection holds no more than one receive
//!   batch of it at a time.
//!
//! ```
//! # use ringcore_net::http::{BodyHandler, Request, Response, Router};
//! /// Counts the bytes of an upload and answers with the count.
//! struct Count(u64);
//!
//! impl BodyHandler for Count {
//!     fn on_body(&mut self, piece: &[u8]) {
//!         self.0 += piece.len() as u64;
//!     }
//!     fn on_end(&mut self, res: &mut Response) {
//!         res.set_content_type("text/plain").set_body(self.0.to_string().as_bytes());
//!     }
//! }
//!
//! fn upload(_head: &Request<'_>) -> Box<dyn BodyHandler> {
//!     Box::new(Count(0))
//! }
//!
//! let router = Router::new().stream("POST", "/upload", upload);
//! # let _ = router;
//! ```

use super::{BodyOut, Request, Response};
use std::cell::Cell;

/// Receives one request body in pieces; made per request by a [`StreamRoute`].
///
/// Calls come in order: any number of [`on_body`](Self::on_body), then exactly one of
/// [`on_end`](Self::on_end) (the body is complete: answer) or
/// [`on_abort`](Self::on_abort) (the request failed: malformed chunking, the body
/// deadline, a closed connection; no response is sent from here).
pub trait BodyHandler {
    /// The next piece of the body, in order (never empty).
    fn on_body(&mut self, piece: &[u8]);

    /// The body is complete. `res` is a cleared `200 OK` to fill in.
    fn on_end(&mut self, res: &mut Response);

    /// The request ended without a complete body. The default does nothing.
    fn on_abort(&mut self) {}

    /// The next piece of the body, with `out` to answer while the body is still
    /// arriving ([`BodyOut::start`], [`BodyOut::write`]): an echo, a transform, a
    /// proxy. The default passes the piece to [`on_body`](Self::on_body) and sends
    /// nothing. Once `out` was started, the body put in the response given to
    /// [`on_end`](Self::on_end) is sent as the last piece (see [`BodyOut`]).
    ///
    /// ```
    /// # use ringcore_net::http::{BodyHandler, BodyOut, Response};
    /// /// Answers with the request body as it arrives, upper-cased.
    /// struct Upper;
    ///
    /// impl BodyHandler for Upper {
    ///     fn on_body(&mut self, _: &[u8]) {}
    ///     fn on_body_out(&mut self, piece: &[u8], out: &mut BodyOut<'_>) {
    ///         out.start(200, "text/plain").write(&piece.to_ascii_uppercase());
    ///     }
    ///     fn on_end(&mut self, _: &mut Response) {}
    /// }
    /// ```
    fn on_body_out(&mut self, piece: &[u8], out: &mut BodyOut<'_>) {
        let _ = out;
        self.on_body(piece);
    }
}

/// The plain-function form of a streaming route: called with the request head
/// (its [`Request::body`] is empty) once the head is complete; returns the handler
/// that gets the body. [`Router::stream`](super::Router::stream) takes this or any
/// `Fn(&Request<'_>) -> Box<dyn BodyHandler> + Send + Sync` closure.
pub type StreamRoute = fn(&Request<'_>) -> Box<dyn BodyHandler>;

thread_local! {
    /// Bytes of buffered request bodies held on this worker thread.
    static BUFFERED: Cell<usize> = const { Cell::new(0) };
}

/// Bytes of buffered request bodies held on the calling worker thread right now
/// (reserved against [`Limits::worker_body_budget`](super::Limits::worker_body_budget)).
pub fn worker_buffered_bytes() -> usize {
    BUFFERED.with(Cell::get)
}

/// A connection's share of its worker's body budget; given back on drop.
#[derive(Debug, Default)]
pub(crate) struct Reservation(usize);

impl Reservation {
    /// Grows the share by `n` if the worker's total stays within `budget`.
    pub(crate) fn grow(&mut self, n: usize, budget: usize) -> bool {
        BUFFERED.with(|b| {
            let total = b.get().saturating_add(n);
            if total > budget {
                return false;
            }
            b.set(total);
            self.0 += n;
            true
        })
    }

    /// Gives the whole share back.
    pub(crate) fn release(&mut self) {
        let n = std::mem::take(&mut self.0);
        BUFFERED.with(|b| b.set(b.get().saturating_sub(n)));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}
