//! Connection state: what a slot holds besides the user's handler, and the worker
//! context callbacks reach through [`Conn`](crate::Conn).
//!
//! A connection's life, as flags:
//!
//! ```text
//! accepted -> on_open -> [RECV_ARMED] <-> on_data ... -> close requested (CLOSING)
//!   -> queue drained (or ABORT) -> cancel in-flight ops + close fd (CLOSE_SENT)
//!   -> every op's final completion -> slot released -> on_close
//! ```
//!
//! Requests from callbacks only set flags and mark the connection dirty; the server's
//! `flush` turns dirty connections into ops once per loop turn.

use crate::iofd::IoFd;
use crate::reason::CloseReason;
use crate::wqueue::{Spare, WriteQueue};
use ringcore_runtime::{Io, OpKind, TimerHandle, TimerWheel, Token};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

pub(crate) const RECV_ARMED: u32 = 1 << 0;
pub(crate) const PAUSED: u32 = 1 << 1;
pub(crate) const EOF: u32 = 1 << 2;
pub(crate) const CLOSING: u32 = 1 << 3;
pub(crate) const ABORT: u32 = 1 << 4;
pub(crate) const SHUT_WANT: u32 = 1 << 5;
pub(crate) const SHUT_SENT: u32 = 1 << 6;
pub(crate) const CLOSE_SENT: u32 = 1 << 7;
pub(crate) const DIRTY: u32 = 1 << 8;
pub(crate) const TIMER: u32 = 1 << 9;
pub(crate) const USER_TIMER: u32 = 1 << 10;
pub(crate) const CONNECTING: u32 = 1 << 11;
/// A send came back `EAGAIN`: a writability poll is in flight; no send until it fires.
pub(crate) const WAIT_WRITABLE: u32 = 1 << 12;
/// A cancel of the armed receive is in flight (reading paused).
pub(crate) const RECV_CANCEL: u32 = 1 << 13;
/// Bytes arrived while paused: deliver them on resume.
pub(crate) const PENDING_NEW: u32 = 1 << 14;
/// End of stream arrived while paused or with undelivered input: `on_eof` after it.
pub(crate) const EOF_PENDING: u32 = 1 << 15;
/// Closing: the cancel is out; the fd(s) are closed once no other op is in flight.
/// (io_uring resolves the fd of work queued to its worker pool, such as shutdown and
/// splice, only when it runs, and cancel-by-fd cannot match such work; closing the fd
/// before it ran would let it act on whatever socket reuses the number.)
pub(crate) const CLOSE_WAIT: u32 = 1 << 16;
/// The output queue reached the high-water mark: reading is stopped until it drains
/// below the low-water mark (set and cleared by `drive`, see [`ConnCore::backed_up`]).
pub(crate) const BACKED_UP: u32 = 1 << 17;
/// Reading is stopped, by the handler ([`PAUSED`]) or by output backpressure.
pub(crate) const READ_STOP: u32 = PAUSED | BACKED_UP;
/// The closing cancel went out: no op may be armed any more (lifecycle.rs).
pub(crate) const CANCELLED: u32 = 1 << 18;
/// The receive ended with `ENOBUFS`: it is re-armed from [`WorkerCtx::nobuf`], a few
/// connections per turn, rather than all at once.
pub(crate) const NOBUF_WAIT: u32 = 1 << 19;
/// The hang-up guard's poll is in flight (hangup.rs).
pub(crate) const GUARD_ARMED: u32 = 1 << 20;
/// An abort set `SO_LINGER` 0: the close will be a reset (lifecycle.rs).
pub(crate) const RESET_SET: u32 = 1 << 21;
/// A layer (TLS) holds a close its inner handler asked for while plaintext (a file
/// being read and encrypted in chunks) is still to go out: the close deadline already
/// runs, though the real close has not begun (layer.rs).
pub(crate) const LAYER_CLOSE: u32 = 1 << 22;
/// `Handler::on_closing` ran (closing.rs): once per connection.
pub(crate) const CLOSING_SEEN: u32 = 1 << 23;
// Flags use bits 0..30; the top two bits count hang-up guard rescues (a separate `u8`
// field cost 8 bytes of every slot through padding, net/src/slot_size.rs). A new flag
// takes the next free bit below 30 and replaces CLOSING_SEEN in the assertion below.
/// One hang-up guard rescue, counted in `flags` bits 30..32 ([`ConnCore::guards`]).
const GUARD_ONE: u32 = 1 << 30;
const _: () = assert!(
    CLOSING_SEEN < GUARD_ONE,
    "flag bits reached the guard counter"
);

