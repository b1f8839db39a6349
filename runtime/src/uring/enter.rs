//! The raw `io_uring_enter` / `io_uring_register` calls the io-uring crate does not
//! keep for us: entering through a registered ring fd, and a ring-less `MSG_RING`.
//!
//! * Registered ring fd (`IORING_REGISTER_RING_FDS`, Linux 5.18): the ring's fd is
//!   stored in the calling thread's io_uring context, and `io_uring_enter` is passed
//!   its index with `IORING_ENTER_REGISTERED_RING`, so the kernel skips the fd table
//!   lookup (`fdget`/`fdput`, atomic when the fd table is shared by several threads)
//!   on every enter. io-uring 0.7.15's `Submitter::register_ring_fd` keeps the index
//!   in the `Submitter` value, which `IoUring::submitter()` makes anew on every call,
//!   so the runtime registers and enters itself.
//! * Ring-less `MSG_RING` (`IORING_REGISTER_SEND_MSG_RING`, Linux 6.13): posts a
//!   completion into another ring from any thread, with no ring of the sender's.

use io_uring::squeue;
use std::io;
use std::os::fd::RawFd;

const IORING_REGISTER_RING_FDS: libc::c_uint = 20;
const IORING_UNREGISTER_RING_FDS: libc::c_uint = 21;
const IORING_REGISTER_SEND_MSG_RING: libc::c_uint = 31;
const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_ENTER_EXT_ARG: u32 = 8;
const IORING_ENTER_REGISTERED_RING: u32 = 16;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// `struct io_uring_getevents_arg`.
#[repr(C)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// `struct __kernel_timespec`.
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

fn register(fd: RawFd, op: libc::c_uint, arg: *mut libc::c_void, nr: u32) -> io::Result<i32> {
    // SAFETY: io_uring_register with an argument the caller built for `op`; the kernel
    // reads (and for RING_FDS writes) at most `nr` entries of it during the call.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_register, fd, op, arg, nr) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

/// Registers `ring_fd` in the calling thread's registered-ring table and returns its
/// index. The registration belongs to the calling thread: only it may enter with it.
pub(crate) fn register_ring_fd(ring_fd: RawFd) -> io::Result<u32> {
    let mut up = RsrcUpdate {
        offset: u32::MAX, // any free index
        resv: 0,
        data: ring_fd as u64,
    };
    register(
        ring_fd,
        IORING_REGISTER_RING_FDS,
        (&mut up as *mut RsrcUpdate).cast(),
        1,
    )?;
    Ok(up.offset)
}

/// Undoes [`register_ring_fd`] (on the thread that registered).
pub(crate) fn unregister_ring_fd(ring_fd: RawFd, index: u32) -> io::Result<()> {
    let mut up = RsrcUpdate {
        offset: index,
        resv: 0,
        data: 0,
    };
    register(
        ring_fd,
        IORING_UNREGISTER_RING_FDS,
        (&mut up as *mut RsrcUpdate).cast(),
        1,
    )
    .map(drop)
}

/// `io_uring_enter` through the registered index: submit `to_submit` SQEs and, with
/// `getevents`, wait for `want` completions or `timeout`.
pub(crate) fn enter_registered(
    index: u32,
    to_submit: u32,
    want: u32,
    getevents: bool,
    timeout: Option<std::time::Duration>,
) -> io::Result<()> {
    let mut flags = IORING_ENTER_REGISTERED_RING;
    if getevents || want > 0 {
        flags |= IORING_ENTER_GETEVENTS;
    }
    let ts;
    let arg;
    let (argp, argsz): (*const libc::c_void, usize) = match timeout {
        Some(t) => {
            ts = KernelTimespec {
                tv_sec: t.as_secs() as i64,
                tv_nsec: t.subsec_nanos() as i64,
            };
            arg = GeteventsArg {
                sigmask: 0,
                sigmask_sz: 0,
                min_wait_usec: 0,
                ts: &ts as *const KernelTimespec as u64,
            };
            flags |= IORING_ENTER_EXT_ARG;
            (
                (&arg as *const GeteventsArg).cast(),
                std::mem::size_of::<GeteventsArg>(),
            )
        }
        None => (std::ptr::null(), 0),
    };
    // SAFETY: io_uring_enter on this thread's registered ring index; `arg` and `ts`
    // (when passed) live until the call returns, and the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            index,
            to_submit,
            want,
            flags,
            argp,
            argsz,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Posts a completion with `user_data` (result 0) into the ring `target` from any
/// thread, without a ring of the caller's (Linux 6.13). `EINVAL` means the kernel
/// lacks it.
pub(crate) fn send_msg_ring(target: RawFd, user_data: u64) -> io::Result<()> {
    let mut sqe: squeue::Entry =
        io_uring::opcode::MsgRingData::new(io_uring::types::Fd(target), 0, user_data, None).build();
    register(
        -1,
        IORING_REGISTER_SEND_MSG_RING,
        (&mut sqe as *mut squeue::Entry).cast(),
        1,
    )
    .map(drop)
}
