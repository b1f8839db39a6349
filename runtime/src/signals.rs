//! SIGINT/SIGTERM -> graceful shutdown.
//!
//! The handler does only async-signal-safe work: it sets a flag and writes to every
//! registered worker wake eventfd. A worker deregisters its eventfd before closing it,
//! and waits until no handler is mid-flight, so a handler never writes to a closed
//! (and possibly reused) descriptor.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

const MAX_WAKE: usize = 1024;
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicI32 = AtomicI32::new(-1);
static WAKE_FDS: [AtomicI32; MAX_WAKE] = [EMPTY; MAX_WAKE];
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: Mutex<usize> = Mutex::new(0);

extern "C" fn on_signal(_sig: libc::c_int) {
    IN_HANDLER.fetch_add(1, SeqCst);
    REQUESTED.store(true, SeqCst);
    let one: u64 = 1;
    for slot in WAKE_FDS.iter() {
        let fd = slot.load(SeqCst);
        if fd >= 0 {
            // SAFETY: write(2) is async-signal-safe; `fd` stays open while IN_HANDLER > 0
            // (see `forget_wake_fd`).
            unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        }
    }
    IN_HANDLER.fetch_sub(1, SeqCst);
}

/// True once SIGINT or SIGTERM arrived while handlers were installed.
pub(crate) fn requested() -> bool {
    REQUESTED.load(SeqCst)
}

pub(crate) fn remember_wake_fd(fd: i32) {
    for slot in WAKE_FDS.iter() {
        if slot.compare_exchange(-1, fd, SeqCst, SeqCst).is_ok() {
            return;
        }
    }
}

pub(crate) fn forget_wake_fd(fd: i32) {
    for slot in WAKE_FDS.iter() {
        let _ = slot.compare_exchange(fd, -1, SeqCst, SeqCst);
    }
    while IN_HANDLER.load(SeqCst) != 0 {
        std::hint::spin_loop();
    }
}

/// Restores the previous handlers when the last concurrent `run` ends.
pub(crate) struct Guard {
    old: [libc::sigaction; 2],
}

const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

pub(crate) fn install() -> Guard {
    let mut n = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: sigaction is plain data; zeroed is a valid starting value.
    let mut old: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
    if *n == 0 {
        REQUESTED.store(false, SeqCst);
    }
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: as above.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: valid sigaction structs; the handler is async-signal-safe.
        unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, &mut old[i]);
        }
    }
    *n += 1;
    Guard { old }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut n = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            for (i, &sig) in SIGNALS.iter().enumerate() {
                // SAFETY: restores the handler saved by `install`.
                unsafe { libc::sigaction(sig, &self.old[i], std::ptr::null_mut()) };
            }
        }
    }
}
