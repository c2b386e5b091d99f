//! `bulkhead-hugemem`: ask Linux to back a large table with transparent huge
//! pages (`madvise(MADV_HUGEPAGE)`), so random accesses into it (a connection
//! table of a million entries) do not also miss the TLB on every access.
//!
//! Call [`advise_huge`] on a `Vec` after reserving its capacity and *before*
//! filling it: pages are backed when first touched. It only advises: where
//! transparent huge pages are off, unsupported or not available, the table
//! works exactly the same on normal pages. Lives in `bindings/` because it
//! calls into libc.

/// Size of an x86-64 / aarch64 transparent huge page.
pub const HUGE_PAGE: usize = 2 << 20;

/// Advise huge pages for the whole 2 MiB-aligned part of `v`'s allocation
/// (its capacity, not only its length). Returns whether the kernel accepted
/// the advice for a non-empty range.
pub fn advise_huge<T>(v: &mut Vec<T>) -> bool {
    let bytes = v.capacity().saturating_mul(core::mem::size_of::<T>());
    let start = v.as_mut_ptr() as usize;
    let first = start.next_multiple_of(HUGE_PAGE);
    let end = (start + bytes) & !(HUGE_PAGE - 1);
    if bytes < HUGE_PAGE || end <= first {
        return false;
    }
    advise(first, end - first)
}

#[cfg(target_os = "linux")]
fn advise(addr: usize, len: usize) -> bool {
    // SAFETY: [addr, addr + len) lies inside an allocation owned by the
    // caller's Vec (page-aligned, within its capacity). MADV_HUGEPAGE changes
    // only how the kernel backs those pages, never their contents, mapping or
    // validity, so no Rust invariant is affected.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn advise(_addr: usize, _len: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_are_left_alone() {
        let mut v: Vec<u64> = Vec::with_capacity(1024);
        assert!(!advise_huge(&mut v));
    }

    #[test]
    fn large_tables_are_advised_and_keep_working() {
        let mut v: Vec<u64> = Vec::with_capacity(4 * HUGE_PAGE / 8);
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let advised = advise_huge(&mut v);
        if thp.contains("[always]") || thp.contains("[madvise]") {
            assert!(
                advised,
                "THP is available ({thp:?}) but the advice was refused"
            );
        }
        v.resize(4 * HUGE_PAGE / 8, 7);
        assert!(v.iter().all(|&x| x == 7));
    }
}
