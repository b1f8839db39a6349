//! The callback guard: every handler callback runs through [`call`], which turns a
//! panic into an aborted connection (logged, counted) instead of a dead worker.
//! Below the server and its parts, which all call it.

use crate::conn::{ConnSlot, WorkerCtx};
use crate::handler::{CloseReason, Conn, Handler};
use ringcore_runtime::Io;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Logs a panicking `what` callback of worker `worker`.
pub(crate) fn log_panic(worker: usize, what: &str) {
    tracing::error!(
        "ringcore: worker {worker}: a {what} callback panicked; its connection is closed"
    );
}

/// Runs `f` on the handler with a `Conn`, turning a panic into an aborted connection.
#[inline]
pub(crate) fn call<H: Handler, R>(
    slot: &mut ConnSlot<H>,
    ctx: &mut WorkerCtx,
    io: &mut Io,
    what: &str,
    f: impl FnOnce(&mut H, &mut Conn<'_>) -> R,
) -> Option<R> {
    let mut conn = Conn {
        core: &mut slot.core,
        ctx,
    };
    let h = &mut slot.handler;
    match catch_unwind(AssertUnwindSafe(|| f(h, &mut conn))) {
        Ok(r) => Some(r),
        Err(_) => {
            io.counters().panics += 1;
            log_panic(ctx.worker, what);
            slot.core.fail(CloseReason::Panic);
            ctx.mark_dirty(&mut slot.core);
            None
        }
    }
}
