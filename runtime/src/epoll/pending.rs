//! Ops that wait: parked until their fd is ready, or held behind a link head.
//!
//! They live in the poller's slab; a parked op is also on the singly linked list of
//! every fd it names (the head is in [`FdState::parked`](super::fdstate::FdState)), so
//! readiness, cancel and close on that fd find it. Lists are short (usually one op),
//! so unlinking walks them.

use super::fdstate::NIL;
use super::Poller;
use crate::op::send::Rest;
use crate::op::Op;
use crate::token::Token;
use std::os::fd::RawFd;

/// One waiting op.
pub(super) struct Pending {
    /// The token its completion carries.
    pub(super) token: Token,
    /// The op, as pushed (its pointers stay valid until its completion: push contract).
    pub(super) op: Op,
    /// Next op on the same fd's list: `next[i]` belongs to the list of
    /// [`list_fds`]`(op)[i]`.
    pub(super) next: [u32; 2],
    /// The op linked after this one, held until this one completes, or [`NIL`].
    pub(super) then: u32,
    /// This op heads a link: it succeeds only if it completes in full (a send then
    /// keeps sending, as with `waitall`).
    pub(super) link: bool,
    /// What the op has done so far.
    pub(super) progress: Progress,
}

/// How far a waiting op got.
pub(super) enum Progress {
    /// Not tried, or nothing to remember.
    Fresh,
    /// A send: `sent` of `want` bytes so far; `rest` holds the unsent tail once a full
    /// (`waitall` or linked) send was cut short.
    Send {
        sent: usize,
        want: usize,
        rest: Option<Rest>,
    },
    /// `connect` said `EINPROGRESS`: the outcome is `SO_ERROR` once writable.
    Connecting,
    /// A splice said `EAGAIN` although poll saw both sides ready this many times.
    Splice { retries: u8 },
}

impl Pending {
    pub(super) fn new(token: Token, op: Op, link: bool) -> Pending {
        Pending {
            token,
            op,
            next: [NIL; 2],
            then: NIL,
            link,
            progress: Progress::Fresh,
        }
    }
}

/// The fds whose lists hold `op` while it is parked: its fd, and for a splice also
/// `fd_in` (`-1`: none).
pub(super) fn list_fds(op: &Op) -> [RawFd; 2] {
    match *op {
        Op::Splice { fd_in, fd_out, .. } if fd_in != fd_out => [fd_out, fd_in],
        _ => [op.fd(), -1],
    }
}

/// Which of `op`'s list links belongs to `fd`'s list.
fn slot_in(op: &Op, fd: RawFd) -> usize {
    usize::from(list_fds(op)[1] == fd)
}

impl Poller {
    /// Puts op `id` at the head of the list of every fd it names.
    pub(super) fn park(&mut self, id: u32) {
        let fds = list_fds(&self.ops[id as usize].op);
        for (slot, fd) in fds.into_iter().enumerate() {
            if fd >= 0 {
                let st = self.fds.get_mut(fd);
                self.ops[id as usize].next[slot] = st.parked;
                st.parked = id;
            }
        }
    }

    /// Takes op `id` off every list it is on.
    pub(super) fn unpark(&mut self, id: u32) {
        let fds = list_fds(&self.ops[id as usize].op);
        for (slot, fd) in fds.into_iter().enumerate() {
            if fd < 0 {
                continue;
            }
            let after = self.ops[id as usize].next[slot];
            let Some(st) = self.fds.find_mut(fd) else {
                continue;
            };
            if st.parked == id {
                st.parked = after;
                continue;
            }
            let mut cur = st.parked;
            while cur != NIL {
                let p = &mut self.ops[cur as usize];
                let s = slot_in(&p.op, fd);
                if p.next[s] == id {
                    p.next[s] = after;
                    break;
                }
                cur = p.next[s];
            }
        }
    }

    /// Appends the ops parked on `fd` to `out`.
    pub(super) fn collect_parked(&self, fd: RawFd, out: &mut Vec<u32>) {
        let mut cur = self.fds.get(fd).parked;
        while cur != NIL {
            out.push(cur);
            let p = &self.ops[cur as usize];
            cur = p.next[slot_in(&p.op, fd)];
        }
    }
}
