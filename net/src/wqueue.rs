//! The per-connection write queue and its in-flight send.
//!
//! Sends are queued as chunks. One send op at a time carries up to [`MAX_IOV`] chunks
//! as a vectored `sendmsg`; the `msghdr` and iovecs live in a boxed [`SendBuf`] owned
//! by the queue. While a send is in flight:
//!
//! * INVARIANT: the first `inflight_chunks` chunks are neither modified, grown nor
//!   dropped (the kernel reads their heap bytes); new bytes go to later chunks;
//! * INVARIANT: `msg` is not touched (the kernel reads the msghdr and iovecs).
//!
//! The queue's state lives in a boxed [`Queue`] that exists only while the connection
//! has output: it is taken from the per-worker [`Spare`] pool when bytes are queued
//! and goes back there (with its chunk list and send header) once everything was sent,
//! so an idle connection's write queue is one null pointer (8 bytes) and a busy one
//! allocates nothing. Chunk buffers come from and return to the same pool. The pool
//! frees what sat unused for a whole trim interval ([`Spare::trim_idle`]).

use crate::iofd::IoFd;
use crate::recvhold::HeldBuf;
use std::collections::VecDeque;

/// Most iovecs per send.
pub const MAX_IOV: usize = 32;
/// Small sends are appended to the last chunk until it holds this much.
const COALESCE: usize = 16 * 1024;
/// Buffers larger than this are not kept in the spare pool.
const SPARE_MAX_CAP: usize = 64 * 1024;
/// Most buffers kept in the spare pool.
const SPARE_MAX: usize = 1024;

/// A file region queued with [`WriteQueue::push_file`]; it leaves by splice.
pub struct FileSeg {
    /// The file. When the segment is done or dropped it moves to the queue's retired
    /// list, and the connection closes it through `Io` once no splice references it.
    pub fd: IoFd,
    /// Next offset to send.
    pub offset: u64,
    /// Bytes left to send.
    pub remaining: u64,
}

/// Bytes with file descriptors to pass (`SCM_RIGHTS`, fdpass.rs). The segment starts
/// a send of its own, whose control data carries the fds, so they travel with its
/// first byte; after that send the fds are closed (the kernel holds its own
/// references) and the rest of the bytes go like any others.
pub struct FdsSeg {
    data: Vec<u8>,
    /// Our duplicates of the fds to pass; emptied (closed) once they were sent.
    /// INVARIANT: not touched while a send carrying `ctl` is in flight.
    fds: Vec<std::os::fd::OwnedFd>,
    /// The `SCM_RIGHTS` control message naming `fds`.
    ctl: Vec<u64>,
}

/// Memory a zero-copy send read, kept (out of the queue) until its notification: the
/// kernel may read those pages until then ([`crate::zchold`]).
pub(crate) enum Kept {
    /// A chunk buffer; back to the spare pool once released.
    Bytes(Vec<u8>),
    /// A receive-buffer hold; released (the buffer recycled) once released.
    Hold(u32),
    /// A segment that carried fds (already sent); dropped once released.
    Fds(#[allow(dead_code)] Box<FdsSeg>),
}

impl Kept {
    /// The kernel is done with the memory: back to the pool (or dropped).
    pub(crate) fn release(self, spare: &mut Spare) {
        match self {
            Kept::Bytes(b) => spare.give(b),
            Kept::Hold(h) => spare.released.push(h),
            Kept::Fds(_) => {}
        }
    }

    /// Never to be released (the worker ends with the kernel maybe still reading it).
    pub(crate) fn leak(self) {
        match self {
            Kept::Bytes(b) => std::mem::forget(b),
            Kept::Fds(f) => std::mem::forget(f),
            // A hold stays unreleased: its buffer is never recycled.
            Kept::Hold(_) => {}
        }
    }
}

enum Item {
    Bytes(Vec<u8>),
    /// Bytes in a receive buffer the connection holds (zero-copy echo).
    Held(HeldBuf),
    File(FileSeg),
    Fds(Box<FdsSeg>),
}

impl Item {
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Item::Bytes(b) => Some(b),
            Item::Held(h) => Some(h.bytes()),
            Item::Fds(f) => Some(&f.data),
            Item::File(_) => None,
        }
    }
}

/// Keeps [`WriteQueue::len`] right across [`WriteQueue::push_with`]'s closure, even
/// if it unwinds.
struct Appended<'a> {
    buf: &'a mut Vec<u8>,
    before: usize,
    len: &'a mut usize,
}

impl Drop for Appended<'_> {
    fn drop(&mut self) {
        *self.len = *self.len - self.before + self.buf.len();
    }
}

/// The memory one send op references.
pub struct SendBuf {
    msg: libc::msghdr,
    iov: [libc::iovec; MAX_IOV],
}

