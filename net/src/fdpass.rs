//! Passing file descriptors over Unix stream connections (`SCM_RIGHTS`), both ways.
//!
//! Sending: [`Conn::send_fds`] duplicates the caller's fds (close-on-exec; the caller
//! keeps and may close its own) and queues them with their bytes in order with every
//! other send. The write queue sends them as a `sendmsg` whose control data carries the
//! fds; that message starts a send of its own, so the fds travel with its first byte.
//! The duplicates and the control buffer belong to the queued segment until the send
//! completes (the kernel reads them until its final completion), then are closed.
//!
//! Receiving is opt-in per connection ([`Conn::receive_fds`], from `on_open`): such a
//! connection receives with a single-shot `recvmsg` into its own buffer and a control
//! buffer for [`MAX_PASSED_FDS`] fds, instead of the multishot receive into the
//! worker's buffer pool (which cannot carry control data). Received fds are opened
//! close-on-exec (`MSG_CMSG_CLOEXEC`) and handed to [`Handler::on_fds`] before
//! `on_data` gets the bytes they arrived with. A message with more fds than fit
//! (`MSG_CTRUNC`: the kernel closed the ones that did not fit) has the ones received
//! closed and closes the connection with an error naming the limit: the peer's
//! message was not delivered whole.
//!
//! The receive completion is handled in `fdpass_recv.rs` (a part of the server).
//!
//! A connection that did not opt in drops every fd sent to it: its receive has no
//! control buffer, so the kernel closes them (nothing leaks into the process).

use crate::conn::*;
use crate::handler::Conn;
use crate::scm::{cmsg_space, zeroed_msghdr};
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// Most fds one message may carry, sent or received. A received message with more
/// is truncated by the kernel (`MSG_CTRUNC`) and closes the connection with an error.
pub const MAX_PASSED_FDS: usize = 16;

/// Receive buffer of a connection that receives fds, bytes.
pub const FD_RECV_BUFFER: usize = 16 * 1024;

/// Control buffer words: room for one `SCM_RIGHTS` header and [`MAX_PASSED_FDS`] fds
/// (`CMSG_SPACE(16 * 4)` = 80 bytes on 64-bit Linux), 8-byte aligned as cmsgs need.
const CTL_WORDS: usize = 16;

/// The receive state of a connection that receives fds: the `recvmsg` header, its one
/// iovec, the data buffer and the control buffer.
///
/// INVARIANT: while the connection's `RecvMsg` op is in flight (`RECV_ARMED`), none of
/// this is touched or moved: the box stays in the connection's slot until the slot is
/// released, which waits for every op's final completion.
pub(crate) struct FdRecv {
    msg: libc::msghdr,
    iov: libc::iovec,
    buf: Vec<u8>,
    ctl: [u64; CTL_WORDS],
}

impl FdRecv {
    pub(crate) fn new() -> Box<FdRecv> {
        Box::new(FdRecv {
            msg: zeroed_msghdr(),
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            buf: vec![0; FD_RECV_BUFFER],
            ctl: [0; CTL_WORDS],
        })
    }

    /// Fills the header for the next receive, in place, and returns it.
    pub(crate) fn prepare(&mut self) -> *mut libc::msghdr {
        self.iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: self.buf.len(),
        };
        self.msg = zeroed_msghdr();
        self.msg.msg_iov = &mut self.iov;
        self.msg.msg_iovlen = 1;
        self.msg.msg_control = self.ctl.as_mut_ptr().cast();
        self.msg.msg_controllen = cmsg_space(MAX_PASSED_FDS) as _;
        &mut self.msg
    }

    /// The first `n` bytes the completed receive wrote into the data buffer.
    pub(crate) fn received(&self, n: usize) -> &[u8] {
        &self.buf[..n.min(self.buf.len())]
    }

    /// The fds of the completed receive (now owned: they close on drop) and whether
    /// the kernel truncated the control data.
    pub(crate) fn take_fds(&mut self) -> (Vec<OwnedFd>, bool) {
        let mut fds = Vec::new();
        let truncated = self.msg.msg_flags & libc::MSG_CTRUNC != 0;
        // SAFETY: the receive completed, so the kernel is done with the header; it set
        // `msg_controllen` to the bytes of `ctl` it filled, and the CMSG_* macros walk
        // only that range. Each SCM_RIGHTS payload is ints the kernel installed as new
        // fds in this process, owned by nobody else: `OwnedFd` takes them.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&self.msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                    let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                    for i in 0..n {
                        fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                    }
                }
                c = libc::CMSG_NXTHDR(&self.msg, c);
            }
        }
        (fds, truncated)
    }
}

