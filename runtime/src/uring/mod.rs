//! The io_uring backend: ring set-up, the one unsafe push, one enter per loop turn.
//!
//! * Set-up: `SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | SUBMIT_ALL` without SQPOLL
//!   (completions are produced only when this worker enters, so nothing interrupts it);
//!   `SQPOLL` with the configured idle time and CPU otherwise. Every opcode the runtime
//!   uses is probed; a missing one is an error naming the opcode and kernel.
//! * Submit: [`Ring::push`] writes one SQE; a full SQ is submitted (one enter) and the
//!   push retried, never dropped.
//! * Wait: [`Ring::wait`] is the single `io_uring_enter` of a loop turn: it submits
//!   everything pushed since the last turn and waits for at least one completion or the
//!   timeout. Then every CQE is copied into a batch before any callback runs, so
//!   callbacks may push new SQEs freely.

mod bufring;
mod bufview;
mod dgram_bufs;
mod direct;
pub(crate) mod enter;
pub(crate) mod probe;
mod zc;

use crate::completion::Completion;
use crate::config::{Config, SpliceMode};
use crate::metrics::Counters;
use crate::op::{self, Op};
use crate::token::Token;
use bufring::BufRing;
use dgram_bufs::DgramBufs;
use io_uring::{cqueue, squeue, types, IoUring};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub(crate) struct Ring {
    ring: IoUring<squeue::Entry, cqueue::Entry>,
    bufs: BufRing,
    /// Datagram receives' own buffer group while `bufs` is incremental.
    dgram: DgramBufs,
    batch: VecDeque<Completion>,
    sqpoll: bool,
    /// Sends pushed since the last enter. They almost always complete inline while
    /// being submitted, so the turn's wait asks for one completion more per send (and
    /// caps the wait, in case one goes async): a request/response turn then costs one
    /// enter, not one to submit and one to wait.
    inline_sends: usize,
    /// Which splices run inline on the worker ([`SpliceMode`]).
    splice_mode: SpliceMode,
    /// Completions of ops that ran inline during this turn; they join the batch at the
    /// next [`Ring::wait`] (never the batch being dispatched, so a callback that keeps
    /// re-arming cannot hold the loop turn).
    staged: VecDeque<Completion>,
    /// Index of the ring's fd in this thread's registered-ring table
    /// ([`Config::registered_ring`]); every enter then goes through it.
    reg_ring: Option<u32>,
    /// Connection cancels carry `CQE_SKIP_SUCCESS` ([`Config::skip_cancel_cqe`]).
    skip_cancel: bool,
    /// Multishot receives take buffer bundles (`Config::recv_bundle`, probed).
    bundle: bool,
    /// Zero-copy sends (`Config::send_zc_threshold`, probed), if on ([`zc`]).
    zc: Option<zc::ZeroCopy>,
    /// The sparse registered file table ([`Config::direct_descriptors`]), if on.
    direct: Option<direct::DirectTable>,
}