/// Per-worker pool of reusable chunk buffers and send headers.
#[derive(Default)]
pub struct Spare {
    bufs: Vec<Vec<u8>>,
    // Boxed: the kernel holds the address of a SendBuf while its send is in flight,
    // so each must keep a stable heap address while it moves between queue and pool.
    #[allow(clippy::vec_box)]
    sends: Vec<Box<SendBuf>>,
    /// Queue states of connections with nothing to send (boxed: a connection holds
    /// only the pointer).
    #[allow(clippy::vec_box)]
    queues: Vec<Box<Queue>>,
    /// Fewest buffers / send headers / queue states held since the last trim (that
    /// many sat unused).
    low: (usize, usize, usize),
    /// Holds of receive buffers whose queued bytes were sent or dropped: the server
    /// releases them ([`crate::recvhold::Holds::release`]) at the end of the turn.
    pub(crate) released: Vec<u32>,
}

impl Spare {
    fn buf(&mut self, min: usize) -> Vec<u8> {
        match self.bufs.pop() {
            Some(mut b) => {
                self.low.0 = self.low.0.min(self.bufs.len());
                b.reserve(min);
                b
            }
            None => Vec::with_capacity(min.max(4096)),
        }
    }

    fn give(&mut self, mut b: Vec<u8>) {
        if b.capacity() <= SPARE_MAX_CAP && self.bufs.len() < SPARE_MAX {
            b.clear();
            self.bufs.push(b);
        }
    }

    /// Frees what sat unused since the last call (everything if `all`), so memory
    /// returns after a burst; called periodically by the worker. Returns how many
    /// entries were freed.
    pub(crate) fn trim_idle(&mut self, all: bool) -> usize {
        let (bl, sl, ql) = if all {
            (self.bufs.len(), self.sends.len(), self.queues.len())
        } else {
            self.low
        };
        let before = self.held();
        // The oldest entries go (the pools are stacks: the top is what is in use).
        self.bufs.drain(..bl.min(self.bufs.len()));
        self.sends.drain(..sl.min(self.sends.len()));
        self.queues.drain(..ql.min(self.queues.len()));
        shrink(&mut self.bufs);
        shrink(&mut self.sends);
        shrink(&mut self.queues);
        self.low = (self.bufs.len(), self.sends.len(), self.queues.len());
        before - self.held()
    }

    /// Buffers, send headers and queue states held.
    pub(crate) fn held(&self) -> usize {
        self.bufs.len() + self.sends.len() + self.queues.len()
    }

    fn queue(&mut self) -> Box<Queue> {
        let q = self.queues.pop();
        self.low.2 = self.low.2.min(self.queues.len());
        q.unwrap_or_default()
    }

    fn give_queue(&mut self, q: Box<Queue>) {
        debug_assert!(q.idle(), "a queue with output returned to the pool");
        if self.queues.len() < SPARE_MAX {
            self.queues.push(q);
        }
    }

    fn send_buf(&mut self) -> Box<SendBuf> {
        let b = self.sends.pop();
        self.low.1 = self.low.1.min(self.sends.len());
        b.unwrap_or_else(|| {
            // SAFETY: msghdr and iovec are plain data; all-zero is valid (null pointers,
            // zero lengths) and every field we use is set before submission.
            Box::new(unsafe { std::mem::zeroed::<SendBuf>() })
        })
    }
}

/// A pool vector that emptied gives its memory back too (a burst can grow it large).
fn shrink<T>(v: &mut Vec<T>) {
    if v.len() < v.capacity() / 4 {
        v.shrink_to(v.len() * 2);
    }
}

/// A connection's queued output: nothing (a null pointer) while there is none.
#[derive(Default)]
pub struct WriteQueue {
    /// INVARIANT: `Some` while anything is queued, in flight or retired; otherwise it
    /// may go back to the pool ([`WriteQueue::release_if_idle`]).
    q: Option<Box<Queue>>,
}

/// The state of a write queue with output (pooled, see the module docs).
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Item>,
    /// Bytes of `chunks[0]` already sent.
    head: usize,
    /// Unsent bytes, in flight or not (file segments included).
    len: usize,
    inflight_chunks: usize,
    inflight_bytes: usize,
    msg: Option<Box<SendBuf>>,
    /// Files of finished or dropped segments, to be closed by the connection (through
    /// `Io`, so the backend forgets them) once no splice references them.
    retired: Vec<IoFd>,
}

