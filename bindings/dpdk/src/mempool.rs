//! `Mempool`: a DPDK packet-buffer pool (`rte_pktmbuf_pool_create`).

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use bulkhead_dpdk_sys as sys;

use crate::eal::{Eal, EalInner};
use crate::error::{c_name, DpdkError};
use crate::mbuf::{Mbuf, MbufBurst};

/// Headroom DPDK reserves in front of the packet data in every mbuf.
pub const MBUF_HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;
/// DPDK's default data room (2048 bytes of data plus the headroom).
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
/// Largest per-lcore cache DPDK accepts.
pub const MAX_CACHE_SIZE: u32 = sys::RTE_MEMPOOL_CACHE_MAX_SIZE;

/// A pool of packet buffers. Cheap to clone (shared handle); safe to use from any thread
/// (the default `ring_mp_mc` ops are multi-producer/multi-consumer; threads registered as EAL
/// lcores also get a per-lcore cache).
///
/// Dropping the last handle frees the pool, unless mbufs from it are still outstanding: then
/// the pool (and the EAL with it) is deliberately leaked, because freeing memory that live
/// mbufs point into would be undefined behaviour. Tests check `in_use_count() == 0`.
#[derive(Debug, Clone)]
pub struct Mempool {
    inner: Arc<MempoolInner>,
}

#[derive(Debug)]
struct MempoolInner {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    data_room: u16,
    eal: ManuallyDrop<Arc<EalInner>>,
}

// SAFETY: rte_mempool operations used here (get/put through mp/mc ring ops, counts) are
// thread-safe; the pointer is only freed in Drop, with exclusive access.
unsafe impl Send for MempoolInner {}
// SAFETY: see Send; all methods take `&self` and call thread-safe DPDK functions.
unsafe impl Sync for MempoolInner {}

impl Drop for MempoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool pointer is valid until freed below.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no mbuf from this pool is outstanding and no other handle exists (last
            // Arc), so nothing can touch the pool after this.
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
            // SAFETY: dropped exactly once, here.
            unsafe { ManuallyDrop::drop(&mut self.eal) };
        }
        // else: leak the pool and our EAL reference, so live mbufs keep valid memory.
    }
}

impl Mempool {
    /// Create a pool of `n_mbufs` buffers with a per-lcore cache of `cache_size` and
    /// `data_room` bytes per buffer (headroom included; use [`DEFAULT_DATA_ROOM`]).
    /// `name` must be unique in the process.
    pub fn new(
        eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room: u16,
    ) -> Result<Mempool, DpdkError> {
        let cname = c_name("mempool name", name)?;
        let invalid = |reason: String| DpdkError::InvalidConfig {
            object: format!("mempool {name:?}"),
            reason,
        };
        if n_mbufs == 0 {
            return Err(invalid("n_mbufs must be at least 1".into()));
        }
        if cache_size > MAX_CACHE_SIZE {
            return Err(invalid(format!(
                "cache_size {cache_size} exceeds DPDK's maximum {MAX_CACHE_SIZE}"
            )));
        }
        if data_room <= MBUF_HEADROOM {
            return Err(invalid(format!(
                "data_room {data_room} leaves no space after the {MBUF_HEADROOM}-byte headroom"
            )));
        }
        // SAFETY: the EAL is initialised (token); `cname` is a valid C string for the call.
        let p = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                n_mbufs,
                cache_size,
                0,
                data_room,
                Eal::socket_id(),
            )
        };
        let ptr = NonNull::new(p)
            .ok_or_else(|| DpdkError::from_rte_errno(format!("rte_pktmbuf_pool_create({name})")))?;
        Ok(Mempool {
            inner: Arc::new(MempoolInner {
                ptr,
                name: name.to_owned(),
                data_room,
                eal: ManuallyDrop::new(Arc::clone(&eal.inner)),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Bytes of each buffer, headroom included (as given to [`Mempool::new`]).
    pub fn data_room(&self) -> u16 {
        self.inner.data_room
    }

    /// Bytes of packet data one buffer holds after the headroom: the longest frame a device
    /// can receive into one segment of this pool.
    pub fn frame_room(&self) -> u16 {
        self.inner.data_room - MBUF_HEADROOM
    }

    /// Buffers available (in the pool and in the per-lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: valid pool pointer (we hold a handle); the count is a racy read by design.
        unsafe { sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Buffers currently allocated (owned by mbufs, bursts, rings or device queues).
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: as in avail_count.
        unsafe { sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// One empty mbuf, or `None` if the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: valid pool pointer; rte_pktmbuf_alloc is thread-safe and returns a reset mbuf
        // with refcnt 1 or NULL.
        let m = unsafe { sys::bh_rte_pktmbuf_alloc(self.inner.ptr.as_ptr()) };
        // SAFETY: a fresh mbuf we now own, from this pool, which leaks rather than free under it.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Append `n` empty mbufs to `burst`, all or nothing.
    pub fn alloc_bulk<const N: usize>(
        &self,
        burst: &mut MbufBurst<N>,
        n: usize,
    ) -> Result<(), DpdkError> {
        let (slots, spare) = burst.spare_raw();
        if n > spare {
            return Err(DpdkError::NoRoom {
                requested: n,
                available: spare,
            });
        }
        // SAFETY: `slots` has room for `spare >= n` pointers; rte_pktmbuf_alloc_bulk fills all n
        // or none; n <= N <= u16::MAX fits c_uint.
        let r = unsafe { sys::bh_rte_pktmbuf_alloc_bulk(self.inner.ptr.as_ptr(), slots, n as u32) };
        if r != 0 {
            return Err(DpdkError::from_ret(
                format!("rte_pktmbuf_alloc_bulk({}, {n})", self.inner.name),
                r,
            ));
        }
        // SAFETY: the first n spare slots now hold fresh mbufs we own.
        unsafe { burst.commit_spare(n) };
        Ok(())
    }

    pub(crate) fn as_raw(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}
