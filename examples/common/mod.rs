//! Command-line flags every example shares: workers, backend, SQPOLL, CPU pinning.

pub mod tls;

use anyhow::Context;
use clap::Args;
use ringcore::{BackendKind, Runtime};
use std::time::Duration;

/// Runtime flags (flattened into each example's arguments).
#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// Worker threads, one per core (default: every allowed CPU).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Backend: auto (io_uring, falling back to epoll), uring or epoll.
    #[arg(long, default_value = "auto")]
    pub backend: BackendKind,
    /// Enable SQPOLL (a kernel thread polls the submission queue).
    #[arg(long)]
    pub sqpoll: bool,
    /// Pin workers to these CPUs (comma-separated), e.g. --cpus 0.
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
}

impl RuntimeArgs {
    /// Builds the runtime these flags describe.
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        let mut b = Runtime::builder().backend(self.backend);
        if let Some(w) = self.workers {
            b = b.workers(w);
        }
        if self.sqpoll {
            b = b.sqpoll(Duration::from_millis(100), None);
        }
        if !self.cpus.is_empty() {
            b = b.cpus(self.cpus.clone());
        }
        b.build().context("invalid runtime configuration")
    }
}

/// Installs the log subscriber every example uses: human-readable lines on stderr,
/// filtered by `RUST_LOG` (default `info`, e.g. `RUST_LOG=ringcore_net=debug`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The backend a runtime's workers will run on, for the start-up line.
pub fn backend_name(rt: &Runtime) -> &'static str {
    ringcore::runtime::probe_backend(rt.config())
        .map(|b| b.name())
        .unwrap_or("unavailable")
}