/// Default most unconsumed input bytes kept for a handler.
pub const DEFAULT_MAX_PENDING: u32 = 1 << 20;

/// Default output high-water mark: once this many bytes are queued and not yet handed
/// to the kernel, the runtime stops reading from the connection until the queue drains
/// below a quarter of it ([`Conn::set_output_limit`](crate::Conn::set_output_limit)).
pub const DEFAULT_OUTPUT_HIGH_WATER: usize = 1 << 20;

/// Default close (linger) deadline: a graceful close that has not sent everything
/// queued within this time is aborted
/// ([`Conn::set_close_timeout`](crate::Conn::set_close_timeout)). 30 s, as nginx's
/// `lingering_time`: long enough for a slow but live reader to take a large response,
/// short enough that a peer that stopped reading does not hold its slot and queue.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection's slot in the worker's registry: its state and its handler.
pub(crate) struct ConnSlot<H> {
    pub(crate) core: ConnCore,
    pub(crate) handler: H,
}

/// A connection's state, apart from its handler.
pub struct ConnCore {
    pub(crate) fd: RawFd,
    /// Token of this slot (kind `Recv`); other ops use `with_kind`.
    pub(crate) token: Token,
    pub(crate) flags: u32,
    pub(crate) max_pending: u32,
    /// Output high-water mark in bytes (0: no limit); the low-water mark is a quarter.
    pub(crate) high_water: u32,
    /// Close (linger) deadline in ms after a graceful close began (0: none).
    pub(crate) linger_ms: u32,
    /// The close deadline's timer entry, while armed.
    pub(crate) close_timer: Option<TimerHandle>,
    /// Idle timeout in ms (0: none).
    pub(crate) idle_ms: u32,
    /// When the idle timeout fires if nothing happens ([`WorkerCtx::ms`] units, 0: none).
    pub(crate) deadline: u64,
    /// When `on_timer` is due ([`WorkerCtx::ms`] units, 0: none).
    pub(crate) timer_at: u64,
    /// The idle timeout's entry in the worker's timer set (set with `TIMER`).
    pub(crate) idle_timer: Option<TimerHandle>,
    /// The user timer's entry in the worker's timer set (set with `USER_TIMER`).
    pub(crate) user_timer: Option<TimerHandle>,
    /// The connect timeout's entry (an outbound connect or a tunnel's upstream),
    /// while the connect is in flight.
    pub(crate) connect_timer: Option<TimerHandle>,
    /// The peer address of an outbound connect in flight (the kernel reads it).
    pub(crate) connect_addr: Option<Box<crate::addr::RawAddr>>,
    pub(crate) out: WriteQueue,
    /// Unconsumed input (a null pointer, no allocation, while empty: pending.rs).
    pub(crate) pending: crate::pending::Pending,
    pub(crate) reason: Option<CloseReason>,
    /// The pipe and progress of a file being spliced out (only while one is).
    pub(crate) splice: Option<Box<SpliceState>>,
    /// Set by `pipe_to`: the connection is a splice tunnel to an upstream.
    pub(crate) tunnel: Option<Box<crate::tunnel_state::Tunnel>>,
    /// Installed by a wrapping handler (TLS) while its inner handler runs: the `Conn`
    /// output calls land there as plaintext (layer.rs).
    pub(crate) layer: Option<Box<crate::layer::Layer>>,
    /// The hang-up guard fired with the receive armed: when to check it ended.
    pub(crate) guard_timer: Option<TimerHandle>,
    /// Set by `Conn::receive_fds`: the connection receives with recvmsg into this
    /// (fdpass.rs).
    pub(crate) fdrecv: Option<Box<crate::fdpass::FdRecv>>,
}

/// A file leaving by splice (file -> pipe -> socket) or, without a pipe, by
/// `sendfile(2)` ([`Config::sendfile`](ringcore_runtime::Config)).
pub(crate) struct SpliceState {
    /// INVARIANT: a nonblocking pipe (read end, write end) owned by this state; closed
    /// only through `Io` ([`WorkerCtx::give_pipe`]). `None`: the file leaves by
    /// sendfile, whose completions come as `SpliceOut`.
    pub(crate) pipe: Option<(IoFd, IoFd)>,
    /// Bytes in the pipe not yet spliced to the socket.
    pub(crate) in_pipe: u64,
    /// Splice/poll ops in flight.
    pub(crate) ops: u8,
    /// A file -> pipe splice is in flight (it references the head file segment).
    pub(crate) filling: bool,
    /// The socket was full: a writability poll is in flight.
    pub(crate) polling: bool,
    /// Bytes the sendfile in flight was asked to move (a shorter result means the
    /// socket filled up).
    pub(crate) asked: u32,
}

