//! The EAL: initialised once per process; its token is needed to create pools, rings, ports.

use std::ffi::{c_char, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bulkhead_dpdk_sys as sys;

use crate::error::{c_name, DpdkError};

/// Set by the first `Eal::init`, never cleared: DPDK cannot be initialised twice in a
/// process, not even after `rte_eal_cleanup`.
static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// DPDK's `LCORE_ID_ANY` (`UINT32_MAX`): the thread is not an EAL lcore.
const LCORE_ID_ANY: u32 = u32::MAX;

/// Shared by the `Eal` token and by every object that needs the EAL alive (pools, rings,
/// ports). `rte_eal_cleanup` runs when the last of them is dropped.
#[derive(Debug)]
pub(crate) struct EalInner {
    _private: (),
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: this is the last reference to the EAL: every pool, ring, port and lcore guard
        // holds an `Arc<EalInner>`, so none of them is alive; mbufs outstanding from a pool make
        // that pool leak its `Arc<EalInner>` (see `Mempool`), so we never get here under them.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}

/// Proof that the DPDK EAL is initialised. Clone it freely; it is `Send + Sync` so a
/// `OnceLock<Eal>` can share one EAL between the tests of one binary.
///
/// Drop order: `rte_eal_cleanup` runs only when this token *and* every pool, ring, port,
/// queue handle and [`LcoreGuard`] made from it are dropped (each holds a reference). An
/// `Eal` kept in a `static` is never cleaned up, which is fine: the OS reclaims it.
#[derive(Debug, Clone)]
pub struct Eal {
    pub(crate) inner: Arc<EalInner>,
}

impl Eal {
    /// Initialise the EAL with `args` (EAL options only; the program name is supplied).
    ///
    /// Example: `["--no-huge", "-m", "512", "--no-pci", "--file-prefix=x", "-l", "0",
    /// "--vdev=net_ring0"]`. Only the first call in a process can succeed; later calls
    /// return [`DpdkError::AlreadyInitialized`] (DPDK does not support re-initialisation).
    ///
    /// The EAL pins the calling thread to the main lcore (`-l`); threads spawned from it
    /// afterwards inherit that CPU mask, so workers should pin themselves (`core_affinity`)
    /// and then call [`register_thread`](Self::register_thread).
    pub fn init(args: &[&str]) -> Result<Eal, DpdkError> {
        let mut owned: Vec<CString> = Vec::with_capacity(args.len() + 1);
        owned.push(c_name("EAL argument", "bulkhead")?);
        for a in args {
            owned.push(c_name("EAL argument", a)?);
        }
        if INIT_CALLED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialized);
        }
        // DPDK may keep pointers into argv (and permutes the array): leak both, once per process.
        let strings: &'static [CString] = Box::leak(owned.into_boxed_slice());
        let argv: &'static mut [*mut c_char] = Box::leak(
            strings
                .iter()
                .map(|s| s.as_ptr().cast_mut())
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = i32::try_from(strings.len()).map_err(|_| DpdkError::InvalidName {
            what: "EAL argument",
            name: format!("{} arguments", strings.len()),
            reason: "too many arguments",
        })?;
        // SAFETY: argv holds argc valid NUL-terminated strings plus a NULL terminator, leaked so
        // they outlive the EAL; INIT_CALLED guarantees this is the only call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        let eal = Eal {
            inner: Arc::new(EalInner { _private: () }),
        };
        // rte_eal_init returns how many options it parsed (program name excluded); like an
        // application's `argc -= ret; argv += ret`, the unparsed ones follow argv[ret].
        let consumed = usize::try_from(ret).unwrap_or(0) + 1;
        if consumed < strings.len() {
            let args = argv[consumed..strings.len()]
                .iter()
                .map(|&p| {
                    // SAFETY: every non-null entry before the terminator points into `strings`.
                    unsafe { std::ffi::CStr::from_ptr(p) }
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            // Keep the EAL (dropping `eal` would clean it up) but report the caller's mistake.
            std::mem::forget(eal);
            return Err(DpdkError::UnparsedArgs { args });
        }
        Ok(eal)
    }

    /// Make the calling (non-EAL) thread an EAL lcore until the guard is dropped, so per-lcore
    /// mempool caches work on threads pinned with `core_affinity`.
    pub fn register_thread(&self) -> Result<LcoreGuard, DpdkError> {
        if let Some(lcore) = Self::current_lcore() {
            return Err(DpdkError::AlreadyLcore { lcore });
        }
        // SAFETY: the EAL is initialised (we hold its token); registering the current thread
        // only touches EAL's lcore table and this thread's TLS.
        let ret = unsafe { sys::rte_thread_register() };
        if ret != 0 {
            return Err(DpdkError::from_rte_errno("rte_thread_register"));
        }
        Ok(LcoreGuard {
            _eal: Arc::clone(&self.inner),
            _not_send: PhantomData,
        })
    }

    /// The EAL lcore id of the calling thread, `None` for a thread that is not an lcore.
    #[inline]
    pub fn current_lcore() -> Option<u32> {
        // SAFETY: reads the calling thread's `per_lcore__lcore_id` thread-local.
        let id = unsafe { sys::bh_rte_lcore_id() };
        (id != LCORE_ID_ANY).then_some(id)
    }

    /// The time-stamp counter (`rte_rdtsc`); read it once per burst.
    #[inline]
    pub fn tsc() -> u64 {
        // SAFETY: rdtsc has no preconditions.
        unsafe { sys::bh_rte_rdtsc() }
    }

    /// TSC ticks per second, as calibrated by the EAL.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: the EAL is initialised (we hold its token), so the calibration is done.
        unsafe { sys::rte_get_tsc_hz() }
    }

    /// The EAL's socket (NUMA node) id for the calling thread, `SOCKET_ID_ANY` if unknown.
    pub(crate) fn socket_id() -> i32 {
        // SAFETY: reads the calling thread's lcore TLS; returns SOCKET_ID_ANY for non-lcores.
        let s = unsafe { sys::rte_socket_id() };
        i32::try_from(s).unwrap_or(sys::SOCKET_ID_ANY)
    }
}

/// The calling thread is an EAL lcore while this lives; dropping it unregisters the thread.
/// Not `Send`: it must be dropped on the thread that registered.
#[derive(Debug)]
pub struct LcoreGuard {
    _eal: Arc<EalInner>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for LcoreGuard {
    fn drop(&mut self) {
        // SAFETY: this thread was registered by `register_thread` (the guard is !Send, so we are
        // on that thread) and the EAL is alive (we hold a reference).
        unsafe { sys::rte_thread_unregister() }
    }
}
