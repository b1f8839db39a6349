//! Per-worker counters and the snapshot that sums them.
//!
//! Each worker counts into a plain [`Counters`] value on its own thread (no atomics
//! on the hot path) and publishes a copy into its [`Shared`] cell once per loop turn
//! with relaxed stores. [`Snapshot`] sums the published cells of every worker.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// Counters of one worker (or, in a [`Snapshot`], of all workers summed).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Counters {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        /// A worker's published counters.
        #[derive(Debug, Default)]
        pub struct Shared {
            $( $name: AtomicU64, )*
        }

        impl Shared {
            /// Publishes `c` (relaxed stores; readers may see a torn mix of two turns).
            pub fn publish(&self, c: &Counters) {
                $( self.$name.store(c.$name, Relaxed); )*
            }

            /// Reads the last published counters.
            pub fn load(&self) -> Counters {
                Counters { $( $name: self.$name.load(Relaxed), )* }
            }
        }

        impl Counters {
            /// Adds `other` field by field.
            pub fn add(&mut self, other: &Counters) {
                $( self.$name += other.$name; )*
            }

            /// `(name, value)` for every counter, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }

            /// `(name, description)` for every counter, in declaration order (the
            /// field docs; the `# HELP` text of [`Snapshot::to_prometheus`]).
            pub fn help() -> Vec<(&'static str, &'static str)> {
                vec![ $( (stringify!($name), concat!($($doc),*)), )* ]
            }
        }
    };
}

counters! {
    /// Connections accepted.
    accepts,
    /// Connections closed (for any reason).
    closes,
    /// Outbound connections established.
    connects,
    /// Bytes received from sockets.
    bytes_in,
    /// Bytes sent to sockets (send, splice and sendfile).
    bytes_out,
    /// SQEs pushed (io_uring) / ops issued (epoll).
    sqes,
    /// Completions handled.
    cqes,
    /// `io_uring_enter` calls (io_uring only).
    enters,
    /// Syscalls issued by the backend (io_uring: equals `enters` plus set-up calls;
    /// epoll: every epoll_wait, read, sendmsg, accept4, epoll_ctl, splice, close, ...).
    syscalls,
    /// Sends that completed with fewer bytes than asked.
    short_sends,
    /// Multishot receives ended by an empty buffer pool (`ENOBUFS`).
    enobufs,
    /// Times accepting was paused because of `EMFILE`/`ENFILE`.
    emfile_pauses,
    /// Completions whose generation did not match their slot.
    stale,
    /// Times the submission queue was full and had to be flushed early.
    sq_full,
    /// Times the completion queue had overflowed and was flushed.
    cq_overflow,
    /// Loop turns (waits).
    turns,
    /// Callbacks that panicked (their connection was closed).
    panics,
    /// Connections closed by their idle timeout.
    timeouts,
    /// Connections open right now (a gauge).
    open_conns,
    /// Timer entries pending in the worker's timer set right now (a gauge).
    timers_pending,
    /// Splices the io_uring backend ran inline on the worker (`Config::splice_mode`).
    inline_splices,
    /// `sendfile(2)` calls made for file responses (`Config::sendfile`; both backends).
    sendfiles,
    /// Wake-ups that arrived as a `MSG_RING` completion (`Config::msg_ring_wake`)
    /// instead of an eventfd read.
    msg_ring_wakes,
    /// Entries held by the worker's reuse pools right now: spare buffers, send
    /// headers, write-queue states and splice pipes (a gauge; it falls back to 0 once
    /// the pools sat unused for two trim intervals).
    pool_entries,
    /// Pool entries freed by idle trims.
    pool_trimmed,
    /// Connections aborted at the drain deadline with output still queued (their
    /// responses were cut).
    drain_aborted,
    /// Receives found still armed after their connection's peer hung up or reset
    /// (the hang-up guard cancelled and re-armed them; see `ringcore_net`'s guard).
    /// Nonzero means the backend missed an end of stream.
    hangup_guards,
    /// Datagrams received and handed to a `DatagramHandler` (UDP; their bytes count
    /// in `bytes_in`).
    datagrams_in,
    /// Datagrams sent (UDP; their bytes count in `bytes_out`).
    datagrams_out,
    /// Datagrams dropped before sending because the socket's send queue was full
    /// (`UdpOptions::send_queue`), or cut at the drain deadline.
    datagrams_dropped,
    /// Datagrams larger than one receive buffer: reported to `on_truncated`, never
    /// delivered whole (raise `buf_size` for larger datagrams).
    datagrams_truncated,
    /// Datagrams the kernel dropped because a UDP socket's receive buffer was full
    /// (`SO_RXQ_OVFL`, as last reported with a received datagram; raise
    /// `net.core.rmem_max` and `UdpOptions::recv_buffer`).
    datagrams_kernel_dropped,
    /// Datagram sends or receives that failed with an error (a failed GSO send counts
    /// each of its datagrams).
    datagram_errors,
    /// Sends that carried a run of several datagrams to one peer as one `UDP_SEGMENT`
    /// (GSO) send (`UdpOptions::gso`); their datagrams count in `datagrams_out`.
    datagram_gso_sends,
    /// UDP sockets that turned GSO off because the kernel refused a GSO send (the
    /// run's datagrams were sent one by one; logged as a warning).
    datagram_gso_fallbacks,
    /// Receive completions whose bytes spanned more than one provided buffer (io_uring
    /// receive bundles, `Config::recv_bundle`).
    recv_bundles,
    /// Sends that went out as `SEND_ZC` (`Config::send_zc_threshold`).
    send_zc,
    /// `SEND_ZC` sends the kernel reported it copied after all (always so on loopback:
    /// the receiver's socket takes a copy).
    send_zc_copied,
    /// Sends queued straight from a held receive buffer (`Conn::send_received`).
    recv_holds,
    /// `Conn::send_received` calls that copied because the worker already held
    /// `Config::recv_hold_limit` receive buffers.
    recv_hold_fallbacks,
    /// Receive buffers held by queued zero-copy sends right now (a gauge).
    recv_held,
    /// Sockets (connections, outbound sockets, UDP sockets) put into the
    /// direct-descriptor table (`Config::direct_descriptors`).
    direct_conns,
    /// Sockets left on their plain fd because the direct-descriptor table was full.
    direct_fallbacks,
    /// Direct-descriptor slots holding a socket right now (a gauge; back to 0 once
    /// every registered connection closed).
    direct_in_use,
    /// Ops submitted on a direct-descriptor slot (`IOSQE_FIXED_FILE`).
    direct_ops,
    /// Direct-descriptor registrations the kernel refused (logged as errors).
    direct_errors,
    /// Direct closes (emptying a direct-descriptor slot) that failed (logged as
    /// warnings; the slot is still freed exactly once).
    direct_close_errors,
}

