//! Zero-copy sends (`SEND_ZC`/`SENDMSG_ZC`, [`Config::send_zc_threshold`]): which sends
//! go zero-copy, and the bookkeeping of their two completions.
//!
//! * A zero-copy send completes twice: its result (with `F_MORE` when a notification
//!   follows), then the notification (`F_NOTIF`) once the kernel no longer reads the
//!   memory. Both go to the service as they come; the service advances its write queue
//!   on the result and keeps the memory the send read until the notification (the
//!   push contract). A notification never overtakes its result here.
//! * Per socket, the first send at or above the threshold is a probe: until its
//!   notification came, the socket's sends are copied; then, if the kernel reports it
//!   copied the bytes after all (`IORING_NOTIF_USAGE_ZC_COPIED`: always so on loopback
//!   and towards local peers, where the receiver gets a copy), the socket's sends stay
//!   copied, otherwise they go zero-copy. On loopback a zero-copy send only costs more,
//!   and its copied pages inflate the receiver's memory accounting so much that a
//!   receiver with a small buffer advertises a window below one segment, and the
//!   transfer crawls on window probes.
//!
//! [`Config::send_zc_threshold`]: crate::Config::send_zc_threshold

use crate::completion::{Completion, F_NOTIF};
use crate::metrics::Counters;
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;

/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a zero-copy notification's result.
const ZC_COPIED: u32 = 1 << 31;

/// What a socket's probe send found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    /// The probe's notification has not come: send with copies meanwhile.
    Probing,
    /// The kernel copied the probe's bytes: send with copies.
    Copied,
    /// The probe really went zero-copy: keep sending zero-copy.
    Zero,
}

/// The ring's zero-copy state.
pub(super) struct ZeroCopy {
    /// Sends of at least this many bytes may go zero-copy.
    threshold: usize,
    /// Zero-copy sends pushed whose result has not come, by user_data (how many).
    pending: HashMap<u64, u32>,
    /// Notifications that came before their send's result (not seen: the kernel posts
    /// the result first); each is handed on right after that result.
    early: Vec<Completion>,
    /// Per socket: what its probe found.
    routes: HashMap<RawFd, Route>,
    /// Probe sends whose notification has not come: user_data -> socket.
    probes: HashMap<u64, RawFd>,
}

impl ZeroCopy {
    pub(super) fn new(threshold: usize) -> ZeroCopy {
        ZeroCopy {
            threshold,
            pending: HashMap::new(),
            early: Vec::new(),
            routes: HashMap::new(),
            probes: HashMap::new(),
        }
    }

    /// True when a send of `len` bytes on `fd` goes zero-copy.
    pub(super) fn wants(&self, fd: RawFd, len: usize) -> bool {
        len >= self.threshold && matches!(self.routes.get(&fd), None | Some(Route::Zero))
    }

    /// A zero-copy send of `user_data` on `fd` was pushed.
    pub(super) fn pushed(&mut self, user_data: u64, fd: RawFd, c: &mut Counters) {
        *self.pending.entry(user_data).or_insert(0) += 1;
        c.send_zc += 1;
        if !self.routes.contains_key(&fd) {
            self.routes.insert(fd, Route::Probing);
            self.probes.insert(user_data, fd);
        }
    }

    /// `fd` is being closed: a later socket with the same number probes again.
    pub(super) fn closed(&mut self, fd: RawFd) {
        self.routes.remove(&fd);
    }

    /// True when no completion needs looking at.
    pub(super) fn idle(&self) -> bool {
        self.pending.is_empty() && self.early.is_empty() && self.probes.is_empty()
    }

    /// Looks at one completion: a zero-copy send's result or notification is queued on
    /// `batch` (a notification after its result) and `None` returned; any other
    /// completion is handed back.
    pub(super) fn harvest(
        &mut self,
        x: Completion,
        batch: &mut VecDeque<Completion>,
        c: &mut Counters,
    ) -> Option<Completion> {
        let raw = x.token.raw();
        if x.flags & F_NOTIF != 0 {
            let copied = x.result as u32 & ZC_COPIED != 0;
            c.send_zc_copied += u64::from(copied);
            if let Some(fd) = self.probes.remove(&raw) {
                // The socket may have closed (and its number been reused) meanwhile:
                // only a probe still waiting takes the verdict.
                if let Some(r) = self.routes.get_mut(&fd).filter(|r| **r == Route::Probing) {
                    *r = if copied { Route::Copied } else { Route::Zero };
                }
            }
            if self.pending.contains_key(&raw) {
                // Before its result (not seen in practice): after it.
                self.early.push(x);
            } else {
                batch.push_back(x);
            }
            return None;
        }
        let Some(n) = self.pending.get_mut(&raw) else {
            return Some(x);
        };
        *n -= 1;
        if *n == 0 {
            self.pending.remove(&raw);
        }
        batch.push_back(x);
        if let Some(i) = self.early.iter().position(|e| e.token.raw() == raw) {
            batch.push_back(self.early.remove(i));
        }
        None
    }
}
