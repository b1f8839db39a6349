//! Fault injection at the backend seam (cargo feature `fault-injection`, test-only).
//!
//! [`FaultDriver`] wraps a worker's real driver (io_uring or epoll; any [`Inner`]) and, from a
//! seeded RNG, perturbs what the service sees, the same way on both backends
//! (ARCHITECTURE.md, decision 16). Every fault is one the kernel could produce, and
//! none releases memory the kernel may still touch:
//!
//! | fault | how it is realised |
//! | --- | --- |
//! | short send | the send is submitted with a private copy of its iovecs cut to `1..len` bytes, so the kernel really sends fewer; the copy lives until the token's last op completes |
//! | short splice | an unlinked splice is submitted with a smaller `len` (splice may always move fewer bytes) |
//! | `EAGAIN` on send | the send is not submitted; a final `-EAGAIN` is synthesised |
//! | `ENOBUFS` on receive | at arm time: the multishot recv (stream or datagram) is not submitted, a final `-ENOBUFS` is synthesised; mid-stream: the armed recv is cancelled by token and its real final `-ECANCELED` is rewritten to `-ENOBUFS` (data completions before it pass unchanged) |
//! | `EMFILE` on accept | as `ENOBUFS`, for the multishot accept |
//! | delay / reorder | a completion is held for a few loop turns, then released interleaved with others; completions of one token keep their order, and ops of a link are never held |
//! | stale duplicate | a copy of a completion under a previous generation of its slot (so the registry must drop it), without buffer or `F_MORE` |
//! | failed direct close (io_uring, direct descriptors with `CQE_SKIP_SUCCESS`) | a second direct close of the same slot is queued right behind the real one; the kernel runs it on the emptied slot and posts a real `-EBADF` failure CQE, which the ring's table then receives up to `max_delay_turns` turns late (after the slot may hold a newer socket) |
//! | lost end of a receive | a multishot recv's final end-of-stream or error completion (`0`, `-ECONNRESET`, ...) is swallowed: the service sees its receive still armed, as if the kernel had missed a reset (issue 8 #13); a cancel of it (by token or by fd) later completes it with `-ECANCELED`; once per token (a fresh receive sees the socket's state, as the kernel's does) |
//!
//! On epoll a receive completion's bytes live in one scratch buffer until the next
//! completion is fetched, so completions carrying a buffer are never held there.
//! Synthesised completions are delivered after the next wait, as a kernel's would be.
//! Tiny rings (SQ 4, small CQ) are plain configuration (`ring_entries`, `cq_entries`).

use crate::completion::{Completion, F_BUFFER, F_MORE};
use crate::metrics::Counters;
use crate::op::Op;
use crate::token::{OpKind, Token, GENERATION_MASK, WORKER_INTERNAL_ID};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Internal id of the injector's own cancels (never used by a service: services use
/// small ids, the worker uses [`WORKER_INTERNAL_ID`]).
const FAULT_ID: u32 = GENERATION_MASK - 1;
const FAULT_CANCEL: Token = Token::internal(FAULT_ID, OpKind::Cancel);

