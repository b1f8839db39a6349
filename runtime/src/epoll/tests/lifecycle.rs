//! Cancel, close and linked ops.

use super::*;

#[test]
fn cancel_completes_armed_ops_and_reports_the_count() {
    let (mut p, mut c) = poller(64);
    let (a, _b) = pair();
    let fd = a.as_raw_fd();
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Recv),
        Op::RecvMulti { fd },
        false,
    );
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Cancel),
        Op::CancelFd { fd },
        false,
    );
    let got = drive_n(&mut p, &mut c, 2);
    assert_eq!(
        got[0].0,
        Completion::new(tok(1, OpKind::Recv), -libc::ECANCELED)
    );
    assert!(!got[0].0.more());
    assert_eq!(got[1].0, Completion::new(tok(1, OpKind::Cancel), 1));

    push(
        &mut p,
        &mut c,
        tok(2, OpKind::Cancel),
        Op::CancelFd { fd },
        false,
    );
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(
        got[0].0,
        Completion::new(tok(2, OpKind::Cancel), -libc::ENOENT)
    );
}

#[test]
fn cancel_and_close_reach_parked_ops() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    let fd = a.into_raw_fd();
    let mut buf = [0u8; 8];
    let read = Op::Read {
        fd,
        buf: buf.as_mut_ptr(),
        len: 8,
    };
    push(&mut p, &mut c, tok(1, OpKind::Wake), read, false);
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Recv),
        Op::RecvMulti { fd },
        false,
    );
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Cancel),
        Op::CancelFd { fd },
        false,
    );
    let got = drive_n(&mut p, &mut c, 3);
    let results: Vec<_> = got.iter().map(|g| (g.0.token.kind(), g.0.result)).collect();
    assert_eq!(results[2], (Some(OpKind::Cancel), 2));
    assert!(results[..2].iter().all(|r| r.1 == -libc::ECANCELED));

    // Close cancels what is still parked, then closes.
    push(&mut p, &mut c, tok(2, OpKind::Wake), read, false);
    push(
        &mut p,
        &mut c,
        tok(2, OpKind::Close),
        Op::Close { fd },
        false,
    );
    let got = drive_n(&mut p, &mut c, 2);
    assert_eq!(
        got[0].0,
        Completion::new(tok(2, OpKind::Wake), -libc::ECANCELED)
    );
    assert_eq!(got[1].0, Completion::new(tok(2, OpKind::Close), 0));
    // The peer sees end of stream: the fd really was closed. (Probing the fd number
    // would race with other tests reusing it.)
    let mut one = [0u8; 1];
    assert_eq!(
        std::io::Read::read(&mut b, &mut one).unwrap(),
        0,
        "fd is closed"
    );
}

#[test]
fn linked_send_then_close() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    let fd = a.into_raw_fd();
    let mut iov = [iovec(b"bye")];
    let m = msghdr(&mut iov);
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Send),
        Op::Send {
            fd,
            msg: &m,
            waitall: false,
            more: false,
        },
        true,
    );
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Close),
        Op::Close { fd },
        false,
    );
    let got = drive_n(&mut p, &mut c, 2);
    assert_eq!(got[0].0, Completion::new(tok(1, OpKind::Send), 3));
    assert_eq!(got[1].0, Completion::new(tok(1, OpKind::Close), 0));
    let mut all = Vec::new();
    b.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"bye", "data, then EOF");
}

#[test]
fn linked_close_waits_for_a_parked_send_to_finish_in_full() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    set_sndbuf(a.as_raw_fd(), 4096);
    let fd = a.into_raw_fd();
    let data = pattern(300_000);
    let mut iov = [iovec(&data)];
    let m = msghdr(&mut iov);
    // Not waitall: the link alone makes the send complete in full.
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Send),
        Op::Send {
            fd,
            msg: &m,
            waitall: false,
            more: false,
        },
        true,
    );
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Close),
        Op::Close { fd },
        false,
    );
    let mut received = Vec::new();
    let got = drive(
        &mut p,
        &mut c,
        || drain_now(&mut b, &mut received),
        |g| g.len() >= 2,
    );
    assert_eq!(
        got[0].0,
        Completion::new(tok(1, OpKind::Send), data.len() as i32)
    );
    assert_eq!(got[1].0, Completion::new(tok(1, OpKind::Close), 0));
    b.set_nonblocking(false).unwrap();
    b.read_to_end(&mut received).unwrap();
    assert!(received == data);
}

#[test]
fn failed_link_head_cancels_the_linked_op() {
    let (mut p, mut c) = poller(64);
    let (a, b) = pair();
    drop(b);
    let mut iov = [iovec(b"lost")];
    let m = msghdr(&mut iov);
    let fd = a.as_raw_fd();
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Send),
        Op::Send {
            fd,
            msg: &m,
            waitall: false,
            more: false,
        },
        true,
    );
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Close),
        Op::Close { fd },
        false,
    );
    let got = drive_n(&mut p, &mut c, 2);
    assert_eq!(
        got[0].0,
        Completion::new(tok(1, OpKind::Send), -libc::EPIPE)
    );
    assert_eq!(
        got[1].0,
        Completion::new(tok(1, OpKind::Close), -libc::ECANCELED)
    );
    drop(a); // still open: the close never ran
}

#[test]
fn cancelling_a_parked_link_head_cancels_its_dependent() {
    let (mut p, mut c) = poller(64);
    let (a, _b) = pair();
    let fd = a.as_raw_fd();
    let mut buf = [0u8; 8];
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Wake),
        Op::Read {
            fd,
            buf: buf.as_mut_ptr(),
            len: 8,
        },
        true,
    );
    push(&mut p, &mut c, tok(1, OpKind::Nop), Op::Nop, false);
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Cancel),
        Op::CancelFd { fd },
        false,
    );
    let got = drive_n(&mut p, &mut c, 3);
    let got: Vec<_> = got.into_iter().map(|g| g.0).collect();
    assert!(got.contains(&Completion::new(tok(1, OpKind::Wake), -libc::ECANCELED)));
    assert!(got.contains(&Completion::new(tok(1, OpKind::Nop), -libc::ECANCELED)));
    assert!(
        got.contains(&Completion::new(tok(1, OpKind::Cancel), 1)),
        "the dependent is not counted"
    );
}
