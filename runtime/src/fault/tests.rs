//! The injector on both backends over a real socket pair: each fault does what the
//! table in the module docs says, and a plan without faults is transparent.

use super::*;
use crate::backend::{BackendKind, Driver};
use crate::config::Config;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

fn driver(backend: BackendKind, rates: FaultRates) -> Option<Driver> {
    let cfg = Config {
        backend,
        buf_count: 8,
        buf_size: 4096,
        fault: Some(FaultPlan::new(7).rates(rates)),
        ..Config::default()
    };
    match Driver::open(&cfg) {
        Ok(d) => Some(d),
        Err(e) if backend == BackendKind::Uring => {
            tracing::warn!("fault tests: skipping io_uring: {e}");
            None
        }
        Err(e) => panic!("epoll: {e}"),
    }
}

/// Runs turns until `n` completions arrived (5 s at most).
fn collect(d: &mut Driver, c: &mut Counters, n: usize) -> Vec<Completion> {
    let end = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < end, "timed out; got {out:?}");
        d.wait(Some(Duration::from_millis(50)), c).expect("wait");
        while let Some(x) = d.next(c) {
            out.push(x);
        }
    }
    out
}

struct Msg {
    hdr: libc::msghdr,
    _iov: Box<libc::iovec>,
}

fn msg(data: &[u8]) -> Box<Msg> {
    let iov = Box::new(libc::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len(),
    });
    // SAFETY: an all-zero msghdr is valid.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &*iov as *const libc::iovec as *mut _;
    hdr.msg_iovlen = 1;
    Box::new(Msg { hdr, _iov: iov })
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    (a, b)
}

const SEND: Token = Token::new(3, 1, OpKind::Send);

fn send(d: &mut Driver, c: &mut Counters, fd: i32, m: &Msg) {
    let op = Op::Send {
        fd,
        msg: &m.hdr,
        waitall: false,
        more: false,
    };
    // SAFETY: `m` and the data outlive the op: each test collects its completion.
    unsafe { d.push(SEND, op, c) }.expect("push");
}

#[test]
fn short_send_really_sends_a_prefix() {
    for backend in [BackendKind::Epoll, BackendKind::Uring] {
        let mut rates = FaultRates::none();
        rates.short_send = 1000;
        let Some(mut d) = driver(backend, rates) else {
            continue;
        };
        let mut c = Counters::default();
        let (a, mut b) = pair();
        let data: Vec<u8> = (0..200u8).collect();
        let m = msg(&data);
        send(&mut d, &mut c, a.as_raw_fd(), &m);
        let got = collect(&mut d, &mut c, 1);
        let n = got[0].result;
        assert!((1..200).contains(&n), "{backend}: a strict prefix, got {n}");
        let mut buf = vec![0u8; n as usize];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[..n as usize], "{backend}");
    }
}

#[test]
fn eagain_sends_nothing_and_comes_after_a_wait() {
    for backend in [BackendKind::Epoll, BackendKind::Uring] {
        let mut rates = FaultRates::none();
        rates.send_eagain = 1000;
        let Some(mut d) = driver(backend, rates) else {
            continue;
        };
        let mut c = Counters::default();
        let (a, b) = pair();
        let m = msg(b"hello");
        send(&mut d, &mut c, a.as_raw_fd(), &m);
        assert_eq!(d.next(&mut c), None, "{backend}: nothing before the wait");
        let got = collect(&mut d, &mut c, 1);
        assert_eq!(got[0], Completion::new(SEND, -libc::EAGAIN), "{backend}");
        b.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8];
        assert!((&b).read(&mut buf).is_err(), "{backend}: nothing was sent");
    }
}

#[test]
fn enobufs_at_arm_and_cut_multishot() {
    for backend in [BackendKind::Epoll, BackendKind::Uring] {
        let recv = Token::new(4, 2, OpKind::Recv);
        // At arm: a final -ENOBUFS and no recv armed (the byte stays in the socket).
        let mut rates = FaultRates::none();
        rates.recv_enobufs = 1000;
        let Some(mut d) = driver(backend, rates) else {
            continue;
        };
        let mut c = Counters::default();
        let (a, mut b) = pair();
        std::io::Write::write_all(&mut b, b"x").unwrap();
        // SAFETY: a multishot recv references only the backend's own pool.
        unsafe { d.push(recv, Op::RecvMulti { fd: a.as_raw_fd() }, &mut c) }.unwrap();
        let got = collect(&mut d, &mut c, 1);
        assert_eq!(got[0].result, -libc::ENOBUFS, "{backend}");
        assert!(!got[0].more(), "{backend}");
        let mut buf = [0u8; 1];
        (&a).read_exact(&mut buf).unwrap();

        // Mid-stream: data first, then the real final CQE reported as -ENOBUFS.
        let mut rates = FaultRates::none();
        rates.multishot_cut = 1000;
        let Some(mut d) = driver(backend, rates) else {
            continue;
        };
        // SAFETY: as above.
        unsafe { d.push(recv, Op::RecvMulti { fd: a.as_raw_fd() }, &mut c) }.unwrap();
        std::io::Write::write_all(&mut b, b"abc").unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        let mut bytes = 0;
        let last = loop {
            assert!(Instant::now() < end, "{backend}: no final completion");
            d.wait(Some(Duration::from_millis(20)), &mut c).unwrap();
            let mut fin = None;
            while let Some(x) = d.next(&mut c) {
                if x.result > 0 {
                    bytes += x.result;
                    d.recycle(x.buffer().unwrap(), false);
                }
                if !x.more() {
                    fin = Some(x);
                }
            }
            if let Some(f) = fin {
                break f;
            }
        };
        assert_eq!(last.result, -libc::ENOBUFS, "{backend}: {last:?}");
        assert!(bytes <= 3, "{backend}");
    }
}

