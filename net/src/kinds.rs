//! The service-defined op kinds of `ringcore-net` (raw kinds from
//! [`SERVICE_KIND_BASE`] up, in the token's kind bits; see `ringcore_runtime::token`):
//! which op of a slot a completion belongs to, beyond the runtime's own kinds.
//!
//! ```text
//! raw kind                  | op
//! --------------------------+---------------------------------------------
//! BASE + dir*8 + FILL..SHUT | tunnel direction dir (0: client->upstream,
//!                           |   1: upstream->client): fill, drain, polls, shutdown
//! BASE + 16 / 17 / 18       | tunnel upstream connect / cancel / close
//! BASE + 24                 | hang-up guard poll (hangup.rs)
//! ```

use ringcore_runtime::token::SERVICE_KIND_BASE;
use ringcore_runtime::{Io, OpKind, Token};

/// Tunnel op within a direction: the socket -> pipe splice.
pub(crate) const FILL: u8 = 0;
pub(crate) const DRAIN: u8 = 1;
pub(crate) const POLL_IN: u8 = 2;
pub(crate) const POLL_OUT: u8 = 3;
pub(crate) const SHUT: u8 = 4;
/// Raw kind of the upstream connect.
pub(crate) const K_CONNECT: u8 = SERVICE_KIND_BASE + 16;
/// Raw kind of the upstream cancel.
pub(crate) const K_UP_CANCEL: u8 = SERVICE_KIND_BASE + 17;
/// Raw kind of the upstream close.
pub(crate) const K_UP_CLOSE: u8 = SERVICE_KIND_BASE + 18;

pub(crate) fn kind(dir: usize, what: u8) -> u8 {
    SERVICE_KIND_BASE + dir as u8 * 8 + what
}

/// True for a raw kind that belongs to a tunnel.
pub(crate) fn is_tunnel_kind(k: u8) -> bool {
    (SERVICE_KIND_BASE..=K_UP_CLOSE).contains(&k)
}

/// Raw op kind of the guard's poll (after the tunnel's kinds).
pub(crate) const K_GUARD: u8 = SERVICE_KIND_BASE + 24;

/// True for a cancel that posts no completion on success (`CQE_SKIP_SUCCESS`, see
/// [`Io::cancel_posts_success`]): it is not counted in flight, and a failure
/// completion of it (`-ENOENT`: its ops had finished) finishes nothing. The cancelled
/// ops' own completions (`-ECANCELED`) still arrive and are counted as usual, so "the
/// last CQE of the slot" stays exact.
pub(crate) fn uncounted_cancel(io: &Io, tok: Token) -> bool {
    tok.kind() == Some(OpKind::Cancel) && !io.cancel_posts_success()
}