impl WriteQueue {
    /// Unsent bytes.
    pub fn len(&self) -> usize {
        self.q.as_ref().map_or(0, |q| q.len)
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while a send op is in flight.
    pub fn in_flight(&self) -> bool {
        self.q.as_ref().is_some_and(|q| q.in_flight())
    }

    /// True while the queue holds its state (a pool entry) rather than nothing.
    #[cfg(test)]
    pub fn holds_state(&self) -> bool {
        self.q.is_some()
    }

    fn get(&mut self, spare: &mut Spare) -> &mut Queue {
        self.q.get_or_insert_with(|| spare.queue())
    }

    #[cfg(test)]
    fn st(&self) -> &Queue {
        self.q.as_ref().expect("queue state")
    }

    /// Gives the queue's state back to the pool if nothing is queued, in flight or
    /// retired (the connection went idle).
    pub fn release_if_idle(&mut self, spare: &mut Spare) {
        if self.q.as_ref().is_some_and(|q| q.idle()) {
            if let Some(mut q) = self.q.take() {
                if let Some(sb) = q.msg.take() {
                    spare.sends.push(sb);
                }
                spare.give_queue(q);
            }
        }
    }

    /// Appends a copy of `data`, coalescing into the last chunk when it is not in flight.
    pub fn push_copy(&mut self, data: &[u8], spare: &mut Spare) {
        self.get(spare).push_copy(data, spare);
    }

    /// Lets `f` append bytes straight into the queue, without an intermediate buffer:
    /// `f` gets the last chunk when it is bytes, not in flight, not partly sent and
    /// under the coalescing size, else an empty spare buffer (queued if `f` wrote
    /// into it). `f` must only append; the queue counts whatever length change it
    /// makes, so a misbehaving `f` can garble its own unsent bytes but never bytes in
    /// flight or the queue's accounting.
    pub fn push_with<R>(&mut self, spare: &mut Spare, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let r = self.get(spare).push_with(spare, f);
        self.release_if_idle(spare);
        r
    }

    /// Appends `data` without copying.
    pub fn push_owned(&mut self, data: Vec<u8>, spare: &mut Spare) {
        if !data.is_empty() {
            self.get(spare).push_owned(data);
        }
    }

    /// Appends bytes of a held receive buffer without copying; the hold is handed back
    /// through `spare.released` once they were sent or dropped.
    pub(crate) fn push_held(&mut self, held: HeldBuf, spare: &mut Spare) {
        let q = self.get(spare);
        q.len += held.len();
        q.chunks.push_back(Item::Held(held));
    }

    /// Appends a file region; it is sent after everything queued before it.
    pub fn push_file(&mut self, seg: FileSeg, spare: &mut Spare) {
        self.get(spare).push_file(seg);
    }

    /// Appends `data` carrying `fds` (see [`FdsSeg`]).
    pub fn push_fds(&mut self, data: Vec<u8>, fds: Vec<std::os::fd::OwnedFd>, spare: &mut Spare) {
        self.get(spare).push_fds(data, fds);
    }

    /// True when the next thing to send is bytes (a send op can be prepared).
    pub fn bytes_ready(&self) -> bool {
        self.q.as_ref().is_some_and(|q| q.bytes_ready())
    }

    /// The file segment at the head of the queue, if the head is a file.
    pub fn head_file(&mut self) -> Option<&mut FileSeg> {
        self.q.as_mut().and_then(|q| q.head_file())
    }

    /// Records `n` bytes of the head file segment as sent; retires it when finished.
    /// Without a head file segment (it cannot happen: an abort keeps a segment whose
    /// fill is in flight) nothing changes.
    pub fn file_sent(&mut self, n: u64) {
        if let Some(q) = self.q.as_mut() {
            q.file_sent(n);
        }
    }

    /// Drops the head file segment (its file could not be read), with its bytes.
    pub fn drop_head_file(&mut self) {
        if let Some(q) = self.q.as_mut() {
            q.drop_head_file();
        }
    }

    /// Files of finished or dropped segments, for the caller to close (through `Io`).
    pub fn take_retired(&mut self) -> impl Iterator<Item = IoFd> + '_ {
        self.q.iter_mut().flat_map(|q| q.retired.drain(..))
    }

    /// Fills the send header for everything queued (up to [`MAX_IOV`] chunks) and returns
    /// it. The returned pointer is valid until [`complete`](Self::complete).
    ///
    /// # Panics
    /// If a send is already in flight or the queue is empty.
    pub fn prepare(&mut self, spare: &mut Spare) -> *const libc::msghdr {
        match self.q.as_mut() {
            Some(q) => q.prepare(spare),
            None => panic!("prepare: bad state"),
        }
    }

    /// True when a file segment comes right after the prepared send's bytes (the
    /// response head of a spliced body): that send may go with `MSG_MORE`.
    pub fn file_follows(&self) -> bool {
        self.q.as_ref().is_some_and(|q| {
            q.inflight_bytes > 0 && matches!(q.chunks.get(q.inflight_chunks), Some(Item::File(_)))
        })
    }

    /// True if the prepared send covers every queued byte.
    pub fn prepared_all(&self) -> bool {
        self.q.as_ref().is_some_and(|q| q.inflight_bytes == q.len)
    }