/// How often each fault fires, in events per thousand (`0` disables it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultRates {
    /// Per send: submit only a prefix of it.
    pub short_send: u16,
    /// Per unlinked splice: submit it with a smaller length.
    pub short_splice: u16,
    /// Per send: complete it with `-EAGAIN` without submitting it.
    pub send_eagain: u16,
    /// Per multishot recv arm: complete it with `-ENOBUFS` without submitting it.
    pub recv_enobufs: u16,
    /// Per multishot accept arm: complete it with `-EMFILE` without submitting it.
    pub accept_emfile: u16,
    /// Per loop turn and armed multishot op: cancel it and report its end as
    /// `-ENOBUFS` (recv) or `-EMFILE` (accept).
    pub multishot_cut: u16,
    /// Per completion: hold it back for 1..=`max_delay_turns` loop turns.
    pub delay: u16,
    /// Longest hold, in loop turns.
    pub max_delay_turns: u8,
    /// Per completion of a connection's op: also deliver a stale duplicate.
    pub stale_duplicate: u16,
    /// Per direct close that posts no completion on success (io_uring with
    /// `Config::direct_descriptors` and `CQE_SKIP_SUCCESS`, no SQPOLL): queue a second
    /// close of the same slot, whose real `-EBADF` failure completion reaches the ring's
    /// table 1..=`max_delay_turns` turns late. Off in [`FaultRates::default`]
    /// (direct descriptors are off by default); [`FaultRates::random`] draws it as the
    /// others (drawn after the older rates, so those of a seed are what they were without
    /// it). Elsewhere (epoll, direct descriptors off, SQPOLL) it injects nothing.
    pub direct_close_fail: u16,
    /// Per final end-of-stream or error completion of a connection's multishot recv:
    /// swallow it, leaving the receive parked in the service's eyes until it cancels
    /// it. Off in [`FaultRates::default`] and [`FaultRates::random`] (a handler
    /// without timers would then wait forever unless the runtime guards it).
    pub recv_end_lost: u16,
    /// Per sendfile: complete it with `-EINVAL` without running it, as a file or
    /// socket that `sendfile(2)` does not support would (the file then leaves by
    /// splice). Sendfiles are also shortened at the `short_splice` rate.
    pub sendfile_refuse: u16,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            short_send: 200,
            short_splice: 200,
            send_eagain: 50,
            recv_enobufs: 50,
            accept_emfile: 100,
            multishot_cut: 5,
            delay: 150,
            max_delay_turns: 4,
            stale_duplicate: 50,
            direct_close_fail: 0,
            recv_end_lost: 0,
            sendfile_refuse: 50,
        }
    }
}

impl FaultRates {
    /// No fault at all (a baseline to compare with).
    pub fn none() -> FaultRates {
        FaultRates {
            short_send: 0,
            short_splice: 0,
            send_eagain: 0,
            recv_enobufs: 0,
            accept_emfile: 0,
            multishot_cut: 0,
            delay: 0,
            max_delay_turns: 1,
            stale_duplicate: 0,
            direct_close_fail: 0,
            recv_end_lost: 0,
            sendfile_refuse: 0,
        }
    }

    /// Rates drawn from `seed`: each fault off, light or heavy, so seeds explore both
    /// single faults and combinations.
    pub fn random(seed: u64) -> FaultRates {
        let mut r = SplitMix64::new(seed ^ 0x5eed_fa17);
        let mut pick = |light: u16, heavy: u16| match r.below(4) {
            0 => 0,
            1 | 2 => light,
            _ => heavy,
        };
        FaultRates {
            short_send: pick(150, 600),
            short_splice: pick(150, 600),
            send_eagain: pick(50, 300),
            recv_enobufs: pick(50, 400),
            accept_emfile: pick(100, 500),
            multishot_cut: pick(5, 40),
            delay: pick(100, 400),
            max_delay_turns: 1 + (seed % 6) as u8,
            stale_duplicate: pick(30, 200),
            direct_close_fail: pick(100, 500),
            recv_end_lost: 0,
            sendfile_refuse: pick(30, 300),
        }
    }
}

/// What a runtime should inject: a seed and the rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultPlan {
    /// Seed of the injector's RNG (every worker of the runtime starts from it).
    pub seed: u64,
    /// How often each fault fires.
    pub rates: FaultRates,
}

impl FaultPlan {
    /// The default rates with this seed.
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            rates: FaultRates::default(),
        }
    }

    /// Rates drawn from the seed ([`FaultRates::random`]).
    pub fn random(seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            rates: FaultRates::random(seed),
        }
    }

    /// These rates instead.
    pub fn rates(mut self, rates: FaultRates) -> FaultPlan {
        self.rates = rates;
        self
    }
}

/// Faults injected so far by every runtime of this process (for tests to check that
/// the faults they asked for really happened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Sends submitted shortened.
    pub short_sends: u64,
    /// Splices submitted shortened.
    pub short_splices: u64,
    /// Sends answered `-EAGAIN` unsubmitted.
    pub send_eagains: u64,
    /// Recv arms answered `-ENOBUFS` unsubmitted.
    pub recv_enobufs: u64,
    /// Accept arms answered `-EMFILE` unsubmitted.
    pub accept_emfiles: u64,
    /// Armed multishot ops cancelled and reported as `ENOBUFS`/`EMFILE`.
    pub multishot_cuts: u64,
    /// Completions held back.
    pub delayed: u64,
    /// Stale duplicates delivered.
    pub stale_duplicates: u64,
    /// Final recv completions swallowed ([`FaultRates::recv_end_lost`]).
    pub recv_ends_lost: u64,
    /// Second direct closes queued ([`FaultRates::direct_close_fail`]).
    pub direct_close_fails: u64,
    /// Sendfiles answered `-EINVAL` unrun ([`FaultRates::sendfile_refuse`]).
    pub sendfile_refusals: u64,
}

