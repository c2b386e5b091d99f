//! Placeholder until `bindings/prefetch` exists: a no-op with the same
//! signature as `bulkhead_prefetch::prefetch_read`.

/// Hint that `_r` will be read soon (no-op placeholder).
#[inline(always)]
pub fn prefetch_read<T>(_r: &T) {}
