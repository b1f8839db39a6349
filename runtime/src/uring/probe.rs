//! Start-up checks: every opcode ringcore submits, and the kernel version for the
//! features the opcode probe cannot see (multishot flags, buffer rings).
//!
//! | feature                              | minimum kernel |
//! |--------------------------------------|----------------|
//! | `IORING_OP_SENDMSG`, `IORING_OP_RECVMSG` | 5.3        |
//! | `IORING_OP_CONNECT`                  | 5.5            |
//! | `IORING_OP_CLOSE`, `IORING_OP_READ`  | 5.6            |
//! | `IORING_OP_SPLICE`                   | 5.7            |
//! | `IORING_OP_SHUTDOWN`                 | 5.11           |
//! | `IORING_SETUP_SUBMIT_ALL`, `COOP_TASKRUN` | 5.18      |
//! | multishot accept, `IORING_REGISTER_PBUF_RING`, `ASYNC_CANCEL_FD/ALL`, `SINGLE_ISSUER` | 5.19 / 6.0 |
//! | multishot recv, `DEFER_TASKRUN`      | 6.0 / 6.1      |
//! | `SEND_ZC` / `SENDMSG_ZC` (optional, `send_zc_threshold`) | 6.0 / 6.1 |
//! | `IORING_RECVSEND_BUNDLE` on recv (optional, `recv_bundle`; `IORING_FEAT_RECVSEND_BUNDLE`) | 6.10 |
//! | `IOU_PBUF_RING_INC` (optional, `buf_inc`; registration retried without it) | 6.12 |
//!
//! Optional features, each checked where it is turned on (`Config` options, off by
//! default): `IOSQE_CQE_SKIP_SUCCESS` 5.17 (`IORING_FEAT_CQE_SKIP`), registered ring fd
//! 5.18 (the registration itself), ring-less `MSG_RING` 6.13 (one wake to itself).

use io_uring::{opcode, IoUring, Probe};
use std::io;

/// Minimum kernel (major, minor) for the full feature set.
pub const MIN_KERNEL: (u32, u32) = (6, 1);

const OPCODES: &[(u8, &str, &str)] = &[
    (opcode::Nop::CODE, "IORING_OP_NOP", "5.1"),
    (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD", "5.1"),
    (opcode::SendMsg::CODE, "IORING_OP_SENDMSG", "5.3"),
    (opcode::RecvMsg::CODE, "IORING_OP_RECVMSG", "5.3"),
    (opcode::Send::CODE, "IORING_OP_SEND", "5.6"),
    (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL", "5.5"),
    (opcode::Connect::CODE, "IORING_OP_CONNECT", "5.5"),
    (opcode::Accept::CODE, "IORING_OP_ACCEPT", "5.5"),
    (opcode::Close::CODE, "IORING_OP_CLOSE", "5.6"),
    (opcode::Read::CODE, "IORING_OP_READ", "5.6"),
    (opcode::Recv::CODE, "IORING_OP_RECV", "5.6"),
    (opcode::Splice::CODE, "IORING_OP_SPLICE", "5.7"),
    (opcode::Shutdown::CODE, "IORING_OP_SHUTDOWN", "5.11"),
];

/// True when `IORING_OP_SEND_ZC` and `IORING_OP_SENDMSG_ZC` are there (6.0 / 6.1).
pub(crate) fn has_send_zc(ring: &IoUring) -> bool {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok()
        && probe.is_supported(opcode::SendZc::CODE)
        && probe.is_supported(opcode::SendMsgZc::CODE)
}

/// Probes every opcode and the kernel version.
///
/// # Errors
/// `Unsupported` naming the first missing opcode (or the kernel version) and the
/// kernel that has it.
pub(crate) fn check(ring: &IoUring) -> io::Result<()> {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|e| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("IORING_REGISTER_PROBE failed ({e}); io_uring needs Linux 5.6 or newer"),
        )
    })?;
    for &(code, name, kernel) in OPCODES {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "io_uring opcode {name} is not supported by this kernel (needs Linux {kernel})"
                ),
            ));
        }
    }
    if let Some((maj, min)) = kernel_version() {
        if (maj, min) < MIN_KERNEL {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "kernel {maj}.{min} lacks multishot recv / DEFER_TASKRUN; the io_uring \
                     backend needs Linux {}.{} or newer (use the epoll backend)",
                    MIN_KERNEL.0, MIN_KERNEL.1
                ),
            ));
        }
    }
    Ok(())
}

/// The running kernel's (major, minor), from `uname(2)`.
pub fn kernel_version() -> Option<(u32, u32)> {
    let u = nix::sys::utsname::uname().ok()?;
    let s = u.release().to_string_lossy();
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let maj = it.next()?.parse().ok()?;
    let min = it.next()?.parse().ok()?;
    Some((maj, min))
}

/// Advice appended to an `io_uring_setup` failure.
pub(crate) fn setup_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            " (io_uring is blocked: a seccomp profile such as Docker's default, or sysctl \
             kernel.io_uring_disabled; allow io_uring_setup or use the epoll backend)"
        }
        Some(libc::ENOSYS) => " (this kernel or sandbox has no io_uring; use the epoll backend)",
        Some(libc::ENOMEM) => {
            " (locked-memory limit too low for the ring: raise `ulimit -l`, use fewer entries, \
             or use the epoll backend)"
        }
        Some(libc::EINVAL) => {
            " (a set-up flag is unknown to this kernel: SINGLE_ISSUER/DEFER_TASKRUN need 6.1; \
             use a newer kernel or the epoll backend)"
        }
        _ => "",
    }
}