static STATS: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];

#[derive(Clone, Copy)]
pub(crate) enum Stat {
    ShortSend,
    ShortSplice,
    SendEagain,
    RecvEnobufs,
    AcceptEmfile,
    Cut,
    Delayed,
    Duplicate,
    EndLost,
    DirectCloseFail,
    SendfileRefuse,
}

pub(crate) fn bump(s: Stat) {
    STATS[s as usize].fetch_add(1, Ordering::Relaxed);
}

/// A snapshot of the process-wide fault counters.
pub fn stats() -> FaultStats {
    let g = |s: Stat| STATS[s as usize].load(Ordering::Relaxed);
    FaultStats {
        short_sends: g(Stat::ShortSend),
        short_splices: g(Stat::ShortSplice),
        send_eagains: g(Stat::SendEagain),
        recv_enobufs: g(Stat::RecvEnobufs),
        accept_emfiles: g(Stat::AcceptEmfile),
        multishot_cuts: g(Stat::Cut),
        delayed: g(Stat::Delayed),
        stale_duplicates: g(Stat::Duplicate),
        recv_ends_lost: g(Stat::EndLost),
        direct_close_fails: g(Stat::DirectCloseFail),
        sendfile_refusals: g(Stat::SendfileRefuse),
    }
}

/// splitmix64: a tiny, good-enough generator (no dependency).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn hit(&mut self, per_mille: u16) -> bool {
        per_mille > 0 && self.below(1000) < u64::from(per_mille)
    }
}

/// A shortened copy of a send's message. INVARIANT: `hdr.msg_iov` points at `iov`,
/// whose entries lie inside the caller's iovecs (valid while the send is in flight).
struct ShortMsg {
    hdr: libc::msghdr,
    /// Read only by the kernel (through `hdr`); owned here so it lives long enough.
    #[allow(dead_code)]
    iov: Box<[libc::iovec]>,
}

/// An armed multishot op.
struct Multi {
    fd: std::os::fd::RawFd,
    accept: bool,
    armed_turn: u64,
    cut: bool,
    /// A cancel naming it was pushed (a lost end is then reported as cancelled: the
    /// kernel would have found the parked op).
    cancel_asked: bool,
}

/// A held-back completion.
struct Held {
    release: u64,
    c: Completion,
    /// A stale duplicate: no op of the injector's bookkeeping ends with it.
    dup: bool,
}

/// The fault-injecting wrapper of a worker's driver.
pub(crate) struct FaultDriver<D: Inner> {
    inner: D,
    rng: SplitMix64,
    rates: FaultRates,
    epoll: bool,
    turn: u64,
    /// Held completions in arrival order.
    held: Vec<Held>,
    /// Released (or synthesised-and-due) completions, delivered before the inner
    /// driver's. `bool`: stale duplicate.
    ready: VecDeque<(Completion, bool)>,
    /// Ops pushed and not finished, per token.
    in_flight: HashMap<u64, u32>,
    /// Shortened send messages, per token, freed when the token has no op in flight.
    /// Boxed: the backend holds a pointer to each `msghdr` (epoll uses it when the
    /// socket becomes writable), so they must not move when the `Vec` grows.
    #[allow(clippy::vec_box)]
    copies: HashMap<u64, Vec<Box<ShortMsg>>>,
    /// Armed multishot ops by token.
    multi: HashMap<u64, Multi>,
    /// Linked ops in flight, per token: never held.
    linked: HashMap<u64, u32>,
    /// Receives whose final completion was swallowed, by token: their fd. A cancel
    /// naming one completes it with `-ECANCELED`.
    lost: HashMap<u64, std::os::fd::RawFd>,
    /// Tokens that lost an end once (never twice).
    lost_once: std::collections::HashSet<u64>,
}

