//! [`AccessLog`]: formats records into per-thread buffers and writes them in batches
//! from one helper thread, so a worker never waits for the disk.
//!
//! Each worker thread appends to its own shard (a mutex only the writer thread
//! also takes, for the instant it swaps the buffer out). A shard past
//! [`FLUSH_AT`] bytes wakes the writer; otherwise the writer takes every shard at
//! least every [`FLUSH_EVERY`]. A shard holding its share of the buffer limit drops
//! further lines (counted) until the writer catches up: the disk being slow costs
//! lines, never latency.

use super::access_log::{format_into, AccessFormat, AccessRecord};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Bytes that may wait for the writer, all threads together, by default (8 MiB).
pub const DEFAULT_BUFFER_BYTES: usize = 8 << 20;
/// A thread's buffer wakes the writer once it holds this many bytes.
pub const FLUSH_AT: usize = 32 << 10;
/// The writer takes what is buffered at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[repr(align(128))]
#[derive(Default)]
struct Shard {
    /// Lines not yet taken by the writer, and how many.
    buf: Mutex<(String, u64)>,
}

enum Msg {
    Wake,
    Reopen,
    Close(SyncSender<()>),
}

/// Where an [`AccessLog`] writes.
enum Sink {
    Stdout,
    File(PathBuf),
    Custom,
}

struct Inner {
    shards: Box<[Shard]>,
    cap: usize,
    format: AccessFormat,
    ctl: SyncSender<Msg>,
    dropped: AtomicU64,
    written: AtomicU64,
}

/// A non-blocking access-log writer (see the [module docs](self)). Cloning shares it.
///
/// Lines still buffered when the process is killed are lost; call
/// [`AccessLog::close`] after serving to write them all.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.inner.format)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

thread_local! {
    static SLOT: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed)
    };
}

impl AccessLog {
    /// Opens `path` for appending (created if missing), or standard output for `-`,
    /// and starts the writer thread; at most `buffer` bytes wait for it.
    ///
    /// # Errors
    /// The file cannot be opened (the message names it).
    pub fn open(path: &str, format: AccessFormat, buffer: usize) -> io::Result<AccessLog> {
        let (sink, w): (Sink, Box<dyn Write + Send>) = if path == "-" {
            (Sink::Stdout, Box::new(io::stdout()))
        } else {
            let p = PathBuf::from(path);
            let f = open_append(&p)?;
            (Sink::File(p), Box::new(f))
        };
        Self::start(sink, w, format, buffer)
    }

    /// An access log writing to `w` (tests, or a custom destination; `reopen` does
    /// nothing).
    ///
    /// # Errors
    /// The writer thread cannot be started.
    pub fn with_writer(
        w: Box<dyn Write + Send>,
        format: AccessFormat,
        buffer: usize,
    ) -> io::Result<AccessLog> {
        Self::start(Sink::Custom, w, format, buffer)
    }

    fn start(
        sink: Sink,
        w: Box<dyn Write + Send>,
        format: AccessFormat,
        buffer: usize,
    ) -> io::Result<AccessLog> {
        let n = std::thread::available_parallelism().map_or(4, |n| n.get().clamp(1, 64));
        let (ctl, rx) = std::sync::mpsc::sync_channel(16);
        let inner = Arc::new(Inner {
            shards: (0..n).map(|_| Shard::default()).collect(),
            cap: (buffer / n).max(1024),
            format,
            ctl,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        });
        // The thread holds the shards, not the sender: when every `AccessLog` is
        // gone, its channel disconnects and it writes what is left and ends.
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(rx, sink, w, weak))?;
        Ok(AccessLog { inner })
    }

    /// Appends `r` as one line to this thread's buffer; never blocks on I/O.
    pub fn record(&self, r: &AccessRecord<'_>) {
        self.append(|s| format_into(s, r, self.inner.format, SystemTime::now()));
    }

    /// Appends one preformatted line (ending in `\n`); never blocks on I/O.
    pub fn line(&self, line: &str) {
        self.append(|s| s.push_str(line));
    }

    fn append(&self, f: impl FnOnce(&mut String)) {
        let inner = &*self.inner;
        let shard = &inner.shards[SLOT.with(|s| *s) % inner.shards.len()];
        let mut g = shard.buf.lock().unwrap_or_else(|e| e.into_inner());
        if g.0.len() >= inner.cap {
            inner.dropped.fetch_add(1, Relaxed);
            return;
        }
        let before = g.0.len();
        f(&mut g.0);
        g.1 += 1;
        let wake = before < FLUSH_AT && g.0.len() >= FLUSH_AT;
        drop(g);
        if wake {
            // Full channel: a wake is pending already.
            let _ = inner.ctl.try_send(Msg::Wake);
        }
    }

    /// A hook for [`HttpConn::with_access_log`](super::HttpConn::with_access_log)
    /// and [`StaticFiles::with_access_log`](super::StaticFiles::with_access_log)
    /// writing every record here.
    pub fn hook(&self) -> super::AccessHook {
        let me = self.clone();
        Arc::new(move |r: &AccessRecord<'_>| me.record(r))
    }

    /// The format lines are written in.
    pub fn format(&self) -> AccessFormat {
        self.inner.format
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Relaxed)
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.inner.written.load(Relaxed)
    }

    /// Reopens the file by its path after writing what is buffered (log rotation:
    /// rename the file, then reopen; call it from a SIGHUP hook).
    pub fn reopen(&self) {
        let _ = self.inner.ctl.send(Msg::Reopen);
    }

    /// Writes and flushes everything buffered, then stops the writer thread; lines
    /// recorded later stay buffered and are never written.
    pub fn close(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.inner.ctl.send(Msg::Close(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

fn open_append(p: &std::path::Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open access log {}: {e}", p.display()),
            )
        })
}