#[test]
fn held_completions_keep_their_token_order() {
    let mut rates = FaultRates::none();
    rates.delay = 1000;
    let Some(Driver::Fault(mut f)) = driver(BackendKind::Epoll, rates) else {
        panic!("a fault driver")
    };
    let a = Token::new(1, 1, OpKind::Send);
    let b = Token::new(2, 1, OpKind::Send);
    // Token a: 0 (due at turn 3), 1 (due at turn 1, but behind 0), 2; token b: 10, 11.
    for (t, r, release) in [(a, 0, 3), (b, 10, 1), (a, 1, 1), (b, 11, 2), (a, 2, 1)] {
        f.held.push(Held {
            release,
            c: Completion::new(t, r),
            dup: false,
        });
    }
    let mut order = Vec::new();
    for turn in 1..=3 {
        f.turn = turn;
        f.release_due();
        order.extend(f.ready.drain(..).map(|(c, _)| c.result));
        if turn < 3 {
            assert!(!order.contains(&1) && !order.contains(&2), "{order:?}");
        }
    }
    assert_eq!(order.len(), 5, "{order:?}");
    let pos = |r: i32| order.iter().position(|&x| x == r).unwrap();
    assert!(pos(0) < pos(1) && pos(1) < pos(2), "{order:?}");
    assert!(pos(10) < pos(11), "{order:?}");
}

#[test]
fn splitmix_is_deterministic_and_spread() {
    let mut a = SplitMix64::new(7);
    let mut b = SplitMix64::new(7);
    let xs: Vec<u64> = (0..100).map(|_| a.next()).collect();
    let ys: Vec<u64> = (0..100).map(|_| b.next()).collect();
    assert_eq!(xs, ys);
    let hits = (0..10_000).filter(|_| a.hit(250)).count();
    assert!((2_000..3_000).contains(&hits), "{hits}");
    assert!(!a.hit(0));
}

#[test]
fn shorten_keeps_a_prefix_across_iovecs() {
    let a = [1u8; 5];
    let b = [2u8; 7];
    let mut iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut _,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is valid.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = iov.as_mut_ptr();
    m.msg_iovlen = 2;
    for keep in 1..12 {
        // SAFETY: `m` and its iovecs are live.
        let s = unsafe { shorten(&m, keep) };
        // SAFETY: `s.hdr` points at `s.iov`, inside `a` and `b`.
        assert_eq!(unsafe { crate::op::send::total_len(&s.hdr) }, keep);
        assert_eq!(s.hdr.msg_iov as *const _, s.iov.as_ptr());
    }
}

#[test]
fn random_rates_vary_with_the_seed() {
    let distinct: std::collections::HashSet<_> = (0..64)
        .map(|s| format!("{:?}", FaultRates::random(s)))
        .collect();
    assert!(distinct.len() > 16);
}

/// With `skip_cancel_cqe` a successful connection cancel posts nothing: the injector
/// must not count it in flight, or the token stays in flight for ever, the table of
/// tokens grows with every closed connection, and at drop the shortened send copies
/// are forgotten (leaked) because "ops are still in flight".
#[test]
fn skipped_cancels_are_not_counted_in_flight() {
    let mut rates = FaultRates::none();
    rates.short_send = 1000;
    let cfg = Config {
        backend: BackendKind::Uring,
        buf_count: 8,
        buf_size: 4096,
        skip_cancel_cqe: true,
        fault: Some(FaultPlan::new(7).rates(rates)),
        ..Config::default()
    };
    let mut d = match Driver::open(&cfg) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("fault tests: skipping io_uring: {e}");
            return;
        }
    };
    if !d.skips_cancel_success() {
        tracing::warn!("fault tests: no CQE_SKIP_SUCCESS on this kernel; skipping");
        return;
    }
    let mut c = Counters::default();
    let (a, mut b) = pair();
    let data: Vec<u8> = (0..200u8).collect();
    let m = msg(&data);
    send(&mut d, &mut c, a.as_raw_fd(), &m);
    let got = collect(&mut d, &mut c, 1);
    let n = got[0].result as usize;
    let mut buf = vec![0u8; n];
    b.read_exact(&mut buf).unwrap();
    // A receive to cancel, then the connection's cancel (kind Cancel): it succeeds,
    // so only the receive's -ECANCELED arrives.
    let recv = Token::new(3, 1, OpKind::Recv);
    // SAFETY: no pointers in a multishot receive.
    unsafe { d.push(recv, Op::RecvMulti { fd: a.as_raw_fd() }, &mut c) }.unwrap();
    let cancel = Token::new(3, 1, OpKind::Cancel);
    // SAFETY: no pointers in a cancel.
    unsafe { d.push(cancel, Op::CancelFd { fd: a.as_raw_fd() }, &mut c) }.unwrap();
    let got = collect(&mut d, &mut c, 1);
    assert_eq!(got[0], Completion::new(recv, -libc::ECANCELED));
    let Driver::Fault(f) = &d else {
        panic!("not the fault driver")
    };
    assert!(f.in_flight.is_empty(), "in flight: {:?}", f.in_flight);
    assert!(f.copies.is_empty(), "shortened copies kept");
}
