//! Datagram sockets on epoll: the multishot receive as `recvmmsg(2)` batches, and the
//! sends of a turn as `sendmmsg(2)` batches.
//!
//! * Receive: each readable step of an armed [`Op::RecvMsgMulti`] reads up to
//!   [`MMSG_BATCH`] datagrams into the poller's slots (laid out as io_uring fills pool
//!   buffers) and emits one completion per datagram, naming slot `i` as buffer `1 + i`
//!   (buffer 0 is the stream scratch buffer). The slots are reused only by the next
//!   step, which runs after every completion of this one was handed out.
//! * Send: an [`Op::SendMsg`] pushed without a link is queued; the queue leaves before
//!   any other op is started (order is kept), when the turn's wait begins, or when an
//!   fd is forgotten, one `sendmmsg` per run of consecutive sends on one fd. The sends
//!   a full socket buffer refused wait, parked, for `EPOLLOUT` and go one `sendmsg`
//!   each, as io_uring's internal poll would retry them. Each header is passed whole,
//!   control data included (a GSO run's `UDP_SEGMENT` cmsg), as io_uring's `SENDMSG`
//!   passes it.

use super::attempt::{count, neg};
use super::fdstate::{READABLE, WRITABLE};
use super::Poller;
use crate::completion::{Completion, F_MORE};
use crate::metrics::Counters;
use crate::op::datagram::{self, MmsgSlots, MMSG_BATCH};
use crate::op::Op;
use crate::token::Token;
use std::io;
use std::mem;
use std::os::fd::RawFd;

/// The poller's datagram state.
#[derive(Default)]
pub(super) struct Dgram {
    /// Receive slots, allocated by the first datagram receive.
    slots: Option<MmsgSlots>,
    /// The template `msghdr` of each fd's armed receive.
    /// INVARIANT: valid while that receive is armed (the push contract).
    templates: Vec<(RawFd, *const libc::msghdr)>,
    /// Sends queued this turn, in push order.
    out: Vec<(Token, RawFd, *const libc::msghdr)>,
    /// Reusable: one run's headers, lengths and the `sendmmsg` vector.
    run: Vec<*const libc::msghdr>,
    mm: Vec<libc::mmsghdr>,
    sent: Vec<u32>,
    lens: Vec<usize>,
}

impl Poller {
    pub(super) fn set_dgram_template(&mut self, fd: RawFd, msg: *const libc::msghdr) {
        let t = &mut self.dgram.templates;
        t.retain(|&(f, _)| f != fd);
        t.push((fd, msg));
    }

    /// The bytes of datagram slot `i`.
    pub(super) fn dgram_slot(&self, i: usize, len: usize) -> &[u8] {
        match &self.dgram.slots {
            Some(s) => s.slot(i, len),
            None => &[],
        }
    }

    /// Queues a datagram send (see the module docs).
    pub(super) fn queue_send(&mut self, token: Token, op: Op) {
        if let Op::SendMsg { fd, msg } = op {
            self.dgram.out.push((token, fd, msg));
        }
    }

    /// One readable step of an armed datagram receive: one `recvmmsg` batch.
    pub(super) fn recv_datagrams(&mut self, fd: RawFd, token: Token, c: &mut Counters) {
        let Some(&(_, template)) = self.dgram.templates.iter().find(|&&(f, _)| f == fd) else {
            self.disarm(fd);
            self.emit(Completion::new(token, -libc::EINVAL));
            return;
        };
        let size = self.scratch.len();
        let slots = self.dgram.slots.get_or_insert_with(|| MmsgSlots::new(size));
        let mut lens = mem::take(&mut self.dgram.lens);
        lens.clear();
        let r = loop {
            c.syscalls += 1;
            // SAFETY: the template is valid while the receive is armed (field invariant).
            match unsafe { slots.recv(fd, template, &mut lens) } {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        match r {
            Ok(()) => {
                if lens.len() < MMSG_BATCH {
                    self.fds.drained(fd, READABLE);
                }
                for (i, &len) in lens.iter().enumerate() {
                    self.emit(Completion {
                        token,
                        result: count(len),
                        flags: F_MORE | Completion::buffer_flags(1 + i as u16),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.fds.clear(fd, READABLE),
            Err(e) => {
                self.disarm(fd);
                self.emit(Completion::new(token, neg(&e)));
            }
        }
        self.dgram.lens = lens;
    }

    /// Sends every queued datagram: `sendmmsg` per run of one fd; what a full socket
    /// buffer refuses is parked until writable.
    pub(super) fn flush_datagrams(&mut self, c: &mut Counters) {
        if self.dgram.out.is_empty() {
            return;
        }
        let out = mem::take(&mut self.dgram.out);
        let mut i = 0;
        while i < out.len() {
            let fd = out[i].1;
            let mut end = i + 1;
            while end < out.len() && out[end].1 == fd && end - i < MMSG_BATCH {
                end += 1;
            }
            i = self.send_run(&out[i..end], c) + i;
        }
        let mut out = out;
        out.clear();
        if self.dgram.out.is_empty() {
            self.dgram.out = out; // keep the allocation
        }
    }

    /// Sends one run (same fd); returns how many entries it consumed (all of them).
    fn send_run(&mut self, run: &[(Token, RawFd, *const libc::msghdr)], c: &mut Counters) -> usize {
        let fd = run[0].1;
        let mut at = 0;
        while at < run.len() {
            if !self.fds.get(fd).ready(WRITABLE) {
                break;
            }
            let mut msgs = mem::take(&mut self.dgram.run);
            msgs.clear();
            msgs.extend(run[at..].iter().map(|e| e.2));
            c.syscalls += 1;
            // SAFETY: each queued header, its name and iovecs stay valid until the
            // send's completion (the push contract of `Op::SendMsg`).
            let r =
                unsafe { datagram::sendmmsg(fd, &msgs, &mut self.dgram.mm, &mut self.dgram.sent) };
            self.dgram.run = msgs;
            match r {
                Ok(n) => {
                    for k in 0..n {
                        let len = self.dgram.sent[k];
                        self.emit(Completion::new(run[at + k].0, count(len as usize)));
                    }
                    at += n;
                    if n == 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = self.fds.register(fd, c);
                    self.fds.clear(fd, WRITABLE);
                    break;
                }
                Err(e) => {
                    // The first message failed (a later one's error would come back
                    // with the next call): it alone completes with the error.
                    self.emit(Completion::new(run[at].0, neg(&e)));
                    at += 1;
                }
            }
        }
        // Refused for now: park each until writable (one `sendmsg` each then).
        for &(token, fd, msg) in &run[at..] {
            self.start(token, Op::SendMsg { fd, msg }, false, c);
        }
        run.len()
    }
}