    /// Records that the in-flight send finished after moving `sent` bytes (0 on error).
    /// Returns true if it was short. A queue left with nothing gives its state back to
    /// the pool.
    pub fn complete(&mut self, sent: usize, spare: &mut Spare) -> bool {
        self.complete_kept(sent, spare, None)
    }

    /// [`complete`](Self::complete) for a zero-copy send whose notification is still
    /// to come: the memory of the bytes it sent moves to `kept` instead of the pool
    /// (see [`Queue::complete`]).
    pub(crate) fn complete_kept(
        &mut self,
        sent: usize,
        spare: &mut Spare,
        kept: Option<&mut Vec<Kept>>,
    ) -> bool {
        let Some(q) = self.q.as_mut() else {
            return false;
        };
        let short = q.complete(sent, spare, kept);
        self.release_if_idle(spare);
        short
    }

    /// Drops everything not in flight (abort). Bytes in flight stay until completion,
    /// and so does the head file segment while `file_busy` (a splice from its file is in
    /// flight: the file must stay open, and its completion is counted against it).
    pub fn discard_unsent(&mut self, spare: &mut Spare, file_busy: bool) {
        if let Some(q) = self.q.as_mut() {
            q.discard_unsent(spare, file_busy);
        }
        self.release_if_idle(spare);
    }

    /// Drops everything (nothing may be in flight): chunks go to `spare`, files to the
    /// retired list.
    pub fn discard_all(&mut self, spare: &mut Spare) {
        if let Some(q) = self.q.as_mut() {
            q.discard_all(spare);
        }
        self.release_if_idle(spare);
    }
}

impl Queue {
    /// True when the queue holds nothing at all: its state may go back to the pool.
    fn idle(&self) -> bool {
        self.len == 0
            && self.chunks.is_empty()
            && self.inflight_bytes == 0
            && self.retired.is_empty()
    }

    /// True while a send op is in flight.
    pub fn in_flight(&self) -> bool {
        self.inflight_bytes > 0
    }

    /// Appends a copy of `data`, coalescing into the last chunk when it is not in flight.
    pub fn push_copy(&mut self, data: &[u8], spare: &mut Spare) {
        let n = self.chunks.len();
        if n > self.inflight_chunks {
            if let Item::Bytes(last) = &mut self.chunks[n - 1] {
                if last.len() + data.len() <= COALESCE.max(last.capacity()) {
                    last.extend_from_slice(data);
                    self.len += data.len();
                    return;
                }
            }
        }
        let mut b = spare.buf(data.len());
        b.extend_from_slice(data);
        self.chunks.push_back(Item::Bytes(b));
        self.len += data.len();
    }

    /// Lets `f` append bytes straight into the queue, without an intermediate buffer:
    /// `f` gets the last chunk when it is bytes, not in flight, not partly sent and
    /// under the coalescing size, else an empty spare buffer (queued if `f` wrote
    /// into it). `f` must only append; the queue counts whatever length change it
    /// makes, so a misbehaving `f` can garble its own unsent bytes but never bytes in
    /// flight or the queue's accounting.
    pub fn push_with<R>(&mut self, spare: &mut Spare, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let n = self.chunks.len();
        // Chunk 0 with `head > 0` is partly sent: `head` indexes into it, so `f`
        // must not be able to shrink it below that.
        if n > self.inflight_chunks && !(n == 1 && self.head > 0) {
            if let Some(Item::Bytes(last)) = self.chunks.back_mut() {
                if last.len() < COALESCE {
                    let acct = Appended {
                        before: last.len(),
                        buf: last,
                        len: &mut self.len,
                    };
                    return f(acct.buf);
                }
            }
        }
        let mut b = spare.buf(0);
        let r = f(&mut b);
        if b.is_empty() {
            spare.give(b);
        } else {
            self.len += b.len();
            self.chunks.push_back(Item::Bytes(b));
        }
        r
    }

    /// Appends `data` without copying.
    pub fn push_owned(&mut self, data: Vec<u8>) {
        self.len += data.len();
        self.chunks.push_back(Item::Bytes(data));
    }

    /// Appends a file region; it is sent after everything queued before it.
    pub fn push_file(&mut self, seg: FileSeg) {
        self.len += seg.remaining as usize;
        self.chunks.push_back(Item::File(seg));
    }

    /// Appends bytes that carry file descriptors (see [`FdsSeg`]).
    pub fn push_fds(&mut self, data: Vec<u8>, fds: Vec<std::os::fd::OwnedFd>) {
        self.len += data.len();
        let ctl = crate::scm::rights_control(&fds);
        self.chunks
            .push_back(Item::Fds(Box::new(FdsSeg { data, fds, ctl })));
    }

    /// True when the next thing to send is bytes (a send op can be prepared).
    pub fn bytes_ready(&self) -> bool {
        matches!(
            self.chunks.front(),
            Some(Item::Bytes(_) | Item::Held(_) | Item::Fds(_))
        )
    }

