//! Per-connection TCP statistics: `getsockopt(TCP_INFO)` as a typed snapshot.
//!
//! `nix` does not expose `TCP_INFO`, and `libc::tcp_info` stops before the fields a
//! server wants most (bytes acked/received, delivery rate, min RTT), so the kernel's
//! `struct tcp_info` (include/uapi/linux/tcp.h) is mirrored here as [`RawTcpInfo`]. Its
//! layout is checked by a unit test against the offsets of the kernel header; the kernel
//! copies `min(its size, our size)` bytes and reports how many, so an older kernel leaves
//! the newer fields zero (see [`TcpInfo::kernel_len`]).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The kernel's `struct tcp_info` up to `tcpi_total_rto_time` (Linux 6.7, 248 bytes;
/// later kernels append fields, which are not copied). Field names follow the
/// header without the `tcpi_` prefix; times are microseconds unless named otherwise.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct RawTcpInfo {
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    pub options: u8,
    /// `snd_wscale:4, rcv_wscale:4`.
    pub wscale: u8,
    /// `delivery_rate_app_limited:1, fastopen_client_fail:2`.
    pub app_limited_flags: u8,
    pub rto: u32,
    pub ato: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub fackets: u32,
    pub last_data_sent: u32,
    pub last_ack_sent: u32,
    pub last_data_recv: u32,
    pub last_ack_recv: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt: u32,
    pub rttvar: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_rtt: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
    pub pacing_rate: u64,
    pub max_pacing_rate: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
    pub min_rtt: u32,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    pub delivery_rate: u64,
    pub busy_time: u64,
    pub rwnd_limited: u64,
    pub sndbuf_limited: u64,
    pub delivered: u32,
    pub delivered_ce: u32,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub dsack_dups: u32,
    pub reord_seen: u32,
    pub rcv_ooopack: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub rehash: u32,
    pub total_rto: u16,
    pub total_rto_recoveries: u16,
    pub total_rto_time: u32,
}

/// Bytes of `struct tcp_info` up to and including `delivery_rate` (Linux 4.9): the
/// least a kernel must return for every field of [`TcpInfo`] except the `bytes_sent`/
/// `bytes_retrans` pair (Linux 5.5, zero before).
pub const TCP_INFO_MIN_LEN: usize = std::mem::offset_of!(RawTcpInfo, delivery_rate) + 8;

/// A snapshot of one TCP connection's statistics (`TCP_INFO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpInfo {
    /// Kernel TCP state (`TCP_ESTABLISHED` = 1, ... see `tcp_states.h`).
    pub state: u8,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Round-trip time variation.
    pub rttvar: Duration,
    /// Smallest round-trip time seen (the path's propagation delay estimate).
    pub min_rtt: Duration,
    /// Retransmission timeout.
    pub rto: Duration,
    /// Congestion window, in segments.
    pub snd_cwnd: u32,
    /// Sender maximum segment size, bytes.
    pub snd_mss: u32,
    /// Consecutive retransmissions of the current segment (timeouts without progress).
    pub retransmits: u8,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Segments currently considered lost.
    pub lost: u32,
    /// Bytes sent that the peer acknowledged.
    pub bytes_acked: u64,
    /// Bytes received in order.
    pub bytes_received: u64,
    /// Bytes sent, retransmissions included (0 on kernels before 5.5).
    pub bytes_sent: u64,
    /// Bytes retransmitted (0 on kernels before 5.5).
    pub bytes_retrans: u64,
    /// Most recent delivery rate estimate, bytes per second.
    pub delivery_rate: u64,
    /// Current pacing rate, bytes per second.
    pub pacing_rate: u64,
    /// Bytes written by the application and not yet sent.
    pub notsent_bytes: u32,
    /// Segments sent / received.
    pub segs_out: u32,
    /// Segments received.
    pub segs_in: u32,
    /// How many bytes of `struct tcp_info` the kernel filled (newer fields beyond it
    /// read as zero).
    pub kernel_len: usize,
}

impl TcpInfo {
    fn from_raw(r: &RawTcpInfo, kernel_len: usize) -> TcpInfo {
        let us = |v: u32| Duration::from_micros(u64::from(v));
        TcpInfo {
            state: r.state,
            rtt: us(r.rtt),
            rttvar: us(r.rttvar),
            min_rtt: us(r.min_rtt),
            rto: us(r.rto),
            snd_cwnd: r.snd_cwnd,
            snd_mss: r.snd_mss,
            retransmits: r.retransmits,
            total_retrans: r.total_retrans,
            lost: r.lost,
            bytes_acked: r.bytes_acked,
            bytes_received: r.bytes_received,
            bytes_sent: r.bytes_sent,
            bytes_retrans: r.bytes_retrans,
            delivery_rate: r.delivery_rate,
            pacing_rate: r.pacing_rate,
            notsent_bytes: r.notsent_bytes,
            segs_out: r.segs_out,
            segs_in: r.segs_in,
            kernel_len,
        }
    }
}

