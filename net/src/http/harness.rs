//! A socket-free driver for a [`Handler`], for fuzz targets (`fuzz/`) and tests.

use crate::conn::{ConnCore, WorkerCtx, ABORT, CLOSING, PENDING_NEW, READ_STOP, SHUT_WANT};
use crate::{Conn, Handler};
use ringcore_runtime::{OpKind, Token};
use std::time::Instant;

/// Runs `handler` the way a worker delivers input, without a socket, to a peer that
/// reads every response at once: `on_open`; then per non-empty read, `on_data` with
/// the unconsumed rest of earlier reads plus the new bytes (held back while reading is
/// paused or output is backed up, and offered again on resume), the queue handed out
/// and `on_sent`. Stops once the handler closes; no time passes, so no timer fires.
/// Returns the bytes it queued, in order (up to a file segment, which is not read),
/// and whether it closed or shut down its sending side.
#[doc(hidden)]
pub fn run_without_socket<H: Handler>(handler: &mut H, reads: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut core = ConnCore::new(-1, Token::new(0, 0, OpKind::Recv));
    let mut ctx = WorkerCtx::new(0, Instant::now());
    macro_rules! conn {
        () => {
            &mut Conn {
                core: &mut core,
                ctx: &mut ctx,
            }
        };
    }
    handler.on_open(conn!());
    let mut out = Vec::new();
    for read in reads.iter().filter(|r| !r.is_empty()) {
        if core.has(CLOSING | ABORT) {
            break;
        }
        core.pending.extend_from_slice(read);
        core.set(PENDING_NEW);
        while core.has(PENDING_NEW) && !core.has(READ_STOP | CLOSING | ABORT) {
            core.clear(PENDING_NEW);
            let pending = std::mem::take(&mut core.pending);
            let used = handler.on_data(conn!(), &pending);
            core.pending = pending[used.min(pending.len())..].to_vec();
            core.note_leftovers();
            if take_queued(&mut core, &mut ctx, &mut out) && !core.has(CLOSING | ABORT) {
                handler.on_sent(conn!());
            }
            core.update_backed_up();
        }
    }
    take_queued(&mut core, &mut ctx, &mut out);
    (out, core.has(CLOSING | ABORT | SHUT_WANT))
}

/// Moves the leading bytes of the write queue to `out`, as a send would; returns
/// whether anything moved and the queue is now empty.
fn take_queued(core: &mut ConnCore, ctx: &mut WorkerCtx, out: &mut Vec<u8>) -> bool {
    let before = out.len();
    while core.out.bytes_ready() {
        // SAFETY: `prepare` returns a valid msghdr whose iovecs point into the queue's
        // chunks; the queue is not touched until `complete` below.
        let msg = unsafe { &*core.out.prepare(&mut ctx.spare) };
        let start = out.len();
        for i in 0..msg.msg_iovlen {
            // SAFETY: as above, `i < msg_iovlen` iovecs were filled in, each over the
            // initialised bytes of a live chunk.
            let iov = unsafe { &*msg.msg_iov.add(i) };
            // SAFETY: as above.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(iov.iov_base as *const u8, iov.iov_len)
            });
        }
        core.out.complete(out.len() - start, &mut ctx.spare);
    }
    out.len() > before && core.out.is_empty()
}
