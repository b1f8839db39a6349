//! Direct descriptors ([`Config::direct_descriptors`](crate::Config::direct_descriptors)):
//! a sparse registered file table per worker ring. A connection socket the service
//! registers ([`Io::register_direct`](crate::Io::register_direct)) gets a slot in the
//! table; from then on the ring submits its receives, sends, shutdowns and polls with
//! `IOSQE_FIXED_FILE` and the slot index, which skips the kernel's per-op file lookup
//! and reference count (`fdget`/`fdput`).
//!
//! The socket keeps its normal fd as well: everything that needs a real fd (inline
//! `splice(2)`, socket options, `TCP_INFO`, `SIOCOUTQ`, `SO_LINGER`, `peer_addr`,
//! `SCM_RIGHTS`, handing the fd out) keeps working unchanged, ops this module does not
//! translate (splices, cancels, connects) simply use the fd, and a full table costs
//! nothing but the saving: the connection runs on its plain fd. Ops linked in a chain
//! are never translated (the direct close is not part of the chain; see below).
//!
//! Life of a slot, all on the ring's own `user_data` (never seen by the service):
//! * **register**: an `IORING_OP_FILES_UPDATE` SQE naming the slot, reading the fd
//!   from [`DirectTable::fds`] (stable memory, rewritten only when the slot is free
//!   again). It executes inline, in SQ order, before any later SQE that names the slot.
//!   With `CQE_SKIP_SUCCESS` (5.17) it posts a completion only on failure.
//! * **close**: the connection's `Close { fd }` is preceded by an `IORING_OP_CLOSE` on
//!   the slot (the *direct close*); without it the table's reference would keep the
//!   socket open after `close(2)` and the peer would never see the end. Ops still in
//!   flight on the slot hold the file through the table's resource node, so the removal
//!   cannot pull a file from under them. The slot is reused only after the direct
//!   close's completion, so a new registration can never be undone by an old close.
//! * **close without a completion** (kernel with `CQE_SKIP_SUCCESS`, no SQPOLL): the
//!   direct close carries `IOSQE_CQE_SKIP_SUCCESS`, saving one CQE per connection. A
//!   direct close, like a registration, runs inline at submission (`io_close_fixed`
//!   and `io_files_update` take the ring lock and never go async; ringcore sets no
//!   `IOSQE_ASYNC`/`IO_DRAIN` and never links them), in SQ order. So the slot is
//!   empty once the kernel has consumed the close's SQE, and the SQ head says when:
//!   the slot waits in `closing` until an enter leaves the SQ empty, and is free after
//!   the completions harvested by that enter were handled (a registration's failure
//!   CQE, posted before the close ran, is then matched against the old fd, not a new
//!   one). With SQPOLL the kernel thread publishes the head before it flushes
//!   completions, and with a CQ overflow a failure CQE may still be held back: the
//!   first keeps the completion on, the second delays reuse to a later turn.
//!   A failed direct close still posts: it is logged as a warning and counted in
//!   `direct_close_errors`, and frees its slot only when direct closes post every
//!   completion (then it is the close's one CQE). With skipped completions the slot went
//!   through `closing` already and may hold a newer socket by the time the failure is
//!   seen, so the failure leaves the table alone (the fault injector's
//!   `direct_close_fail` delivers such failures late on purpose).

use crate::metrics::Counters;
use crate::token::{Token, INTERNAL_SLOT, SERVICE_KIND_BASE};
use io_uring::{opcode, squeue, types, IoUring};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;

/// Token kind of a slot registration (`FILES_UPDATE`); the generation bits hold the
/// slot index.
const KIND_UPDATE: u8 = SERVICE_KIND_BASE - 2;
/// Token kind of a direct close.
const KIND_CLOSE: u8 = SERVICE_KIND_BASE - 3;

/// Most slots a table may have (the slot index must fit the token's generation bits).
pub(crate) const MAX_SLOTS: u32 = crate::token::GENERATION_MASK;

/// One ring's sparse file table and which fds are in it.
pub(crate) struct DirectTable {
    /// Registered fd -> its slot.
    by_fd: HashMap<RawFd, u32>,
    /// INVARIANT: `fds[i]` is the fd registered (or being registered) at slot `i`, `-1`
    /// when free. Allocated once and never resized: a registration SQE points into it.
    fds: Box<[RawFd]>,
    /// Free slots (popped from the end).
    free: Vec<u32>,
    /// Registration SQEs carry `CQE_SKIP_SUCCESS`.
    skip: bool,
    /// Direct closes carry `CQE_SKIP_SUCCESS` too; their slots go through `closing`.
    skip_close: bool,
    /// Slots emptied by direct closes without a completion, not yet known consumed by
    /// the kernel (see the module docs).
    closing: Vec<u32>,
    /// Slots whose direct close the kernel has consumed, free after this turn's
    /// completions.
    closed: Vec<u32>,
    /// Injected direct-close failures (tests only).
    #[cfg(feature = "fault-injection")]
    faults: Option<CloseFaults>,
}

