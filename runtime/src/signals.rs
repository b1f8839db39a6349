//! Signals: SIGINT/SIGTERM drain gracefully, a second one exits at once, SIGHUP runs
//! the registered hang-up hooks (the examples reopen their access log).
//!
//! | signal | first time | again, while draining |
//! | --- | --- | --- |
//! | SIGINT, SIGTERM | graceful drain (stop accepting, finish within the drain timeout), logged, `STOPPING=1` to systemd | exit at once with status 128 + signal (130, 143), one line on stderr |
//! | SIGHUP | every [`on_hangup`] hook runs (logged; if there is none, logged as ignored) | the same |
//!
//! The handler does only async-signal-safe work: it sets flags, writes to every
//! registered worker wake eventfd and to a self-pipe, and for the second
//! SIGINT/SIGTERM writes one fixed line to stderr and calls `_exit`. A watcher thread
//! reads the self-pipe and does what is not signal-safe (logging, systemd, hooks). A
//! worker deregisters its eventfd before closing it, and waits until no handler is
//! mid-flight, so a handler never writes to a closed (and possibly reused) descriptor.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};

use nix::sys::signal::{self as nsig, SaFlags, SigAction, SigHandler, SigSet, Signal};

const MAX_WAKE: usize = 1024;
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicI32 = AtomicI32::new(-1);
static WAKE_FDS: [AtomicI32; MAX_WAKE] = [EMPTY; MAX_WAKE];
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: Mutex<usize> = Mutex::new(0);
/// Write end of the watcher's self-pipe (`-1` until the watcher runs).
static PIPE_W: AtomicI32 = AtomicI32::new(-1);
/// The drain timeout of the runtime that installed the handlers, in ms (for the log).
static DRAIN_MS: AtomicU64 = AtomicU64::new(0);
/// The first SIGINT/SIGTERM (0 until one arrives), for the drain log line.
static SIGNO: AtomicI32 = AtomicI32::new(0);
/// True once the "graceful drain started" line is logged and `STOPPING=1` sent (by the
/// watcher or by the first worker to drain, whichever runs first; the process may exit
/// before the watcher thread is scheduled). A mutex, not a flag: it is held while the
/// line is written, so a second caller returns only once the first has finished, and a
/// quick exit after either caller returns cannot cut the line or the datagram off.
static DRAIN_LOGGED: Mutex<bool> = Mutex::new(false);

/// Test hook: runs in `drain_started` with the lock held, before the line is written.
#[cfg(test)]
static WHILE_LOGGING: Mutex<Option<Hook>> = Mutex::new(None);

/// Exit status after a second SIGINT/SIGTERM during the drain: 128 + the signal
/// number (130 for SIGINT, 143 for SIGTERM), as a shell reports a signal death.
pub const EXIT_ABORT_BASE: i32 = 128;

type Hook = Arc<dyn Fn() + Send + Sync>;
static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

const ABORT_MSG: &[u8] =
    b"ringcore: second SIGINT/SIGTERM during the drain: exiting now (status 128+signal)\n";

// Raw libc in the handler, not nix: nix has no `_exit`, and its `write` would need an
// `unsafe` `BorrowedFd` per fd as well; bare async-signal-safe calls read plainest here.
extern "C" fn on_signal(sig: libc::c_int) {
    IN_HANDLER.fetch_add(1, SeqCst);
    if sig != libc::SIGHUP {
        // Before REQUESTED, so a worker that sees the request also sees the signal.
        let _ = SIGNO.compare_exchange(0, sig, SeqCst, SeqCst);
        if REQUESTED.swap(true, SeqCst) {
            // SAFETY: write(2) and _exit(2) are async-signal-safe; the message is static.
            unsafe {
                libc::write(2, ABORT_MSG.as_ptr().cast(), ABORT_MSG.len());
                libc::_exit(EXIT_ABORT_BASE + sig);
            }
        }
        let one: u64 = 1;
        for slot in WAKE_FDS.iter() {
            let fd = slot.load(SeqCst);
            if fd >= 0 {
                // SAFETY: write(2) is async-signal-safe; `fd` stays open while
                // IN_HANDLER > 0 (see `forget_wake_fd`).
                unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
            }
        }
    }
    let w = PIPE_W.load(SeqCst);
    if w >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the pipe is never closed once open.
        // A full pipe (the watcher is behind) drops the byte: the watcher still sees
        // the earlier ones of the same kind.
        unsafe { libc::write(w, (&b as *const u8).cast(), 1) };
    }
    IN_HANDLER.fetch_sub(1, SeqCst);
}

/// True once SIGINT or SIGTERM arrived while handlers were installed.
pub(crate) fn requested() -> bool {
    REQUESTED.load(SeqCst)
}

/// Registers `hook` to run on every SIGHUP received while a runtime runs with
/// signal handling on ([`Config::handle_signals`](crate::Config::handle_signals)).
///
/// Hooks run on a helper thread (never in the signal handler, never on a worker), in
/// the order registered, and stay registered for the life of the process. The
/// examples reopen their access log here (log rotation: move the file, then
/// `kill -HUP`).
pub fn on_hangup(hook: impl Fn() + Send + Sync + 'static) {
    HOOKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::new(hook));
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
    old: [SigAction; 3],
}

