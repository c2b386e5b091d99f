//! A safe prefetch hint, so dataplane crates that forbid `unsafe` (conntrack, classify) can
//! ask the CPU to start loading a table slot a few packets ahead of its use.
//!
//! Owns one function. Invariant: a prefetch is only a hint; it never faults, never changes
//! program semantics, and compiles to nothing on architectures other than x86_64.

#![no_std]

/// Hint the CPU to load the cache line holding `*r` into all cache levels (`PREFETCHT0`).
/// Only the first cache line of `T` is requested.
#[inline(always)]
pub fn prefetch_read<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint that never faults and has no architectural effect, for any
    // address; `r` is a valid reference anyway. SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    use super::prefetch_read;

    #[test]
    fn prefetch_leaves_values_unchanged() {
        let table = [7u64; 64];
        for slot in &table {
            prefetch_read(slot);
        }
        let s = "abc";
        prefetch_read(&s);
        assert_eq!(table.iter().sum::<u64>(), 7 * 64);
        assert_eq!(s, "abc");
    }
}
