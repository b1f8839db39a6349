//! The `user_data` token: which slot, which life of that slot, which op.
//!
//! Every SQE (io_uring) and every readiness registration (epoll) carries one
//! 64-bit token, and every [`Completion`](crate::Completion) hands it back.
//!
//! ```text
//!  63        56 55                      32 31                              0
//! +------------+--------------------------+---------------------------------+
//! |  op kind   |   generation (24 bits)   |        slot index (32 bits)     |
//! +------------+--------------------------+---------------------------------+
//! ```
//!
//! * **slot index**: the key of the registry slab entry that owns every buffer the op
//!   references. [`INTERNAL_SLOT`] (`u32::MAX`) is reserved for the worker's own ops
//!   (listener accept, wake-up read, timers), which live outside the slab.
//! * **generation**: bumped every time a slab entry is handed out again (wrapping at
//!   2^24). A completion whose generation differs from the slot's current one is
//!   *stale*: it belongs to a previous occupant and must not reach a callback.
//! * **op kind**: an [`OpKind`], so one slot can have several ops in flight and the
//!   completion says which one finished.
//!
//! The all-ones value is never produced by [`Token::new`] with a valid op kind
//! (kind `0xff` is not assigned) and is used as "no token".

/// Slot index reserved for the worker's own (non-connection) ops.
pub const INTERNAL_SLOT: u32 = u32::MAX;

/// Internal id reserved for the worker loop's own ops (wake-up read and its cancel);
/// services use other ids with [`Token::internal`].
pub const WORKER_INTERNAL_ID: u32 = GENERATION_MASK;

/// First op-kind byte free for services' own kinds ([`Token::with_raw_kind`]); kinds
/// from here up are never decoded by [`Token::kind`].
pub const SERVICE_KIND_BASE: u8 = 32;

/// Number of generation bits in a token.
pub const GENERATION_BITS: u32 = 24;

/// Mask applied to generations before they are stored in a token.
pub const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

const SLOT_SHIFT: u32 = 0;
const GEN_SHIFT: u32 = 32;
const KIND_SHIFT: u32 = 56;

/// What an op does; stored in the top byte of its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum OpKind {
    /// Multishot accept on a listener.
    Accept = 1,
    /// Multishot receive into the provided buffer pool.
    Recv = 2,
    /// Vectored send of the connection's write queue.
    Send = 3,
    /// Close of a file descriptor.
    Close = 4,
    /// Cancel every op on a file descriptor.
    Cancel = 5,
    /// A timer (worker-level or linked timeout).
    Timeout = 6,
    /// One splice (socket/file/pipe to pipe/socket).
    Splice = 7,
    /// Outbound connect.
    Connect = 8,
    /// The worker's wake-up eventfd read.
    Wake = 9,
    /// `shutdown(2)` of one direction of a socket.
    Shutdown = 10,
    /// A second splice linked after the first (pipe to destination).
    SpliceOut = 11,
    /// A no-op (used by benchmarks and probes).
    Nop = 12,
    /// Poll for readiness (used for "wait until writable").
    Poll = 13,
    /// A user timer (timer wheel key; never submitted as an op).
    Timer = 14,
    /// An op of a datagram (UDP) socket: its multishot receive, a send, its cancel
    /// or close (the slot field says which; see `ringcore_net::udp`).
    Datagram = 15,
}

impl OpKind {
    /// Decodes an op kind byte; `None` for a value no op uses.
    pub const fn from_u8(v: u8) -> Option<OpKind> {
        Some(match v {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Close,
            5 => OpKind::Cancel,
            6 => OpKind::Timeout,
            7 => OpKind::Splice,
            8 => OpKind::Connect,
            9 => OpKind::Wake,
            10 => OpKind::Shutdown,
            11 => OpKind::SpliceOut,
            12 => OpKind::Nop,
            13 => OpKind::Poll,
            14 => OpKind::Timer,
            15 => OpKind::Datagram,
            _ => return None,
        })
    }
}

/// A 64-bit `user_data` value naming (slot, generation, op kind).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u64);

impl Token {
    /// The "no token" value; never equal to a token built by [`Token::new`].
    pub const NONE: Token = Token(u64::MAX);

    /// Builds a token. The generation is masked to [`GENERATION_BITS`] bits.
    #[inline]
    pub const fn new(slot: u32, generation: u32, kind: OpKind) -> Token {
        Token(
            ((kind as u64) << KIND_SHIFT)
                | (((generation & GENERATION_MASK) as u64) << GEN_SHIFT)
                | ((slot as u64) << SLOT_SHIFT),
        )
    }

    /// A token for one of the worker's own ops (slot [`INTERNAL_SLOT`]).
    #[inline]
    pub const fn internal(id: u32, kind: OpKind) -> Token {
        Token::new(INTERNAL_SLOT, id, kind)
    }