/// Direct-close failures the fault injector asks for
/// ([`FaultRates::direct_close_fail`](crate::fault::FaultRates::direct_close_fail)).
#[cfg(feature = "fault-injection")]
struct CloseFaults {
    rng: crate::fault::SplitMix64,
    /// Per mille of direct closes that get a second close of their slot.
    rate: u16,
    /// Longest hold of a failure completion, in turns (at least 1).
    max_turns: u8,
    /// The slot whose close was just queued and gets a second one.
    pending: Option<u32>,
    /// Failure completions of direct closes held back: (turns left, slot, result).
    held: Vec<(u8, u32, i32)>,
}

impl DirectTable {
    /// Registers a sparse table of `slots` entries on `ring` (Linux 5.19). The caller
    /// logs and runs without direct descriptors on error.
    /// `skip`: the kernel has `CQE_SKIP_SUCCESS` (registrations post only failures);
    /// `skip_close`: direct closes may skip theirs as well (not with SQPOLL).
    pub(crate) fn new(
        ring: &IoUring,
        slots: u32,
        skip: bool,
        skip_close: bool,
    ) -> io::Result<DirectTable> {
        let slots = slots.clamp(1, MAX_SLOTS);
        ring.submitter().register_files_sparse(slots)?;
        Ok(DirectTable {
            by_fd: HashMap::new(),
            fds: vec![-1; slots as usize].into_boxed_slice(),
            free: (0..slots).rev().collect(),
            skip,
            skip_close: skip && skip_close,
            closing: Vec::new(),
            closed: Vec::new(),
            #[cfg(feature = "fault-injection")]
            faults: None,
        })
    }

