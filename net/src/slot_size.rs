//! The memory an idle connection costs: its slot in the worker's registry.
//!
//! Issue 12 item 7 bounds a server at ≤ 256 B of RSS per idle connection (15k
//! connections, after each did a round trip; `benches/scripts/idle-after-traffic.py`).
//! The slot is most of that, so its size is pinned here: [`CONN_CORE_MAX`] is checked
//! at compile time, the whole slot in a unit test. Raising either bound is a decision
//! to make on purpose (move a rarely used field behind a `Box`, or shrink it), with a
//! re-run of that script; between `d670034` and the fix these bounds came with, the
//! slot grew from 216 to 288 B unnoticed (two more `Option<TimerHandle>` of 24 B each
//! and the TLS layer pointer). History: 176 B after the 8-byte `TimerHandle`, 168 B
//! with the guard count in the flags, 176 B again with sock13's `fdrecv` pointer
//! (`Conn::receive_fds`), accepted on purpose: 208 B per echo slot still measures
//! under the 256 B target on both backends; 160 B (echo slot 192 B) since the
//! `pending` input moved behind a pointer (`pending.rs`: 24 -> 8 B, freed when
//! emptied). Next candidates if it must shrink: the rarely used `Option<Box<_>>`
//! extension pointers.

use crate::conn::ConnCore;

/// Upper bound of `size_of::<ConnCore>()`, the per-connection state apart from the
/// user's handler.
pub(crate) const CONN_CORE_MAX: usize = 160;

const _: () = assert!(
    std::mem::size_of::<ConnCore>() <= CONN_CORE_MAX,
    "ConnCore grew: see net/src/slot_size.rs"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnSlot;
    use crate::slot_handler::SlotHandler;
    use ringcore_runtime::registry::Slot;
    use std::mem::size_of;

    /// The echo example's handler (an optional idle timeout).
    struct Echo {
        _idle: Option<std::time::Duration>,
    }

    /// Upper bound of a registry slot holding the echo example's handler.
    const ECHO_SLOT_MAX: usize = 192;

    #[test]
    fn idle_connection_slot_stays_small() {
        let slot = size_of::<Slot<ConnSlot<SlotHandler<Echo>>>>();
        assert!(
            slot <= ECHO_SLOT_MAX,
            "slot is {slot} B, bound {ECHO_SLOT_MAX} B (ConnCore {} B, Option<TimerHandle> {} B)",
            size_of::<ConnCore>(),
            size_of::<Option<ringcore_runtime::TimerHandle>>(),
        );
        // An empty handler adds nothing beyond the slot header and the enum tag.
        assert!(size_of::<Slot<ConnSlot<SlotHandler<()>>>>() <= CONN_CORE_MAX + 24);
    }
}