impl Conn<'_> {
    /// Queues `data` with copies of `fds` for the peer of a Unix stream connection
    /// (`SCM_RIGHTS`), in order with everything else sent: the fds arrive with the
    /// first byte of `data` (the peer's `recvmsg` that reads that byte gets them). The
    /// fds are duplicated (close-on-exec) now, so the caller may close its own at once;
    /// the duplicates are closed once the kernel took them. Ignored after `close`,
    /// like [`send`](Self::send).
    ///
    /// # Errors
    /// `InvalidInput` if `data` is empty (a stream carries fds only with bytes) or more
    /// than [`MAX_PASSED_FDS`] fds are given; `Unsupported` on a TCP connection or
    /// under TLS; the `fcntl(F_DUPFD_CLOEXEC)` error (`EMFILE`). Nothing is queued then.
    pub fn send_fds(&mut self, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if data.is_empty() || fds.len() > MAX_PASSED_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "send_fds needs at least one byte and at most {MAX_PASSED_FDS} fds \
                     (got {} bytes, {} fds)",
                    data.len(),
                    fds.len()
                ),
            ));
        }
        if self.core.layer.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "send_fds: fds cannot pass through TLS",
            ));
        }
        if !matches!(crate::addr::local(self.core.fd), Some(crate::Addr::Unix(_))) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "send_fds: file descriptors pass only over Unix sockets",
            ));
        }
        if self.core.write_closed() {
            return Ok(());
        }
        let owned = fds
            .iter()
            .map(|fd| fd.try_clone_to_owned())
            .collect::<io::Result<Vec<OwnedFd>>>()
            .map_err(|e| io::Error::new(e.kind(), format!("send_fds: dup: {e}")))?;
        self.core
            .out
            .push_fds(data.to_vec(), owned, &mut self.ctx.spare);
        self.ctx.mark_dirty(self.core);
        Ok(())
    }

    /// Makes this Unix connection receive passed fds: they reach
    /// [`Handler::on_fds`](crate::Handler::on_fds) before the bytes they came with.
    /// Call it from `on_open`, before reading starts. The connection then receives
    /// with a single-shot `recvmsg` into its own [`FD_RECV_BUFFER`]-byte buffer (one
    /// copy more than the default receive; meant for control connections). Without it,
    /// fds sent to the connection are closed by the kernel.
    ///
    /// # Errors
    /// `InvalidInput` if reading already started; `Unsupported` on a TCP connection,
    /// a tunnel, or under TLS.
    pub fn receive_fds(&mut self) -> io::Result<()> {
        let c = &mut *self.core;
        if c.fdrecv.is_some() {
            return Ok(());
        }
        if c.layer.is_some() || c.tunnel.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "receive_fds: not on a tunnel or under TLS",
            ));
        }
        if !matches!(crate::addr::local(c.fd), Some(crate::Addr::Unix(_))) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "receive_fds: file descriptors pass only over Unix sockets",
            ));
        }
        if c.has(RECV_ARMED | EOF) || !c.pending.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "receive_fds must be called from on_open, before any byte is read",
            ));
        }
        c.fdrecv = Some(FdRecv::new());
        Ok(())
    }
}
