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
//!   transfer crawls on window probes. Worse, the receiver's window stays below one
//!   segment after that (it learns its accounting ratio from full-size segments only),
//!   so even one zero-copy send poisons such a connection. Hence sockets whose peer is
//!   plainly local (loopback, or the socket's own address) never send zero-copy; the
//!   probe covers the rest (a peer in another network namespace of the same host is
//!   local too, but looks remote: its first send is zero-copy). `Config::send_zc_local`
//!   lets local peers probe too (tests: all their peers are local).
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
    /// Local peers too (`Config::send_zc_local`).
    local: bool,
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
    pub(super) fn new(threshold: usize, local: bool) -> ZeroCopy {
        ZeroCopy {
            threshold,
            local,
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

    /// Before a send of `len` bytes on `fd`: a socket seen for the first time is
    /// classified (two syscalls, once per socket): a local peer (loopback, or the
    /// socket's own address; unless `Config::send_zc_local`) or a socket other than
    /// TCP/IP is sent with copies from the start, without a probe.
    pub(super) fn classify(&mut self, fd: RawFd, len: usize, c: &mut Counters) {
        if self.local || len < self.threshold || self.routes.contains_key(&fd) {
            return;
        }
        c.syscalls += 2;
        if local_or_not_ip(fd) {
            self.routes.insert(fd, Route::Copied);
        }
    }

    /// A zero-copy send of `user_data` on `fd` was pushed.
    pub(super) fn pushed(&mut self, user_data: u64, fd: RawFd, c: &mut Counters) {
        *self.pending.entry(user_data).or_insert(0) += 1;
        c.send_zc += 1;
        if let std::collections::hash_map::Entry::Vacant(e) = self.routes.entry(fd) {
            e.insert(Route::Probing);
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

/// True when `fd`'s peer is on this host (a loopback address, or the socket's own
/// address), or `fd` is not an IPv4/IPv6 socket (or its addresses cannot be read):
/// zero-copy sends there are copied by the kernel (or refused), never worth it.
fn local_or_not_ip(fd: RawFd) -> bool {
    use nix::sys::socket::{getpeername, getsockname, SockaddrStorage};
    let (Ok(peer), Ok(local)) = (
        getpeername::<SockaddrStorage>(fd),
        getsockname::<SockaddrStorage>(fd),
    ) else {
        return true;
    };
    let ip = |a: &SockaddrStorage| -> Option<std::net::IpAddr> {
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(std::net::IpAddr::V4(v4.ip()));
        }
        let v6 = a.as_sockaddr_in6()?.ip();
        Some(match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(v6),
        })
    };
    match (ip(&peer), ip(&local)) {
        (Some(p), Some(l)) => p.is_loopback() || p == l,
        _ => true,
    }
}
