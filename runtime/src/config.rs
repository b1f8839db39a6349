//! Runtime configuration: [`Builder`] setters over a `#[non_exhaustive]` [`Config`].

use crate::backend_kind::BackendKind;
use std::io;
use std::time::Duration;

/// SQPOLL settings (a kernel thread polls the SQ, so submits need no syscall).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqPoll {
    /// How long the kernel thread spins without work before it sleeps.
    pub idle: Duration,
    /// CPU to pin the kernel thread to (`None`: let the kernel choose).
    pub cpu: Option<u32>,
}

/// How the io_uring backend runs `splice` ops (file -> pipe -> socket).
///
/// io_uring never runs a splice inline: every `IORING_OP_SPLICE` is handed to an io-wq
/// kernel thread, a wake-up and a context switch per op. The inline modes issue the
/// `splice(2)` on the worker with `SPLICE_F_NONBLOCK` (as the epoll backend does) and
/// turn its result into the op's completion; a socket that is full answers `EAGAIN`,
/// which the connection already handles with a writability poll and a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpliceMode {
    /// Every splice is an `IORING_OP_SPLICE` (io-wq); a file never blocks the worker.
    Ring,
    /// Pipe -> socket splices run inline (they never block: both sides are
    /// nonblocking); file -> pipe fills stay on io_uring.
    InlineDrain,
    /// Both run inline. A file -> pipe fill of a file that is not in the page cache
    /// waits for the disk on the worker thread (as on the epoll backend).
    Inline,
}

impl SpliceMode {
    /// Parses `ring`, `drain` or `inline` (`RINGCORE_SPLICE`).
    pub fn parse(s: &str) -> Option<SpliceMode> {
        match s.trim() {
            "ring" | "uring" | "off" => Some(SpliceMode::Ring),
            "drain" | "inline-drain" => Some(SpliceMode::InlineDrain),
            "inline" | "on" => Some(SpliceMode::Inline),
            _ => None,
        }
    }
}