    /// Reinterprets a raw `user_data` value.
    #[inline]
    pub const fn from_raw(raw: u64) -> Token {
        Token(raw)
    }

    /// The raw `user_data` value.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The slot index.
    #[inline]
    pub const fn slot(self) -> u32 {
        (self.0 >> SLOT_SHIFT) as u32
    }

    /// The generation (24 bits).
    #[inline]
    pub const fn generation(self) -> u32 {
        ((self.0 >> GEN_SHIFT) as u32) & GENERATION_MASK
    }

    /// The op kind, or `None` if the top byte is not a known kind (a bug).
    #[inline]
    pub const fn kind(self) -> Option<OpKind> {
        OpKind::from_u8((self.0 >> KIND_SHIFT) as u8)
    }

    /// The raw op-kind byte (service-defined kinds are `>=` [`SERVICE_KIND_BASE`]).
    #[inline]
    pub const fn raw_kind(self) -> u8 {
        (self.0 >> KIND_SHIFT) as u8
    }

    /// The same slot and generation with a raw op-kind byte.
    #[inline]
    pub const fn with_raw_kind(self, kind: u8) -> Token {
        Token((self.0 & !(0xff << KIND_SHIFT)) | ((kind as u64) << KIND_SHIFT))
    }

    /// True for the worker's own ops.
    #[inline]
    pub const fn is_internal(self) -> bool {
        self.slot() == INTERNAL_SLOT
    }

    /// The same slot and generation with another op kind.
    #[inline]
    pub const fn with_kind(self, kind: OpKind) -> Token {
        Token::new(self.slot(), self.generation(), kind)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("slot", &self.slot())
            .field("generation", &self.generation())
            .field("kind", &self.kind())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [OpKind; 15] = [
        OpKind::Accept,
        OpKind::Recv,
        OpKind::Send,
        OpKind::Close,
        OpKind::Cancel,
        OpKind::Timeout,
        OpKind::Splice,
        OpKind::Connect,
        OpKind::Wake,
        OpKind::Shutdown,
        OpKind::SpliceOut,
        OpKind::Nop,
        OpKind::Poll,
        OpKind::Timer,
        OpKind::Datagram,
    ];

    #[test]
    fn round_trips_every_field() {
        for &kind in &KINDS {
            for &slot in &[0u32, 1, 77, 65_535, 1 << 20, u32::MAX - 1, INTERNAL_SLOT] {
                for &gen in &[0u32, 1, 12_345, GENERATION_MASK] {
                    let t = Token::new(slot, gen, kind);
                    assert_eq!(t.slot(), slot);
                    assert_eq!(t.generation(), gen);
                    assert_eq!(t.kind(), Some(kind));
                    assert_eq!(Token::from_raw(t.raw()), t);
                }
            }
        }
    }

    #[test]
    fn generation_wraps_at_24_bits() {
        let t = Token::new(3, GENERATION_MASK + 1, OpKind::Recv);
        assert_eq!(t.generation(), 0);
        assert_eq!(t.slot(), 3);
        let t = Token::new(3, GENERATION_MASK + 5, OpKind::Recv);
        assert_eq!(t.generation(), 4);
    }

    #[test]
    fn kinds_do_not_bleed_into_other_fields() {
        let a = Token::new(9, 4, OpKind::Recv);
        let b = a.with_kind(OpKind::Send);
        assert_ne!(a, b);
        assert_eq!(a.slot(), b.slot());
        assert_eq!(a.generation(), b.generation());
        assert_eq!(b.kind(), Some(OpKind::Send));
    }

    #[test]
    fn raw_kinds_round_trip_and_do_not_decode() {
        let t = Token::new(7, 99, OpKind::Recv).with_raw_kind(SERVICE_KIND_BASE + 5);
        assert_eq!(t.raw_kind(), SERVICE_KIND_BASE + 5);
        assert_eq!(t.kind(), None);
        assert_eq!((t.slot(), t.generation()), (7, 99));
    }

    #[test]
    fn none_is_not_a_valid_token() {
        assert_eq!(Token::NONE.kind(), None);
        for &kind in &KINDS {
            assert_ne!(
                Token::new(INTERNAL_SLOT, GENERATION_MASK, kind),
                Token::NONE
            );
        }
    }

    #[test]
    fn unknown_kind_decodes_to_none() {
        assert_eq!(OpKind::from_u8(0), None);
        assert_eq!(OpKind::from_u8(200), None);
        assert_eq!(Token::from_raw(0).kind(), None);
    }

    #[test]
    fn internal_tokens_are_marked() {
        let t = Token::internal(2, OpKind::Wake);
        assert!(t.is_internal());
        assert!(!Token::new(2, 2, OpKind::Wake).is_internal());
    }
}
