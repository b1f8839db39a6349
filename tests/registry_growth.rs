//! The connection registry grows without freeing anything (idle memory, issue 12 item
//! 7). A `Vec`-backed slab frees its old block at every doubling; glibc kept the last
//! one resident in the worker's arena (2.1 MB at 15k connections: 140 B per idle
//! connection that `malloc_trim` could not return). This binary counts the bytes the
//! registry frees while it grows, with a counting allocator local to this test binary
//! (per thread, so other tests' threads do not disturb it).

use ringcore_runtime::registry::Registry;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static FREED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` unchanged; the thread-local counter
// is a const-initialised `Cell` (no allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = FREED.try_with(|f| f.set(f.get() + layout.size()));
        // SAFETY: forwarded; `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        // A moving realloc frees the old block: count it as freed.
        let _ = FREED.try_with(|f| f.set(f.get() + layout.size()));
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A connection-sized value (the echo example's slot is 200 B).
struct Conn([u64; 24]);

#[test]
fn growing_to_15k_slots_frees_nothing() {
    let mut r = Registry::default();
    let before = FREED.with(Cell::get);
    for i in 0..15_000u64 {
        r.insert(Conn([i; 24]));
    }
    let freed = FREED.with(Cell::get) - before;
    assert_eq!(r.len(), 15_000);
    assert!(
        freed < 64 * 1024,
        "the registry freed {freed} B while growing: old copies of its storage stay \
         resident in glibc's arena after a burst"
    );
    let idx = r.indices();
    assert_eq!(idx.len(), 15_000);
    assert!(r.get(14_999).is_some_and(|s| s.value.0[0] == 14_999));
}
