//! `--access-log PATH|-` and `--access-log-format combined|json`, shared by the http,
//! fileserver and proxy examples. SIGHUP reopens the file (log rotation).

use anyhow::Context;
use clap::Args;
use ringcore::http::{AccessFormat, AccessLog};

/// Access-log flags (flattened into an example's arguments).
#[derive(Args, Debug, Clone)]
pub struct AccessArgs {
    /// Write an access log line per request (proxy: per connection) to PATH, or to
    /// standard output with `-`. Appends; SIGHUP reopens PATH (rotate by renaming the
    /// file, then `kill -HUP`). Lines never block a worker: when the writer falls
    /// behind by --access-log-buffer bytes, lines are dropped and counted.
    #[arg(long, value_name = "PATH|-")]
    pub access_log: Option<String>,
    /// Access log line format: combined (nginx/Apache combined plus the request time
    /// in seconds) or json.
    #[arg(long, default_value = "combined")]
    pub access_log_format: AccessFormat,
    /// Bytes of access-log lines that may wait for the writer (all workers together)
    /// before lines are dropped.
    #[arg(long, default_value_t = ringcore::http::access_log::DEFAULT_BUFFER_BYTES)]
    pub access_log_buffer: usize,
}

impl AccessArgs {
    /// Opens the access log (if asked for) and makes SIGHUP reopen it.
    pub fn open(&self) -> anyhow::Result<Option<AccessLog>> {
        let Some(path) = &self.access_log else {
            return Ok(None);
        };
        let log = AccessLog::open(path, self.access_log_format, self.access_log_buffer)
            .with_context(|| format!("--access-log {path}"))?;
        let again = log.clone();
        ringcore::runtime::signals::on_hangup(move || again.reopen());
        tracing::info!(
            "access log: {} ({:?} format)",
            if path == "-" { "standard output" } else { path },
            self.access_log_format
        );
        Ok(Some(log))
    }
}

/// Writes what is still queued and reports dropped lines (after serving).
pub fn close(log: Option<&AccessLog>) {
    if let Some(log) = log {
        log.close();
        if log.dropped() > 0 {
            tracing::warn!(
                "access log: {} line(s) dropped because the writer fell behind",
                log.dropped()
            );
        }
    }
}

/// The access log's own counters in Prometheus text format.
pub fn prometheus(log: &AccessLog) -> String {
    format!(
        "# HELP ringcore_access_log_lines_total Access log lines written.\n\
         # TYPE ringcore_access_log_lines_total counter\n\
         ringcore_access_log_lines_total {}\n\
         # HELP ringcore_access_log_dropped_total Access log lines dropped because the writer fell behind.\n\
         # TYPE ringcore_access_log_dropped_total counter\n\
         ringcore_access_log_dropped_total {}\n",
        log.written(),
        log.dropped()
    )
}