    /// The file segment at the head of the queue, if the head is a file.
    pub fn head_file(&mut self) -> Option<&mut FileSeg> {
        match self.chunks.front_mut() {
            Some(Item::File(f)) => Some(f),
            _ => None,
        }
    }

    /// Records `n` bytes of the head file segment as sent; retires it when finished.
    /// Without a head file segment (it cannot happen: an abort keeps a segment whose
    /// fill is in flight) nothing changes.
    pub fn file_sent(&mut self, n: u64) {
        if let Some(Item::File(f)) = self.chunks.front_mut() {
            let n = n.min(f.remaining);
            self.len -= n as usize;
            f.offset += n;
            f.remaining -= n;
            if f.remaining == 0 {
                self.retire_head();
            }
        }
    }

    /// Drops the head file segment (its file could not be read), with its bytes.
    pub fn drop_head_file(&mut self) {
        if let Some(Item::File(f)) = self.chunks.front() {
            self.len -= f.remaining as usize;
            self.retire_head();
        }
    }

    fn retire_head(&mut self) {
        if let Some(Item::File(f)) = self.chunks.pop_front() {
            self.retired.push(f.fd);
        }
    }

    /// Fills the send header for everything queued (up to [`MAX_IOV`] chunks) and returns
    /// it. The returned pointer is valid until [`complete`](Self::complete).
    ///
    /// # Panics
    /// If a send is already in flight or the queue is empty.
    pub fn prepare(&mut self, spare: &mut Spare) -> *const libc::msghdr {
        assert!(
            !self.in_flight() && self.bytes_ready(),
            "prepare: bad state"
        );
        // The header is filled in its final place: the pointers handed to the kernel
        // are derived from the box where it stays until `complete` (moving a `Box`
        // after taking them would invalidate them under Rust's aliasing rules).
        let sb = match self.msg.take() {
            Some(sb) => self.msg.insert(sb),
            None => self.msg.insert(spare.send_buf()),
        };
        let mut n = 0;
        let mut bytes = 0;
        // A segment with fds starts a send: one behind other bytes ends this one.
        let leading = self.chunks.iter().enumerate().map_while(|(i, c)| match c {
            Item::Fds(_) if i > 0 => None,
            c => c.bytes(),
        });
        for (i, c) in leading.enumerate().take(MAX_IOV) {
            let off = if i == 0 { self.head } else { 0 };
            sb.iov[i] = libc::iovec {
                iov_base: c[off..].as_ptr() as *mut libc::c_void,
                iov_len: c.len() - off,
            };
            bytes += c.len() - off;
            n += 1;
        }
        sb.msg.msg_name = std::ptr::null_mut();
        sb.msg.msg_namelen = 0;
        sb.msg.msg_control = std::ptr::null_mut();
        sb.msg.msg_controllen = 0;
        if let Some(Item::Fds(f)) = self.chunks.front() {
            if !f.fds.is_empty() {
                // The fds go with this send (its first byte is the segment's first).
                sb.msg.msg_control = f.ctl.as_ptr() as *mut libc::c_void;
                sb.msg.msg_controllen = f.ctl.len() * 8;
            }
        }
        sb.msg.msg_flags = 0;
        sb.msg.msg_iov = sb.iov.as_mut_ptr();
        sb.msg.msg_iovlen = n as _;
        self.inflight_chunks = n;
        self.inflight_bytes = bytes;
        &sb.msg as *const libc::msghdr
    }

    /// Records that the in-flight send finished after moving `sent` bytes (0 on error).
    /// Returns true if it was short.
    ///
    /// With `kept` (a zero-copy send whose notification is still to come), every chunk
    /// the send read from moves there instead of the pool: fully sent chunks as they
    /// are, and a partly sent head chunk too, its unsent rest copied into a new chunk
    /// that takes its place (the old one might otherwise grow, move or be freed while
    /// the kernel still reads its pages).
    pub fn complete(
        &mut self,
        sent: usize,
        spare: &mut Spare,
        mut kept: Option<&mut Vec<Kept>>,
    ) -> bool {
        let short = sent < self.inflight_bytes;
        if sent > 0 {
            if let Some(Item::Fds(f)) = self.chunks.front_mut() {
                // Sent with the first byte: the kernel holds them now; close ours.
                f.fds.clear();
            }
        }
        let mut left = sent.min(self.inflight_bytes);
        self.len -= left;
        while left > 0 {
            let avail = self.chunks[0].bytes().map_or(0, |c| c.len()) - self.head;
            if left >= avail {
                left -= avail;
                self.head = 0;
                match (self.chunks.pop_front(), kept.as_deref_mut()) {
                    (Some(item), Some(kept)) => kept.extend(Self::keep(item)),
                    (Some(Item::Bytes(c)), None) => spare.give(c),
                    (Some(Item::Held(h)), None) => spare.released.push(h.hold()),
                    _ => {}
                }
            } else {
                self.head += left;
                left = 0;
                if let Some(kept) = kept.as_deref_mut() {
                    // The rest of a partly sent chunk continues in a copy.
                    let rest = self.chunks[0].bytes().map_or(&[][..], |c| &c[self.head..]);
                    let mut copy = spare.buf(rest.len());
                    copy.extend_from_slice(rest);
                    let old = std::mem::replace(&mut self.chunks[0], Item::Bytes(copy));
                    self.head = 0;
                    kept.extend(Self::keep(old));
                }
            }
        }
        self.inflight_chunks = 0;
        self.inflight_bytes = 0;
        if !self.bytes_ready() {
            if let Some(sb) = self.msg.take() {
                spare.sends.push(sb);
            }
            if self.chunks.is_empty() && self.chunks.capacity() > 8 {
                // A pooled queue keeps a small chunk list, not what a burst grew.
                self.chunks = VecDeque::new();
            }
        }
        short
    }

