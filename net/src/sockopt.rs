//! Socket options `nix` does not cover, on raw `libc`: `TCP_FASTOPEN` (server queue),
//! `TCP_NOTSENT_LOWAT`, `TCP_DEFER_ACCEPT`, `SO_INCOMING_CPU` and the classic-BPF
//! `SO_ATTACH_REUSEPORT_CBPF` program. Everything else goes through `nix`'s typed
//! `setsockopt`/`getsockopt` in [`socket`](crate::socket).
//!
//! [`get_int`] reads any `int` option back, for tests and for users checking what the
//! kernel made of a setting (it rounds buffer sizes and `TCP_DEFER_ACCEPT`).

use std::io;
use std::os::fd::RawFd;

fn named(e: io::Error, op: &str, what: &str, fd: RawFd) -> io::Error {
    io::Error::new(e.kind(), format!("{op}({what}) on fd {fd}: {e}"))
}

/// `setsockopt` of one `int`; the error names the option and fd.
///
/// # Errors
/// The kernel's error (`ENOPROTOOPT` for an option this kernel lacks).
pub fn set_int(fd: RawFd, level: i32, name: i32, value: i32, what: &str) -> io::Result<()> {
    let v: libc::c_int = value;
    // SAFETY: `v` is a live c_int for the duration of the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(named(io::Error::last_os_error(), "setsockopt", what, fd));
    }
    Ok(())
}

/// `getsockopt` of one `int` (`what` names it in the error).
///
/// # Errors
/// The kernel's error.
pub fn get_int(fd: RawFd, level: i32, name: i32, what: &str) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` is a live c_int of `len` bytes; the kernel writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(named(io::Error::last_os_error(), "getsockopt", what, fd));
    }
    Ok(v)
}

/// `SKF_AD_OFF + SKF_AD_CPU`: the classic-BPF ancillary load of the current CPU.
const SKF_AD_CPU: u32 = (-0x1000i32) as u32 + 36;

fn insn(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The classic-BPF program for `SO_ATTACH_REUSEPORT_CBPF`: the index (in bind order) of
/// the listener whose worker runs on the CPU handling the incoming SYN, i.e. `i` where
/// `cpus[i]` is that CPU, else `cpu % cpus.len()`.
pub fn cpu_steering_program(cpus: &[usize]) -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_ALU, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_MOD, BPF_RET, BPF_W};
    let n = cpus.len().max(1) as u32;
    let mut p = vec![insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_CPU)];
    for (i, &cpu) in cpus.iter().enumerate() {
        // if A == cpu { return i } (else skip the return)
        p.push(insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, cpu as u32));
        p.push(insn(BPF_RET | BPF_K, 0, 0, i as u32));
    }
    p.push(insn(BPF_ALU | BPF_MOD | BPF_K, 0, 0, n));
    p.push(insn(libc::BPF_RET | libc::BPF_A, 0, 0, 0));
    p
}

/// Attaches [`cpu_steering_program`] to the `SO_REUSEPORT` group of `fd` (any listener
/// of the group, after `listen`).
///
/// # Errors
/// The kernel's error (`EINVAL` if `fd` is in no reuseport group).
pub fn attach_cpu_steering(fd: RawFd, cpus: &[usize]) -> io::Result<()> {
    let prog = cpu_steering_program(cpus);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` and the instructions it points at live across the call; the
    // kernel copies the program before returning.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(named(
            io::Error::last_os_error(),
            "setsockopt",
            "SO_ATTACH_REUSEPORT_CBPF",
            fd,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_shape() {
        let p = cpu_steering_program(&[3, 1]);
        assert_eq!(p.len(), 1 + 2 * 2 + 2);
        assert_eq!(p[1].k, 3);
        assert_eq!(p[2].k, 0);
        assert_eq!(p[3].k, 1);
        assert_eq!(p[4].k, 1);
        assert_eq!(p[5].k, 2);
    }
}