/// Counters that are gauges (a current value, not a running total).
const GAUGES: &[&str] = &[
    "open_conns",
    "timers_pending",
    "pool_entries",
    "recv_held",
    "direct_in_use",
];

/// The summed counters of all workers at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Number of workers summed.
    pub workers: usize,
    /// The sums.
    pub total: Counters,
}

impl Snapshot {
    /// Sums the published counters of `cells`.
    pub fn from_shared<'a>(cells: impl IntoIterator<Item = &'a Shared>) -> Snapshot {
        let mut s = Snapshot::default();
        for c in cells {
            s.workers += 1;
            s.total.add(&c.load());
        }
        s
    }

    /// The counters in Prometheus text exposition format, prefixed `ringcore_`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let help = Counters::help();
        for ((name, v), (_, doc)) in self.total.fields().into_iter().zip(help) {
            let kind = if GAUGES.contains(&name) {
                "gauge"
            } else {
                "counter"
            };
            let suffix = if kind == "counter" { "_total" } else { "" };
            // One line: the doc comment's lines joined, escaped as HELP requires.
            let doc = doc
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace('\\', "\\\\");
            out.push_str(&format!(
                "# HELP ringcore_{name}{suffix} {doc}\n\
                 # TYPE ringcore_{name}{suffix} {kind}\nringcore_{name}{suffix} {v}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP ringcore_workers Worker threads (one event loop each).\n\
             # TYPE ringcore_workers gauge\nringcore_workers {}\n",
            self.workers
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_workers() {
        let a = Shared::default();
        let b = Shared::default();
        a.publish(&Counters {
            accepts: 2,
            bytes_in: 10,
            ..Default::default()
        });
        b.publish(&Counters {
            accepts: 3,
            ..Default::default()
        });
        let s = Snapshot::from_shared([&a, &b]);
        assert_eq!(s.workers, 2);
        assert_eq!(s.total.accepts, 5);
        assert_eq!(s.total.bytes_in, 10);
        let text = s.to_prometheus();
        assert!(text.contains("ringcore_accepts_total 5\n"));
        assert!(text.contains("ringcore_open_conns 0\n"));
        assert!(text.contains("ringcore_timers_pending 0\n"));
        assert!(text.contains("ringcore_drain_aborted_total 0\n"));
        assert!(text.contains(
            "# HELP ringcore_accepts_total Connections accepted.\n\
             # TYPE ringcore_accepts_total counter\n"
        ));
    }

    /// Every metric has a non-empty `# HELP` line right before its `# TYPE` line.
    #[test]
    fn every_metric_has_help_and_type() {
        let text = Snapshot::default().to_prometheus();
        let lines: Vec<&str> = text.lines().collect();
        let mut samples = 0;
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with('#') {
                continue;
            }
            samples += 1;
            let name = l.split(' ').next().unwrap();
            let ty = lines[i - 1];
            let help = lines[i - 2];
            assert!(ty.starts_with(&format!("# TYPE {name} ")), "{ty}");
            let h = format!("# HELP {name} ");
            assert!(help.starts_with(&h) && help.len() > h.len() + 3, "{help}");
        }
        assert_eq!(samples, Counters::help().len() + 1);
    }
}