    /// What of a chunk a zero-copy send read must keep until its notification.
    fn keep(item: Item) -> Option<Kept> {
        match item {
            Item::Bytes(c) => Some(Kept::Bytes(c)),
            Item::Held(h) => Some(Kept::Hold(h.hold())),
            Item::Fds(f) => Some(Kept::Fds(f)),
            Item::File(_) => None,
        }
    }

    /// Drops everything not in flight (abort). Bytes in flight stay until completion,
    /// and so does the head file segment while `file_busy` (a splice from its file is in
    /// flight: the file must stay open, and its completion is counted against it).
    pub fn discard_unsent(&mut self, spare: &mut Spare, file_busy: bool) {
        let keep = if file_busy && matches!(self.chunks.front(), Some(Item::File(_))) {
            1
        } else {
            self.inflight_chunks
        };
        while self.chunks.len() > keep {
            let Some(item) = self.chunks.pop_back() else {
                break;
            };
            match item {
                Item::Bytes(c) => {
                    let unsent = if self.chunks.is_empty() {
                        c.len() - self.head
                    } else {
                        c.len()
                    };
                    self.len -= unsent;
                    spare.give(c);
                }
                Item::Held(h) => {
                    let unsent = if self.chunks.is_empty() {
                        h.len() - self.head
                    } else {
                        h.len()
                    };
                    self.len -= unsent;
                    spare.released.push(h.hold());
                }
                Item::File(f) => {
                    self.len -= f.remaining as usize;
                    self.retired.push(f.fd);
                }
                Item::Fds(f) => {
                    let unsent = if self.chunks.is_empty() {
                        f.data.len() - self.head
                    } else {
                        f.data.len()
                    };
                    self.len -= unsent;
                    // Dropping the segment closes our duplicates of its fds.
                }
            }
        }
        if self.chunks.is_empty() {
            self.head = 0;
        }
    }

    /// Drops everything (nothing may be in flight): chunks go to `spare`, files to the
    /// retired list.
    pub fn discard_all(&mut self, spare: &mut Spare) {
        self.inflight_chunks = 0;
        self.inflight_bytes = 0;
        self.discard_unsent(spare, false);
        if let Some(sb) = self.msg.take() {
            spare.sends.push(sb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iov_bytes(p: *const libc::msghdr) -> Vec<u8> {
        // SAFETY: `p` comes from `prepare` and the queue is not modified meanwhile.
        let m = unsafe { &*p };
        let mut out = vec![];
        for i in 0..m.msg_iovlen {
            // SAFETY: as above; each iovec points into a live chunk.
            let v = unsafe { &*m.msg_iov.add(i) };
            // SAFETY: as above.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len)
            });
        }
        out
    }

    #[test]
    fn short_sends_resume_in_order() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        q.push_copy(b"hello ", &mut sp);
        q.push_owned(b"big world".to_vec(), &mut sp);
        q.push_copy(b"!", &mut sp);
        let p = q.prepare(&mut sp);
        assert_eq!(iov_bytes(p), b"hello big world!");
        // New bytes while in flight go after, never into in-flight chunks.
        q.push_copy(b"?", &mut sp);
        assert!(q.complete(8, &mut sp));
        let p = q.prepare(&mut sp);
        assert_eq!(iov_bytes(p), b"g world!?");
        assert!(!q.complete(9, &mut sp));
        assert!(q.is_empty());
        assert!(!q.in_flight());
    }

