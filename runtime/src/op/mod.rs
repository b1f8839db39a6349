//! The backend-neutral op set.
//!
//! An [`Op`] is what a worker asks a backend to do. The io_uring backend turns it
//! into one SQE; the epoll backend performs the matching syscall when the fd is
//! ready. Both report the outcome as a [`Completion`](crate::Completion) carrying the
//! token the op was submitted with, and with the same result convention.
//!
//! One file per op holds its SQE builder and its epoll syscall side by side. The epoll
//! functions issue exactly one syscall each (the backend counts them) and report
//! failure as `io::Error`; the backend turns that into the `-errno` of a completion.
//!
//! # Pointers in ops
//! Ops that reference memory (iovecs, addresses, read buffers) carry raw pointers.
//! Submitting them is `unsafe` ([`Io::submit`](crate::Io::submit)): the caller
//! promises that the memory stays valid and unmoved until the op's final completion
//! (for multishot ops: the completion without [`F_MORE`](crate::completion::F_MORE)).
//! In ringcore that memory is owned by the registry slot named in the token.

/// Calls the libc function `$fn`, turning its `-1` failure value into
/// [`io::Error::last_os_error`](std::io::Error::last_os_error). The call site wraps it
/// in `unsafe` and states why the arguments are valid.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        let res = libc::$fn($($arg),*);
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// What an SQE names: a plain fd, or a slot of the ring's registered file table (a
/// direct descriptor, submitted with `IOSQE_FIXED_FILE`; see `uring/direct.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A file descriptor.
    Fd(std::os::fd::RawFd),
    /// A slot of the registered file table.
    Fixed(u32),
}

impl From<std::os::fd::RawFd> for Target {
    fn from(fd: std::os::fd::RawFd) -> Target {
        Target::Fd(fd)
    }
}

/// `opcode::$op::new(<target>, args..)` for either kind of [`Target`] (the io-uring
/// builders take `types::Fd` or `types::Fixed`, two types).
macro_rules! on_target {
    ($op:ident, $t:expr $(, $arg:expr)* $(,)?) => {
        match $crate::op::Target::from($t) {
            $crate::op::Target::Fd(fd) => io_uring::opcode::$op::new(io_uring::types::Fd(fd) $(, $arg)*),
            $crate::op::Target::Fixed(i) => io_uring::opcode::$op::new(io_uring::types::Fixed(i) $(, $arg)*),
        }
    };
}

pub(crate) mod accept;
pub(crate) mod cancel;
pub(crate) mod close;
pub(crate) mod connect;
pub mod datagram;
pub(crate) mod nop;
pub(crate) mod poll;
pub(crate) mod read;
pub(crate) mod recv;
pub(crate) mod recvmsg;
pub(crate) mod send;
pub(crate) mod sendfile;
pub(crate) mod shutdown;
pub(crate) mod splice;

use std::os::fd::RawFd;