/// Everything a runtime is built from. Build one with [`Builder`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Worker threads (default: every CPU this process may run on).
    pub workers: usize,
    /// Pin worker `i` to the `i`-th allowed CPU (default `true`).
    pub pin: bool,
    /// Explicit CPU list for pinning; overrides the allowed-CPU order.
    pub cpus: Option<Vec<usize>>,
    /// SQ entries per ring (default 1024; at least 4; rounded up to a power of two by the
    /// kernel).
    pub ring_entries: u32,
    /// CQ entries per ring (default: kernel's choice, twice the SQ).
    pub cq_entries: Option<u32>,
    /// SQPOLL (default off).
    pub sqpoll: Option<SqPoll>,
    /// Which backend to run (default [`BackendKind::Auto`]; `RINGCORE_BACKEND` overrides
    /// unless [`backend_from_env`](Self::backend_from_env) is off).
    pub backend: BackendKind,
    /// Let `RINGCORE_BACKEND` override [`backend`](Self::backend) (default `true`). Turn
    /// it off when the backend is an explicit choice (a command-line flag), so the
    /// explicit choice wins over the environment.
    pub backend_from_env: bool,
    /// Size of one receive buffer in bytes (default 16 KiB).
    pub buf_size: u32,
    /// Receive buffers per worker, a power of two (default 256).
    pub buf_count: u16,
    /// How long connections may finish after shutdown starts (default 5 s).
    pub drain_timeout: Duration,
    /// Install signal handlers (default `true`): SIGINT/SIGTERM start a graceful
    /// shutdown and a second one exits at once (status 128 + signal); SIGHUP runs the
    /// [`on_hangup`](crate::signals::on_hangup) hooks. This runtime is then the
    /// process's main server and tells systemd when it is ready
    /// ([`systemd`](crate::systemd)).
    pub handle_signals: bool,
    /// Raise `RLIMIT_NOFILE` to its hard limit at start-up (default `true`).
    pub raise_nofile: bool,
    /// How long to stop accepting after `EMFILE`/`ENFILE` (default 100 ms).
    pub emfile_backoff: Duration,
    /// How often a worker shrinks its pools (spare buffers, send headers, write-queue
    /// states, splice pipes): whatever sat unused for a whole interval is freed
    /// (default 5 s; `None`: pools keep what a burst left, the behaviour before
    /// issue 12). `RINGCORE_POOL_TRIM_MS` overrides it (`0`: off).
    pub pool_trim: Option<Duration>,
    /// After a pool trim freed something, hand free heap pages back to the kernel with
    /// glibc's `malloc_trim(0)` (default `true`; a no-op on other C libraries).
    /// `RINGCORE_MALLOC_TRIM=0|1` overrides it.
    pub malloc_trim: bool,
    /// How the io_uring backend runs splices (default [`SpliceMode::Inline`]; see
    /// docs/benchmarks.md "Issue 12 ablation"). `RINGCORE_SPLICE=ring|drain|inline`
    /// overrides it. The epoll backend always splices inline.
    pub splice_mode: SpliceMode,
    /// `send_file` responses leave by `sendfile(2)` on the worker, one syscall per
    /// piece of up to 1 MiB and no pipe of ours, instead of the file -> pipe -> socket
    /// splice pair (default `true`: the same CPU per file as the splice pair, without a
    /// pipe's two fds; docs/benchmarks.md "Side-by-side pairs"). Used only
    /// with [`SpliceMode::Inline`] (the other modes exist to keep file reads off the
    /// worker, which sendfile cannot). A sendfile the kernel refuses (`EINVAL`, e.g. a
    /// file system without splice support) falls back to the splice pair for that file.
    /// `RINGCORE_SENDFILE=0|1` overrides it.
    pub sendfile: bool,
    /// io_uring: register the ring's own fd (`IORING_REGISTER_RING_FDS`, Linux 5.18) and
    /// enter with `IORING_ENTER_REGISTERED_RING`, which skips the fd lookup of every
    /// `io_uring_enter` (default off: no measurable win, docs/benchmarks.md "Issue 12
    /// ablation"). Ignored with SQPOLL. `RINGCORE_REGISTERED_RING=0|1` overrides it.
    pub registered_ring: bool,
    /// io_uring: submit a connection's cancels with `IOSQE_CQE_SKIP_SUCCESS` (Linux
    /// 5.17), so a cancel that found its ops posts no completion; only a failed one
    /// (`-ENOENT`, `-EALREADY`) does, and the lifecycle does not count such cancels as
    /// in flight (default off, see docs/benchmarks.md). `RINGCORE_CQE_SKIP=0|1`
    /// overrides it.
    pub skip_cancel_cqe: bool,
    /// io_uring: wake a worker from another thread with a ring-less `MSG_RING`
    /// (`IORING_REGISTER_SEND_MSG_RING`, Linux 6.13), which posts a completion straight
    /// into the worker's ring instead of writing its eventfd, whose read must then be
    /// re-armed (default off, see docs/benchmarks.md). Signal handlers still write the
    /// eventfd; the epoll backend always uses it. `RINGCORE_MSG_RING=0|1` overrides it.
    pub msg_ring_wake: bool,
    /// io_uring: multishot receives take *bundles* of provided buffers
    /// (`IORING_RECVSEND_BUNDLE`, Linux 6.10): one completion for all the bytes the
    /// socket had, across several buffers (default off; probed at start-up through
    /// `IORING_FEAT_RECVSEND_BUNDLE`, off with a debug log where missing).
    /// `RINGCORE_RECV_BUNDLE=0|1` overrides it. The epoll backend ignores it.
    pub recv_bundle: bool,
    /// io_uring: consume provided buffers incrementally (`IOU_PBUF_RING_INC`, Linux
    /// 6.12): a 100-byte message takes 100 bytes of a buffer, not the whole buffer; the
    /// next receive continues in the same buffer (default off; a kernel that rejects
    /// the flag gets the plain ring, with a debug log). `RINGCORE_BUF_INC=0|1`
    /// overrides it. The epoll backend ignores it.
    /// Datagram (UDP) receives never share the incremental ring: a datagram needs a
    /// whole buffer, so they get their own plain ring of `buf_count` x `buf_size`,
    /// registered on a worker's first UDP receive (docs/udp.md).
    pub buf_inc: bool,
    /// io_uring: sends of at least this many bytes may go out as `SEND_ZC`/`SENDMSG_ZC`
    /// (Linux 6.0 / 6.1): the kernel sends from the write queue's own pages. The send's
    /// result completes it at once (the write queue, flow control and close deadlines
    /// behave as for a copied send); the memory it read is kept, neither freed nor
    /// reused, until the zero-copy notification arrives, which a peer that does not
    /// read may delay indefinitely on loopback. Sockets with a local peer are always
    /// sent copies (see [`send_zc_local`](Config::send_zc_local)). Per socket, the
    /// first such send is a probe: later sends are copied until its notification came,
    /// and stay copied if the kernel reports it copied the bytes. Default `None`:
    /// never (see docs/benchmarks.md for why). `RINGCORE_SEND_ZC=<bytes>` overrides it
    /// (`0`: off). The epoll backend ignores it.
    pub send_zc_threshold: Option<usize>,
    /// io_uring, with [`send_zc_threshold`](Config::send_zc_threshold): also send
    /// zero-copy to local peers (loopback, or the socket's own address), which are
    /// otherwise always sent copies: the kernel copies for them anyway, and the copied
    /// pages shrink a small receive buffer's window below one segment for the rest of
    /// the connection. For tests, whose peers are all local (default `false`).
    /// `RINGCORE_SEND_ZC_LOCAL=0|1` overrides it.
    pub send_zc_local: bool,
    /// io_uring: most receive buffers a worker lets handlers hold for zero-copy sends
    /// (`Conn::send_received` in ringcore-net); past it those sends copy and count a
    /// `recv_hold_fallbacks`, so held buffers never drain the pool (default `None`: a
    /// quarter of [`buf_count`](Self::buf_count); `Some(0)`: always copy).
    /// `RINGCORE_RECV_HOLD_LIMIT` overrides it.
    pub recv_hold_limit: Option<u32>,
    /// io_uring: *direct descriptors*: each worker registers a sparse file table of
    /// [`direct_slots`](Self::direct_slots) entries (Linux 5.19), the server puts every
    /// accepted connection socket into it, and every outbound one (`Conn::connect`,
    /// client mode, a splice tunnel's upstream), and the connection's receives, sends,
    /// shutdowns and polls name the table slot (`IOSQE_FIXED_FILE`), which skips a
    /// file lookup and reference count per op; its close empties the slot first with a
    /// direct close, which posts no completion where the kernel has
    /// `IOSQE_CQE_SKIP_SUCCESS` (5.17; not with SQPOLL). Each worker's UDP socket
    /// (`serve_udp`) goes in too (its `RECVMSG` and `SENDMSG`s name the slot). The
    /// socket keeps its normal fd too, for everything that needs one. A full table or a
    /// failed registration leaves connections on their plain fds (counted in
    /// `direct_fallbacks`; nothing is lost). Default off (see docs/benchmarks.md,
    /// "Direct descriptors"). `RINGCORE_DIRECT_FDS=0|1` overrides it. The epoll
    /// backend ignores it.
    pub direct_descriptors: bool,
    /// Slots of the direct-descriptor table per worker (default 4096; capped at the
    /// process's `RLIMIT_NOFILE` soft limit, which the kernel enforces).
    /// `RINGCORE_DIRECT_SLOTS` overrides it.
    pub direct_slots: u32,
    /// Faults to inject at the backend seam (default none; tests only).
    #[cfg(feature = "fault-injection")]
    pub fault: Option<crate::fault::FaultPlan>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: crate::affinity::allowed_cpus().len().max(1),
            pin: true,
            cpus: None,
            ring_entries: 1024,
            cq_entries: None,
            sqpoll: None,
            backend: BackendKind::Auto,
            backend_from_env: true,
            buf_size: 16 * 1024,
            buf_count: 256,
            drain_timeout: Duration::from_secs(5),
            handle_signals: true,
            raise_nofile: true,
            emfile_backoff: Duration::from_millis(100),
            pool_trim: Some(Duration::from_secs(5)),
            malloc_trim: true,
            splice_mode: SpliceMode::Inline,
            sendfile: true,
            registered_ring: false,
            skip_cancel_cqe: false,
            msg_ring_wake: false,
            recv_bundle: false,
            buf_inc: false,
            send_zc_threshold: None,
            send_zc_local: false,
            recv_hold_limit: None,
            direct_descriptors: false,
            direct_slots: 4096,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }
}