/// What the injector needs of the driver it wraps (the backend's `Driver`
/// implements it). A trait, so that this module depends on nothing above it: the
/// backend names the injector, never the other way round.
pub(crate) trait Inner {
    /// True for the epoll backend (its sends complete at once, never short by
    /// themselves).
    fn is_epoll(&self) -> bool;
    /// Queues `op`.
    ///
    /// # Safety
    /// Pointers in `op` stay valid until its final completion.
    unsafe fn push(&mut self, token: Token, op: Op, c: &mut Counters) -> io::Result<()>;
    /// Queues `first` linked to `second`, as one unit.
    ///
    /// # Safety
    /// Pointers in both ops stay valid until their final completions.
    unsafe fn push_linked(
        &mut self,
        first: (Token, Op),
        second: (Token, Op),
        c: &mut Counters,
    ) -> io::Result<()>;
    /// Waits for completions (at most `timeout`).
    fn wait(&mut self, timeout: Option<Duration>, c: &mut Counters) -> io::Result<()>;
    /// The next completion, if one is ready.
    fn next(&mut self, c: &mut Counters) -> Option<Completion>;
    /// True if a completion is ready without waiting.
    fn has_ready(&self) -> bool;
    /// True when `op` under `token` posts no completion if it succeeds (io_uring's
    /// `CQE_SKIP_SUCCESS` on connection cancels): it is then never counted in flight,
    /// or its token would stay in flight forever and pin the shortened copies.
    fn skips_success(&self, token: Token, op: &Op) -> bool;
}

impl<D: Inner> FaultDriver<D> {
    pub(crate) fn new(inner: D, plan: &FaultPlan) -> Self {
        let epoll = inner.is_epoll();
        FaultDriver {
            inner,
            rng: SplitMix64::new(plan.seed),
            rates: plan.rates,
            epoll,
            turn: 0,
            held: Vec::new(),
            ready: VecDeque::new(),
            in_flight: HashMap::new(),
            copies: HashMap::new(),
            multi: HashMap::new(),
            linked: HashMap::new(),
            lost: HashMap::new(),
            lost_once: Default::default(),
        }
    }

    pub(crate) fn inner(&self) -> &D {
        &self.inner
    }

    pub(crate) fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    fn is_worker_op(t: Token) -> bool {
        t.is_internal() && t.generation() == WORKER_INTERNAL_ID
    }

    /// Queues a completion the kernel never produced, due after the next wait.
    fn synthesise(&mut self, token: Token, result: i32) {
        let release = self.turn + 1 + self.rng.below(u64::from(self.rates.max_delay_turns));
        self.held.push(Held {
            release,
            c: Completion::new(token, result),
            dup: false,
        });
    }

