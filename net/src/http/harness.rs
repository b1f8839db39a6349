//! A socket-free driver for a [`Handler`], for fuzz targets (`fuzz/`) and tests.

use crate::conn::{ConnCore, WorkerCtx, ABORT, CLOSING, PAUSED, SHUT_WANT};
use crate::{Conn, Handler};
use ringcore_runtime::{OpKind, Token};
use std::time::Instant;

/// Runs `handler` the way a worker delivers input, without a socket: `on_open`, then
/// `on_data` once per non-empty read, each time with the unconsumed rest of the
/// earlier reads followed by the new bytes (held back while the handler paused
/// reading; offered again at once if they were left while reading was stopped), until the handler closes or shuts its write side down (no time passes,
/// so no timer fires). After each call everything queued is "sent" and `on_sent`
/// runs. Returns the bytes it queued for sending, in order (stopping at a file
/// segment, which is not read), and whether it asked to close.
#[doc(hidden)]
pub fn run_without_socket<H: Handler>(handler: &mut H, reads: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut core = ConnCore::new(-1, Token::new(0, 0, OpKind::Recv));
    let mut ctx = WorkerCtx::new(0, Instant::now());
    handler.on_open(&mut Conn {
        core: &mut core,
        ctx: &mut ctx,
    });
    let mut pending = Vec::new();
    let mut out = Vec::new();
    let done = |core: &ConnCore| core.has(CLOSING | ABORT | SHUT_WANT);
    // Bytes that arrived while reading was paused: delivered once it resumes.
    let mut held = false;
    let last = [&b""[..]];
    for read in reads.iter().chain(&last) {
        pending.extend_from_slice(read);
        held |= !read.is_empty();
        while held && !core.has(PAUSED) && !done(&core) {
            let mut conn = Conn {
                core: &mut core,
                ctx: &mut ctx,
            };
            let used = handler.on_data(&mut conn, &pending);
            pending.drain(..used.min(pending.len()));
            // As the runtime does: bytes left while reading is stopped (paused, or
            // output at the high-water mark) are offered again once it resumes,
            // without waiting for new input.
            let stopped = core.has(PAUSED) || core.backed_up();
            // Send it all; `on_sent` may queue more (a handler resuming after a pause).
            let mut sent = false;
            while drain(&mut core, &mut ctx, &mut out) && !core.has(CLOSING | ABORT) {
                sent = true;
                handler.on_sent(&mut Conn {
                    core: &mut core,
                    ctx: &mut ctx,
                });
            }
            held = stopped && !pending.is_empty() && (core.has(PAUSED) || used > 0 || sent);
        }
    }
    drain(&mut core, &mut ctx, &mut out);
    (out, done(&core))
}

/// Moves every ready byte of the write queue to `out`; whether there were any.
fn drain(core: &mut ConnCore, ctx: &mut WorkerCtx, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    while core.out.bytes_ready() {
        // SAFETY: `prepare` returns a valid msghdr whose iovecs point into the queue's
        // chunks; the queue is not touched until `complete` below.
        let msg = unsafe { &*core.out.prepare(&mut ctx.spare) };
        let before = out.len();
        for i in 0..msg.msg_iovlen {
            // SAFETY: as above, `i < msg_iovlen` iovecs were filled in, each over the
            // initialised bytes of a live chunk.
            let iov = unsafe { &*msg.msg_iov.add(i) };
            // SAFETY: as above.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(iov.iov_base as *const u8, iov.iov_len)
            });
        }
        core.out.complete(out.len() - before, &mut ctx.spare);
    }
    out.len() > start
}
