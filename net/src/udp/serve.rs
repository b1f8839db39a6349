//! `serve_udp` and `serve_with_udp` on a [`Runtime`]: one [`UdpService`] per worker,
//! alone or beside the TCP server in one worker loop ([`Both`]).

use super::service::UdpService;
use super::{DatagramFactory, SendSettings, UdpOptions, UdpSockets};
use crate::per_worker::{bind_with_defaults, one_per_worker, WorkerFds};
use crate::server::{IntoListeners, Server};
use crate::Factory;
use ringcore_runtime::{Completion, Io, OpKind, Runtime, Service};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// UDP sockets to serve on: bound [`UdpSockets`] or an address to bind with default
/// [`UdpOptions`].
pub trait IntoUdpSockets {
    /// Binds (if needed) `workers` sockets.
    ///
    /// # Errors
    /// Bind errors.
    fn into_udp_sockets(self, workers: usize) -> io::Result<UdpSockets>;
}

bind_with_defaults!(IntoUdpSockets::into_udp_sockets -> UdpSockets, UdpOptions;
    &str, String, SocketAddr);

/// Serving UDP on a [`Runtime`].
pub trait ServeUdp {
    /// Serves datagrams on one socket per worker until shutdown (SIGINT/SIGTERM or
    /// [`Handle::shutdown`](ringcore_runtime::Handle::shutdown)): receiving stops,
    /// queued replies leave, then each socket closes and this returns.
    ///
    /// # Errors
    /// Bind errors, backend start-up errors, or a socket count that does not match the
    /// worker count.
    fn serve_udp<U: IntoUdpSockets, D: DatagramFactory>(
        &self,
        udp: U,
        factory: D,
    ) -> io::Result<()>;

    /// Serves TCP (or Unix) connections and UDP datagrams in the same workers: each
    /// worker runs its listener's connections and its UDP socket in one loop.
    ///
    /// # Errors
    /// As [`Serve::serve`](crate::Serve::serve) and [`serve_udp`](Self::serve_udp).
    fn serve_with_udp<L: IntoListeners, F: Factory, U: IntoUdpSockets, D: DatagramFactory>(
        &self,
        listeners: L,
        factory: F,
        udp: U,
        udp_factory: D,
    ) -> io::Result<()>;
}

fn udp_fds(udp: impl IntoUdpSockets, workers: usize) -> io::Result<(WorkerFds, SendSettings)> {
    let s = udp.into_udp_sockets(workers)?;
    one_per_worker(s.len(), workers, "UDP sockets")?;
    let (fds, send) = s.into_parts();
    Ok((WorkerFds::new(fds), send))
}

impl ServeUdp for Runtime {
    fn serve_udp<U: IntoUdpSockets, D: DatagramFactory>(
        &self,
        udp: U,
        factory: D,
    ) -> io::Result<()> {
        let (fds, send) = udp_fds(udp, self.config().workers)?;
        let factory = Arc::new(factory);
        let fds2 = fds.clone();
        let r = self.run(move |id, _io| {
            let fd = fds2.take(id, "UDP socket")?;
            Ok(UdpService::new(fd, factory.make(id), id, send))
        });
        fds.close_left();
        r
    }

    fn serve_with_udp<L: IntoListeners, F: Factory, U: IntoUdpSockets, D: DatagramFactory>(
        &self,
        listeners: L,
        factory: F,
        udp: U,
        udp_factory: D,
    ) -> io::Result<()> {
        let workers = self.config().workers;
        let l = listeners.into_listeners(workers)?;
        one_per_worker(l.len(), workers, "listeners")?;
        let (ufds, send) = udp_fds(udp, workers)?;
        let pass_fds = l.pass_fds();
        let (fds, _unix_file) = l.into_parts();
        let tfds = WorkerFds::new(fds);
        let (factory, udp_factory) = (Arc::new(factory), Arc::new(udp_factory));
        let (t2, u2) = (tfds.clone(), ufds.clone());
        let r = self.run(move |id, io| {
            let fd = t2.take(id, "listener")?;
            let mut tcp = Server::new(id, fd, factory.clone(), io.now());
            tcp.listener.pass_fds = pass_fds;
            let ufd = u2.take(id, "UDP socket")?;
            let udp = UdpService::new(ufd, udp_factory.make(id), id, send);
            Ok(Both { tcp, udp })
        });
        tfds.close_left();
        ufds.close_left();
        r
    }
}

/// Two services in one worker: completions of [`OpKind::Datagram`] ops go to `udp`,
/// all others to `tcp`.
pub(crate) struct Both<A, B> {
    tcp: A,
    udp: B,
}

impl<A: Service, B: Service> Both<A, B> {
    /// Runs a turn's step on the TCP service, then on the UDP one.
    fn each(&mut self, io: &mut Io, step: fn(&mut dyn Service, &mut Io)) {
        step(&mut self.tcp, io);
        step(&mut self.udp, io);
    }
}

impl<A: Service, B: Service> Service for Both<A, B> {
    fn start(&mut self, io: &mut Io) -> io::Result<()> {
        self.tcp.start(io)?;
        self.udp.start(io)
    }

    fn complete(&mut self, io: &mut Io, c: Completion) {
        if c.token.kind() == Some(OpKind::Datagram) {
            self.udp.complete(io, c)
        } else {
            self.tcp.complete(io, c)
        }
    }

    fn expire(&mut self, io: &mut Io) {
        self.each(io, |s, io| s.expire(io));
    }

    fn flush(&mut self, io: &mut Io) {
        self.each(io, |s, io| s.flush(io));
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.tcp.next_deadline(), self.udp.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn drain(&mut self, io: &mut Io) {
        self.each(io, |s, io| s.drain(io));
    }

    fn abort(&mut self, io: &mut Io) {
        self.each(io, |s, io| s.abort(io));
    }

    fn is_done(&self) -> bool {
        self.tcp.is_done() && self.udp.is_done()
    }

    fn wants_exit(&self) -> bool {
        self.tcp.wants_exit()
    }
}