    /// # Safety
    /// As [`Inner::push`].
    pub(crate) unsafe fn push(&mut self, token: Token, op: Op, c: &mut Counters) -> io::Result<()> {
        let mut op = op;
        let mut copy = None;
        if !Self::is_worker_op(token) {
            match op {
                Op::Send {
                    fd,
                    msg,
                    waitall: false,
                    more,
                } => {
                    if self.rng.hit(self.rates.send_eagain) {
                        bump(Stat::SendEagain);
                        *self.in_flight.entry(token.raw()).or_default() += 1;
                        self.synthesise(token, -libc::EAGAIN);
                        return Ok(());
                    }
                    if self.rng.hit(self.rates.short_send) {
                        // SAFETY: the push contract: `msg` and its iovecs are valid.
                        let total = unsafe { crate::op::send::total_len(msg) };
                        if total >= 2 {
                            let keep = 1 + self.rng.below(total as u64 - 1) as usize;
                            // SAFETY: as above.
                            let m = unsafe { shorten(msg, keep) };
                            op = Op::Send {
                                fd,
                                msg: &m.hdr,
                                waitall: false,
                                more,
                            };
                            copy = Some(m);
                            bump(Stat::ShortSend);
                        }
                    }
                }
                Op::Splice { len, .. } if len >= 2 && self.rng.hit(self.rates.short_splice) => {
                    bump(Stat::ShortSplice);
                    let short = 1 + self.rng.below(u64::from(len) - 1) as u32;
                    if let Op::Splice { len, .. } = &mut op {
                        *len = short;
                    }
                }
                Op::SendFile { .. } if self.rng.hit(self.rates.sendfile_refuse) => {
                    bump(Stat::SendfileRefuse);
                    *self.in_flight.entry(token.raw()).or_default() += 1;
                    self.synthesise(token, -libc::EINVAL);
                    return Ok(());
                }
                Op::SendFile { len, .. } if len >= 2 && self.rng.hit(self.rates.short_splice) => {
                    bump(Stat::ShortSplice);
                    let short = 1 + self.rng.below(u64::from(len) - 1) as u32;
                    if let Op::SendFile { len, .. } = &mut op {
                        *len = short;
                    }
                }
                Op::RecvMulti { .. } | Op::RecvMsgMulti { .. }
                    if self.rng.hit(self.rates.recv_enobufs) =>
                {
                    bump(Stat::RecvEnobufs);
                    *self.in_flight.entry(token.raw()).or_default() += 1;
                    self.synthesise(token, -libc::ENOBUFS);
                    return Ok(());
                }
                Op::CancelFd { fd } => {
                    self.cancel_lost(|_, &f| f == fd);
                    self.multi
                        .values_mut()
                        .filter(|m| m.fd == fd)
                        .for_each(|m| m.cancel_asked = true);
                }
                Op::Cancel { target, .. } => {
                    self.cancel_lost(|&raw, _| raw == target.raw());
                    if let Some(m) = self.multi.get_mut(&target.raw()) {
                        m.cancel_asked = true;
                    }
                }
                Op::AcceptMulti { .. } | Op::Accept { .. }
                    if self.rng.hit(self.rates.accept_emfile) =>
                {
                    bump(Stat::AcceptEmfile);
                    *self.in_flight.entry(token.raw()).or_default() += 1;
                    self.synthesise(token, -libc::EMFILE);
                    return Ok(());
                }
                _ => {}
            }
        }
        // SAFETY: forwarded caller contract; a shortened copy points inside the
        // caller's buffers and is kept until the token has no op in flight.
        unsafe { self.inner.push(token, op, c) }?;
        self.submitted(token, &op);
        if let Some(m) = copy {
            self.copies.entry(token.raw()).or_default().push(m);
        }
        Ok(())
    }

    /// A linked pair goes through untouched, and nothing held may overtake or be
    /// overtaken by its completions: everything held is released first, and the
    /// pair's completions are never held.
    ///
    /// # Safety
    /// As [`Inner::push_linked`].
    pub(crate) unsafe fn push_linked(
        &mut self,
        first: (Token, Op),
        second: (Token, Op),
        c: &mut Counters,
    ) -> io::Result<()> {
        self.release_all();
        // SAFETY: forwarded caller contract.
        unsafe { self.inner.push_linked(first, second, c) }?;
        for (t, op) in [first, second] {
            *self.linked.entry(t.raw()).or_default() += 1;
            self.submitted(t, &op);
        }
        Ok(())
    }

    /// A cancel names swallowed receives: they end now, cancelled (after the next
    /// wait, as the kernel's completion would come).
    fn cancel_lost(&mut self, names: impl Fn(&u64, &std::os::fd::RawFd) -> bool) {
        let mut ended: Vec<u64> = self
            .lost
            .iter()
            .filter(|(raw, fd)| names(raw, fd))
            .map(|(&raw, _)| raw)
            .collect();
        ended.sort_unstable();
        for raw in ended {
            self.lost.remove(&raw);
            self.synthesise(Token::from_raw(raw), -libc::ECANCELED);
        }
    }

    /// Bookkeeping for an op handed to the real backend.
    fn submitted(&mut self, token: Token, op: &Op) {
        if self.inner.skips_success(token, op) {
            // A failure completion may still come; `deliver` finds no count to drop.
            return;
        }
        *self.in_flight.entry(token.raw()).or_default() += 1;
        if let Op::RecvMulti { fd } | Op::RecvMsgMulti { fd, .. } | Op::AcceptMulti { fd } = *op {
            self.multi.insert(
                token.raw(),
                Multi {
                    fd,
                    accept: matches!(op, Op::AcceptMulti { .. }),
                    armed_turn: self.turn,
                    cut: false,
                    cancel_asked: false,
                },
            );
        }
    }

    pub(crate) fn wait(&mut self, timeout: Option<Duration>, c: &mut Counters) -> io::Result<()> {
        self.turn += 1;
        self.cut_multishots(c)?;
        // Held completions are released by turns, so while any is held the worker must
        // not block: a wait without deadline (no timer pending) would hold them forever.
        let busy = !self.ready.is_empty() || !self.held.is_empty();
        let timeout = if busy { Some(Duration::ZERO) } else { timeout };
        self.inner.wait(timeout, c)?;
        self.release_due();
        Ok(())
    }

