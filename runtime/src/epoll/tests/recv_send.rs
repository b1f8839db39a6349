//! Multishot receive into the scratch buffer; sends, short writes and `waitall`.

use super::*;

#[test]
fn recv_multishot_delivers_bytes_then_eof() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    let t = tok(1, OpKind::Recv);
    push(
        &mut p,
        &mut c,
        t,
        Op::RecvMulti { fd: a.as_raw_fd() },
        false,
    );
    assert_quiet(&mut p, &mut c);

    b.write_all(b"hello").unwrap();
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(got[0].0.token, t);
    assert_eq!(got[0].0.result, 5);
    assert_eq!(got[0].0.flags, F_MORE | F_BUFFER);
    assert_eq!(got[0].1, b"hello");

    // More than the 64-byte scratch buffer: several completions, in order.
    let data = pattern(200);
    b.write_all(&data).unwrap();
    let got = drive(
        &mut p,
        &mut c,
        || {},
        |g| g.iter().map(|x| x.1.len()).sum::<usize>() >= 200,
    );
    assert!(got.len() >= 4, "{got:?}");
    assert!(got
        .iter()
        .all(|x| x.0.more() && x.0.result > 0 && x.0.result <= 64));
    assert_eq!(
        got.iter().flat_map(|x| x.1.clone()).collect::<Vec<_>>(),
        data
    );

    drop(b);
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(got[0].0, Completion::new(t, 0), "EOF ends the op");
    assert_quiet(&mut p, &mut c);
}

#[test]
fn recv_armed_late_sees_data_already_queued() {
    let (mut p, mut c) = poller(1024);
    let (a, mut b) = pair();
    b.write_all(b"early").unwrap();
    push(
        &mut p,
        &mut c,
        tok(1, OpKind::Recv),
        Op::RecvMulti { fd: a.as_raw_fd() },
        false,
    );
    let got = drive_n(&mut p, &mut c, 1);
    assert_eq!(got[0].1, b"early");
}

#[test]
fn send_waitall_resumes_short_writes_without_touching_the_callers_iovecs() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    set_sndbuf(a.as_raw_fd(), 4096);
    let data = pattern(1 << 20);
    let (x, y) = data.split_at(300_001);
    let mut iov = [iovec(x), iovec(y)];
    let before = (
        iov[0].iov_base,
        iov[0].iov_len,
        iov[1].iov_base,
        iov[1].iov_len,
    );
    let m = msghdr(&mut iov);
    let t = tok(1, OpKind::Send);
    push(
        &mut p,
        &mut c,
        t,
        Op::Send {
            fd: a.as_raw_fd(),
            msg: &m,
            waitall: true,
            more: false,
        },
        false,
    );

    let mut received = Vec::new();
    let got = drive(
        &mut p,
        &mut c,
        || drain_now(&mut b, &mut received),
        |g| !g.is_empty(),
    );
    assert_eq!(got[0].0, Completion::new(t, data.len() as i32));
    assert_eq!(
        before,
        (
            iov[0].iov_base,
            iov[0].iov_len,
            iov[1].iov_base,
            iov[1].iov_len
        )
    );
    b.set_nonblocking(false).unwrap();
    let mut rest = vec![0u8; data.len() - received.len()];
    b.read_exact(&mut rest).unwrap();
    received.extend_from_slice(&rest);
    assert!(received == data, "bytes arrive complete and in order");
}

#[test]
fn short_send_completes_short_and_the_next_send_waits_for_epollout() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    set_sndbuf(a.as_raw_fd(), 4096);
    let data = pattern(1 << 20);
    let mut iov = [iovec(&data)];
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
        false,
    );
    let got = drive_n(&mut p, &mut c, 1);
    let first = got[0].0.result;
    assert!(first > 0 && (first as usize) < data.len(), "short: {first}");

    // The fd is known full: the send parks without a syscall (no sendmsg -> EAGAIN).
    let before = c.syscalls;
    push(
        &mut p,
        &mut c,
        tok(2, OpKind::Send),
        Op::Send {
            fd,
            msg: &m,
            waitall: false,
            more: false,
        },
        false,
    );
    assert_eq!(c.syscalls, before);
    assert_quiet(&mut p, &mut c);

    let mut received = Vec::new();
    let got = drive(
        &mut p,
        &mut c,
        || drain_now(&mut b, &mut received),
        |g| !g.is_empty(),
    );
    assert_eq!(got[0].0.token, tok(2, OpKind::Send));
    assert!(got[0].0.result > 0);
}

/// Ops parked on one fd run oldest first once it is ready: three sends queued behind
/// a full socket complete, and their bytes arrive, in the order they were pushed (the
/// fd's list is newest first; retrying in list order sent them backwards).
#[test]
fn sends_parked_on_a_full_socket_leave_in_push_order() {
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    set_sndbuf(a.as_raw_fd(), 4096);
    let fd = a.as_raw_fd();
    // Fill the socket.
    let fill = pattern(1 << 20);
    let mut fiov = [iovec(&fill)];
    let fm = msghdr(&mut fiov);
    let send = |msg: &libc::msghdr| Op::Send {
        fd,
        msg,
        waitall: false,
        more: false,
    };
    push(&mut p, &mut c, tok(9, OpKind::Send), send(&fm), false);
    let filled = drive_n(&mut p, &mut c, 1)[0].0.result as usize;
    assert!(filled < fill.len(), "the socket filled: {filled}");
    // Three small sends of distinct bytes park behind it.
    let parts: Vec<Vec<u8>> = (1..=3u8).map(|i| vec![i; 100]).collect();
    let mut iovs: Vec<[libc::iovec; 1]> = parts.iter().map(|d| [iovec(d)]).collect();
    let msgs: Vec<libc::msghdr> = iovs.iter_mut().map(|v| msghdr(v)).collect();
    for (i, m) in msgs.iter().enumerate() {
        push(
            &mut p,
            &mut c,
            tok(i as u32 + 1, OpKind::Send),
            send(m),
            false,
        );
    }
    assert_quiet(&mut p, &mut c);
    let mut received = Vec::new();
    let mut done = Vec::new();
    while done.len() < 3 {
        let got = drive(
            &mut p,
            &mut c,
            || drain_now(&mut b, &mut received),
            |g| !g.is_empty(),
        );
        done.extend(got.into_iter().map(|g| g.0));
    }
    let order: Vec<u32> = done.iter().map(|x| x.token.slot()).collect();
    assert_eq!(order, [1, 2, 3], "completions: {done:?}");
    assert!(done.iter().all(|x| x.result == 100), "{done:?}");
    drain_now(&mut b, &mut received);
    let tail = &received[received.len() - 300..];
    let want: Vec<u8> = parts.concat();
    assert_eq!(received.len(), filled + 300);
    assert!(
        tail == want.as_slice(),
        "the three sends arrived out of order"
    );
}

#[test]
fn recv_sees_eof_that_arrived_with_the_last_bytes() {
    // Bytes and FIN arrive before the first read: one edge carries both, the read is
    // short, and the fd must stay readable so the next read sees end of stream.
    let (mut p, mut c) = poller(64);
    let (a, mut b) = pair();
    let t = tok(1, OpKind::Recv);
    b.write_all(b"last words").unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap();
    push(
        &mut p,
        &mut c,
        t,
        Op::RecvMulti { fd: a.as_raw_fd() },
        false,
    );
    let got = drive_n(&mut p, &mut c, 2);
    assert_eq!(got[0].1, b"last words");
    assert_eq!(got[1].0, Completion::new(t, 0));
}