impl SpliceState {
    /// Closes the pipe through `io`, so the backend forgets it.
    pub(crate) fn release(self, io: &mut Io) {
        if let Some((r, w)) = self.pipe {
            r.close(io);
            w.close(io);
        }
    }

    /// A state for a file leaving by sendfile: no pipe.
    pub(crate) fn sendfile() -> Box<SpliceState> {
        Box::new(SpliceState {
            pipe: None,
            in_pipe: 0,
            ops: 0,
            filling: false,
            polling: false,
            asked: 0,
        })
    }
}

pub(crate) use crate::iofd::PIPE_CHUNK;
/// Most bytes one sendfile op moves. One call writes until the socket is full or this
/// much is sent, so a fast reader cannot keep the worker in one call for long; the
/// kernel holds partial segments between the pieces of one call (`SPLICE_F_MORE`).
pub(crate) const SENDFILE_CHUNK: u64 = 1 << 20;
/// Pipes kept for reuse per worker.
const PIPE_POOL_MAX: usize = 64;

impl ConnCore {
    pub(crate) fn new(fd: RawFd, token: Token) -> ConnCore {
        ConnCore {
            fd,
            token,
            flags: 0,
            max_pending: DEFAULT_MAX_PENDING,
            high_water: DEFAULT_OUTPUT_HIGH_WATER as u32,
            linger_ms: DEFAULT_CLOSE_TIMEOUT.as_millis() as u32,
            close_timer: None,
            idle_ms: 0,
            deadline: 0,
            timer_at: 0,
            idle_timer: None,
            user_timer: None,
            connect_timer: None,
            connect_addr: None,
            out: WriteQueue::default(),
            pending: Default::default(),
            reason: None,
            splice: None,
            tunnel: None,
            layer: None,
            guard_timer: None,
            fdrecv: None,
        }
    }

    /// Times the hang-up guard rescued a receive (hangup.rs); it is armed at most
    /// [`GUARD_MAX`](crate::hangup::GUARD_MAX) times.
    pub(crate) fn guards(&self) -> u8 {
        (self.flags / GUARD_ONE) as u8
    }

    /// Counts one hang-up guard rescue (saturating at 3, two bits; the guard stops at
    /// [`GUARD_MAX`](crate::hangup::GUARD_MAX) = 3 anyway).
    pub(crate) fn add_guard(&mut self) {
        if self.guards() < 3 {
            self.flags += GUARD_ONE;
        }
    }

    #[inline]
    pub(crate) fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    #[inline]
    pub(crate) fn set(&mut self, f: u32) {
        self.flags |= f;
    }

    #[inline]
    pub(crate) fn clear(&mut self, f: u32) {
        self.flags &= !f;
    }

    /// No more sends are accepted (closing, aborting or write side shut down).
    pub(crate) fn write_closed(&self) -> bool {
        self.has(CLOSING | ABORT | SHUT_WANT | CLOSE_SENT)
    }

    pub(crate) fn want_shutdown_write(&mut self) {
        self.set(SHUT_WANT);
    }

    pub(crate) fn want_close(&mut self, reason: CloseReason) {
        if !self.has(CLOSING) {
            self.reason.get_or_insert(reason);
            self.set(CLOSING);
        }
    }

    pub(crate) fn want_abort(&mut self) {
        self.reason.get_or_insert(CloseReason::Local);
        self.set(CLOSING | ABORT);
    }

    /// Abort with a specific reason (errors, panics, shutdown).
    pub(crate) fn fail(&mut self, reason: CloseReason) {
        if self.reason.is_none() || !self.has(CLOSING) {
            self.reason = Some(reason);
        }
        self.set(CLOSING | ABORT);
    }

    pub(crate) fn set_paused(&mut self, on: bool) {
        if on {
            self.set(PAUSED);
        } else {
            self.clear(PAUSED);
        }
    }

    /// Output bytes queued and not yet handed to the kernel: the write queue (file
    /// segments included) plus bytes sitting in a splice pipe.
    pub(crate) fn queued_bytes(&self) -> usize {
        let piped = self.splice.as_ref().map_or(0, |s| s.in_pipe)
            + self.tunnel.as_ref().map_or(0, |t| t.buffered());
        self.out.len() + piped as usize
    }

    /// True while output is backed up: from the moment the queue reaches the high-water
    /// mark until it drains to the low-water mark (a quarter of it).
    pub(crate) fn backed_up(&self) -> bool {
        let hw = self.high_water as usize;
        if hw == 0 {
            return false;
        }
        let q = self.queued_bytes();
        q >= hw || (self.has(BACKED_UP) && q > hw / 4)
    }