    /// Cancels some armed multishot ops (submitted in an earlier turn, so the cancel
    /// cannot meet a re-arm of the same token in one batch).
    fn cut_multishots(&mut self, c: &mut Counters) -> io::Result<()> {
        if self.rates.multishot_cut == 0 || self.multi.is_empty() {
            return Ok(());
        }
        let turn = self.turn;
        let mut targets = Vec::new();
        for (&raw, m) in self.multi.iter_mut() {
            if !m.cut && m.armed_turn + 1 < turn && self.rng.hit(self.rates.multishot_cut) {
                m.cut = true;
                targets.push((raw, m.fd));
            }
        }
        targets.sort_unstable();
        for (raw, fd) in targets {
            let op = Op::Cancel {
                fd,
                target: Token::from_raw(raw),
            };
            // SAFETY: a cancel references no memory.
            unsafe { self.inner.push(FAULT_CANCEL, op, c) }?;
        }
        Ok(())
    }

    /// Moves every held completion that is due (and not behind a held one of its
    /// token) to `ready`, interleaving tokens at random but keeping each token's order.
    fn release_due(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let turn = self.turn;
        let mut blocked: Vec<u64> = Vec::new();
        let mut groups: Vec<(u64, VecDeque<(Completion, bool)>)> = Vec::new();
        let mut keep = Vec::with_capacity(self.held.len());
        for h in self.held.drain(..) {
            let raw = h.c.token.raw();
            if h.release > turn || blocked.contains(&raw) {
                blocked.push(raw);
                keep.push(h);
                continue;
            }
            match groups.iter_mut().find(|g| g.0 == raw) {
                Some(g) => g.1.push_back((h.c, h.dup)),
                None => groups.push((raw, VecDeque::from([(h.c, h.dup)]))),
            }
        }
        self.held = keep;
        while !groups.is_empty() {
            let i = self.rng.below(groups.len() as u64) as usize;
            if let Some(x) = groups[i].1.pop_front() {
                self.ready.push_back(x);
            }
            if groups[i].1.is_empty() {
                groups.swap_remove(i);
            }
        }
    }

    /// Moves every held completion to `ready` in arrival order.
    fn release_all(&mut self) {
        for h in self.held.drain(..) {
            self.ready.push_back((h.c, h.dup));
        }
    }

    fn token_held(&self, raw: u64) -> bool {
        self.held.iter().any(|h| h.c.token.raw() == raw)
    }

    pub(crate) fn next(&mut self, c: &mut Counters) -> Option<Completion> {
        loop {
            if let Some((x, dup)) = self.ready.pop_front() {
                return Some(self.deliver(x, dup));
            }
            let mut x = self.inner.next(c)?;
            if x.token == FAULT_CANCEL {
                continue;
            }
            let raw = x.token.raw();
            if !x.more() {
                if let Some(m) = self.multi.remove(&raw) {
                    if m.cut && x.result == -libc::ECANCELED {
                        bump(Stat::Cut);
                        x.result = if m.accept {
                            -libc::EMFILE
                        } else {
                            -libc::ENOBUFS
                        };
                    }
                    let end = x.result == 0
                        || x.result < 0
                            && x.result != -libc::ECANCELED
                            && x.result != -libc::ENOBUFS;
                    if !m.accept
                        && end
                        && !self.token_held(raw)
                        && !self.lost_once.contains(&raw)
                        && self.rng.hit(self.rates.recv_end_lost)
                    {
                        // The kernel "missed" the end: the receive stays armed for the
                        // service until it cancels it (if it asked already, the parked
                        // op would have been found: it ends cancelled).
                        bump(Stat::EndLost);
                        self.lost_once.insert(raw);
                        if m.cancel_asked {
                            x.result = -libc::ECANCELED;
                        } else {
                            self.lost.insert(raw, m.fd);
                            continue;
                        }
                    }
                }
            }
            let scratch = self.epoll && x.buffer().is_some();
            if self.token_held(raw) {
                if scratch {
                    // Its bytes live only until the next fetch: deliver it now, right
                    // after the held completions of its token.
                    let mut rest = Vec::new();
                    for h in self.held.drain(..) {
                        if h.c.token.raw() == raw {
                            self.ready.push_back((h.c, h.dup));
                        } else {
                            rest.push(h);
                        }
                    }
                    self.held = rest;
                    self.ready.push_back((x, false));
                    continue;
                }
                let release = self
                    .held
                    .iter()
                    .filter(|h| h.c.token.raw() == raw)
                    .map(|h| h.release)
                    .max()
                    .unwrap_or(self.turn + 1);
                self.held.push(Held {
                    release,
                    c: x,
                    dup: false,
                });
                continue;
            }
            let holdable = !scratch
                && !Self::is_worker_op(x.token)
                && !self.linked.contains_key(&raw)
                && (!self.epoll || x.token.kind() != Some(OpKind::Recv));
            if holdable && self.rng.hit(self.rates.delay) {
                bump(Stat::Delayed);
                let release = self.turn + 1 + self.rng.below(u64::from(self.rates.max_delay_turns));
                self.held.push(Held {
                    release,
                    c: x,
                    dup: false,
                });
                continue;
            }
            return Some(self.deliver(x, false));
        }
    }

