//! What a connection slot runs: [`SlotHandler`], the factory's handler or a boxed one
//! a handler opened with `Conn::connect_with`; and `Box<H>` as a handler. Below the
//! server, which stores it in every slot.

use crate::handler::{CloseReason, Conn, Handler};
use crate::mailbox::ConnId;
use std::any::Any;

/// A slot's handler: the factory's for accepted (and client-mode) connections, or a
/// boxed one for connections a handler opened.
pub(crate) enum SlotHandler<H> {
    /// Made by the server's factory.
    Made(H),
    /// Given to [`Conn::connect_with`].
    Opened(Box<dyn Handler>),
}

macro_rules! forward {
    ($self:ident, $h:ident => $e:expr) => {
        match $self {
            SlotHandler::Made($h) => $e,
            SlotHandler::Opened($h) => $e,
        }
    };
}

// Every `Handler` method must be forwarded here and in the `Box<H>` impl below: a
// missing one would silently run the trait's default instead of the user's.
impl<H: Handler> Handler for SlotHandler<H> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_open(conn))
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        forward!(self, h => h.on_data(conn, data))
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_sent(conn))
    }
    fn on_fds(&mut self, conn: &mut Conn<'_>, fds: Vec<std::os::fd::OwnedFd>) {
        forward!(self, h => h.on_fds(conn, fds))
    }
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_eof(conn))
    }
    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_timeout(conn))
    }
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_drain(conn))
    }
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_timer(conn))
    }
    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn Any + Send>) {
        forward!(self, h => h.on_offload(conn, result))
    }
    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        forward!(self, h => h.on_message(conn, from, msg))
    }
    fn on_undelivered(&mut self, conn: &mut Conn<'_>, to: ConnId, msg: Box<dyn Any>) {
        forward!(self, h => h.on_undelivered(conn, to, msg))
    }
    fn on_closing(&mut self, closing: &crate::Closing) {
        forward!(self, h => h.on_closing(closing))
    }
    fn on_close(&mut self, reason: CloseReason) {
        forward!(self, h => h.on_close(reason))
    }
    fn on_tunnel_closed(&mut self, stats: crate::handler::TunnelStats) {
        forward!(self, h => h.on_tunnel_closed(stats))
    }
}

/// A boxed handler is a handler (a factory may choose the handler type per
/// connection).
impl<H: Handler + ?Sized> Handler for Box<H> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        (**self).on_open(conn)
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        (**self).on_data(conn, data)
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        (**self).on_sent(conn)
    }
    fn on_fds(&mut self, conn: &mut Conn<'_>, fds: Vec<std::os::fd::OwnedFd>) {
        (**self).on_fds(conn, fds)
    }
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        (**self).on_eof(conn)
    }
    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        (**self).on_timeout(conn)
    }
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        (**self).on_drain(conn)
    }
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        (**self).on_timer(conn)
    }
    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn Any + Send>) {
        (**self).on_offload(conn, result)
    }
    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        (**self).on_message(conn, from, msg)
    }
    fn on_undelivered(&mut self, conn: &mut Conn<'_>, to: ConnId, msg: Box<dyn Any>) {
        (**self).on_undelivered(conn, to, msg)
    }
    fn on_closing(&mut self, closing: &crate::Closing) {
        (**self).on_closing(closing)
    }
    fn on_close(&mut self, reason: CloseReason) {
        (**self).on_close(reason)
    }
    fn on_tunnel_closed(&mut self, stats: crate::handler::TunnelStats) {
        (**self).on_tunnel_closed(stats)
    }
}