    #[test]
    fn zero_copy_completion_keeps_what_the_send_read() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        q.push_owned(b"hello ".to_vec(), &mut sp);
        q.push_owned(b"big world".to_vec(), &mut sp);
        let p = q.prepare(&mut sp);
        // SAFETY: `p` is the queue's own msghdr, valid until `complete`, with
        // `msg_iovlen` filled iovecs.
        let (first, second) = unsafe {
            let iov = std::slice::from_raw_parts((*p).msg_iov, (*p).msg_iovlen);
            (iov[0].iov_base as usize, iov[1].iov_base as usize)
        };
        let mut kept = Vec::new();
        // Short: all of the first chunk and 3 bytes of the second went out.
        assert!(q.complete_kept(9, &mut sp, Some(&mut kept)));
        // Both chunks are kept, at their addresses; the rest of the second continues
        // in a copy that may grow.
        let at: Vec<usize> = kept
            .iter()
            .map(|k| match k {
                Kept::Bytes(b) => b.as_ptr() as usize,
                _ => 0,
            })
            .collect();
        assert_eq!(at, [first, second]);
        q.push_copy(b"!", &mut sp);
        let p = q.prepare(&mut sp);
        assert_eq!(iov_bytes(p), b" world!");
        assert!(!q.complete(7, &mut sp));
        assert!(q.is_empty());
        for k in kept {
            k.release(&mut sp);
        }
    }

    #[test]
    fn push_with_appends_after_in_flight() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        q.push_with(&mut sp, |b| b.extend_from_slice(b"ab"));
        q.push_with(&mut sp, |b| b.extend_from_slice(b"cd"));
        assert_eq!((q.len(), q.st().chunks.len()), (4, 1));
        let p = q.prepare(&mut sp);
        assert_eq!(iov_bytes(p), b"abcd");
        // In flight: a new chunk, and nothing written leaves nothing queued.
        q.push_with(&mut sp, |_| ());
        assert_eq!(q.st().chunks.len(), 1);
        q.push_with(&mut sp, |b| {
            assert!(b.is_empty());
            b.extend_from_slice(b"ef")
        });
        assert_eq!((q.len(), q.st().chunks.len()), (6, 2));
        // Short send: chunk 0 partly sent, the new bytes go to chunk 1.
        assert!(q.complete(1, &mut sp));
        q.push_with(&mut sp, |b| {
            assert_eq!(b, b"ef");
            b.push(b'g')
        });
        let p = q.prepare(&mut sp);
        assert_eq!(iov_bytes(p), b"bcdefg");
        assert!(!q.complete(6, &mut sp));
        assert!(q.is_empty());
        // A partly sent lone chunk is never handed out.
        q.push_copy(b"xyz", &mut sp);
        let _ = q.prepare(&mut sp);
        q.complete(1, &mut sp);
        q.push_with(&mut sp, |b| {
            assert!(b.is_empty());
            b.push(b'!')
        });
        let p = q.prepare(&mut sp);
        assert_eq!(iov_bytes(p), b"yz!");
        q.complete(3, &mut sp);
        assert!(q.is_empty());
    }

    #[test]
    fn more_chunks_than_iovecs() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        let mut want = vec![];
        for i in 0..(MAX_IOV * 3) {
            let v = vec![i as u8; 10];
            want.extend_from_slice(&v);
            q.push_owned(v, &mut sp);
        }
        let mut got = vec![];
        while !q.is_empty() {
            let p = q.prepare(&mut sp);
            let b = iov_bytes(p);
            let take = (b.len() / 2).max(1);
            got.extend_from_slice(&b[..take]);
            q.complete(take, &mut sp);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn discard_keeps_in_flight() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        q.push_owned(vec![1; 10], &mut sp);
        let _ = q.prepare(&mut sp);
        q.push_owned(vec![2; 10], &mut sp);
        q.discard_unsent(&mut sp, false);
        assert_eq!(q.len(), 10);
        q.complete(10, &mut sp);
        assert!(q.is_empty());
    }

    fn open_file() -> IoFd {
        use std::os::fd::IntoRawFd;
        IoFd::new(std::fs::File::open("/proc/self/exe").unwrap().into_raw_fd())
    }

    /// The first `len` bytes of a freshly opened file, as a queue segment.
    fn file_seg(len: u64) -> FileSeg {
        FileSeg {
            fd: open_file(),
            offset: 0,
            remaining: len,
        }
    }

    fn close_all(q: &mut WriteQueue) -> usize {
        let fds: Vec<_> = q.take_retired().collect();
        let n = fds.len();
        for fd in fds {
            // SAFETY: the test owns the file; nothing references it.
            unsafe { libc::close(fd.raw()) };
            std::mem::forget(fd);
        }
        n
    }

    /// Issue 8 defect 2: an abort while the head file's fill splice is in flight keeps
    /// the file open (the kernel may resolve its fd late) and its length counted, so
    /// the fill's completion neither hits a closed or reused fd nor underflows `len`.
    #[test]
    #[cfg_attr(miri, ignore)] // opens a file: a syscall
    fn abort_keeps_a_file_whose_fill_is_in_flight() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        q.push_file(file_seg(100), &mut sp);
        q.push_copy(b"after", &mut sp);
        q.discard_unsent(&mut sp, true);
        assert_eq!(
            close_all(&mut q),
            0,
            "file retired while its splice may run"
        );
        assert_eq!(q.len(), 100);
        q.file_sent(60);
        assert_eq!(q.len(), 40);
        // Everything done: the file is retired for the caller to close.
        q.discard_all(&mut sp);
        assert_eq!((q.len(), close_all(&mut q)), (0, 1));
        // A completion for a segment no longer queued changes nothing.
        q.file_sent(10);
        assert_eq!(q.len(), 0);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // opens a file: a syscall
    fn finished_and_dropped_files_are_retired() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        for _ in 0..2 {
            q.push_file(file_seg(10), &mut sp);
        }
        q.file_sent(10);
        assert_eq!(close_all(&mut q), 1);
        q.discard_unsent(&mut sp, false);
        assert_eq!((q.len(), close_all(&mut q)), (0, 1));
    }

    /// A response head followed by its file body may go with `MSG_MORE`; bytes with
    /// nothing (or more bytes) after them may not.
    #[test]
    #[cfg_attr(miri, ignore)] // opens a file: a syscall
    fn file_follows_only_a_head_whose_body_is_a_file() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        q.push_copy(b"HTTP/1.1 200 OK\r\n\r\n", &mut sp);
        assert!(!q.file_follows(), "nothing prepared yet");
        let _ = q.prepare(&mut sp);
        assert!(!q.file_follows(), "no file queued");
        q.complete(q.st().inflight_bytes, &mut sp);
        q.push_copy(b"head", &mut sp);
        q.push_file(file_seg(10), &mut sp);
        let _ = q.prepare(&mut sp);
        assert!(q.file_follows());
        q.complete(4, &mut sp);
        // The body went; bytes after it have no file behind them.
        q.file_sent(10);
        q.push_copy(b"next head", &mut sp);
        let _ = q.prepare(&mut sp);
        assert!(!q.file_follows());
        q.complete(9, &mut sp);
        assert_eq!(close_all(&mut q), 1);
    }

    /// Issue 8 defect 10: buffers that sat unused for a whole trim interval are freed.
    #[test]
    fn spare_pool_shrinks_when_idle() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        for _ in 0..100 {
            q.push_owned(vec![0; 100], &mut sp);
            q.push_copy(&[1; 20_000], &mut sp);
        }
        while !q.is_empty() {
            let _ = q.prepare(&mut sp);
            let n = q.st().inflight_bytes;
            q.complete(n, &mut sp);
        }
        assert!(sp.held() >= 100, "the burst filled the pool: {}", sp.held());
        // First interval: the pool was in use (it started empty), nothing is freed.
        sp.trim_idle(false);
        assert!(sp.held() >= 100);
        // A quiet interval: everything goes.
        sp.trim_idle(false);
        assert_eq!(sp.held(), 0);
        // A buffer taken in an interval is not counted as idle then.
        q.push_copy(&[1; 100], &mut sp);
        let _ = q.prepare(&mut sp);
        q.complete(100, &mut sp);
        sp.trim_idle(false);
        assert!(sp.held() >= 1);
    }

    /// Issue 12 item 7: a connection that sent everything holds no queue state (the
    /// state, its chunk list and send header went back to the worker's pool), so an
    /// idle connection after traffic costs no more than one that never sent.
    #[test]
    fn idle_queue_gives_its_state_back() {
        let mut sp = Spare::default();
        let mut q = WriteQueue::default();
        assert!(!q.holds_state());
        q.push_copy(&[7; 128], &mut sp);
        assert!(q.holds_state());
        let _ = q.prepare(&mut sp);
        // Short: the rest is still queued, the state stays.
        assert!(q.complete(100, &mut sp));
        assert!(q.holds_state());
        let _ = q.prepare(&mut sp);
        assert!(!q.complete(28, &mut sp));
        assert!(!q.holds_state(), "an idle queue kept its state");
        assert_eq!(sp.queues.len(), 1);
        // The next connection reuses it: nothing new is allocated.
        let mut q2 = WriteQueue::default();
        q2.push_with(&mut sp, |b| b.extend_from_slice(b"x"));
        assert!(q2.holds_state());
        assert_eq!(sp.queues.len(), 0);
        // A closure that writes nothing leaves nothing held.
        let mut q3 = WriteQueue::default();
        q3.push_with(&mut sp, |_| ());
        assert!(!q3.holds_state());
        q2.discard_all(&mut sp);
        assert!(!q2.holds_state());
        sp.trim_idle(true);
        assert_eq!(sp.held(), 0);
    }

    /// An idle connection's write queue is one pointer (it was 96 bytes inline).
    #[test]
    fn an_idle_write_queue_is_one_pointer() {
        assert_eq!(
            std::mem::size_of::<WriteQueue>(),
            std::mem::size_of::<usize>()
        );
    }
}