    /// Brings [`BACKED_UP`] in line with the queue; true if it changed.
    pub(crate) fn update_backed_up(&mut self) -> bool {
        let on = self.backed_up();
        if on != self.has(BACKED_UP) {
            self.flags ^= BACKED_UP;
            return true;
        }
        false
    }

    /// `on_data` left bytes unconsumed: if reading is stopped (the handler paused, or
    /// output is backed up), they are offered again on resume without waiting for new
    /// input, and an end of stream waits for them.
    pub(crate) fn note_leftovers(&mut self) {
        if !self.pending.is_empty() && (self.has(PAUSED) || self.backed_up()) {
            self.set(PENDING_NEW);
        }
    }

    /// Activity: push the idle deadline back.
    #[inline]
    pub(crate) fn touch(&mut self, now_ms: u64) {
        if self.idle_ms != 0 {
            self.deadline = now_ms + self.idle_ms as u64;
        }
    }
}

/// Per-worker state shared by every connection's callbacks.
pub struct WorkerCtx {
    pub(crate) worker: usize,
    pub(crate) now: Instant,
    /// Origin of the compact millisecond times stored in connections.
    pub(crate) epoch: Instant,
    pub(crate) draining: bool,
    /// Slots with requests to turn into ops at the end of the turn.
    pub(crate) dirty: Vec<u32>,
    pub(crate) spare: Spare,
    pub(crate) timers: TimerWheel,
    /// Empty pipes ready for reuse by splices.
    // Boxed: pool entries move into and out of connections' `Option<Box<_>>` slots.
    #[allow(clippy::vec_box)]
    pub(crate) pipes: Vec<Box<SpliceState>>,
    /// Fewest pipes the pool held since the last trim: that many sat unused all along.
    pub(crate) pipes_low: usize,
    /// When the pools are trimmed next (only while they hold something).
    pub(crate) next_trim: Option<Instant>,
    /// Connections whose receive ended with `ENOBUFS`, oldest first.
    pub(crate) nobuf: std::collections::VecDeque<Token>,
    /// The helper thread for [`Conn::offload`](crate::Conn::offload) and its results.
    pub(crate) offload: crate::offload::Offload,
    /// Messages between connections and connects asked for by handlers (connect.rs).
    pub(crate) mail: crate::mailbox::Mailbox,
    /// Receive buffers held by zero-copy sends ([`crate::recvhold`]).
    pub(crate) holds: crate::recvhold::Holds,
    /// Memory of `SEND_ZC` sends awaiting their notifications ([`crate::zchold`]).
    pub(crate) zc: crate::zchold::ZcHolds,
}

