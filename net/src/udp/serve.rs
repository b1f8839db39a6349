//! `serve_udp` and `serve_with_udp` on a [`Runtime`]: one [`UdpService`] per worker,
//! alone or beside the TCP server in one worker loop ([`Both`]).

use super::service::UdpService;
use super::{DatagramFactory, UdpOptions, UdpSockets};
use crate::server::{IntoListeners, Server};
use crate::socket::close_fd;
use crate::Factory;
use ringcore_runtime::{Completion, Io, OpKind, Runtime, Service};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
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

impl IntoUdpSockets for UdpSockets {
    fn into_udp_sockets(self, _workers: usize) -> io::Result<UdpSockets> {
        Ok(self)
    }
}

impl IntoUdpSockets for &str {
    fn into_udp_sockets(self, workers: usize) -> io::Result<UdpSockets> {
        UdpSockets::bind(self, workers, &UdpOptions::default())
    }
}

impl IntoUdpSockets for String {
    fn into_udp_sockets(self, workers: usize) -> io::Result<UdpSockets> {
        UdpSockets::bind(self.as_str(), workers, &UdpOptions::default())
    }
}

impl IntoUdpSockets for SocketAddr {
    fn into_udp_sockets(self, workers: usize) -> io::Result<UdpSockets> {
        UdpSockets::bind(self, workers, &UdpOptions::default())
    }
}

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

type Taken = Arc<Mutex<Vec<Option<RawFd>>>>;

fn take(fds: &Taken, id: usize, what: &str) -> io::Result<RawFd> {
    fds.lock().unwrap_or_else(|e| e.into_inner())[id]
        .take()
        .ok_or_else(|| io::Error::other(format!("{what} already taken")))
}

fn close_left(fds: &Taken) {
    for fd in fds
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .flatten()
    {
        close_fd(*fd);
    }
}

fn udp_fds(udp: impl IntoUdpSockets, workers: usize) -> io::Result<(Taken, usize)> {
    let s = udp.into_udp_sockets(workers)?;
    if s.len() != workers {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} UDP sockets for {workers} workers: bind one per worker",
                s.len()
            ),
        ));
    }
    let (fds, send_queue) = s.into_parts();
    Ok((
        Arc::new(Mutex::new(fds.into_iter().map(Some).collect())),
        send_queue,
    ))
}

impl ServeUdp for Runtime {
    fn serve_udp<U: IntoUdpSockets, D: DatagramFactory>(
        &self,
        udp: U,
        factory: D,
    ) -> io::Result<()> {
        let (fds, send_queue) = udp_fds(udp, self.config().workers)?;
        let factory = Arc::new(factory);
        let fds2 = fds.clone();
        let r = self.run(move |id, _io| {
            let fd = take(&fds2, id, "UDP socket")?;
            Ok(UdpService::new(fd, factory.make(id), id, send_queue))
        });
        close_left(&fds);
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
        if l.len() != workers {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} listeners for {workers} workers: bind one per worker",
                    l.len()
                ),
            ));
        }
        let (ufds, send_queue) = udp_fds(udp, workers)?;
        let pass_fds = l.pass_fds();
        let (fds, _unix_file) = l.into_parts();
        let tfds: Taken = Arc::new(Mutex::new(fds.into_iter().map(Some).collect()));
        let (factory, udp_factory) = (Arc::new(factory), Arc::new(udp_factory));
        let (t2, u2) = (tfds.clone(), ufds.clone());
        let r = self.run(move |id, io| {
            let fd = take(&t2, id, "listener")?;
            let mut tcp = Server::new(id, fd, factory.clone(), io.now());
            tcp.listener.pass_fds = pass_fds;
            let ufd = take(&u2, id, "UDP socket")?;
            let udp = UdpService::new(ufd, udp_factory.make(id), id, send_queue);
            Ok(Both { tcp, udp })
        });
        close_left(&tfds);
        close_left(&ufds);
        r
    }
}

/// Two services in one worker: completions of [`OpKind::Datagram`] ops go to `udp`,
/// all others to `tcp`.
pub(crate) struct Both<A, B> {
    tcp: A,
    udp: B,
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
        self.tcp.expire(io);
        self.udp.expire(io);
    }

    fn flush(&mut self, io: &mut Io) {
        self.tcp.flush(io);
        self.udp.flush(io);
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.tcp.next_deadline(), self.udp.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn drain(&mut self, io: &mut Io) {
        self.tcp.drain(io);
        self.udp.drain(io);
    }

    fn abort(&mut self, io: &mut Io) {
        self.tcp.abort(io);
        self.udp.abort(io);
    }

    fn is_done(&self) -> bool {
        self.tcp.is_done() && self.udp.is_done()
    }

    fn wants_exit(&self) -> bool {
        self.tcp.wants_exit()
    }
}