impl Ring {
    /// Builds the ring and its buffer ring on the calling (worker) thread.
    pub(crate) fn new(cfg: &Config) -> io::Result<Ring> {
        let mut b = IoUring::builder();
        b.setup_submit_all();
        if let Some(sq) = &cfg.sqpoll {
            b.setup_sqpoll(sq.idle.as_millis().min(u32::MAX as u128) as u32);
            if let Some(cpu) = sq.cpu {
                b.setup_sqpoll_cpu(cpu);
            }
        } else {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_coop_taskrun();
        }
        if let Some(cq) = cfg.cq_entries {
            b.setup_cqsize(cq);
        }
        let ring = b.build(cfg.ring_entries).map_err(|e| {
            let msg = format!(
                "io_uring_setup({} entries) failed: {e}{}",
                cfg.ring_entries,
                probe::setup_hint(&e)
            );
            crate::error::context(&e, msg)
        })?;
        probe::check(&ring)?;
        let bundle = cfg.recv_bundle && ring.params().is_feature_recvsend_bundle();
        if cfg.recv_bundle && !bundle {
            tracing::debug!(
                "ringcore: receive bundles (IORING_RECVSEND_BUNDLE) need Linux 6.10; \
                 receiving into single buffers"
            );
        }
        let zc_threshold = cfg.send_zc_threshold.filter(|_| probe::has_send_zc(&ring));
        if cfg.send_zc_threshold.is_some() && zc_threshold.is_none() {
            tracing::debug!("ringcore: SEND_ZC/SENDMSG_ZC need Linux 6.1; sending with copies");
        }
        let bufs = BufRing::new(
            &ring,
            cfg.buf_count,
            cfg.buf_size,
            bundle,
            cfg.buf_inc,
            bufring::BGID,
        )
        .map_err(|e| {
            let msg = format!(
                "registering the provided buffer ring ({} x {} B) failed: {e} \
                 (provided buffer rings need Linux 5.19; ENOMEM means RLIMIT_MEMLOCK \
                 is too low for this kernel: raise `ulimit -l`, lower buf_count, or use \
                 the epoll backend)",
                cfg.buf_count, cfg.buf_size
            );
            crate::error::context(&e, msg)
        })?;
        let reg_ring = if cfg.registered_ring && cfg.sqpoll.is_none() {
            use std::os::fd::AsRawFd;
            match enter::register_ring_fd(ring.as_raw_fd()) {
                Ok(i) => Some(i),
                Err(e) => {
                    tracing::warn!(
                        "ringcore: registering the ring fd failed ({e}; needs Linux 5.18); \
                         entering through the plain fd"
                    );
                    None
                }
            }
        } else {
            None
        };
        let direct = if cfg.direct_descriptors {
            Self::direct_table(&ring, cfg)
        } else {
            None
        };
        Ok(Ring {
            direct,
            reg_ring,
            skip_cancel: cfg.skip_cancel_cqe && {
                let ok = ring.params().is_feature_skip_cqe_on_success();
                if !ok {
                    tracing::warn!(
                        "ringcore: this kernel lacks IOSQE_CQE_SKIP_SUCCESS (Linux 5.17); \
                         cancels post their completions"
                    );
                }
                ok
            },
            ring,
            bufs,
            dgram: DgramBufs::default(),
            batch: VecDeque::with_capacity(1024),
            sqpoll: cfg.sqpoll.is_some(),
            inline_sends: 0,
            splice_mode: cfg.splice_mode,
            staged: VecDeque::new(),
            bundle,
            zc: zc_threshold.map(|t| zc::ZeroCopy::new(t, cfg.send_zc_local)),
        })
    }

