//! `Completion`: what both backends hand back for every op.

use crate::token::Token;
use std::io;

/// Completion flag: more completions will follow for this (multishot) op.
/// Same value as `IORING_CQE_F_MORE`.
pub const F_MORE: u32 = 1 << 1;
/// Completion flag: the result's bytes are in a pool buffer whose id is in the
/// upper 16 bits of the flags. Same value as `IORING_CQE_F_BUFFER`.
pub const F_BUFFER: u32 = 1 << 0;
/// Completion flag: the socket had more data queued after this receive.
/// Same value as `IORING_CQE_F_SOCK_NONEMPTY`.
pub const F_SOCK_NONEMPTY: u32 = 1 << 2;
/// Completion flag: a zero-copy send notification. Same value as `IORING_CQE_F_NOTIF`.
pub const F_NOTIF: u32 = 1 << 3;
/// Completion flag (runtime-internal, io_uring): the pool buffer is from the datagram
/// receives' own group (`uring/dgram_bufs.rs`), not the stream receives' ring.
pub(crate) const F_DGRAM_BUF: u32 = 1 << 15;
const BUFFER_SHIFT: u32 = 16;

/// The outcome of one op, identical in shape on io_uring and epoll.
///
/// `result` follows the kernel convention: a non-negative byte count, file
/// descriptor or zero on success, `-errno` on failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The token the op was submitted with.
    pub token: Token,
    /// `>= 0` on success, `-errno` on failure.
    pub result: i32,
    /// `F_*` flags (and the buffer id in the upper 16 bits when `F_BUFFER` is set).
    pub flags: u32,
}

impl Completion {
    /// A completion with no flags.
    pub const fn new(token: Token, result: i32) -> Completion {
        Completion {
            token,
            result,
            flags: 0,
        }
    }

    /// True if the multishot op that produced this completion is still armed, or (a
    /// zero-copy send's result) if its notification (`F_NOTIF`) is still to come.
    #[inline]
    pub const fn more(&self) -> bool {
        self.flags & F_MORE != 0
    }

    /// The pool buffer holding this completion's bytes, if any.
    #[inline]
    pub const fn buffer(&self) -> Option<u16> {
        if self.flags & F_BUFFER != 0 {
            Some((self.flags >> BUFFER_SHIFT) as u16)
        } else {
            None
        }
    }

    /// True when the buffer is from the datagram receives' own group (io_uring with
    /// incremental stream buffers).
    #[inline]
    pub(crate) const fn dgram_buf(&self) -> bool {
        self.flags & F_DGRAM_BUF != 0
    }

    /// Flags value naming pool buffer `bid` (used by the epoll backend).
    #[inline]
    pub const fn buffer_flags(bid: u16) -> u32 {
        F_BUFFER | ((bid as u32) << BUFFER_SHIFT)
    }

    /// The result as `io::Result`: `Ok(n)` for `n >= 0`, the errno otherwise.
    #[inline]
    pub fn io_result(&self) -> io::Result<usize> {
        if self.result >= 0 {
            Ok(self.result as usize)
        } else {
            Err(io::Error::from_raw_os_error(-self.result))
        }
    }

    /// The errno, if the op failed.
    #[inline]
    pub const fn errno(&self) -> Option<i32> {
        if self.result < 0 {
            Some(-self.result)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::OpKind;

    #[test]
    fn buffer_id_round_trips() {
        let t = Token::new(1, 1, OpKind::Recv);
        for bid in [0u16, 1, 511, u16::MAX] {
            let c = Completion {
                token: t,
                result: 10,
                flags: Completion::buffer_flags(bid) | F_MORE,
            };
            assert_eq!(c.buffer(), Some(bid));
            assert!(c.more());
        }
        assert_eq!(Completion::new(t, 0).buffer(), None);
    }

    #[test]
    fn errors_decode() {
        let c = Completion::new(Token::NONE, -libc::ECONNRESET);
        assert_eq!(c.errno(), Some(libc::ECONNRESET));
        assert_eq!(
            c.io_result().unwrap_err().raw_os_error(),
            Some(libc::ECONNRESET)
        );
        assert_eq!(Completion::new(Token::NONE, 7).io_result().unwrap(), 7);
    }
}