/// One operation on a file descriptor.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Op {
    /// Multishot `accept4(2)`: one completion per accepted connection (`result` is the
    /// new fd, opened `SOCK_NONBLOCK | SOCK_CLOEXEC`), each with `F_MORE` while the op
    /// stays armed. An error ends the op (no `F_MORE`).
    AcceptMulti {
        /// The listening socket.
        fd: RawFd,
    },
    /// Single-shot `accept4(2)`: one completion (`result` is the new fd, opened
    /// `SOCK_NONBLOCK | SOCK_CLOEXEC`, or `-errno`). For a listener several workers
    /// share (Unix sockets): each completed accept re-queues behind the other workers'
    /// waiting accepts, where a multishot accept would stay first in the socket's
    /// wait queue and take every connection (see `net/src/unix.rs`).
    Accept {
        /// The listening socket.
        fd: RawFd,
    },
    /// Multishot `recv(2)` into the worker's buffer pool: each completion names a pool
    /// buffer (`F_BUFFER`) holding `result` bytes; `result == 0` is end of stream and
    /// ends the op; `-ENOBUFS` (io_uring only) means the pool ran dry and ends the op.
    RecvMulti {
        /// The connected socket.
        fd: RawFd,
    },
    /// Single-shot `recvmsg(2)` into the iovecs and control buffer `msg` names (e.g.
    /// `SCM_RIGHTS` file descriptors, which a multishot receive into the buffer pool
    /// cannot carry). `result` is the number of bytes received, `0` at end of stream;
    /// the kernel writes the control length and `msg_flags` (`MSG_CTRUNC`) back into
    /// `*msg`.
    RecvMsg {
        /// The connected socket.
        fd: RawFd,
        /// The message header; it, its iovecs and its control buffer must stay valid
        /// and unmoved until completion.
        msg: *mut libc::msghdr,
        /// `recvmsg` flags, e.g. `MSG_CMSG_CLOEXEC`.
        flags: u32,
    },
    /// `sendmsg(2)` with `MSG_NOSIGNAL`. `result` is the number of bytes sent
    /// (possibly fewer than asked unless `waitall`).
    Send {
        /// The connected socket.
        fd: RawFd,
        /// The message header (no address; control data such as `SCM_RIGHTS` is
        /// sent with the first byte, and not again when a `waitall` send resumes); it,
        /// the iovecs and the control buffer it points at must stay valid and
        /// unmodified until completion.
        msg: *const libc::msghdr,
        /// Keep sending until everything is sent or an error occurs (`MSG_WAITALL`).
        waitall: bool,
        /// More data follows right after this send (`MSG_MORE`): the last partial
        /// segment waits for it instead of leaving alone, e.g. a response head whose
        /// body is spliced next. Set it only when the next write comes without waiting
        /// for anything else.
        more: bool,
    },
    /// `shutdown(2)` one or both directions.
    Shutdown {
        /// The socket.
        fd: RawFd,
        /// `libc::SHUT_WR`, `SHUT_RD` or `SHUT_RDWR`.
        how: i32,
    },
    /// `close(2)`.
    Close {
        /// The descriptor to close.
        fd: RawFd,
    },
    /// Cancel every op in flight on `fd` (`IORING_ASYNC_CANCEL_FD | _ALL`). Each
    /// cancelled op completes with `-ECANCELED`; the cancel itself completes with
    /// the number of ops cancelled or `-ENOENT`.
    CancelFd {
        /// The descriptor whose ops to cancel.
        fd: RawFd,
    },
    /// `read(2)` into a caller-owned buffer (eventfds, pipes, files).
    Read {
        /// The descriptor.
        fd: RawFd,
        /// Destination; must stay valid until completion.
        buf: *mut u8,
        /// Capacity of `buf`.
        len: u32,
    },
    /// `splice(2)` between a pipe and a socket or file. Offsets of `-1` mean "the
    /// current position / a pipe".
    Splice {
        /// Source.
        fd_in: RawFd,
        /// Offset in the source (`-1` for pipes and sockets).
        off_in: i64,
        /// Destination.
        fd_out: RawFd,
        /// Offset in the destination (`-1` for pipes and sockets).
        off_out: i64,
        /// Most bytes to move.
        len: u32,
        /// More data follows this splice (`SPLICE_F_MORE`): into a socket it is sent
        /// with `MSG_MORE`, so the last partial segment waits for the next write
        /// instead of leaving alone (as `TCP_CORK` would hold it). Set it only when the
        /// caller's next write to the socket comes without waiting for anything else,
        /// such as the next piece of the same file.
        more: bool,
    },
    /// `sendfile(2)` of up to `len` bytes of a file from `offset` into a stream socket,
    /// without a pipe of ours; `result` is the number of bytes sent (0: the file ended
    /// before `offset`). io_uring has no sendfile op: both backends run it on the
    /// worker (epoll once the socket is writable; io_uring when pushed, completing with
    /// `-EAGAIN` if the socket is full, so the caller waits with
    /// [`Op::PollWritable`] and tries again). A file not in the page cache is read
    /// on the worker, as with [`SpliceMode::Inline`](crate::SpliceMode). Never linked.
    SendFile {
        /// The file (any offset; its position is not moved).
        fd_file: RawFd,
        /// Where in the file to start.
        offset: i64,
        /// The destination stream socket.
        fd_sock: RawFd,
        /// Most bytes to send.
        len: u32,
    },
    /// `connect(2)` a nonblocking socket.
    Connect {
        /// The socket.
        fd: RawFd,
        /// Peer address; must stay valid until completion.
        addr: *const libc::sockaddr,
        /// Length of `*addr`.
        addrlen: libc::socklen_t,
    },
    /// One-shot poll for readability (`POLLIN`); `result` is the ready mask.
    PollReadable {
        /// The descriptor.
        fd: RawFd,
    },
    /// Cancel the one op submitted with `target` (`IORING_OP_ASYNC_CANCEL` by
    /// user_data). The cancelled op completes with `-ECANCELED`; the cancel itself with
    /// 0, or `-ENOENT` if no such op is in flight (it may have just completed), or
    /// `-EALREADY` if it is running and cannot be stopped.
    Cancel {
        /// The fd the target op acts on (the epoll backend looks it up there).
        fd: RawFd,
        /// The token the target op was submitted with.
        target: crate::token::Token,
    },
    /// One-shot poll for writability (`POLLOUT`); `result` is the ready mask.
    PollWritable {
        /// The descriptor.
        fd: RawFd,
    },
    /// One-shot poll for a hang-up or an error (`POLLRDHUP`; `POLLERR` and `POLLHUP`
    /// are always reported): completes once the peer has shut down its sending side or
    /// reset the connection; `result` is the ready mask. A guard for a connection whose
    /// receive waits: whatever happens to that receive, the end of the connection is
    /// seen (io_uring: `IORING_OP_POLL_ADD`; epoll: the fd's `EPOLLRDHUP` / `EPOLLHUP` /
    /// `EPOLLERR`).
    PollHangup {
        /// The descriptor.
        fd: RawFd,
    },
    /// Multishot `recvmsg(2)` of datagrams into the worker's buffer pool: each
    /// completion names a pool buffer (`F_BUFFER`) holding `result` bytes in the layout
    /// of [`datagram`] (header, source address, control, payload; parse it with
    /// [`datagram::RecvMsg::parse`]). `-ENOBUFS` means the pool ran dry and ends the op;
    /// any error ends it. io_uring: `IORING_OP_RECVMSG` with `IORING_RECV_MULTISHOT`
    /// (kernel 6.0); epoll: `recvmmsg(2)` batches on each readable edge.
    RecvMsgMulti {
        /// The datagram socket.
        fd: RawFd,
        /// Template: only `msg_namelen` and `msg_controllen` (the capacities reserved
        /// in each buffer) are used. Must stay valid until the op's final completion.
        msg: *const libc::msghdr,
    },
    /// `sendmsg(2)` of one datagram with `MSG_NOSIGNAL`, to the address in the
    /// header's name. `result` is the number of bytes sent. io_uring: one
    /// `IORING_OP_SENDMSG`; epoll: the sends pushed one after another on one fd leave
    /// together in one `sendmmsg(2)` when the loop turn ends (or before any other op).
    SendMsg {
        /// The datagram socket.
        fd: RawFd,
        /// The message: name, iovecs and optional control data (e.g. a `UDP_SEGMENT`
        /// cmsg: then `result` counts the bytes of every segment); it and everything it
        /// points at must stay valid and unmodified until completion. Both backends
        /// hand the whole header to the kernel.
        msg: *const libc::msghdr,
    },
    /// Does nothing; completes with 0.
    Nop,
}

