//! The epoll backend on real sockets, pipes and eventfds: each test pushes ops, runs
//! loop turns (wait, then drain `next()`) and asserts the completions io_uring would
//! produce. No sleeps: the loop waits on the poller itself.

use super::fdstate::FdState;
use super::*;
use crate::completion::{F_BUFFER, F_MORE};
use crate::token::OpKind;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

mod lifecycle;
mod ops;
mod recv_send;

fn poller(buf_size: u32) -> (Poller, Counters) {
    let cfg = Config {
        buf_size,
        ..Config::default()
    };
    (
        Poller::new(&cfg).expect("epoll_create1"),
        Counters::default(),
    )
}

fn tok(slot: u32, kind: OpKind) -> Token {
    Token::new(slot, 1, kind)
}

fn push(p: &mut Poller, c: &mut Counters, token: Token, op: Op, link: bool) {
    // SAFETY: every test keeps the memory its ops point at (buffers, iovecs, msghdrs,
    // addresses) alive until it has seen the ops' final completions.
    unsafe { p.push(token, op, link, c) }.expect("push");
}

/// One received completion with a copy of its bytes (taken before the next `next()`).
type Got = (Completion, Vec<u8>);

/// Runs loop turns until `done(&completions)`; `peer` runs before every wait (the
/// other end of the test's sockets). Panics after 5 s.
fn drive(
    p: &mut Poller,
    c: &mut Counters,
    mut peer: impl FnMut(),
    done: impl Fn(&[Got]) -> bool,
) -> Vec<Got> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    while !done(&out) {
        assert!(Instant::now() < deadline, "timed out; got {out:?}");
        peer();
        p.wait(Some(Duration::from_millis(100)), c).expect("wait");
        while let Some(x) = p.next(c) {
            let bytes = match x.buffer() {
                Some(bid) if x.result > 0 => p.buffer(bid, x.result as usize).to_vec(),
                _ => Vec::new(),
            };
            out.push((x, bytes));
        }
    }
    out
}

/// Runs turns until `n` completions arrived.
fn drive_n(p: &mut Poller, c: &mut Counters, n: usize) -> Vec<Got> {
    drive(p, c, || {}, |g| g.len() >= n)
}

/// One non-blocking turn; asserts nothing completes.
fn assert_quiet(p: &mut Poller, c: &mut Counters) {
    p.wait(Some(Duration::ZERO), c).expect("wait");
    assert_eq!(p.next(c), None);
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

fn msghdr(iov: &mut [libc::iovec]) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (no name, no control, no iovecs).
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = iov.as_mut_ptr();
    m.msg_iovlen = iov.len() as _;
    m
}

fn iovec(b: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    }
}

fn set_sndbuf(fd: RawFd, bytes: libc::c_int) {
    // SAFETY: passes a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// Reads whatever `s` has queued right now into `into`.
fn drain_now(s: &mut UnixStream, into: &mut Vec<u8>) {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("peer read: {e}"),
        }
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn fd_state_stays_small() {
    // One entry per fd number: 16 B plus the 8 B hang-up poll token (fdstate.rs).
    assert!(std::mem::size_of::<FdState>() <= 24);
}

#[test]
fn push_completions_arrive_after_the_next_wait() {
    let (mut p, mut c) = poller(64);
    push(&mut p, &mut c, tok(1, OpKind::Nop), Op::Nop, false);
    assert!(p.has_ready());
    assert_eq!(
        p.next(&mut c),
        None,
        "not before the wait, as with io_uring"
    );
    p.wait(None, &mut c).unwrap(); // has_ready: must not block
    assert_eq!(
        p.next(&mut c),
        Some(Completion::new(tok(1, OpKind::Nop), 0))
    );
    assert_eq!((c.sqes, c.cqes), (1, 1));
    assert!(!p.has_ready());
}

#[test]
fn counters_follow_pushes_completions_and_syscalls() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Recv),
        Op::RecvMulti { fd: a.as_raw_fd() },
        false,
    );
    assert_eq!(c.syscalls, 1, "epoll_ctl");
    b.write_all(b"x").unwrap();
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(got.len(), 1);
    assert_eq!((c.sqes, c.cqes, c.enters), (1, 1, 0));
    // epoll_ctl + one recv + at least one epoll_wait
    assert!(c.syscalls >= 3, "{c:?}");
}

#[test]
fn waiting_completions_skip_every_other_epoll_wait() {
    let (mut p, mut c) = poller(64);
    let nop = tok(1, OpKind::Nop);
    p.wait(Some(Duration::ZERO), &mut c).unwrap();
    assert_eq!(c.syscalls, 1);
    push(&mut p, &mut c, nop, Op::Nop, false);
    p.wait(None, &mut c).unwrap();
    assert_eq!(c.syscalls, 1, "the previous wait polled: no syscall");
    assert_eq!(p.next(&mut c), Some(Completion::new(nop, 0)));
    push(&mut p, &mut c, nop, Op::Nop, false);
    p.wait(None, &mut c).unwrap();
    assert_eq!(c.syscalls, 2, "two turns never both skip the poll");
    assert_eq!(p.next(&mut c), Some(Completion::new(nop, 0)));
}
