//! `send_file` under TLS: the file is read in bounded chunks and encrypted in user
//! space (splice would move the plaintext past the TLS layer). A chunk is first read
//! with `preadv2(RWF_NOWAIT)`, which succeeds from the page cache without blocking;
//! when it would block (the data is not cached, or the filesystem does not support
//! `RWF_NOWAIT`), the read runs on the worker's offload thread instead.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Bytes read (and encrypted) per chunk.
pub(crate) const CHUNK: usize = 64 * 1024;
/// No new chunk is read while this many output bytes are queued on the socket: a file
/// never sits in memory as a whole, and a slow reader slows the reads.
pub(crate) const WINDOW: usize = 256 * 1024;

/// A chunk read off the worker, with its file handed back.
pub(crate) struct FileRead {
    pub(crate) file: File,
    pub(crate) data: io::Result<Vec<u8>>,
}

/// Reads up to `len` bytes at `offset` if that does not block: `Ok(None)` if it would.
/// An empty buffer means end of file.
pub(crate) fn read_nowait(file: &File, offset: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::<u8>::with_capacity(len);
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    // SAFETY: `iov` points at `len` bytes of `buf`'s spare capacity, alive for the call;
    // preadv2 writes at most that many.
    let n = unsafe {
        libc::preadv2(
            file.as_raw_fd(),
            &iov,
            1,
            offset as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => Ok(None),
            Some(libc::EINTR) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: the kernel initialised the first `n` bytes (n <= len <= capacity).
    unsafe { buf.set_len(n as usize) };
    Ok(Some(buf))
}

/// The blocking read, on the offload thread.
pub(crate) fn read_blocking(file: File, offset: u64, len: usize) -> FileRead {
    let mut buf = vec![0u8; len];
    let data = loop {
        match file.read_at(&mut buf, offset) {
            Ok(n) => {
                buf.truncate(n);
                break Ok(buf);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    FileRead { file, data }
}