    /// Makes `rate` per mille of direct closes fail late (see
    /// [`FaultRates::direct_close_fail`](crate::fault::FaultRates::direct_close_fail)).
    /// Only where direct closes skip their success completion: there an extra close
    /// of an emptied slot is the one completion such a close can post. Where every
    /// close posts, a second close would post a second completion for one slot, which
    /// no kernel does, so nothing is injected.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject_close_failures(&mut self, seed: u64, rate: u16, max_turns: u8) {
        if rate == 0 || !self.skip_close {
            return;
        }
        self.faults = Some(CloseFaults {
            rng: crate::fault::SplitMix64::new(seed ^ 0xd1ec_c105),
            rate,
            max_turns: max_turns.max(1),
            pending: None,
            held: Vec::new(),
        });
    }

    /// The injected second close of the slot [`Self::release`] just emptied, if the
    /// injector picked it: the same token, `CQE_SKIP_SUCCESS`, pushed right behind the
    /// real close so it runs on the emptied slot (`-EBADF`) before the slot can be
    /// reused (both are consumed by the enter that lets the slot go).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn injected_close(&mut self) -> Option<squeue::Entry> {
        let slot = self.faults.as_mut()?.pending.take()?;
        crate::fault::bump(crate::fault::Stat::DirectCloseFail);
        Some(Self::close_entry(slot).flags(squeue::Flags::SKIP_SUCCESS))
    }

    /// Called once per loop turn before the turn's completions: hands the held
    /// failure completions that are due to the table.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn fault_turn(&mut self, c: &mut Counters) {
        let Some(f) = self.faults.as_mut() else {
            return;
        };
        let mut due = Vec::new();
        f.held.retain_mut(|(left, slot, result)| {
            *left -= 1;
            let keep = *left > 0;
            if !keep {
                due.push((*slot, *result));
            }
            keep
        });
        for (slot, result) in due {
            self.close_completed(slot, result, c);
        }
    }

    /// Called after an enter, before its completions are handled: `sq_empty` says the
    /// kernel consumed every SQE pushed so far (so every direct close of a slot in
    /// `closing` ran); `overflow` that completions may be held back in the kernel.
    pub(crate) fn entered(&mut self, sq_empty: bool, overflow: bool) {
        if sq_empty && !overflow && !self.closing.is_empty() {
            self.closed.append(&mut self.closing);
        }
    }

    /// Called once the completions harvested after [`Self::entered`] were handled:
    /// the slots whose closes ran are free for new registrations.
    pub(crate) fn harvested(&mut self) {
        if !self.closed.is_empty() {
            self.free.append(&mut self.closed);
        }
    }

    /// The slot `fd` is registered at, if any.
    #[inline]
    pub(crate) fn slot(&self, fd: RawFd) -> Option<u32> {
        if self.by_fd.is_empty() {
            return None;
        }
        self.by_fd.get(&fd).copied()
    }

    /// Takes a free slot for `fd` and returns the SQE that fills it; `None` when the
    /// table is full (counted in `direct_fallbacks`: the fd is used as it is) or `fd`
    /// is registered already.
    pub(crate) fn register(&mut self, fd: RawFd, c: &mut Counters) -> Option<squeue::Entry> {
        if fd < 0 || self.by_fd.contains_key(&fd) {
            return None;
        }
        let Some(slot) = self.free.pop() else {
            c.direct_fallbacks += 1;
            return None;
        };
        self.fds[slot as usize] = fd;
        self.by_fd.insert(fd, slot);
        c.direct_conns += 1;
        c.direct_in_use += 1;
        let e = opcode::FilesUpdate::new(&self.fds[slot as usize], 1)
            .offset(slot as i32)
            .build()
            .user_data(
                Token::internal(slot, crate::OpKind::Nop)
                    .with_raw_kind(KIND_UPDATE)
                    .raw(),
            );
        Some(if self.skip {
            e.flags(squeue::Flags::SKIP_SUCCESS)
        } else {
            e
        })
    }

    /// Forgets `fd`'s slot and returns the direct close that empties it (`None` if the
    /// fd has none). The slot is free once that close completes ([`Self::complete`]).
    ///
    /// With `skip_close` the close posts nothing on success: the slot waits in
    /// `closing` for the kernel to consume the SQE (module docs).
    pub(crate) fn release(&mut self, fd: RawFd, c: &mut Counters) -> Option<squeue::Entry> {
        let slot = self.by_fd.remove(&fd)?;
        let e = Self::close_entry(slot);
        if !self.skip_close {
            return Some(e);
        }
        self.closing.push(slot);
        c.direct_in_use = c.direct_in_use.saturating_sub(1);
        #[cfg(feature = "fault-injection")]
        if let Some(f) = self.faults.as_mut() {
            if f.rng.hit(f.rate) {
                f.pending = Some(slot);
            }
        }
        Some(e.flags(squeue::Flags::SKIP_SUCCESS))
    }

    /// The direct close of `slot`, under the table's own token.
    fn close_entry(slot: u32) -> squeue::Entry {
        opcode::Close::new(types::Fixed(slot)).build().user_data(
            Token::internal(slot, crate::OpKind::Nop)
                .with_raw_kind(KIND_CLOSE)
                .raw(),
        )
    }

    /// True (and the completion handled) when `user_data` is one of this table's own
    /// ops: a registration that failed (logged; the fd is then used plainly for the
    /// ops not yet submitted) or a direct close (its slot is free again).
    pub(crate) fn complete(&mut self, user_data: u64, result: i32, c: &mut Counters) -> bool {
        let t = Token::from_raw(user_data);
        if t.slot() != INTERNAL_SLOT {
            return false;
        }
        let slot = t.generation();
        match t.raw_kind() {
            KIND_UPDATE => {
                if result < 0 {
                    let fd = self.fds.get(slot as usize).copied().unwrap_or(-1);
                    if self.by_fd.get(&fd) == Some(&slot) {
                        // The kernel left the slot empty: free it now (once released,
                        // its direct close frees it instead, failing with EBADF).
                        self.by_fd.remove(&fd);
                        self.fds[slot as usize] = -1;
                        self.free.push(slot);
                        c.direct_in_use = c.direct_in_use.saturating_sub(1);
                    }
                    c.direct_errors += 1;
                    tracing::error!(
                        fd,
                        slot,
                        error = %io::Error::from_raw_os_error(-result),
                        "ringcore: registering a direct descriptor failed; the connection \
                         uses its plain fd from now on (ops already submitted on the slot \
                         fail with EBADF)"
                    );
                }
                true
            }
            KIND_CLOSE => {
                #[cfg(feature = "fault-injection")]
                if let Some(f) = self.faults.as_mut() {
                    if result < 0 {
                        let turns = 1 + f.rng.below(u64::from(f.max_turns)) as u8;
                        f.held.push((turns, slot, result));
                        return true;
                    }
                }
                self.close_completed(slot, result, c);
                true
            }
            _ => false,
        }
    }

    /// A direct close of `slot` posted `result`: a failure is logged and counted; the
    /// slot is freed here only when every direct close posts (this is then its one
    /// completion). With skipped completions only a failure posts, and the slot went
    /// through `closing` already: it may hold a newer socket now, so it is not touched.
    fn close_completed(&mut self, slot: u32, result: i32, c: &mut Counters) {
        if result < 0 {
            c.direct_close_errors += 1;
            tracing::warn!(
                slot,
                error = %io::Error::from_raw_os_error(-result),
                "ringcore: a direct close failed (the slot was empty: its registration \
                 failed, or a close ran twice); the slot is freed once as always"
            );
        }
        if self.skip_close {
            return;
        }
        if let Some(f) = self.fds.get_mut(slot as usize) {
            *f = -1;
            self.free.push(slot);
            c.direct_in_use = c.direct_in_use.saturating_sub(1);
        }
    }
}
