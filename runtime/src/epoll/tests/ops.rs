//! Accept, read, connect, splice, poll-writable, nop and bad fds.

use super::*;

#[test]
fn accept_yields_queued_and_new_connections() {
    let (mut p, mut c) = poller(64);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let clients: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let t = tok(0, OpKind::Accept);
    push(
        &mut p,
        &mut c,
        t,
        Op::AcceptMulti { fd: l.as_raw_fd() },
        false,
    );
    let mut got = drive_n(&mut p, &mut c, 3);
    let late = TcpStream::connect(addr).unwrap();
    got.extend(drive_n(&mut p, &mut c, 1));
    assert_eq!(got.len(), 4);
    for (x, _) in &got {
        assert_eq!(x.token, t);
        assert!(x.result >= 0 && x.more(), "{x:?}");
        // SAFETY: the accepted fd is ours; F_GETFL touches no memory.
        let fl = unsafe { libc::fcntl(x.result, libc::F_GETFL) };
        assert!(fl & libc::O_NONBLOCK != 0);
        // SAFETY: the accepted fd is ours and used nowhere else.
        drop(unsafe { OwnedFd::from_raw_fd(x.result) });
    }
    drop((clients, late));
}

#[test]
fn read_parks_until_the_eventfd_is_written() {
    let (mut p, mut c) = poller(64);
    use nix::sys::eventfd::{EfdFlags, EventFd};
    let owned = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).unwrap();
    let efd = owned.as_raw_fd();
    let mut buf = 0u64;
    let t = tok(0, OpKind::Wake);
    let op = Op::Read {
        fd: efd,
        buf: (&mut buf as *mut u64).cast(),
        len: 8,
    };
    push(&mut p, &mut c, t, op, false);
    assert_quiet(&mut p, &mut c);
    assert_eq!(owned.write(5).unwrap(), 8);
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(got[0].0, Completion::new(t, 8));
    assert_eq!(buf, 5);
    drop(owned);
}

fn sockaddr_in(addr: std::net::SocketAddr) -> libc::sockaddr_in {
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("v4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn connect_op(p: &mut Poller, c: &mut Counters, sa: &libc::sockaddr_in) -> (OwnedFd, Completion) {
    // SAFETY: plain socket creation, checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    assert!(fd >= 0);
    let op = Op::Connect {
        fd,
        addr: (sa as *const libc::sockaddr_in).cast(),
        addrlen: std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
    };
    push(p, c, tok(fd as u32, OpKind::Connect), op, false);
    let got = drive_n(p, c, 1);
    // SAFETY: we own the new socket.
    (unsafe { OwnedFd::from_raw_fd(fd) }, got[0].0)
}

#[test]
fn connect_succeeds_or_reports_the_error() {
    let (mut p, mut c) = poller(64);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sa = sockaddr_in(l.local_addr().unwrap());
    let (_s, done) = connect_op(&mut p, &mut c, &sa);
    assert_eq!(done.result, 0);
    l.accept().unwrap();

    drop(l); // nobody listens on that port now
    let (_s, done) = connect_op(&mut p, &mut c, &sa);
    assert_eq!(done.result, -libc::ECONNREFUSED);
}

#[test]
fn splice_socket_to_pipe_and_back() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    let mut pfd = [0; 2];
    // SAFETY: `pfd` has room for the two fds pipe2 writes.
    let r = unsafe { libc::pipe2(pfd.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(r, 0);
    // SAFETY: we own both new pipe ends.
    let (pr, pw) = unsafe { (OwnedFd::from_raw_fd(pfd[0]), OwnedFd::from_raw_fd(pfd[1])) };
    let (sock, r, w) = (a.as_raw_fd(), pr.as_raw_fd(), pw.as_raw_fd());

    // Socket -> pipe: nothing to read yet, so it parks until the peer writes.
    let into_pipe = Op::Splice {
        fd_in: sock,
        off_in: -1,
        fd_out: w,
        off_out: -1,
        len: 4096,
        more: false,
    };
    push(&mut p, &mut c, tok(1, OpKind::Splice), into_pipe, false);
    assert_quiet(&mut p, &mut c);
    b.write_all(b"through a pipe").unwrap();
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(got[0].0, Completion::new(tok(1, OpKind::Splice), 14));

    // Pipe -> socket: the peer receives the same bytes.
    let out_of_pipe = Op::Splice {
        fd_in: r,
        off_in: -1,
        fd_out: sock,
        off_out: -1,
        len: 14,
        more: false,
    };
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::SpliceOut),
        out_of_pipe,
        false,
    );
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(got[0].0, Completion::new(tok(1, OpKind::SpliceOut), 14));
    let mut buf = [0u8; 14];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"through a pipe");

    // A parked splice is cancelled through either of its fds.
    push(&mut p, &mut c, tok(2, OpKind::Splice), into_pipe, false);
    push(
        &mut p,
        &mut c,
        tok(2, OpKind::Cancel),
        Op::CancelFd { fd: sock },
        false,
    );
    let got = drive_n(&mut p, &mut c, 2);
    assert_eq!(
        got[0].0,
        Completion::new(tok(2, OpKind::Splice), -libc::ECANCELED)
    );
    assert_eq!(got[1].0, Completion::new(tok(2, OpKind::Cancel), 1));
}