    /// Bookkeeping for a completion handed to the service; may schedule a stale
    /// duplicate of it.
    fn deliver(&mut self, x: Completion, dup: bool) -> Completion {
        if dup {
            bump(Stat::Duplicate);
            return x;
        }
        let raw = x.token.raw();
        if !x.more() {
            if let Some(n) = self.in_flight.get_mut(&raw) {
                *n -= 1;
                if *n == 0 {
                    self.in_flight.remove(&raw);
                    // The kernel is done with every op of this token: the shortened
                    // copies may go.
                    self.copies.remove(&raw);
                }
            }
            if let Some(n) = self.linked.get_mut(&raw) {
                *n -= 1;
                if *n == 0 {
                    self.linked.remove(&raw);
                }
            }
        }
        if !x.token.is_internal() && self.rng.hit(self.rates.stale_duplicate) {
            let back = 1 + self.rng.below(3) as u32;
            let generation = x.token.generation().wrapping_sub(back) & GENERATION_MASK;
            let token = Token::new(x.token.slot(), generation, OpKind::Nop)
                .with_raw_kind(x.token.raw_kind());
            let release = self.turn + 1 + self.rng.below(u64::from(self.rates.max_delay_turns));
            self.held.push(Held {
                release,
                c: Completion {
                    token,
                    result: x.result,
                    flags: x.flags & !(F_BUFFER | F_MORE) & 0xffff,
                },
                dup: true,
            });
        }
        x
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.held.is_empty() || self.inner.has_ready()
    }
}

impl<D: Inner> Drop for FaultDriver<D> {
    fn drop(&mut self) {
        if !self.in_flight.is_empty() {
            // A fatal exit with sends in flight: the kernel may still read the
            // shortened iovecs, so they must never be freed.
            for (_, v) in self.copies.drain() {
                std::mem::forget(v);
            }
        }
    }
}

/// A copy of `msg` that describes only its first `keep` bytes.
///
/// # Safety
/// `msg` points at a valid `msghdr` whose iovecs are valid.
unsafe fn shorten(msg: *const libc::msghdr, keep: usize) -> Box<ShortMsg> {
    // SAFETY: forwarded caller contract.
    let m = unsafe { &*msg };
    let src: &[libc::iovec] = if m.msg_iovlen == 0 || m.msg_iov.is_null() {
        &[]
    } else {
        // SAFETY: non-null, and the caller guarantees `msg_iovlen` iovecs live there.
        unsafe { std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen as _) }
    };
    let mut iov = Vec::new();
    let mut left = keep;
    for v in src {
        if left == 0 {
            break;
        }
        let n = v.iov_len.min(left);
        iov.push(libc::iovec {
            iov_base: v.iov_base,
            iov_len: n,
        });
        left -= n;
    }
    let iov = iov.into_boxed_slice();
    // SAFETY: an all-zero msghdr is valid: no name, no control data, no iovecs.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = iov.as_ptr() as *mut libc::iovec;
    hdr.msg_iovlen = iov.len() as _;
    Box::new(ShortMsg { hdr, iov })
}

#[cfg(test)]
mod tests;
