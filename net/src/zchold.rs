//! Memory of zero-copy sends, kept until the kernel's notification.
//!
//! With `send_zc_threshold` on io_uring a send may go out as `SEND_ZC`: its result
//! completion comes (with `F_MORE`) once the bytes are queued on the socket, and a
//! notification completion (`F_NOTIF`) later, once the kernel no longer reads the pages
//! (on loopback: once the *peer* consumed or dropped the data). The connection's write
//! queue advances on the result, exactly as after a copied send, so flow control,
//! lingering close, close deadlines and aborts see the send as done; the chunks the
//! send read move here ([`crate::wqueue::Kept`]) and go back to the pool only when
//! every notification of that token came (a connection's sends share its token, and
//! notifications need not come in order: the memory of all of them waits for the
//! last).
//!
//! INVARIANT: memory in an entry is neither freed nor reused before the entry's
//! outstanding count is back to zero. What is still kept when the worker ends is
//! leaked ([`Kept::leak`]), never freed.

use crate::wqueue::{Kept, Spare};
use std::collections::HashMap;

#[derive(Default)]
struct Entry {
    /// Notifications still to come.
    outstanding: u32,
    kept: Vec<Kept>,
}

/// The per-worker set of memory held for notifications, by send token.
#[derive(Default)]
pub(crate) struct ZcHolds {
    by_token: HashMap<u64, Entry>,
    /// The drain was aborted: the worker no longer waits for notifications.
    abandoned: bool,
}

impl ZcHolds {
    /// A zero-copy send of `token` completed and a notification is to come: the
    /// returned list takes the memory it read.
    pub(crate) fn sent(&mut self, token: u64) -> &mut Vec<Kept> {
        let e = self.by_token.entry(token).or_default();
        e.outstanding += 1;
        &mut e.kept
    }

    /// A notification of `token` came: with none left, its memory goes back to `spare`
    /// (receive-buffer holds to `spare.released`).
    pub(crate) fn notified(&mut self, token: u64, spare: &mut Spare) {
        let Some(e) = self.by_token.get_mut(&token) else {
            return;
        };
        e.outstanding = e.outstanding.saturating_sub(1);
        if e.outstanding == 0 {
            if let Some(e) = self.by_token.remove(&token) {
                for k in e.kept {
                    k.release(spare);
                }
            }
        }
    }

    /// True while a notification is still to come and the worker waits for it.
    pub(crate) fn pending(&self) -> bool {
        !self.by_token.is_empty() && !self.abandoned
    }

    /// The drain deadline passed: stop waiting for notifications (a peer that never
    /// reads could hold them for as long as the kernel keeps its socket); whatever is
    /// kept then is leaked when the worker ends.
    pub(crate) fn abandon(&mut self) {
        self.abandoned = true;
    }
}

impl Drop for ZcHolds {
    fn drop(&mut self) {
        for (_, e) in self.by_token.drain() {
            if !e.kept.is_empty() {
                tracing::debug!(
                    "ringcore: a worker ends with {} zero-copy send notification(s) \
                     outstanding: their buffers are leaked, not freed",
                    e.outstanding
                );
            }
            for k in e.kept {
                k.leak();
            }
        }
    }
}
