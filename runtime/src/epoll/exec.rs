//! Performing ops: start one at push time, retry parked ones on readiness, step the
//! multishot accept / recv of a ready fd, cancel and close, release linked ops.
//!
//! The syscalls themselves are in `op/*.rs`, next to each op's SQE.

use super::attempt::{attempt, count, neg, Attempt};
use super::fdstate::{
    HUP, MULTI_ACCEPT, MULTI_DGRAM, MULTI_KIND, NIL, NOPOLL, READABLE, REGISTERED, WRITABLE,
};
use super::pending::{list_fds, Pending};
use super::{LinkTail, Poller};
use crate::completion::{Completion, F_MORE};
use crate::metrics::Counters;
use crate::op::{self, Op};
use crate::token::Token;
use std::io;
use std::mem;
use std::os::fd::RawFd;

/// Most connections one accept step takes before letting other fds run.
const ACCEPT_BATCH: usize = 64;

/// What a start did with an op.
#[derive(Clone, Copy, Debug)]
pub(super) enum Started {
    /// Completed (its completion is queued); `ok`: in full, so a linked op may run.
    Done { ok: bool },
    /// Waiting in the slab at this index.
    Pending(u32),
    /// A hang-up poll waiting in its fd's entry (never a link head: only ops pushed
    /// without a link take that path).
    Watching,
}

impl Started {
    /// What the next pushed op must do if this one heads a link.
    pub(super) fn tail(self) -> Option<LinkTail> {
        match self {
            Started::Done { ok: true } => None,
            Started::Done { ok: false } => Some(LinkTail::Failed),
            Started::Pending(id) => Some(LinkTail::Pending(id)),
            Started::Watching => None,
        }
    }
}

impl Poller {
    /// Performs `op` if it can run now, else parks it. Its completion, if any, is emitted.
    pub(super) fn start(&mut self, token: Token, op: Op, link: bool, c: &mut Counters) -> Started {
        let bad_fd = match op {
            Op::Nop => false,
            Op::Splice { fd_in, fd_out, .. } => fd_in < 0 || fd_out < 0,
            Op::SendFile {
                fd_file, fd_sock, ..
            } => fd_file < 0 || fd_sock < 0,
            _ => op.fd() < 0,
        };
        if bad_fd {
            return self.done(token, -libc::EBADF);
        }
        match op {
            Op::Nop => self.done(token, 0),
            Op::AcceptMulti { .. } | Op::RecvMulti { .. } | Op::RecvMsgMulti { .. } => {
                self.arm(token, op, c);
                Started::Done { ok: true }
            }
            Op::Shutdown { fd, how } => {
                c.syscalls += 1;
                match op::shutdown::shutdown(fd, how) {
                    Ok(()) => {
                        self.after_shutdown(fd, how);
                        self.done(token, 0)
                    }
                    Err(e) => self.done(token, neg(&e)),
                }
            }
            Op::Close { fd } => {
                self.cancel_fd(fd);
                self.fds.reset(fd);
                c.syscalls += 1;
                match op::close::close(fd) {
                    Ok(()) => self.done(token, 0),
                    Err(e) => self.done(token, neg(&e)),
                }
            }
            Op::CancelFd { fd } => match self.cancel_fd(fd) {
                0 => self.done(token, -libc::ENOENT),
                n => self.done(token, n),
            },
            Op::Cancel { fd, target } => match self.cancel_token(fd, target) {
                0 => self.done(token, -libc::ENOENT),
                _ => self.done(token, 0),
            },
            Op::PollHangup { fd } if !link && self.fds.get(fd).hup == Token::NONE => {
                self.watch_hangup(token, fd, c)
            }
            _ => {
                let mut p = Pending::new(token, op, link);
                let retry = match attempt(&mut self.fds, &mut p, c) {
                    Attempt::Done { result, ok } => {
                        self.emit(Completion::new(token, result));
                        return Started::Done { ok };
                    }
                    Attempt::Wait => false,
                    Attempt::Retry => true,
                };
                for fd in list_fds(&op) {
                    if fd < 0 {
                        continue;
                    }
                    let r = if matches!(op, Op::Accept { .. }) {
                        self.fds.register_exclusive(fd, c)
                    } else {
                        self.fds.register(fd, c)
                    };
                    if let Err(e) = r {
                        return self.done(token, neg(&e));
                    }
                }
                let id = self.ops.insert(p) as u32;
                self.park(id);
                if retry {
                    self.enqueue(op.fd());
                }
                Started::Pending(id)
            }
        }
    }

    /// Arms a hang-up poll in `fd`'s entry (done at once if the hang-up is known).
    /// The same outcome as parking it (attempt.rs `poll`), without a slab entry.
    fn watch_hangup(&mut self, token: Token, fd: RawFd, c: &mut Counters) -> Started {
        if let Err(e) = self.fds.register(fd, c) {
            return self.done(token, neg(&e));
        }
        if self.fds.get(fd).flags & (HUP | NOPOLL) != 0 {
            return self.done(token, op::poll::HANGUP);
        }
        self.fds.get_mut(fd).hup = token;
        Started::Watching
    }

