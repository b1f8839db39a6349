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
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }
}

impl Config {
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
        Ok(self)
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