impl Config {
    /// The effective [`recv_hold_limit`](Self::recv_hold_limit): the setting, or a
    /// quarter of the pool.
    pub fn recv_hold_limit(&self) -> usize {
        self.recv_hold_limit
            .map_or(self.buf_count as usize / 4, |n| n as usize)
    }

    /// Checks the values and applies `RINGCORE_BACKEND`.
    ///
    /// # Errors
    /// `InvalidInput` naming the bad setting.
    pub fn validate(mut self) -> io::Result<Config> {
        let bad = |m: String| Err(io::Error::new(io::ErrorKind::InvalidInput, m));
        if self.workers == 0 {
            return bad("workers must be at least 1".into());
        }
        if self.ring_entries < 4 || self.ring_entries > 32768 {
            // At least 4: linked pairs (a send and the close behind it) must fit in one
            // submission with room to spare.
            return bad(format!(
                "ring_entries must be at least 4 (linked ops are submitted in pairs) and \
                 at most 32768, got {}",
                self.ring_entries
            ));
        }
        if !self.buf_count.is_power_of_two() || self.buf_count > 32768 {
            return bad(format!(
                "buf_count must be a power of two up to 32768, got {}",
                self.buf_count
            ));
        }
        if self.buf_size < 64 {
            return bad(format!(
                "buf_size must be at least 64 bytes, got {}",
                self.buf_size
            ));
        }
        if self.backend_from_env {
            if let Some(b) = BackendKind::from_env()? {
                self.backend = b;
            }
        }
        if let Some(ms) = env_u64("RINGCORE_POOL_TRIM_MS")? {
            self.pool_trim = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(on) = env_u64("RINGCORE_MALLOC_TRIM")? {
            self.malloc_trim = on != 0;
        }
        if let Some(on) = env_u64("RINGCORE_REGISTERED_RING")? {
            self.registered_ring = on != 0;
        }
        if let Some(on) = env_u64("RINGCORE_CQE_SKIP")? {
            self.skip_cancel_cqe = on != 0;
        }
        if let Some(on) = env_u64("RINGCORE_MSG_RING")? {
            self.msg_ring_wake = on != 0;
        }
        if let Ok(v) = std::env::var("RINGCORE_SPLICE") {
            self.splice_mode = SpliceMode::parse(&v).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("RINGCORE_SPLICE={v:?}: expected ring, drain or inline"),
                )
            })?;
        }
        if let Some(on) = env_u64("RINGCORE_SENDFILE")? {
            self.sendfile = on != 0;
        }
        if let Some(on) = env_u64("RINGCORE_RECV_BUNDLE")? {
            self.recv_bundle = on != 0;
        }
        if let Some(on) = env_u64("RINGCORE_BUF_INC")? {
            self.buf_inc = on != 0;
        }
        if let Some(on) = env_u64("RINGCORE_SEND_ZC_LOCAL")? {
            self.send_zc_local = on != 0;
        }
        if let Some(n) = env_u64("RINGCORE_SEND_ZC")? {
            self.send_zc_threshold = (n > 0).then_some(n as usize);
        }
        if let Some(on) = env_u64("RINGCORE_DIRECT_FDS")? {
            self.direct_descriptors = on != 0;
        }
        if let Some(n) = env_u64("RINGCORE_DIRECT_SLOTS")? {
            self.direct_slots = n.min(u64::from(u32::MAX)) as u32;
        }
        if self.direct_slots == 0 {
            return bad("direct_slots must be at least 1".into());
        }
        if let Some(n) = env_u64("RINGCORE_RECV_HOLD_LIMIT")? {
            self.recv_hold_limit = Some(n.min(u32::MAX as u64) as u32);
        }
        if self.send_zc_threshold == Some(0) {
            return bad(
                "send_zc_threshold must be at least 1 byte (None turns SEND_ZC off)".into(),
            );
        }
        if self.pool_trim == Some(Duration::ZERO) {
            return bad("pool_trim must be longer than zero (None turns trimming off)".into());
        }
        Ok(self)
    }
}