    /// Registers the direct-descriptor table: `direct_slots`, at most the fd soft limit
    /// (the kernel refuses a larger table). A failure logs and leaves the option off.
    fn direct_table(ring: &IoUring, cfg: &Config) -> Option<direct::DirectTable> {
        let nofile =
            match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
                Ok((soft, _)) => soft.min(u64::from(direct::MAX_SLOTS)) as u32,
                Err(_) => 1024,
            };
        let slots = cfg.direct_slots.min(nofile).max(1);
        let skip = ring.params().is_feature_skip_cqe_on_success();
        // The skipped direct close relies on the SQ head being published after the
        // completions of the SQEs it covers: true for io_uring_enter, not for SQPOLL.
        match direct::DirectTable::new(ring, slots, skip, cfg.sqpoll.is_none()) {
            #[cfg(feature = "fault-injection")]
            Ok(mut t) => {
                if let Some(plan) = &cfg.fault {
                    let r = &plan.rates;
                    t.inject_close_failures(plan.seed, r.direct_close_fail, r.max_delay_turns);
                }
                Some(t)
            }
            #[cfg(not(feature = "fault-injection"))]
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(
                    "ringcore: registering a sparse file table of {slots} slots failed ({e}; \
                     direct descriptors need Linux 5.19, and RLIMIT_NOFILE at least the \
                     table size); connections use plain fds"
                );
                None
            }
        }
    }

    /// Puts `fd` (a connection socket the service owns) into the direct-descriptor
    /// table: its later receives, sends, shutdowns and polls go through the slot. False
    /// (and nothing changes) when the option is off or the table is full.
    pub(crate) fn register_direct(&mut self, fd: RawFd, c: &mut Counters) -> io::Result<bool> {
        let Some(e) = self.direct.as_mut().and_then(|d| d.register(fd, c)) else {
            return Ok(false);
        };
        // SAFETY: the update reads one fd from the table's own array, which lives as
        // long as the ring and is rewritten only once the slot is free again.
        unsafe { self.push_raw(&e, c) }?;
        Ok(true)
    }

    /// Empties `fd`'s direct-descriptor slot, if it has one (its close, or a close
    /// outside the op path, follows): without this the table would keep the socket
    /// open.
    pub(crate) fn release_direct(&mut self, fd: RawFd, c: &mut Counters) -> io::Result<()> {
        if let Some(e) = self.direct.as_mut().and_then(|d| d.release(fd, c)) {
            // SAFETY: a direct close references no memory.
            unsafe { self.push_raw(&e, c) }?;
        }
        #[cfg(feature = "fault-injection")]
        if let Some(e) = self.direct.as_mut().and_then(|d| d.injected_close()) {
            // SAFETY: as above.
            unsafe { self.push_raw(&e, c) }?;
        }
        Ok(())
    }

    /// Pushes one prepared SQE (submitting a full SQ first).
    ///
    /// # Safety
    /// Memory the SQE references outlives the op.
    unsafe fn push_raw(&mut self, e: &squeue::Entry, c: &mut Counters) -> io::Result<()> {
        loop {
            // SAFETY: forwarded caller contract.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                c.sqes += 1;
                return Ok(());
            }
            c.sq_full += 1;
            self.enter(0, None, c)?;
        }
    }

    /// True for the ops [`Ring::sqe`] submits on a direct-descriptor slot.
    fn translated(op: &Op) -> bool {
        matches!(
            op,
            Op::RecvMulti { .. }
                | Op::Send { .. }
                | Op::RecvMsgMulti { .. }
                | Op::SendMsg { .. }
                | Op::Shutdown { .. }
                | Op::PollWritable { .. }
                | Op::PollReadable { .. }
                | Op::PollHangup { .. }
        )
    }

    /// What an SQE on `fd` names: its direct-descriptor slot when it has one.
    #[inline]
    fn target(&self, fd: RawFd, direct: bool) -> op::Target {
        match self
            .direct
            .as_ref()
            .filter(|_| direct)
            .and_then(|d| d.slot(fd))
        {
            Some(slot) => op::Target::Fixed(slot),
            None => op::Target::Fd(fd),
        }
    }

    /// True when buffers are consumed incrementally (`IOU_PBUF_RING_INC` registered).
    pub(crate) fn incremental(&self) -> bool {
        self.bufs.incremental()
    }

    /// True when receives take buffer bundles.
    pub(crate) fn bundles(&self) -> bool {
        self.bundle
    }

    /// The SQE for `op`, and whether it is a zero-copy send (two completions).
    ///
    /// # Safety
    /// Pointers in `op` are valid (the push contract).
    /// `direct`: name a registered socket by its direct-descriptor slot (never inside a
    /// linked chain: its direct close is pushed before the chain).
    unsafe fn sqe(&self, token: Token, op: &Op, direct: bool) -> (squeue::Entry, bool) {
        let mut zc = false;
        let tgt = |fd| self.target(fd, direct);
        let e = match *op {
            Op::AcceptMulti { fd } => op::accept::sqe(fd),
            Op::Accept { fd } => op::accept::sqe_one(fd),
            Op::RecvMsg { fd, msg, flags } => op::recvmsg::sqe(fd, msg, flags),
            Op::RecvMulti { fd } if self.bundle => op::recv::sqe_bundle(tgt(fd), bufring::BGID),
            Op::RecvMulti { fd } => op::recv::sqe(tgt(fd), bufring::BGID),
            Op::Send {
                fd,
                msg,
                waitall,
                more,
            } => {
                zc = self.zc.as_ref().is_some_and(|z| {
                    // SAFETY: forwarded push contract: `msg` and its iovecs are valid. A
                    // message with control data (passed fds) is never sent zero-copy.
                    let ctl = unsafe { op::send::has_control(msg) };
                    // SAFETY: as above.
                    !ctl && z.wants(fd, unsafe { op::send::total_len(msg) })
                });
                // SAFETY: forwarded push contract; with `zc`, the op's result carries
                // `F_MORE` and the service keeps the memory until the notification
                // (`F_NOTIF`) completion (zc.rs).
                unsafe { op::send::sqe(tgt(fd), msg, waitall, more, zc) }
            }
            Op::Shutdown { fd, how } => op::shutdown::sqe(tgt(fd), how),
            Op::Close { fd } => op::close::sqe(fd),
            Op::CancelFd { fd } => op::cancel::sqe(fd),
            Op::Read { fd, buf, len } => op::read::sqe(fd, buf, len),
            Op::Splice {
                fd_in,
                off_in,
                fd_out,
                off_out,
                len,
                more,
            } => op::splice::sqe(fd_in, off_in, fd_out, off_out, len, more),
            Op::SendFile { .. } => {
                // `push`/`push_linked` run it inline (`try_inline`) before an SQE is
                // built; a NOP keeps this arm total without a panic in the worker.
                debug_assert!(false, "sendfile reached the SQE builder");
                op::nop::sqe()
            }
            Op::Connect { fd, addr, addrlen } => op::connect::sqe(fd, addr, addrlen),
            Op::PollWritable { fd } => op::poll::sqe(tgt(fd)),
            Op::PollReadable { fd } => op::poll::sqe_readable(tgt(fd)),
            Op::PollHangup { fd } => op::poll::sqe_hangup(tgt(fd)),
            Op::Cancel { target, .. } => op::cancel::sqe_token(target),
            // SAFETY: forwarded push contract: the template outlives the op.
            Op::RecvMsgMulti { fd, msg } => {
                let group = self.dgram.bgid().unwrap_or(bufring::BGID);
                // SAFETY: forwarded push contract: the template outlives the op.
                unsafe { op::datagram::recv_sqe(tgt(fd), msg, group) }
            }
            // SAFETY: forwarded push contract: `msg`, its name and iovecs are valid.
            Op::SendMsg { fd, msg } => unsafe { op::datagram::send_sqe(tgt(fd), msg) },
            Op::Nop => op::nop::sqe(),
        };
        (e.user_data(token.raw()), zc)
    }

    /// Notes a zero-copy send of `op` just pushed.
    fn zc_pushed(&mut self, token: Token, op: &Op, c: &mut Counters) {
        if let Some(z) = self.zc.as_mut() {
            z.pushed(token.raw(), op.fd(), c);
        }
    }

    /// Before pushing `op`: a send that may go zero-copy on a socket seen for the first
    /// time gets the socket classified ([`zc::ZeroCopy::classify`]).
    ///
    /// # Safety
    /// A send's `msg` is valid (the push contract).
    unsafe fn zc_classify(&mut self, op: &Op, c: &mut Counters) {
        let (Some(z), Op::Send { fd, msg, .. }) = (self.zc.as_mut(), *op) else {
            return;
        };
        // SAFETY: forwarded caller contract: `msg` and its iovecs are valid.
        let len = unsafe { op::send::total_len(msg) };
        z.classify(fd, len, c);
    }

    /// `fd` is being closed: a later socket with its number probes zero-copy again.
    fn zc_closed(&mut self, fd: RawFd) {
        if let Some(z) = self.zc.as_mut() {
            z.closed(fd);
        }
    }

    /// Queues one op. A full SQ is submitted first.
    ///
    /// # Safety
    /// Every pointer inside `op` must stay valid (and the memory unmoved) until the op's
    /// final completion has been returned by [`Ring::next`].
    pub(crate) unsafe fn push(&mut self, token: Token, op: Op, c: &mut Counters) -> io::Result<()> {
        if let Some(r) = self.try_inline(&op, c) {
            self.staged.push_back(Completion::new(token, r));
            return Ok(());
        }
        let dgram = matches!(op, Op::RecvMsgMulti { .. });
        if dgram {
            if let Err(e) = self.dgram.prepare(&self.ring, &self.bufs) {
                tracing::error!("ringcore: {e}; UDP receives stop on this worker");
                return Err(e);
            }
        }
        if let Op::Close { fd } = op {
            if self.direct.is_some() {
                self.release_direct(fd, c)?;
            }
            self.zc_closed(fd);
        }
        // SAFETY: forwarded caller contract.
        unsafe { self.zc_classify(&op, c) };
        // SAFETY: forwarded caller contract.
        let (mut e, zc) = unsafe { self.sqe(token, &op, true) };
        if let Some(d) = &self.direct {
            if Self::translated(&op) && d.slot(op.fd()).is_some() {
                c.direct_ops += 1;
            }
        }
        if matches!(op, Op::Send { .. } | Op::SendMsg { .. }) {
            self.inline_sends += 1;
        }
        if self.skip_cancel && Self::skips_success(token, &op) {
            e = e.flags(squeue::Flags::SKIP_SUCCESS);
        }
        loop {
            // SAFETY: the caller guarantees the op's memory outlives the op (see above).
            let pushed = unsafe { self.ring.submission().push(&e) };
            match pushed {
                Ok(()) => {
                    c.sqes += 1;
                    if zc {
                        self.zc_pushed(token, &op, c);
                    }
                    if dgram {
                        self.dgram.armed(token.raw());
                    }
                    return Ok(());
                }
                Err(_) => {
                    // SQ full: hand what we have to the kernel and try again. (Linked
                    // pairs go through `push_linked`, which never splits them.)
                    c.sq_full += 1;
                    self.enter(0, None, c)?;
                }
            }
        }
    }

    /// True for the ops that carry `CQE_SKIP_SUCCESS` when [`Config::skip_cancel_cqe`]
    /// is on: a connection's cancels (kind [`OpKind::Cancel`](crate::OpKind::Cancel),
    /// not the worker's or a service's internal ones). The same rule as
    /// [`Io::cancel_posts_success`](crate::Io::cancel_posts_success).
    pub(crate) fn skips_success(token: Token, op: &Op) -> bool {
        matches!(op, Op::Cancel { .. } | Op::CancelFd { .. })
            && !token.is_internal()
            && token.kind() == Some(crate::OpKind::Cancel)
    }

    /// True when connection cancels post no completion on success.
    pub(crate) fn skips_cancel_success(&self) -> bool {
        self.skip_cancel
    }

    /// The ring's fd (the target of a `MSG_RING` wake).
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.ring.as_raw_fd()
    }

    /// Queues `first` with `IO_LINK` and `second` right after it, under one borrow of
    /// the submission queue, so the SQ tail is published once for both: the kernel
    /// (including an SQPOLL thread, which reads the tail at any moment) sees the pair
    /// or neither. If the SQ lacks room for two, what is queued is submitted first.
    ///
    /// # Safety
    /// As [`Ring::push`], for both ops.
    ///
    /// # Errors
    /// `InvalidInput` if the SQ holds fewer than two entries; a fatal enter error.
    pub(crate) unsafe fn push_linked(
        &mut self,
        first: (Token, Op),
        second: (Token, Op),
        c: &mut Counters,
    ) -> io::Result<()> {
        if let Some(r) = self.try_inline(&first.1, c) {
            // The head ran inline: complete it, then run the linked op only if the head
            // moved everything it was asked to (io_uring's link rule: a short or failed
            // head cancels the rest of the chain).
            self.staged.push_back(Completion::new(first.0, r));
            let full = matches!(first.1, Op::Splice { len, .. } if r >= 0 && r as u32 == len);
            if !full {
                self.staged
                    .push_back(Completion::new(second.0, -libc::ECANCELED));
                return Ok(());
            }
            // SAFETY: forwarded caller contract, for the second op.
            return unsafe { self.push(second.0, second.1, c) };
        }
        if self.direct.is_some() {
            // The chain's ops use plain fds; a close in it empties the slot first.
            for op in [&first.1, &second.1] {
                if let Op::Close { fd } = *op {
                    self.release_direct(fd, c)?;
                }
            }
        }
        for op in [&first.1, &second.1] {
            if let Op::Close { fd } = *op {
                self.zc_closed(fd);
            }
            // SAFETY: forwarded caller contract.
            unsafe { self.zc_classify(op, c) };
        }
        // SAFETY: forwarded caller contract.
        let (head, zc1) = unsafe { self.sqe(first.0, &first.1, false) };
        let head = head.flags(squeue::Flags::IO_LINK);
        // SAFETY: forwarded caller contract.
        let (next, zc2) = unsafe { self.sqe(second.0, &second.1, false) };
        if matches!(second.1, Op::Send { .. }) {
            self.inline_sends += 1;
        }
        if self.ring.params().sq_entries() < 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the submission queue holds fewer than 2 entries: a linked pair cannot be \
                 submitted (set ring_entries to at least 4)",
            ));
        }
        loop {
            let mut sq = self.ring.submission();
            // SAFETY: the caller guarantees both ops' memory outlives them; on success
            // both entries are written before `sq` is dropped, which publishes the tail.
            if unsafe { sq.push_multiple(&[head.clone(), next.clone()]) }.is_ok() {
                drop(sq);
                c.sqes += 2;
                if zc1 {
                    self.zc_pushed(first.0, &first.1, c);
                }
                if zc2 {
                    self.zc_pushed(second.0, &second.1, c);
                }
                return Ok(());
            }
            drop(sq);
            // SQ too full for the pair: hand what we have to the kernel first.
            c.sq_full += 1;
            self.enter(0, None, c)?;
        }
    }

    /// Runs an op on the worker instead of the ring: always a [`Op::SendFile`] (no
    /// io_uring opcode exists; a full socket completes it with `-EAGAIN`), and a splice
    /// when the [`SpliceMode`] says so: `splice(2)` with `SPLICE_F_NONBLOCK`. The
    /// result is in completion form (`-errno` on failure). `None` when the op goes to
    /// the ring: not a splice or sendfile, the mode keeps it there, or a file fill found
    /// the pipe full (then the ring takes it, as without the option).
    fn try_inline(&mut self, op: &Op, c: &mut Counters) -> Option<i32> {
        if let Op::SendFile {
            fd_file,
            offset,
            fd_sock,
            len,
        } = *op
        {
            loop {
                c.syscalls += 1;
                c.sendfiles += 1;
                return Some(
                    match op::sendfile::sendfile(fd_sock, fd_file, offset, len) {
                        Ok(n) => n.min(i32::MAX as usize) as i32,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
                    },
                );
            }
        }
        let Op::Splice {
            fd_in,
            off_in,
            fd_out,
            off_out,
            len,
            more,
        } = *op
        else {
            return None;
        };
        // A fill reads a file at an offset; a drain reads the pipe (offset -1).
        let fill = off_in >= 0;
        match self.splice_mode {
            SpliceMode::Ring => return None,
            SpliceMode::InlineDrain if fill => return None,
            _ => {}
        }
        c.syscalls += 1;
        c.inline_splices += 1;
        match op::splice::splice(fd_in, off_in, fd_out, off_out, len, more) {
            Ok(n) => Some(n.min(i32::MAX as usize) as i32),
            Err(e) if fill && e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(-e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }

    fn enter(
        &mut self,
        want: usize,
        timeout: Option<Duration>,
        c: &mut Counters,
    ) -> io::Result<()> {
        if !self.sqpoll || want > 0 {
            c.enters += 1;
            c.syscalls += 1;
        }
        if let Some(index) = self.reg_ring {
            let to_submit = self.ring.submission().len() as u32;
            let sq = self.ring.submission();
            let getevents = want > 0 || sq.cq_overflow() || sq.taskrun();
            drop(sq);
            return match enter::enter_registered(index, to_submit, want as u32, getevents, timeout)
            {
                Ok(()) => Ok(()),
                Err(e) => Self::enter_error(e),
            };
        }
        let r = match timeout {
            Some(t) => {
                let ts = types::Timespec::new()
                    .sec(t.as_secs())
                    .nsec(t.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            None => self.ring.submitter().submit_and_wait(want),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => Self::enter_error(e),
        }
    }

    fn enter_error(e: io::Error) -> io::Result<()> {
        match e.raw_os_error() {
            // Timed out, interrupted by a signal, or completions are backed up
            // (CQ overflow): all mean "go drain the CQ", none is fatal.
            Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                Ok(())
            }
            _ => Err(io::Error::new(e.kind(), format!("io_uring_enter: {e}"))),
        }
    }

    /// The loop turn's single enter: submit, wait for one completion (or `timeout`),
    /// then copy every CQE into the batch.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, c: &mut Counters) -> io::Result<()> {
        let sends = std::mem::take(&mut self.inline_sends);
        self.batch.append(&mut self.staged);
        let mut want = if self.batch.is_empty() { 1 } else { 0 };
        let mut timeout = if want == 0 {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        if want == 1 && sends > 0 && !self.sqpoll {
            // Count the sends' own (inline) completions in, but never wait long for
            // them: a send that had to go async costs at most one extra wake-up.
            want += sends;
            let cap = Duration::from_millis(1);
            timeout = Some(timeout.map_or(cap, |t| t.min(cap)));
        }
        if want == 0 && self.ring.submission().is_empty() && !self.ring.submission().cq_overflow() {
            // Completions are already waiting and nothing needs submitting.
        } else {
            self.enter(want, timeout, c)?;
        }
        let overflow = self.ring.submission().cq_overflow();
        if overflow {
            c.cq_overflow += 1;
        }
        if let Some(d) = self.direct.as_mut() {
            d.entered(self.ring.submission().is_empty(), overflow);
            #[cfg(feature = "fault-injection")]
            d.fault_turn(c);
        }
        let mut cq = self.ring.completion();
        cq.sync();
        let plain = !self.bufs.tracking()
            && self.zc.as_ref().is_none_or(|z| z.idle())
            && !self.dgram.active();
        for e in &mut cq {
            if let Some(d) = self.direct.as_mut() {
                if d.complete(e.user_data(), e.result(), c) {
                    continue;
                }
            }
            let mut x = Completion {
                token: Token::from_raw(e.user_data()),
                result: e.result(),
                flags: e.flags(),
            };
            // A datagram receive's completion only gets its group marked.
            if plain || self.dgram.harvest(&mut x) {
                self.batch.push_back(x);
            } else if let Some(x) = match self.zc.as_mut() {
                Some(z) => z.harvest(x, &mut self.batch, c),
                None => Some(x),
            } {
                harvest(&mut self.bufs, x, &mut self.batch, c);
            }
        }
        if let Some(d) = self.direct.as_mut() {
            d.harvested();
        }
        Ok(())
    }

    /// True when completions are waiting in the batch (or staged for it).
    pub(crate) fn has_ready(&self) -> bool {
        !self.batch.is_empty() || !self.staged.is_empty()
    }

    /// The next completion of this turn's batch.
    pub(crate) fn next(&mut self, c: &mut Counters) -> Option<Completion> {
        let cqe = self.batch.pop_front()?;
        c.cqes += 1;
        Some(cqe)
    }

    /// The received bytes of pool buffer `bid` (tracking mode: the first part of view
    /// `bid`; `dgram`: buffer `bid` of the datagram group).
    pub(crate) fn buffer(&self, bid: u16, dgram: bool, len: usize) -> &[u8] {
        if dgram {
            return self.dgram.slice(bid, len);
        }
        if self.bufs.tracking() {
            return self.bufs.part(bid, 0).unwrap_or(&[]);
        }
        self.bufs.slice(bid, len)
    }

    /// Part `i` of a receive's bytes: with bundles a receive may span several buffers.
    pub(crate) fn buffer_part(&self, bid: u16, dgram: bool, len: usize, i: usize) -> Option<&[u8]> {
        if dgram {
            return (i == 0).then(|| self.dgram.slice(bid, len));
        }
        if self.bufs.tracking() {
            return self.bufs.part(bid, i);
        }
        (i == 0).then(|| self.bufs.slice(bid, len))
    }

    /// Size of one pool buffer.
    pub(crate) fn buffer_size(&self) -> usize {
        self.bufs.size() as usize
    }

    /// Returns pool buffer `bid` (of the datagram group if `dgram`) to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16, dgram: bool) {
        if dgram {
            return self.dgram.recycle(bid);
        }
        self.bufs.recycle(bid);
    }
}

/// `IORING_CQE_F_BUF_MORE`: the kernel keeps consuming this (incremental) buffer.
const F_BUF_MORE: u32 = 1 << 4;

/// Rewrites one harvested CQE when buffers are tracked: a receive's buffer id becomes
/// a view id ([`bufview`]). Queues it on `batch`.
fn harvest(
    bufs: &mut BufRing,
    mut x: Completion,
    batch: &mut VecDeque<Completion>,
    c: &mut Counters,
) {
    if bufs.tracking() {
        if let Some(bid) = x.buffer() {
            let more = x.flags & F_BUF_MORE != 0;
            let low = x.flags & 0xffff & !F_BUF_MORE;
            if x.result > 0 {
                let id = bufs.view(bid, x.result as u32, more);
                c.recv_bundles += u64::from(bufs.parts(id) > 1);
                x.flags = low | (u32::from(id) << 16);
            } else {
                bufs.empty(bid, more);
                x.flags = low & !crate::completion::F_BUFFER;
            }
        }
    }
    batch.push_back(x);
}

impl Drop for Ring {
    fn drop(&mut self) {
        if let Some(index) = self.reg_ring.take() {
            // The registration holds a reference on the ring's file until the thread
            // exits; drop it with the ring. (A ring dropped on another thread cannot
            // reach its registration: it then lasts until the registering thread ends.)
            let _ = enter::unregister_ring_fd(self.raw_fd(), index);
        }
        self.bufs.unregister(&self.ring);
        self.dgram.unregister(&self.ring);
    }
}