    /// Completes `fd`'s hang-up poll if one is armed and the hang-up was seen.
    fn run_hangup(&mut self, fd: RawFd) {
        let Some(st) = self.fds.find_mut(fd) else {
            return;
        };
        if st.hup != Token::NONE && st.flags & (HUP | NOPOLL) != 0 {
            let token = mem::replace(&mut st.hup, Token::NONE);
            self.emit(Completion::new(token, op::poll::HANGUP));
        }
    }

    /// Emits `token`'s completion and reports whether it succeeded.
    fn done(&mut self, token: Token, result: i32) -> Started {
        self.emit(Completion::new(token, result));
        Started::Done { ok: result >= 0 }
    }

    /// Arms a multishot accept or recv; queues the fd if it is known ready.
    fn arm(&mut self, token: Token, op: Op, c: &mut Counters) {
        let (fd, accept) = match op {
            Op::AcceptMulti { fd } => (fd, true),
            _ => (op.fd(), false),
        };
        if self.fds.get(fd).multi != Token::NONE {
            // One multishot op per fd: the runtime never arms two.
            self.emit(Completion::new(token, -libc::EBUSY));
            return;
        }
        if let Err(e) = self.fds.register(fd, c) {
            self.emit(Completion::new(token, neg(&e)));
            return;
        }
        if let Op::RecvMsgMulti { msg, .. } = op {
            self.set_dgram_template(fd, msg);
        }
        let st = self.fds.get_mut(fd);
        st.multi = token;
        st.flags &= !MULTI_KIND;
        if accept {
            st.flags |= MULTI_ACCEPT;
        } else if matches!(op, Op::RecvMsgMulti { .. }) {
            st.flags |= MULTI_DGRAM;
        }
        // A fresh registration has no flags yet: epoll reports the current state (e.g.
        // connections already queued) at the next wait.
        if st.ready(READABLE) {
            self.enqueue(fd);
        }
    }

    pub(super) fn disarm(&mut self, fd: RawFd) {
        let st = self.fds.get_mut(fd);
        st.multi = Token::NONE;
        st.flags &= !MULTI_KIND;
    }

    /// After a successful shutdown, lets waiting ops see it (their next syscall reports
    /// end of stream or `EPIPE`) without waiting for an edge.
    fn after_shutdown(&mut self, fd: RawFd, how: i32) {
        let Some(st) = self.fds.find_mut(fd) else {
            return;
        };
        if st.flags & REGISTERED == 0 {
            return;
        }
        if how != libc::SHUT_WR {
            st.flags |= READABLE;
        }
        if how != libc::SHUT_RD {
            st.flags |= WRITABLE;
        }
        if st.has_work() {
            self.enqueue(fd);
        }
    }

    /// Completes every op armed or parked on `fd` with `-ECANCELED`; returns how many.
    pub(super) fn cancel_fd(&mut self, fd: RawFd) -> i32 {
        // A listener whose accepts are cancelled stops being an exclusive waiter.
        self.fds.unregister_exclusive(fd, None);
        let mut n = 0;
        let Some(st) = self.fds.find_mut(fd) else {
            return 0;
        };
        let multi = mem::replace(&mut st.multi, Token::NONE);
        let hup = mem::replace(&mut st.hup, Token::NONE);
        st.flags &= !MULTI_KIND;
        for t in [multi, hup] {
            if t != Token::NONE {
                self.emit(Completion::new(t, -libc::ECANCELED));
                n += 1;
            }
        }
        let mut ids = mem::take(&mut self.ids);
        self.collect_parked(fd, &mut ids);
        for &id in &ids {
            self.complete_parked(id, -libc::ECANCELED, false);
            n += 1;
        }
        ids.clear();
        self.ids = ids;
        n
    }

    /// Completes the one op armed or parked on `fd` with `target` with `-ECANCELED`;
    /// returns how many (0 or 1).
    pub(super) fn cancel_token(&mut self, fd: RawFd, target: Token) -> i32 {
        let Some(st) = self.fds.find_mut(fd) else {
            return 0;
        };
        if st.multi == target {
            st.multi = Token::NONE;
            st.flags &= !MULTI_KIND;
            self.emit(Completion::new(target, -libc::ECANCELED));
            return 1;
        }
        if st.hup == target {
            st.hup = Token::NONE;
            self.emit(Completion::new(target, -libc::ECANCELED));
            return 1;
        }
        let mut ids = mem::take(&mut self.ids);
        self.collect_parked(fd, &mut ids);
        let found = ids
            .iter()
            .copied()
            .find(|&id| self.ops[id as usize].token == target);
        ids.clear();
        self.ids = ids;
        match found {
            Some(id) => {
                self.complete_parked(id, -libc::ECANCELED, false);
                1
            }
            None => 0,
        }
    }

