//! `bulkhead-alloc-counter`: a global allocator that forwards to the system
//! allocator and counts allocations made by threads that opted in. Tests use
//! it to prove a hot loop allocates nothing:
//!
//! ```
//! use bulkhead_alloc_counter::{count_allocations, CountingAllocator};
//!
//! #[global_allocator]
//! static ALLOC: CountingAllocator = CountingAllocator;
//!
//! let (n, v) = count_allocations(|| vec![0u8; 16]);
//! assert_eq!(n, 1);
//! let (n, len) = count_allocations(|| v.len());
//! assert_eq!((n, len), (0, 16));
//! ```
//!
//! It lives in `bindings/` because implementing `GlobalAlloc` is `unsafe`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations (including reallocations) of watching threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

fn note() {
    // `try_with`: thread-locals may be gone during thread teardown.
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded under the caller's contract for `alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded under the caller's contract for `alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded under the caller's contract for `realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded under the caller's contract for `dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Run `f` on this thread and return how many allocations it made (only
/// meaningful when [`CountingAllocator`] is the global allocator).
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (u64, R) {
    COUNT.with(|c| c.set(0));
    WATCHING.with(|w| w.set(true));
    let r = f();
    WATCHING.with(|w| w.set(false));
    (COUNT.with(|c| c.get()), r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOC: CountingAllocator = CountingAllocator;

    #[test]
    fn counts_only_inside_the_closure() {
        let (n, v) = count_allocations(|| vec![1u8; 100]);
        assert_eq!(n, 1);
        let (n, _) = count_allocations(|| v.len());
        assert_eq!(n, 0);
        let (n, _) = count_allocations(|| {
            let mut s = String::new();
            for _ in 0..100 {
                s.push_str("grow");
            }
            s
        });
        assert!(n >= 2, "growth reallocates: {n}");
    }
}
