//! The slab of slots that own in-flight ops.
//!
//! A slot holds a value `T` (a connection, for `ringcore-net`) together with its
//! generation, the number of ops the kernel still holds for it, and whether it has
//! been closed. The rules (ARCHITECTURE.md, decision 2):
//!
//! * a token is built from the slot's index and generation ([`Registry::token`]);
//! * every submitted op increments `in_flight`, every *final* completion decrements it;
//! * a slot is removed only when it is closed **and** `in_flight == 0`
//!   ([`Registry::release_if_done`]), so buffers the kernel may still touch are never
//!   freed early;
//! * a completion whose generation does not match the slot's is stale
//!   ([`Registry::lookup`] returns `None`).

use crate::segslab::SegSlab;
use crate::token::{OpKind, Token, GENERATION_MASK};

/// One registry entry.
#[derive(Debug)]
pub struct Slot<T> {
    generation: u32,
    /// Ops in flight (low 31 bits) and the closed mark (bit 31), packed to keep an
    /// idle connection's slot small.
    state: u32,
    /// The owner's value (a connection, an outbound connect, ...).
    pub value: T,
}

impl<T> Slot<T> {
    /// Ops the kernel still holds for this slot.
    pub fn in_flight(&self) -> u32 {
        self.state & !CLOSED
    }

    /// True once [`Registry::mark_closed`] was called.
    pub fn is_closed(&self) -> bool {
        self.state & CLOSED != 0
    }

    /// The slot's current generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

const CLOSED: u32 = 1 << 31;

/// A slab of [`Slot`]s keyed by token.
#[derive(Debug)]
pub struct Registry<T> {
    /// Segmented, so growth never leaves a freed copy behind (segslab.rs).
    slab: SegSlab<Slot<T>>,
    next_generation: u32,
    stale: u64,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<T> Registry<T> {
    /// An empty registry. `cap` is accepted for compatibility and ignored: slots live
    /// in fixed segments allocated as they are needed, and are never moved.
    pub fn with_capacity(cap: usize) -> Self {
        let _ = cap;
        Registry {
            slab: SegSlab::new(),
            next_generation: 0,
            stale: 0,
        }
    }

    /// Inserts a value and returns its slot index. The slot starts open with no ops.
    ///
    /// # Panics
    /// If the slab would need a slot index of `u32::MAX` or more (the reserved
    /// internal slot); with the 20k-fd limits of real deployments this is unreachable.
    pub fn insert(&mut self, value: T) -> u32 {
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        let key = self.slab.insert(Slot {
            generation,
            state: 0,
            value,
        });
        assert!(key < crate::token::INTERNAL_SLOT as usize, "registry full");
        key as u32
    }

    /// The token for an op of `kind` on slot `index`.
    ///
    /// # Panics
    /// If `index` is vacant.
    #[inline]
    pub fn token(&self, index: u32, kind: OpKind) -> Token {
        Token::new(index, self.slab[index as usize].generation, kind)
    }

    /// Counts one more op in flight on `index` (call right before submitting it).
    #[inline]
    pub fn op_submitted(&mut self, index: u32) {
        let s = &mut self.slab[index as usize];
        debug_assert!(s.in_flight() < CLOSED - 1, "in-flight count overflow");
        s.state += 1;
    }

    /// Counts one op as finished on `index` (its final completion arrived).
    #[inline]
    pub fn op_finished(&mut self, index: u32) {
        let s = &mut self.slab[index as usize];
        debug_assert!(s.in_flight() > 0, "op_finished without op in flight");
        if s.in_flight() > 0 {
            s.state -= 1;
        }
    }

    /// The slot a completion belongs to, or `None` if the token is stale (vacant slot
    /// or generation mismatch). Stale lookups are counted.
    #[inline]
    pub fn lookup(&mut self, token: Token) -> Option<&mut Slot<T>> {
        match self.slab.get_mut(token.slot() as usize) {
            Some(s) if s.generation == token.generation() => Some(s),
            _ => {
                self.stale += 1;
                None
            }
        }
    }

    /// Like [`lookup`](Self::lookup) but does not count a miss.
    #[inline]
    pub fn get_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        self.slab.get_mut(index as usize)
    }

    /// Shared access to a slot by index.
    #[inline]
    pub fn get(&self, index: u32) -> Option<&Slot<T>> {
        self.slab.get(index as usize)
    }

    /// Marks a slot closed: no new ops should be submitted for it.
    pub fn mark_closed(&mut self, index: u32) {
        self.slab[index as usize].state |= CLOSED;
    }

    /// Removes and returns the slot's value if it is closed and has no op in flight.
    pub fn release_if_done(&mut self, index: u32) -> Option<T> {
        let s = self.slab.get(index as usize)?;
        if s.state == CLOSED {
            self.slab.try_remove(index as usize).map(|s| s.value)
        } else {
            None
        }
    }

    /// Number of occupied slots.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Stale completions seen so far.
    pub fn stale_count(&self) -> u64 {
        self.stale
    }

    /// Indices of every occupied slot (for shutdown sweeps).
    pub fn indices(&self) -> Vec<u32> {
        self.slab.keys().map(|k| k as u32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_generation_is_rejected() {
        let mut r = Registry::default();
        let a = r.insert("a");
        let old = r.token(a, OpKind::Recv);
        r.mark_closed(a);
        assert_eq!(r.release_if_done(a), Some("a"));
        let b = r.insert("b");
        assert_eq!(a, b, "slab reuses the freed index");
        assert!(r.lookup(old).is_none(), "old generation must be stale");
        assert_eq!(r.stale_count(), 1);
        let new = r.token(b, OpKind::Recv);
        assert_eq!(r.lookup(new).map(|s| s.value), Some("b"));
    }

    #[test]
    fn slot_outlives_close_until_ops_finish() {
        let mut r = Registry::default();
        let a = r.insert(1u8);
        r.op_submitted(a);
        r.op_submitted(a);
        r.mark_closed(a);
        assert_eq!(r.release_if_done(a), None);
        r.op_finished(a);
        assert_eq!(r.release_if_done(a), None);
        r.op_finished(a);
        assert_eq!(r.release_if_done(a), Some(1));
        assert!(r.is_empty());
    }

    #[test]
    fn open_slot_is_never_released() {
        let mut r = Registry::default();
        let a = r.insert(());
        assert_eq!(r.release_if_done(a), None);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn vacant_token_is_stale() {
        let mut r: Registry<()> = Registry::default();
        assert!(r.lookup(Token::new(5, 0, OpKind::Send)).is_none());
    }
}
