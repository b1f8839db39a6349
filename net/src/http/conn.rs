//! [`HttpConn`]: the codec on the handler API. One per connection; drives a
//! [`Session`] from `on_data`, sends every response of a batch in one send, enforces
//! the header deadline (absolute from the first byte of a request: trickling bytes does
//! not extend it), the keep-alive idle timeout, and closes after errors.

use super::{write_error, DateCache, Error, Limits, Router, Session};
use crate::{CloseReason, Conn, ConnInfo, Handler};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

thread_local! {
    /// Per worker: the rendered `Date` and a reusable output buffer.
    static SCRATCH: RefCell<(DateCache, Vec<u8>)> =
        RefCell::new((DateCache::new(SystemTime::now()), Vec::with_capacity(16 * 1024)));
}

/// A routed HTTP/1.1 connection.
pub struct HttpConn {
    session: Session,
    router: Arc<Router>,
    /// When the request whose first bytes are buffered must be complete.
    header_deadline: Option<Instant>,
}

impl HttpConn {
    /// A connection served by `router` under `limits`.
    pub fn new(router: Arc<Router>, limits: Limits) -> HttpConn {
        HttpConn {
            session: Session::new(limits),
            router,
            header_deadline: None,
        }
    }

    /// A [`Factory`](crate::Factory) closure serving `router` under `limits`.
    pub fn factory(
        router: Router,
        limits: Limits,
    ) -> impl Fn(&ConnInfo) -> HttpConn + Send + Sync + 'static {
        let router = Arc::new(router);
        move |_: &ConnInfo| HttpConn::new(router.clone(), limits.clone())
    }
}

impl Handler for HttpConn {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_idle_timeout(Some(self.session.parser().limits().keep_alive_timeout));
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let (p, sent) = SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let (date, out) = &mut *s;
            date.update(SystemTime::now());
            out.clear();
            let p = self.session.on_data(data, &self.router, date, out);
            if !out.is_empty() {
                conn.send(out); // every response of this batch leaves in one send
            }
            (p, !out.is_empty())
        });
        let _ = sent;
        if p.close || conn.is_draining() {
            conn.close();
            return data.len();
        }
        let rest = data.len() - p.consumed;
        if rest > 0 && !self.session.parser().in_body() {
            if self.header_deadline.is_none() {
                let at = conn.now() + self.session.parser().limits().header_timeout;
                self.header_deadline = Some(at);
                conn.set_timer(Some(at));
            }
        } else if self.header_deadline.take().is_some() {
            conn.set_timer(None);
        }
        p.consumed
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        if self.header_deadline.take().is_some() {
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                let (date, out) = &mut *s;
                out.clear();
                write_error(out, date, &Error::header_timeout());
                conn.send(out);
            });
            conn.close_with(CloseReason::IdleTimeout);
        }
    }
}