#[test]
fn poll_writable_and_nop_complete() {
    let (mut p, mut c) = poller(64);
    let (a, _b) = pair();
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Poll),
        Op::PollWritable { fd: a.as_raw_fd() },
        false,
    );
    push(&mut p, &mut c, tok(1, OpKind::Nop), Op::Nop, false);
    let got: Vec<_> = drive_n(&mut p, &mut c, 2)
        .into_iter()
        .map(|g| g.0)
        .collect();
    assert!(got.contains(&Completion::new(tok(1, OpKind::Poll), libc::POLLOUT as i32)));
    assert!(got.contains(&Completion::new(tok(1, OpKind::Nop), 0)));
}

#[test]
fn bad_fds_fail_like_the_kernel_would() {
    let (mut p, mut c) = poller(64);
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Close),
        Op::Close { fd: -1 },
        false,
    );
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(
        got[0].0,
        Completion::new(tok(1, OpKind::Close), -libc::EBADF)
    );
}

/// The hang-up guard of `ringcore-net` keeps a hang-up poll armed on every idle
/// connection without a timer: it must wait in the fd's entry, not in a 104-byte slab
/// entry (it did, and that was 113 B of every idle connection at 15k connections).
#[test]
fn hangup_poll_waits_without_a_slab_entry_and_fires_on_peer_close() {
    let (mut p, mut c) = poller(64);
    let (a, b) = pair();
    let t = tok(3, OpKind::Poll);
    push(
        &mut p,
        &mut c,
        t,
        Op::PollHangup { fd: a.as_raw_fd() },
        false,
    );
    assert_quiet(&mut p, &mut c);
    assert_eq!(p.ops.len(), 0, "the hang-up poll took a slab entry");
    // A second one on the same fd parks as before; both fire.
    let t2 = tok(4, OpKind::Poll);
    push(
        &mut p,
        &mut c,
        t2,
        Op::PollHangup { fd: a.as_raw_fd() },
        false,
    );
    assert_eq!(p.ops.len(), 1);
    assert_quiet(&mut p, &mut c);
    drop(b);
    let mut got: Vec<Completion> = drive_n(&mut p, &mut c, 2)
        .into_iter()
        .map(|g| g.0)
        .collect();
    got.sort_by_key(|x| x.token.slot());
    assert_eq!(
        got,
        vec![
            Completion::new(t, crate::op::poll::HANGUP),
            Completion::new(t2, crate::op::poll::HANGUP)
        ]
    );
    assert_eq!(p.ops.len(), 0);
    // Known hung up: a new one completes at once.
    let t3 = tok(5, OpKind::Poll);
    push(
        &mut p,
        &mut c,
        t3,
        Op::PollHangup { fd: a.as_raw_fd() },
        false,
    );
    assert_eq!(
        drive_n(&mut p, &mut c, 1)[0].0,
        Completion::new(t3, crate::op::poll::HANGUP)
    );
}

#[test]
fn hangup_poll_is_cancelled_by_token_by_fd_and_by_close() {
    let (mut p, mut c) = poller(64);
    let (a, _b) = pair();
    let fd = a.as_raw_fd();
    let (t, cancel) = (tok(1, OpKind::Poll), tok(1, OpKind::Cancel));
    push(&mut p, &mut c, t, Op::PollHangup { fd }, false);
    push(&mut p, &mut c, cancel, Op::Cancel { fd, target: t }, false);
    let got = drive_n(&mut p, &mut c, 2);
    assert_eq!(got[0].0, Completion::new(t, -libc::ECANCELED));
    assert_eq!(got[1].0, Completion::new(cancel, 0));
    // Cancelled once: a second cancel finds nothing.
    push(&mut p, &mut c, cancel, Op::Cancel { fd, target: t }, false);
    assert_eq!(
        drive_n(&mut p, &mut c, 1)[0].0,
        Completion::new(cancel, -libc::ENOENT)
    );

    let (recv, all) = (tok(2, OpKind::Recv), tok(2, OpKind::Cancel));
    push(&mut p, &mut c, t, Op::PollHangup { fd }, false);
    push(&mut p, &mut c, recv, Op::RecvMulti { fd }, false);
    push(&mut p, &mut c, all, Op::CancelFd { fd }, false);
    let got: Vec<Completion> = drive_n(&mut p, &mut c, 3)
        .into_iter()
        .map(|g| g.0)
        .collect();
    assert!(
        got.contains(&Completion::new(t, -libc::ECANCELED)),
        "{got:?}"
    );
    assert!(
        got.contains(&Completion::new(recv, -libc::ECANCELED)),
        "{got:?}"
    );
    assert_eq!(got[2], Completion::new(all, 2));

    let (a2, _b2) = pair();
    let fd2 = a2.into_raw_fd();
    let close = tok(3, OpKind::Close);
    push(&mut p, &mut c, t, Op::PollHangup { fd: fd2 }, false);
    push(&mut p, &mut c, close, Op::Close { fd: fd2 }, false);
    let got = drive_n(&mut p, &mut c, 2);
    assert_eq!(got[0].0, Completion::new(t, -libc::ECANCELED));
    assert_eq!(got[1].0, Completion::new(close, 0));
}