    /// Forgets everything known about `fd` (it is about to be closed outside `Op::Close`).
    pub(super) fn forget_fd(&mut self, fd: RawFd) {
        self.cancel_fd(fd);
        self.fds.reset(fd);
    }

    /// The work of one queued fd: retry its parked ops, then one multishot step.
    pub(super) fn run_fd(&mut self, fd: RawFd, c: &mut Counters) {
        if self.fds.get(fd).parked != NIL {
            let mut ids = mem::take(&mut self.ids);
            self.collect_parked(fd, &mut ids);
            // The list is newest first: try the oldest first, so ops of one fd run in
            // the order they were pushed (a socket's queued datagrams leave in order).
            for &id in ids.iter().rev() {
                // Only the op being tried leaves the slab here (releases are deferred),
                // so every collected index is still the op we collected.
                let Some(p) = self.ops.get_mut(id as usize) else {
                    continue;
                };
                match attempt(&mut self.fds, p, c) {
                    Attempt::Done { result, ok } => self.complete_parked(id, result, ok),
                    Attempt::Wait => {}
                    Attempt::Retry => self.enqueue(fd),
                }
            }
            ids.clear();
            self.ids = ids;
        }
        self.run_hangup(fd);
        self.run_multi(fd, c);
    }

    /// One step of the fd's multishot op, if armed and readable: a batch of accepts, or
    /// ONE read into the scratch buffer (its bytes must be consumed before the next).
    fn run_multi(&mut self, fd: RawFd, c: &mut Counters) {
        let st = self.fds.get(fd);
        if st.multi == Token::NONE || !st.ready(READABLE) {
            return;
        }
        if st.flags & MULTI_ACCEPT != 0 {
            self.accept_batch(fd, st.multi, c);
        } else if st.flags & MULTI_DGRAM != 0 {
            self.recv_datagrams(fd, st.multi, c);
        } else {
            self.recv_once(fd, st.multi, c);
        }
        let st = self.fds.get(fd);
        if st.multi != Token::NONE && st.ready(READABLE) {
            self.enqueue(fd); // more may be queued: next turn
        }
    }

    fn accept_batch(&mut self, fd: RawFd, token: Token, c: &mut Counters) {
        for _ in 0..ACCEPT_BATCH {
            c.syscalls += 1;
            match op::accept::accept(fd) {
                Ok(newfd) => {
                    self.fds.reset(newfd); // a new file: forget whatever the number had
                    self.emit(Completion {
                        token,
                        result: newfd,
                        flags: F_MORE,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.fds.clear(fd, READABLE);
                    return;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ...: the op ends; the caller re-arms later.
                    self.disarm(fd);
                    self.emit(Completion::new(token, neg(&e)));
                    return;
                }
            }
        }
    }

    fn recv_once(&mut self, fd: RawFd, token: Token, c: &mut Counters) {
        loop {
            c.syscalls += 1;
            let done = match op::recv::recv(fd, &mut self.scratch) {
                Ok(0) => {
                    self.disarm(fd);
                    Completion::new(token, 0)
                }
                Ok(n) => {
                    if n < self.scratch.len() {
                        self.fds.drained(fd, READABLE);
                    }
                    Completion {
                        token,
                        result: count(n),
                        flags: F_MORE | Completion::buffer_flags(0),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.fds.clear(fd, READABLE);
                    return;
                }
                Err(e) => {
                    self.disarm(fd);
                    Completion::new(token, neg(&e))
                }
            };
            self.emit(done);
            return;
        }
    }

    /// Removes parked op `id` and emits its completion.
    fn complete_parked(&mut self, id: u32, result: i32, ok: bool) {
        self.unpark(id);
        let p = self.ops.remove(id as usize);
        self.finish(id, p.token, result, p.then, ok);
    }

    /// Emits the completion of slab op `id` and releases its linked op, if any.
    fn finish(&mut self, id: u32, token: Token, result: i32, then: u32, ok: bool) {
        self.emit(Completion::new(token, result));
        if then != NIL {
            self.released.push_back((then, ok));
        }
        if self.link_tail == Some(LinkTail::Pending(id)) {
            self.link_tail = if ok { None } else { Some(LinkTail::Failed) };
        }
    }

    /// Runs (or cancels) the ops whose link heads completed.
    pub(super) fn run_released(&mut self, c: &mut Counters) {
        while let Some((id, ok)) = self.released.pop_front() {
            let p = self.ops.remove(id as usize);
            if !ok {
                self.finish(id, p.token, -libc::ECANCELED, p.then, false);
                continue;
            }
            let started = self.start(p.token, p.op, p.link, c);
            match started {
                Started::Done { ok } if p.then != NIL => self.released.push_back((p.then, ok)),
                Started::Done { .. } => {}
                Started::Pending(nid) => self.ops[nid as usize].then = p.then,
                Started::Watching => debug_assert_eq!(p.then, NIL, "a watch never heads a link"),
            }
            if self.link_tail == Some(LinkTail::Pending(id)) {
                self.link_tail = started.tail();
            }
        }
    }
}
