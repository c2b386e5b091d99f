//! `Ring`: a DPDK ring of mbufs (`rte_ring`), multi-producer/multi-consumer.

use std::ptr::NonNull;
use std::sync::Arc;

use bulkhead_dpdk_sys as sys;

use crate::eal::{Eal, EalInner};
use crate::error::{c_name, DpdkError};
use crate::mbuf::MbufBurst;

/// A ring that carries mbufs between threads, or feeds a `net_ring` port
/// ([`Port::from_rings`](crate::Port::from_rings)). Cheap to clone (shared handle); safe to
/// use from any thread. Dropping the last handle frees the mbufs still queued, then the ring.
/// A port made from rings keeps them alive until the port is closed.
#[derive(Debug, Clone)]
pub struct Ring {
    inner: Arc<RingInner>,
}

#[derive(Debug)]
struct RingInner {
    ptr: NonNull<sys::rte_ring>,
    name: String,
    _eal: Arc<EalInner>,
}

// SAFETY: the ring is created multi-producer/multi-consumer, so every operation used here is
// thread-safe; it is freed only in Drop, with exclusive access.
unsafe impl Send for RingInner {}
// SAFETY: see Send.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        // The ring only ever carries owned mbufs (this crate's enqueue and net_ring ports):
        // return them to their pools before freeing the ring.
        let mut burst: MbufBurst<64> = MbufBurst::new();
        loop {
            let (slots, spare) = burst.spare_raw();
            // SAFETY: valid ring (last handle); `slots` has room for `spare` pointers.
            let n = unsafe {
                sys::bh_rte_ring_dequeue_burst(self.ptr.as_ptr(), slots.cast(), spare as u32)
            } as usize;
            if n == 0 {
                break;
            }
            // SAFETY: n <= spare pointers were written, each an mbuf the ring owned.
            unsafe { burst.commit_spare(n) };
            burst.clear();
        }
        // SAFETY: no handle and no port (ports hold a handle) refers to the ring any more.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) }
    }
}

impl Ring {
    /// Create a ring holding up to `count` mbufs (any count, not only powers of two).
    /// `name` must be unique in the process.
    pub fn new(eal: &Eal, name: &str, count: u32) -> Result<Ring, DpdkError> {
        let cname = c_name("ring name", name)?;
        if count == 0 || count >= (1 << 28) {
            return Err(DpdkError::InvalidConfig {
                object: format!("ring {name:?}"),
                reason: format!("count {count} must be in 1..{}", 1u32 << 28),
            });
        }
        // SAFETY: the EAL is initialised (token); valid C string; flags request an exact-size
        // multi-producer/multi-consumer ring.
        let p = unsafe {
            sys::rte_ring_create(
                cname.as_ptr(),
                count,
                Eal::socket_id(),
                sys::RING_F_EXACT_SZ,
            )
        };
        let ptr = NonNull::new(p)
            .ok_or_else(|| DpdkError::from_rte_errno(format!("rte_ring_create({name})")))?;
        Ok(Ring {
            inner: Arc::new(RingInner {
                ptr,
                name: name.to_owned(),
                _eal: Arc::clone(&eal.inner),
            }),
        })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of mbufs queued.
    pub fn count(&self) -> usize {
        // SAFETY: valid ring; the count is a racy snapshot by design.
        unsafe { sys::bh_rte_ring_count(self.inner.ptr.as_ptr()) as usize }
    }

    /// Move mbufs from the front of `burst` into the ring; those that did not fit stay in
    /// `burst`. Returns how many were enqueued.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        let (slots, len) = burst.front_raw();
        // SAFETY: valid MP ring; `slots` holds `len` owned mbuf pointers (len <= u16::MAX).
        let n = unsafe {
            sys::bh_rte_ring_enqueue_burst(self.inner.ptr.as_ptr(), slots.cast(), len as u32)
        } as usize;
        // SAFETY: the ring now owns the first n mbufs.
        unsafe { burst.consume_front(n) };
        n
    }

    /// Move up to `burst.spare()` mbufs from the ring to the end of `burst`. Returns how many.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        let (slots, spare) = burst.spare_raw();
        // SAFETY: valid MC ring; `slots` has room for `spare` pointers.
        let n = unsafe {
            sys::bh_rte_ring_dequeue_burst(self.inner.ptr.as_ptr(), slots.cast(), spare as u32)
        } as usize;
        // SAFETY: n <= spare mbufs, owned by the ring until now, were written.
        unsafe { burst.commit_spare(n) };
        n
    }

    pub(crate) fn as_raw(&self) -> *mut sys::rte_ring {
        self.inner.ptr.as_ptr()
    }
}
