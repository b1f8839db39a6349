//! CPU pinning and the fd limit, through `nix` (no `unsafe`).

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::Pid;
use std::io;

/// CPUs this process may run on (from `sched_getaffinity`), in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .collect(),
        Err(_) => vec![0],
    }
}

/// Pins the calling thread to `cpu`.
///
/// # Errors
/// The `sched_setaffinity` error (e.g. `EINVAL` for a CPU outside the allowed set, or
/// at or above `CPU_SETSIZE`).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    // Pid 0: the calling thread.
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
///
/// # Errors
/// The `getrlimit`/`setrlimit` error.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        return Ok(hard);
    }
    Ok(soft)
}