/// Hands free heap pages back to the kernel (glibc keeps freed memory in its arenas,
/// so what a burst allocated would stay resident). Other C libraries: nothing.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; no pointer of
    // ours is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl WorkerCtx {
    pub(crate) fn new(worker: usize, now: Instant) -> WorkerCtx {
        WorkerCtx {
            worker,
            now,
            epoch: now,
            draining: false,
            dirty: Vec::with_capacity(256),
            spare: Spare::default(),
            timers: TimerWheel::new(now),
            pipes: Vec::new(),
            pipes_low: 0,
            next_trim: None,
            nobuf: std::collections::VecDeque::new(),
            holds: crate::recvhold::Holds::new(),
            zc: crate::zchold::ZcHolds::default(),
            offload: crate::offload::Offload::new(worker),
            mail: crate::mailbox::Mailbox::default(),
        }
    }

    /// An empty pipe from the pool, or a new one.
    pub(crate) fn take_pipe(&mut self) -> std::io::Result<Box<SpliceState>> {
        if let Some(p) = self.pipes.pop() {
            self.pipes_low = self.pipes_low.min(self.pipes.len());
            return Ok(p);
        }
        // A bigger pipe (best effort) means fewer splices per file.
        let pipe = crate::tunnel_state::new_pipe()?;
        Ok(Box::new(SpliceState {
            pipe: Some(pipe),
            in_pipe: 0,
            ops: 0,
            filling: false,
            polling: false,
            asked: 0,
        }))
    }

    /// Returns a pipe with no op in flight to the pool, or closes it through `io` (the
    /// pool is full, the pipe holds bytes, or the worker is draining).
    pub(crate) fn give_pipe(&mut self, io: &mut Io, p: Box<SpliceState>) {
        debug_assert_eq!(p.ops, 0, "a pipe with ops in flight given back");
        if p.pipe.is_some()
            && p.in_pipe == 0
            && p.ops == 0
            && self.pipes.len() < PIPE_POOL_MAX
            && !self.draining
        {
            self.pipes.push(p);
        } else {
            p.release(io);
        }
    }

    /// True if a pool holds a pipe or buffer (a trim is then scheduled).
    pub(crate) fn pools_hold_something(&self) -> bool {
        !self.pipes.is_empty() || self.spare.held() > 0
    }

    /// Entries the pools hold (pipes, spare buffers, send headers, queue states).
    pub(crate) fn pool_entries(&self) -> usize {
        self.pipes.len() + self.spare.held()
    }

    /// Shrinks the pools (every [`Config::pool_trim`](ringcore_runtime::Config)): the
    /// pipes and spare entries that sat unused for the whole interval are closed or
    /// freed (all of them while draining), so fds and memory return after a burst;
    /// then, with `malloc_trim` on, free heap pages go back to the kernel.
    pub(crate) fn trim_pools(&mut self, io: &mut Io) {
        let before = self.pool_entries();
        let unused = if self.draining {
            self.pipes.len()
        } else {
            self.pipes_low.min(self.pipes.len())
        };
        for p in self.pipes.drain(..unused) {
            p.release(io);
        }
        if self.pipes.is_empty() {
            self.pipes = Vec::new();
        }
        self.pipes_low = self.pipes.len();
        self.spare.trim_idle(self.draining);
        let freed = before - self.pool_entries();
        io.counters().pool_trimmed += freed as u64;
        io.counters().pool_entries = self.pool_entries() as u64;
        if freed > 0 && !self.draining && io.config().malloc_trim {
            release_free_heap();
        }
    }

    #[inline]
    pub(crate) fn mark_dirty(&mut self, core: &mut ConnCore) {
        if !core.has(DIRTY) {
            core.set(DIRTY);
            self.dirty.push(core.token.slot());
        }
    }

    /// `t` as milliseconds since the epoch, plus one (so 0 can mean "none").
    #[inline]
    pub(crate) fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    /// The current loop-turn time in [`ms`](Self::ms) units.
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        self.ms(self.now)
    }

    /// The instant of a non-zero [`ms`](Self::ms) value.
    #[inline]
    pub(crate) fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms.saturating_sub(1))
    }

    pub(crate) fn set_user_timer(&mut self, core: &mut ConnCore, at: Option<Instant>) {
        let new = at.map_or(0, |t| self.ms(t));
        let old = std::mem::replace(&mut core.timer_at, new);
        match at {
            // A new entry unless one already fires at or before `t` (it re-arms itself).
            Some(t) if !core.has(USER_TIMER) || old == 0 || new < old => {
                self.cancel_timer(&mut core.user_timer);
                core.set(USER_TIMER);
                let key = core.token.with_kind(OpKind::Timer).raw();
                core.user_timer = Some(self.timers.insert(t, key));
            }
            Some(_) => {}
            None => {
                self.cancel_timer(&mut core.user_timer);
                core.clear(USER_TIMER);
            }
        }
    }

    pub(crate) fn set_idle_timeout(&mut self, core: &mut ConnCore, timeout: Option<Duration>) {
        match timeout {
            Some(t) if !t.is_zero() => {
                core.idle_ms = t.as_millis().clamp(1, u32::MAX as u128) as u32;
                let d = self.now_ms() + core.idle_ms as u64;
                let old = std::mem::replace(&mut core.deadline, d);
                if !core.has(TIMER) || old == 0 || d < old {
                    self.cancel_timer(&mut core.idle_timer);
                    core.set(TIMER);
                    let key = core.token.with_kind(OpKind::Timeout).raw();
                    core.idle_timer = Some(self.timers.insert(self.at(d), key));
                }
            }
            _ => {
                core.idle_ms = 0;
                core.deadline = 0;
                self.cancel_timer(&mut core.idle_timer);
                core.clear(TIMER);
            }
        }
    }

    /// Removes the entry of `h` (if any) from the timer set.
    pub(crate) fn cancel_timer(&mut self, h: &mut Option<TimerHandle>) {
        if let Some(h) = h.take() {
            self.timers.cancel(h);
        }
    }

    /// The slot is being released: its timers go with it (they would otherwise stay in
    /// the timer set until they fire, up to the idle timeout later).
    pub(crate) fn cancel_timers(&mut self, core: &mut ConnCore) {
        self.cancel_timer(&mut core.idle_timer);
        self.cancel_timer(&mut core.user_timer);
        core.clear(TIMER | USER_TIMER);
    }
}