/// Takes every shard's lines and writes them; returns false once the log is gone.
fn drain(
    inner: &std::sync::Weak<Inner>,
    spare: &mut String,
    out: &mut dyn Write,
    failed: &mut bool,
) -> bool {
    let Some(inner) = inner.upgrade() else {
        return false;
    };
    for shard in inner.shards.iter() {
        let lines = {
            let mut g = shard.buf.lock().unwrap_or_else(|e| e.into_inner());
            if g.1 == 0 {
                continue;
            }
            std::mem::swap(&mut g.0, spare);
            std::mem::take(&mut g.1)
        };
        match out.write_all(spare.as_bytes()) {
            Ok(()) => {
                inner.written.fetch_add(lines, Relaxed);
            }
            Err(e) => {
                inner.dropped.fetch_add(lines, Relaxed);
                if !*failed {
                    tracing::error!("access log write failed: {e} (lines are lost)");
                    *failed = true;
                }
            }
        }
        spare.clear();
        if spare.capacity() > 4 * FLUSH_AT {
            *spare = String::new();
        }
    }
    if let Err(e) = out.flush() {
        if !*failed {
            tracing::error!("access log flush failed: {e} (lines are lost)");
            *failed = true;
        }
    }
    true
}

fn write_loop(
    rx: Receiver<Msg>,
    sink: Sink,
    w: Box<dyn Write + Send>,
    inner: std::sync::Weak<Inner>,
) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, w);
    let mut spare = String::new();
    let mut failed = false;
    loop {
        let msg = rx.recv_timeout(FLUSH_EVERY);
        let alive = drain(&inner, &mut spare, &mut out, &mut failed);
        match msg {
            Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Msg::Reopen) => match &sink {
                Sink::File(p) => match open_append(p) {
                    Ok(f) => {
                        let _ = out.flush();
                        out = io::BufWriter::with_capacity(64 * 1024, Box::new(f));
                        failed = false;
                        tracing::info!("access log reopened: {}", p.display());
                    }
                    Err(e) => tracing::error!("{e}; still writing to the old file"),
                },
                Sink::Stdout | Sink::Custom => {}
            },
            Ok(Msg::Close(done)) => {
                let _ = out.flush();
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if !alive {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that blocks until released: the disk is "slow".
    struct Stuck(Receiver<()>, Arc<Mutex<Vec<u8>>>);
    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            self.1.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_drops_lines_instead_of_blocking() {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let buf = Arc::new(Mutex::new(Vec::new()));
        let shards = std::thread::available_parallelism().map_or(4, |n| n.get().clamp(1, 64));
        let log = AccessLog::with_writer(
            Box::new(Stuck(gate, buf.clone())),
            AccessFormat::Combined,
            shards * 4096,
        )
        .unwrap();
        // The writer blocks in its first write of more than 64 KiB (the BufWriter's
        // size); this thread's buffer holds 4 KiB: whatever the writer took, the
        // buffer fills and the rest is dropped, and every call returns at once.
        let long = "x".repeat(1023) + "\n";
        for _ in 0..400 {
            log.line(&long);
        }
        assert!(log.dropped() > 0, "nothing dropped");
        drop(release); // the disk catches up
        log.close();
        assert_eq!(log.written() + log.dropped(), 400);
        assert_eq!(buf.lock().unwrap().len() as u64, log.written() * 1024);
    }

    #[test]
    fn lines_of_an_idle_thread_are_written_without_a_wake() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let log = AccessLog::with_writer(
            Box::new(Shared(buf.clone())),
            AccessFormat::Combined,
            1 << 20,
        )
        .unwrap();
        log.line("one\n");
        // Far below FLUSH_AT: the periodic take writes it.
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while log.written() == 0 {
            assert!(std::time::Instant::now() < end, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*buf.lock().unwrap(), b"one\n");
        assert_eq!(log.dropped(), 0);
    }
}