const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// Starts the watcher thread once per process: it reads signal numbers from the
/// self-pipe and logs, notifies systemd and runs hooks.
fn start_watcher() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        use std::os::fd::IntoRawFd;
        let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(
                    "ringcore: no signal watcher ({}): signals still drain, but are not logged",
                    std::io::Error::from(e)
                );
                return;
            }
        };
        // Both ends stay open for the process's life (the handler may write at any time).
        let (r, w) = (r.into_raw_fd(), w.into_raw_fd());
        // The write end must never block the handler.
        let _ = nix::fcntl::fcntl(
            w,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let spawned = std::thread::Builder::new()
            .name("ringcore-signals".into())
            .spawn(move || watch(r));
        match spawned {
            Ok(_) => PIPE_W.store(w, SeqCst),
            Err(e) => tracing::warn!("ringcore: no signal watcher thread: {e}"),
        }
    });
}

fn watch(fd: libc::c_int) {
    loop {
        let mut b = [0u8; 1];
        // `fd` is the pipe's read end, ours and never closed.
        match nix::unistd::read(fd, &mut b) {
            Ok(1) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            _ => {
                tracing::warn!("ringcore: signal watcher stopped");
                return;
            }
        }
        let sig = i32::from(b[0]);
        if sig == libc::SIGHUP {
            let hooks: Vec<Hook> = HOOKS.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if hooks.is_empty() {
                tracing::info!("ringcore: SIGHUP received: nothing to reopen, ignored");
            } else {
                tracing::info!(
                    "ringcore: SIGHUP received: running {} hang-up hook(s)",
                    hooks.len()
                );
                for h in hooks {
                    h();
                }
            }
        } else {
            drain_started();
        }
    }
}

/// Logs that a SIGINT/SIGTERM started the graceful drain and tells systemd
/// (`STOPPING=1`), once per signal-driven drain. Called by the watcher thread and by
/// the first worker that drains, so the line is never lost to a quick exit.
pub(crate) fn drain_started() {
    let sig = SIGNO.load(SeqCst);
    if sig == 0 {
        return;
    }
    let mut logged = DRAIN_LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    if *logged {
        return;
    }
    #[cfg(test)]
    {
        let hook = WHILE_LOGGING.lock().unwrap().clone();
        if let Some(h) = hook {
            h();
        }
    }
    tracing::info!(
        "ringcore: {} received: graceful drain started (stop accepting, drain \
         timeout {} ms); send SIGINT or SIGTERM again to exit at once (status {})",
        signal_name(sig),
        DRAIN_MS.load(SeqCst),
        EXIT_ABORT_BASE + sig
    );
    crate::systemd::notify_stopping();
    *logged = true;
}

pub(crate) fn install(drain: std::time::Duration) -> Guard {
    start_watcher();
    DRAIN_MS.store(drain.as_millis() as u64, SeqCst);
    let mut n = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *n == 0 {
        REQUESTED.store(false, SeqCst);
        SIGNO.store(0, SeqCst);
        *DRAIN_LOGGED.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }
    let ours = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    let old = SIGNALS.map(|sig| {
        // SAFETY: the handler does only async-signal-safe work (see the module doc).
        // sigaction cannot fail for these three catchable signals; if it did, the
        // default action is what a restore would put back.
        unsafe { nsig::sigaction(sig, &ours) }.unwrap_or_else(|_| {
            SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty())
        })
    });
    *n += 1;
    Guard { old }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut n = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            for (sig, old) in SIGNALS.iter().zip(&self.old) {
                // SAFETY: restores the handler `install` found (the default, or one the
                // application installed and vouches for).
                let _ = unsafe { nsig::sigaction(*sig, old) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// The state letter of thread `tid` of this process (`S`: sleeping), if it runs.
    fn thread_state(tid: i32) -> Option<char> {
        let st = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        st.rsplit(')').next()?.trim_start().chars().next()
    }

    /// The worker that begins a signal's drain calls `drain_started` too, in case the
    /// watcher thread has not run; if the watcher is writing the line (and sending
    /// `STOPPING=1`) at that moment, the worker must wait for it, or a quick drain
    /// exits the process with the line half done. Fails on the earlier flag (swapped
    /// before the line was written): the second caller returned at once.
    #[test]
    fn a_second_caller_waits_until_the_drain_line_is_written() {
        SIGNO.store(libc::SIGTERM, SeqCst);
        *DRAIN_LOGGED.lock().unwrap() = false;
        let written = Arc::new(AtomicBool::new(false));
        let (inside_tx, inside_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let w = written.clone();
        *WHILE_LOGGING.lock().unwrap() = Some(Arc::new(move || {
            inside_tx.send(()).unwrap();
            go_rx.lock().unwrap().recv().unwrap();
            w.store(true, SeqCst);
        }));
        // The first caller (the watcher) is held while "writing".
        let first = std::thread::spawn(drain_started);
        inside_rx.recv().unwrap();
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let w = written.clone();
        let second = std::thread::spawn(move || {
            // SAFETY: gettid(2) has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            drain_started();
            done_tx.send(w.load(SeqCst)).unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        // The second caller either returns (wrong) or sleeps on the lock (right).
        let end = Instant::now() + Duration::from_secs(30);
        let early = loop {
            if let Ok(seen) = done_rx.try_recv() {
                break Some(seen);
            }
            if thread_state(tid) == Some('S') {
                break None;
            }
            assert!(
                Instant::now() < end,
                "the second caller neither returned nor waited"
            );
            std::thread::yield_now();
        };
        assert_eq!(
            early, None,
            "the second caller returned while the first was still writing the line"
        );
        go_tx.send(()).unwrap();
        assert!(
            done_rx.recv().unwrap(),
            "returned before the line was written"
        );
        first.join().unwrap();
        second.join().unwrap();
        *WHILE_LOGGING.lock().unwrap() = None;
        SIGNO.store(0, SeqCst);
    }
}
