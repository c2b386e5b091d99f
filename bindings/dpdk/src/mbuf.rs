//! `Mbuf` (one owned packet buffer) and `MbufBurst` (a fixed-capacity array of them).
//!
//! Per-packet accessors read the `rte_mbuf` fields directly from Rust (no FFI call per
//! packet); `tests::layout_matches_c` checks those fields against the C compiler's offsets.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use bulkhead_dpdk_sys as sys;

use crate::error::DpdkError;

/// One packet buffer, owned: dropping it returns it to its pool; handing it to a device or a
/// ring consumes it. `Send` (an mbuf may move between cores) but not `Sync`.
///
/// Only the first segment's data is exposed by [`data`](Self::data); DPDK ports configured by
/// this crate never receive multi-segment packets (no scatter offload is requested).
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf is a plain buffer owned by whoever holds the pointer; DPDK frees it correctly
// from any thread (the mempool is multi-producer/multi-consumer).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must point to a valid, initialised `rte_mbuf` with reference count 1 that nothing
    /// else will use or free, from a pool that outlives it (the crate's `Mempool` guarantees
    /// the latter by leaking a pool dropped with mbufs outstanding).
    #[inline]
    pub(crate) unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Give up ownership: the caller must free or hand the mbuf to DPDK.
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// The raw pointer, still owned by `self`.
    #[inline]
    pub fn as_raw(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline]
    fn hdr(&self) -> &sys::rte_mbuf {
        // SAFETY: `self` owns a valid mbuf (from_raw contract) and nobody else touches it while
        // we hold `&self`.
        unsafe { self.0.as_ref() }
    }

    /// The packet data in this (first) segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let h = self.hdr();
        // SAFETY: DPDK keeps `data_off + data_len <= buf_len` and `buf_addr` valid for `buf_len`
        // bytes for the life of the mbuf; we own it, so nothing writes the data meanwhile.
        unsafe {
            std::slice::from_raw_parts(
                h.buf_addr.cast::<u8>().add(usize::from(h.data_off)),
                usize::from(h.data_len),
            )
        }
    }

    /// The packet data in this (first) segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let p = self.0.as_ptr();
        // SAFETY: as in `data`; `&mut self` gives exclusive access to the buffer.
        unsafe {
            let (addr, off, len) = ((*p).buf_addr, (*p).data_off, (*p).data_len);
            std::slice::from_raw_parts_mut(
                addr.cast::<u8>().add(usize::from(off)),
                usize::from(len),
            )
        }
    }

    /// Bytes of data in this segment (`data_len`), the length of [`data`](Self::data).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.hdr().data_len)
    }

    /// True when the segment holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.hdr().data_len == 0
    }

    /// Total packet length over all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.hdr().pkt_len
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// The input port the packet was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.hdr().port
    }

    /// The RSS hash the NIC computed, if it delivered one (`RTE_MBUF_F_RX_RSS_HASH`).
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let h = self.hdr();
        if h.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: every variant of the hash union is plain integers; the flag says `rss` is set.
        Some(unsafe { h.__bindgen_anon_2.hash.rss })
    }

    /// Free bytes before the data in this segment.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.hdr().data_off)
    }

    /// Free bytes after the data in this segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let h = self.hdr();
        usize::from(h.buf_len)
            .saturating_sub(usize::from(h.data_off))
            .saturating_sub(usize::from(h.data_len))
    }

    /// Append `bytes` at the end of the packet.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), DpdkError> {
        let no_room = DpdkError::NoRoom {
            requested: bytes.len(),
            available: self.tailroom(),
        };
        let n = u16::try_from(bytes.len()).map_err(|_| no_room.clone())?;
        // SAFETY: we own the mbuf; rte_pktmbuf_append checks the tailroom of the last segment
        // and returns NULL without changing anything when it is too small.
        let dst = unsafe { sys::bh_rte_pktmbuf_append(self.0.as_ptr(), n) };
        if dst.is_null() {
            return Err(no_room);
        }
        // SAFETY: `dst` points to `n` writable bytes just reserved at the end of our buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), bytes.len()) };
        Ok(())
    }

    /// Prepend `bytes` before the packet data (e.g. push a VLAN tag).
    pub fn prepend(&mut self, bytes: &[u8]) -> Result<(), DpdkError> {
        let no_room = DpdkError::NoRoom {
            requested: bytes.len(),
            available: self.headroom(),
        };
        let n = u16::try_from(bytes.len()).map_err(|_| no_room.clone())?;
        // SAFETY: we own the mbuf; rte_pktmbuf_prepend checks the headroom and returns NULL
        // without changing anything when it is too small.
        let dst = unsafe { sys::bh_rte_pktmbuf_prepend(self.0.as_ptr(), n) };
        if dst.is_null() {
            return Err(no_room);
        }
        // SAFETY: `dst` points to `n` writable bytes just reserved before the data.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), bytes.len()) };
        Ok(())
    }

    /// Remove `n` bytes from the front of the packet.
    pub fn adj(&mut self, n: usize) -> Result<(), DpdkError> {
        let no_room = DpdkError::NoRoom {
            requested: n,
            available: self.len(),
        };
        let n16 = u16::try_from(n).map_err(|_| no_room.clone())?;
        // SAFETY: we own the mbuf; rte_pktmbuf_adj returns NULL and changes nothing if
        // `n > data_len`.
        let p = unsafe { sys::bh_rte_pktmbuf_adj(self.0.as_ptr(), n16) };
        if p.is_null() {
            return Err(no_room);
        }
        Ok(())
    }

    /// Remove `n` bytes from the end of the packet.
    pub fn trim(&mut self, n: usize) -> Result<(), DpdkError> {
        let no_room = DpdkError::NoRoom {
            requested: n,
            available: self.len(),
        };
        let n16 = u16::try_from(n).map_err(|_| no_room.clone())?;
        // SAFETY: we own the mbuf; rte_pktmbuf_trim returns -1 and changes nothing if `n`
        // exceeds the last segment's data.
        let r = unsafe { sys::bh_rte_pktmbuf_trim(self.0.as_ptr(), n16) };
        if r != 0 {
            return Err(no_room);
        }
        Ok(())
    }

    /// Hint the CPU to load the mbuf header (the first cache line) ahead of use.
    #[inline(always)]
    pub fn prefetch_header(&self) {
        prefetch(self.0.as_ptr().cast::<u8>());
    }

    /// Hint the CPU to load the first cache line of packet data ahead of use. Reads the
    /// header, so prefetch the header one step earlier.
    #[inline(always)]
    pub fn prefetch_data(&self) {
        let h = self.hdr();
        prefetch(
            h.buf_addr
                .cast::<u8>()
                .wrapping_add(usize::from(h.data_off)),
        );
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (from_raw contract) and never use it again.
        unsafe { sys::bh_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint: it never faults, whatever the address; SSE is baseline on
    // x86_64.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A fixed-capacity, non-allocating array of owned mbufs, filled by `rx_burst`/`dequeue_burst`/
/// `alloc_bulk` and emptied by `tx_burst`/`enqueue_burst`. Dropping or clearing it frees the
/// mbufs it still holds with one `rte_pktmbuf_free_bulk`.
///
/// Invariant: `slots[..len]` are initialised, owned mbufs; `slots[len..]` are uninitialised.
pub struct MbufBurst<const N: usize = 32> {
    len: usize,
    slots: [MaybeUninit<Mbuf>; N],
}

impl<const N: usize> std::fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MbufBurst<N> {
    const CAPACITY_OK: () = assert!(
        N > 0 && N <= u16::MAX as usize,
        "MbufBurst capacity must be in 1..=65535"
    );

    /// An empty burst.
    #[inline]
    pub fn new() -> Self {
        #[allow(
            clippy::let_unit_value,
            reason = "forces the compile-time capacity check"
        )]
        let () = Self::CAPACITY_OK;
        MbufBurst {
            len: 0,
            slots: [const { MaybeUninit::uninit() }; N],
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when full.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// The fixed capacity `N`.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Free slots.
    #[inline]
    pub fn spare(&self) -> usize {
        N - self.len
    }

    /// The mbufs, in order.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots[..len] are initialised (type invariant); MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs, in order, mutable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterate over the mbufs.
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterate mutably over the mbufs.
    #[inline]
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// The `i`th mbuf.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        self.as_slice().get(i)
    }

    /// The `i`th mbuf, mutable.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Mbuf> {
        self.as_mut_slice().get_mut(i)
    }

    /// Add an mbuf at the end; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                slot.write(m);
                self.len += 1;
                Ok(())
            }
            None => Err(m),
        }
    }

    /// Remove and return the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        let last = self.len.checked_sub(1)?;
        self.len = last;
        // SAFETY: slot `last` was initialised and is now outside `..len`, so it is read once.
        Some(unsafe { self.slots[last].assume_init_read() })
    }

    /// Remove and return the `i`th mbuf, keeping the order of the others.
    pub fn take(&mut self, i: usize) -> Option<Mbuf> {
        if i >= self.len {
            return None;
        }
        // SAFETY: i < len, so slot i is initialised; we then close the gap by moving the tail
        // (initialised slots i+1..len) down one place, so slots[..len-1] stay initialised.
        unsafe {
            let base = self.slots.as_mut_ptr();
            let m = base.add(i).read().assume_init();
            std::ptr::copy(base.add(i + 1), base.add(i), self.len - i - 1);
            self.len -= 1;
            Some(m)
        }
    }

    /// Free every mbuf (one `rte_pktmbuf_free_bulk`).
    #[inline]
    pub fn clear(&mut self) {
        let n = self.len;
        if n == 0 {
            return;
        }
        self.len = 0;
        // SAFETY: slots[..n] are owned mbufs no longer reachable (len = 0); Mbuf is a transparent
        // pointer, so the slots form an array of `rte_mbuf *`; n <= N <= u16::MAX fits c_uint.
        unsafe { sys::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr().cast(), n as u32) }
    }

    /// Keep the mbufs for which `keep` returns true (in order), free the others in one bulk
    /// call. No allocation. If `keep` panics, the mbufs not yet decided are leaked (not freed
    /// twice).
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let n = self.len;
        // A panic in `keep` leaves the burst empty: leaking is safe, double free is not.
        self.len = 0;
        let mut dropped: [*mut sys::rte_mbuf; N] = [std::ptr::null_mut(); N];
        let mut nd = 0usize;
        let mut w = 0usize;
        let base = self.slots.as_mut_ptr();
        for r in 0..n {
            // SAFETY: r < n: slot r is initialised and not yet moved (w <= r).
            let m = unsafe { (*base.add(r)).assume_init_mut() };
            if keep(m) {
                if w != r {
                    // SAFETY: w < r < N; slot w was vacated (moved or recorded in `dropped`).
                    unsafe { std::ptr::copy_nonoverlapping(base.add(r), base.add(w), 1) };
                }
                w += 1;
            } else {
                dropped[nd] = m.as_raw();
                nd += 1;
            }
        }
        self.len = w;
        if nd > 0 {
            // SAFETY: `dropped[..nd]` are owned mbufs that no slot in `..w` refers to any more.
            unsafe { sys::rte_pktmbuf_free_bulk(dropped.as_mut_ptr(), nd as u32) }
        }
    }

    /// Move every mbuf out, front to back. Mbufs the iterator has not yielded when it is
    /// dropped are freed.
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = self.len;
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// Raw pointer to the spare slots and how many there are (for DPDK calls that fill them).
    #[inline]
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        // SAFETY: len <= N, so the pointer stays within (or one past) the array.
        let p = unsafe { self.slots.as_mut_ptr().add(self.len) };
        (p.cast(), N - self.len)
    }

    /// Record that DPDK wrote `added` mbufs into the spare slots.
    ///
    /// # Safety
    /// `added <= spare()` and the first `added` spare slots now hold owned, valid mbufs.
    #[inline]
    pub(crate) unsafe fn commit_spare(&mut self, added: usize) {
        debug_assert!(added <= N - self.len);
        self.len += added;
    }

    /// Raw pointer to the initialised slots and their count (for DPDK calls that consume them).
    #[inline]
    pub(crate) fn front_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        (self.slots.as_mut_ptr().cast(), self.len)
    }

    /// Record that DPDK took ownership of the first `taken` mbufs; shift the rest to the front.
    ///
    /// # Safety
    /// `taken <= len()` and DPDK now owns the first `taken` mbufs.
    #[inline]
    pub(crate) unsafe fn consume_front(&mut self, taken: usize) {
        debug_assert!(taken <= self.len);
        let rest = self.len - taken;
        if taken > 0 && rest > 0 {
            let base = self.slots.as_mut_ptr();
            // SAFETY: slots taken..len are initialised; ptr::copy handles the overlap.
            unsafe { std::ptr::copy(base.add(taken), base, rest) };
        }
        self.len = rest;
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<'a, const N: usize> IntoIterator for &'a MbufBurst<N> {
    type Item = &'a Mbuf;
    type IntoIter = std::slice::Iter<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, const N: usize> IntoIterator for &'a mut MbufBurst<N> {
    type Item = &'a mut Mbuf;
    type IntoIter = std::slice::IterMut<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

/// Owning iterator from [`MbufBurst::drain`].
#[derive(Debug)]
pub struct Drain<'a, const N: usize> {
    burst: &'a mut MbufBurst<N>,
    next: usize,
    end: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // SAFETY: slots[next..end] are initialised and owned by the drain (burst.len was set to
        // 0); each is read exactly once.
        Some(unsafe { self.burst.slots[i].assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let rest = self.end - self.next;
        if rest > 0 {
            // SAFETY: slots[next..end] are owned mbufs not yielded; the burst no longer counts them.
            unsafe {
                sys::rte_pktmbuf_free_bulk(
                    self.burst.slots.as_mut_ptr().add(self.next).cast(),
                    rest as u32,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    /// The fields Rust reads directly sit where the C compiler puts them.
    #[test]
    fn layout_matches_c() {
        let mut c = sys::bh_mbuf_layout::default();
        // SAFETY: writes offsetof/sizeof constants into `c`; needs no EAL.
        unsafe { sys::bh_mbuf_layout_get(&mut c) };
        type M = sys::rte_mbuf;
        assert_eq!(c.size, std::mem::size_of::<M>());
        assert_eq!(c.buf_addr, offset_of!(M, buf_addr));
        assert_eq!(c.data_off, offset_of!(M, data_off));
        assert_eq!(c.refcnt, offset_of!(M, refcnt));
        assert_eq!(c.nb_segs, offset_of!(M, nb_segs));
        assert_eq!(c.port, offset_of!(M, port));
        assert_eq!(c.ol_flags, offset_of!(M, ol_flags));
        assert_eq!(c.packet_type, offset_of!(M, __bindgen_anon_1.packet_type));
        assert_eq!(c.pkt_len, offset_of!(M, pkt_len));
        assert_eq!(c.data_len, offset_of!(M, data_len));
        assert_eq!(c.vlan_tci, offset_of!(M, vlan_tci));
        assert_eq!(c.hash_rss, offset_of!(M, __bindgen_anon_2.hash.rss));
        assert_eq!(c.buf_len, offset_of!(M, buf_len));
        assert_eq!(c.pool, offset_of!(M, pool));
        // The hot fields share the first cache line, as DPDK promises.
        assert!(c.pool + 8 <= 64, "rx fields left the first cache line");
    }

    #[test]
    fn mbuf_and_burst_are_pointer_arrays() {
        assert_eq!(
            std::mem::size_of::<Mbuf>(),
            std::mem::size_of::<*mut sys::rte_mbuf>()
        );
        assert_eq!(
            std::mem::size_of::<MbufBurst<32>>(),
            std::mem::size_of::<usize>() + 32 * std::mem::size_of::<*mut sys::rte_mbuf>()
        );
    }
}