/// A numeric environment override, if set.
fn env_u64(name: &str) -> io::Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}={v:?} is not a whole number"),
            )
        }),
        Err(_) => Ok(None),
    }
}

/// Builder for a [`Runtime`](crate::Runtime).
#[derive(Clone, Debug, Default)]
pub struct Builder {
    cfg: Config,
}

impl Builder {
    /// Starts from the defaults of [`Config`].
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Number of worker threads.
    pub fn workers(mut self, n: usize) -> Self {
        self.cfg.workers = n;
        self
    }

    /// Pin workers to CPUs (default `true`).
    pub fn pin(mut self, pin: bool) -> Self {
        self.cfg.pin = pin;
        self
    }

    /// Pin worker `i` to `cpus[i % len]`.
    pub fn cpus(mut self, cpus: Vec<usize>) -> Self {
        self.cfg.cpus = Some(cpus);
        self
    }

    /// SQ entries per ring.
    pub fn ring_entries(mut self, n: u32) -> Self {
        self.cfg.ring_entries = n;
        self
    }

    /// CQ entries per ring.
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.cfg.cq_entries = Some(n);
        self
    }

    /// Enable SQPOLL with this idle time, optionally pinning the poller thread.
    pub fn sqpoll(mut self, idle: Duration, cpu: Option<u32>) -> Self {
        self.cfg.sqpoll = Some(SqPoll { idle, cpu });
        self
    }

    /// Backend choice (overridden by `RINGCORE_BACKEND`).
    pub fn backend(mut self, b: BackendKind) -> Self {
        self.cfg.backend = b;
        self
    }

    /// Whether `RINGCORE_BACKEND` overrides [`backend`](Self::backend) (default `true`;
    /// see [`Config::backend_from_env`]).
    pub fn backend_from_env(mut self, on: bool) -> Self {
        self.cfg.backend_from_env = on;
        self
    }

    /// Size of one receive buffer.
    pub fn buf_size(mut self, bytes: u32) -> Self {
        self.cfg.buf_size = bytes;
        self
    }

    /// Receive buffers per worker (power of two).
    pub fn buf_count(mut self, n: u16) -> Self {
        self.cfg.buf_count = n;
        self
    }

    /// Drain deadline after shutdown starts.
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.cfg.drain_timeout = d;
        self
    }

    /// Install SIGINT/SIGTERM handlers (default `true`).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.cfg.handle_signals = on;
        self
    }

    /// Raise `RLIMIT_NOFILE` to the hard limit (default `true`).
    pub fn raise_nofile(mut self, on: bool) -> Self {
        self.cfg.raise_nofile = on;
        self
    }

    /// Accept pause after `EMFILE`/`ENFILE`.
    pub fn emfile_backoff(mut self, d: Duration) -> Self {
        self.cfg.emfile_backoff = d;
        self
    }

    /// How often workers shrink their pools (`None`: never); see
    /// [`Config::pool_trim`].
    pub fn pool_trim(mut self, every: Option<Duration>) -> Self {
        self.cfg.pool_trim = every;
        self
    }

    /// Call glibc's `malloc_trim(0)` after a pool trim freed something; see
    /// [`Config::malloc_trim`].
    pub fn malloc_trim(mut self, on: bool) -> Self {
        self.cfg.malloc_trim = on;
        self
    }

    /// How the io_uring backend runs splices; see [`SpliceMode`].
    pub fn splice_mode(mut self, mode: SpliceMode) -> Self {
        self.cfg.splice_mode = mode;
        self
    }

    /// Send files with `sendfile(2)` instead of a splice pair; see
    /// [`Config::sendfile`].
    pub fn sendfile(mut self, on: bool) -> Self {
        self.cfg.sendfile = on;
        self
    }

    /// Enter the ring through its registered fd; see [`Config::registered_ring`].
    pub fn registered_ring(mut self, on: bool) -> Self {
        self.cfg.registered_ring = on;
        self
    }

    /// Submit connection cancels with `CQE_SKIP_SUCCESS`; see
    /// [`Config::skip_cancel_cqe`].
    pub fn skip_cancel_cqe(mut self, on: bool) -> Self {
        self.cfg.skip_cancel_cqe = on;
        self
    }

    /// Wake workers with `MSG_RING` instead of their eventfd; see
    /// [`Config::msg_ring_wake`].
    pub fn msg_ring_wake(mut self, on: bool) -> Self {
        self.cfg.msg_ring_wake = on;
        self
    }

    /// Receive bundles of provided buffers on io_uring; see [`Config::recv_bundle`].
    pub fn recv_bundle(mut self, on: bool) -> Self {
        self.cfg.recv_bundle = on;
        self
    }

    /// Incremental consumption of provided buffers on io_uring; see
    /// [`Config::buf_inc`].
    pub fn buf_inc(mut self, on: bool) -> Self {
        self.cfg.buf_inc = on;
        self
    }

    /// Send with `SEND_ZC` from this many bytes on (io_uring; `None`: never): per
    /// socket a first probe send, then zero-copy only if the kernel did not copy it;
    /// the memory stays kept until each notification. See
    /// [`Config::send_zc_threshold`].
    pub fn send_zc_threshold(mut self, bytes: Option<usize>) -> Self {
        self.cfg.send_zc_threshold = bytes;
        self
    }

    /// Also send zero-copy to local peers (tests); see [`Config::send_zc_local`].
    pub fn send_zc_local(mut self, on: bool) -> Self {
        self.cfg.send_zc_local = on;
        self
    }

    /// Most receive buffers held for zero-copy sends per worker (`None`: a quarter of
    /// the pool); see [`Config::recv_hold_limit`].
    pub fn recv_hold_limit(mut self, limit: Option<u32>) -> Self {
        self.cfg.recv_hold_limit = limit;
        self
    }

    /// Put accepted connection sockets into a per-worker registered file table (io_uring
    /// direct descriptors); see [`Config::direct_descriptors`].
    pub fn direct_descriptors(mut self, on: bool) -> Self {
        self.cfg.direct_descriptors = on;
        self
    }

    /// Slots of the direct-descriptor table per worker; see [`Config::direct_slots`].
    pub fn direct_slots(mut self, slots: u32) -> Self {
        self.cfg.direct_slots = slots;
        self
    }

    /// Inject faults from `plan` on every worker (short sends, `EAGAIN`, `ENOBUFS`,
    /// `EMFILE`, delayed and reordered completions, stale duplicates); see
    /// [`fault`](crate::fault). Test-only: needs the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn fault_injection(mut self, plan: crate::fault::FaultPlan) -> Self {
        self.cfg.fault = Some(plan);
        self
    }

    /// The configuration as it stands.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The configuration, for [`Runtime`](crate::Runtime) to validate and build from.
    pub(crate) fn into_config(self) -> Config {
        self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_entries_must_hold_a_linked_pair_with_room() {
        for n in [1, 2, 3] {
            let e = Builder::new().ring_entries(n).build().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            let msg = e.to_string();
            assert!(
                msg.contains("ring_entries") && msg.contains("at least 4"),
                "{msg}"
            );
        }
        Builder::new()
            .ring_entries(4)
            .config()
            .clone()
            .validate()
            .unwrap();
    }
}
