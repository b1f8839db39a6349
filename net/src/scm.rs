//! `SCM_RIGHTS` control-message helpers (`fdpass.rs` receives with them, `wqueue.rs`
//! sends the fds a queued segment carries).

use std::os::fd::OwnedFd;

/// `CMSG_SPACE` for `n` fds.
pub(crate) fn cmsg_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    unsafe { libc::CMSG_SPACE((n * std::mem::size_of::<libc::c_int>()) as u32) as usize }
}

/// Control data carrying `fds` as one `SCM_RIGHTS` message (8-byte aligned words).
pub(crate) fn rights_control(fds: &[OwnedFd]) -> Vec<u64> {
    use std::os::fd::AsRawFd;
    let space = cmsg_space(fds.len());
    let mut ctl = vec![0u64; space.div_ceil(8)];
    let mut msg: libc::msghdr = zeroed_msghdr();
    msg.msg_control = ctl.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` names `ctl`, which holds `space` bytes: room for the one header and
    // `fds.len()` ints that CMSG_SPACE computed; CMSG_FIRSTHDR is therefore non-null and
    // CMSG_DATA points inside `ctl`. Unaligned writes: CMSG_DATA is int-aligned only.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as _;
        let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
        for (i, fd) in fds.iter().enumerate() {
            data.add(i).write_unaligned(fd.as_raw_fd());
        }
    }
    ctl
}

/// An empty `msghdr`.
pub(crate) fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain data (pointers and integers); all-zero is a valid,
    // empty header.
    unsafe { std::mem::zeroed() }
}