impl Op {
    /// The fd the op acts on (`-1` for [`Op::Nop`]).
    pub fn fd(&self) -> RawFd {
        match *self {
            Op::AcceptMulti { fd }
            | Op::Accept { fd }
            | Op::RecvMulti { fd }
            | Op::RecvMsg { fd, .. }
            | Op::Send { fd, .. }
            | Op::Shutdown { fd, .. }
            | Op::Close { fd }
            | Op::CancelFd { fd }
            | Op::Read { fd, .. }
            | Op::Connect { fd, .. }
            | Op::PollReadable { fd }
            | Op::PollHangup { fd }
            | Op::Cancel { fd, .. }
            | Op::PollWritable { fd }
            | Op::RecvMsgMulti { fd, .. }
            | Op::SendMsg { fd, .. } => fd,
            Op::Splice { fd_out, .. } => fd_out,
            Op::SendFile { fd_sock, .. } => fd_sock,
            Op::Nop => -1,
        }
    }

    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Op::AcceptMulti { .. } => "accept",
            Op::Accept { .. } => "accept-one",
            Op::RecvMulti { .. } => "recv",
            Op::RecvMsg { .. } => "recvmsg-one",
            Op::Send { .. } => "send",
            Op::Shutdown { .. } => "shutdown",
            Op::Close { .. } => "close",
            Op::CancelFd { .. } => "cancel",
            Op::Read { .. } => "read",
            Op::Splice { .. } => "splice",
            Op::SendFile { .. } => "sendfile",
            Op::Connect { .. } => "connect",
            Op::PollWritable { .. } => "poll",
            Op::PollReadable { .. } => "poll-in",
            Op::PollHangup { .. } => "poll-hup",
            Op::Cancel { .. } => "cancel-op",
            Op::RecvMsgMulti { .. } => "recvmsg",
            Op::SendMsg { .. } => "sendmsg",
            Op::Nop => "nop",
        }
    }
}
