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
    /// Per worker: the rendered `Date`.
    static DATE: RefCell<DateCache> = RefCell::new(DateCache::new(SystemTime::now()));
}

/// The current `Date` (a copy, so no borrow is held while handlers run).
fn date_now() -> DateCache {
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        d.update(SystemTime::now());
        d.clone()
    })
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
        conn.set_max_pending(self.session.parser().limits().max_buffered_input());
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let date = date_now();
        // Every response of this batch is rendered straight into the write queue and
        // leaves in one send.
        let (session, router) = (&mut self.session, &*self.router);
        let p = conn.send_with(|out| session.on_data(data, router, &date, out));
        if p.close || conn.is_draining() {
            conn.close();
            return data.len();
        }
        let rest = data.len() - p.consumed;
        if rest > 0 && !self.session.parser().in_body() {
            // The rest starts a request; if a request completed in this call, the rest
            // is a new request whose first byte just arrived: its own deadline.
            if self.header_deadline.is_none() || p.consumed > 0 {
                let at = conn.now() + self.session.parser().limits().header_timeout;
                self.header_deadline = Some(at);
                conn.set_timer(Some(at));
            }
        } else if self.header_deadline.take().is_some() {
            conn.set_timer(None);
        }
        p.consumed
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        // Between requests (nothing partial buffered): close once the queue is sent.
        if self.header_deadline.is_none() && !self.session.parser().in_body() {
            conn.close();
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        if self.header_deadline.take().is_some() {
            let date = date_now();
            conn.send_with(|out| write_error(out, &date, &Error::header_timeout()));
            conn.close_with(CloseReason::IdleTimeout);
        }
    }
}