/// The raw `struct tcp_info` of `fd` and how many bytes of it the kernel filled.
///
/// # Errors
/// `getsockopt`'s error (`EOPNOTSUPP`/`ENOPROTOOPT` for a non-TCP socket, `EBADF`), or
/// `Unsupported` if the kernel returned fewer than [`TCP_INFO_MIN_LEN`] bytes.
pub fn raw_tcp_info(fd: RawFd) -> io::Result<(RawTcpInfo, usize)> {
    let mut raw = RawTcpInfo::default();
    let mut len = std::mem::size_of::<RawTcpInfo>() as libc::socklen_t;
    // Raw libc: nix has no `TCP_INFO` option (nor a type for the struct's fields).
    // SAFETY: `raw` is a plain-data repr(C) struct of `len` bytes that lives across the
    // call; the kernel writes at most `len` bytes into it and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut raw as *mut RawTcpInfo).cast(),
            &mut len,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("getsockopt(TCP_INFO) on fd {fd}: {e}"),
        ));
    }
    let len = len as usize;
    if len < TCP_INFO_MIN_LEN {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("TCP_INFO returned {len} bytes; need {TCP_INFO_MIN_LEN} (Linux 4.9 or later)"),
        ));
    }
    Ok((raw, len))
}

/// A typed `TCP_INFO` snapshot of `fd`.
///
/// # Errors
/// As [`raw_tcp_info`]: a Unix socket gives `EOPNOTSUPP`.
pub fn tcp_info(fd: RawFd) -> io::Result<TcpInfo> {
    raw_tcp_info(fd).map(|(r, len)| TcpInfo::from_raw(&r, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// Offsets from include/uapi/linux/tcp.h (Linux 6.7), counted by hand.
    #[test]
    fn layout_matches_the_kernel_header() {
        assert_eq!(offset_of!(RawTcpInfo, rto), 8);
        assert_eq!(offset_of!(RawTcpInfo, lost), 32);
        assert_eq!(offset_of!(RawTcpInfo, rtt), 68);
        assert_eq!(offset_of!(RawTcpInfo, rttvar), 72);
        assert_eq!(offset_of!(RawTcpInfo, snd_cwnd), 80);
        assert_eq!(offset_of!(RawTcpInfo, total_retrans), 100);
        assert_eq!(offset_of!(RawTcpInfo, pacing_rate), 104);
        assert_eq!(offset_of!(RawTcpInfo, bytes_acked), 120);
        assert_eq!(offset_of!(RawTcpInfo, bytes_received), 128);
        assert_eq!(offset_of!(RawTcpInfo, min_rtt), 148);
        assert_eq!(offset_of!(RawTcpInfo, delivery_rate), 160);
        assert_eq!(offset_of!(RawTcpInfo, bytes_sent), 200);
        assert_eq!(offset_of!(RawTcpInfo, snd_wnd), 228);
        assert_eq!(offset_of!(RawTcpInfo, total_rto), 240);
        assert_eq!(std::mem::size_of::<RawTcpInfo>(), 248);
        assert_eq!(TCP_INFO_MIN_LEN, 168);
    }

    #[test]
    fn loopback_round_trip_is_plausible() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(&[7u8; 10_000]).unwrap();
        let mut got = vec![0u8; 10_000];
        s.read_exact(&mut got).unwrap();
        s.write_all(b"ok").unwrap();
        let mut ok = [0u8; 2];
        c.read_exact(&mut ok).unwrap();
        // The reply arrived, so the request's bytes were acked.
        let ci = tcp_info(c.as_raw_fd()).unwrap();
        let si = tcp_info(s.as_raw_fd()).unwrap();
        assert_eq!(ci.state, 1, "established");
        assert!(ci.bytes_acked >= 10_000, "{ci:?}");
        assert_eq!(si.bytes_received, 10_000, "{si:?}");
        assert!(
            ci.rtt > Duration::ZERO && ci.rtt < Duration::from_secs(1),
            "{ci:?}"
        );
        assert!(ci.snd_cwnd >= 1 && ci.snd_mss > 0, "{ci:?}");
        assert!(ci.kernel_len >= TCP_INFO_MIN_LEN);
        let u = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(tcp_info(u.0.as_raw_fd()).is_err());
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// An all-zero snapshot for aggregation tests.
    pub(crate) fn zero() -> super::TcpInfo {
        super::TcpInfo::from_raw(&super::RawTcpInfo::default(), 0)
    }
}
