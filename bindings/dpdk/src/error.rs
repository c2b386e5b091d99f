//! `DpdkError`: every failure of the wrapper, with DPDK's own error text.

use std::ffi::CStr;

use bulkhead_dpdk_sys as sys;

/// A DPDK call failed or the wrapper refused a request that would misuse DPDK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// `Eal::init` was already called in this process (DPDK allows one EAL per process).
    #[error("the DPDK EAL was already initialised in this process")]
    AlreadyInitialized,
    /// `Eal::register_thread` on a thread that already is an EAL lcore.
    #[error("this thread already is EAL lcore {lcore}")]
    AlreadyLcore {
        /// Its lcore id.
        lcore: u32,
    },
    /// `rte_eal_init` left some arguments unparsed.
    #[error("EAL arguments not understood by rte_eal_init: {args:?}")]
    UnparsedArgs {
        /// The arguments DPDK did not consume.
        args: Vec<String>,
    },
    /// A name or argument contains a NUL byte or is longer than DPDK accepts.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What the name is for (`mempool`, `ring`, `port`, `EAL argument`).
        what: &'static str,
        /// The offending name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A DPDK function failed; `errno` is DPDK's error number, `message` its `rte_strerror`.
    #[error("{op} failed: {message} (errno {errno})")]
    Rte {
        /// The DPDK function (and object) that failed.
        op: String,
        /// Positive error number (`rte_errno` or the negated return value).
        errno: i32,
        /// `rte_strerror(errno)`.
        message: String,
    },
    /// No ethdev port has this name.
    #[error("no DPDK port named {name:?} (is its --vdev / PCI device given to the EAL?)")]
    PortNotFound {
        /// The name looked up (the part of the devargs before the first comma).
        name: String,
    },
    /// The port is already configured by another live `Port`.
    #[error("port {port} is already configured and owned by a live Port")]
    PortBusy {
        /// The port id.
        port: u16,
    },
    /// A configuration value is out of range (for this device, pool or ring).
    #[error("invalid configuration for {object}: {reason}")]
    InvalidConfig {
        /// What was being configured, e.g. `port 0 (net_ring0)` or `mempool "rx"`.
        object: String,
        /// What is wrong, with the limits.
        reason: String,
    },
    /// The queue index is out of range or the queue handle was already taken.
    #[error("{kind} queue {queue} of port {port}: {reason}")]
    Queue {
        /// `rx` or `tx`.
        kind: &'static str,
        /// The port id.
        port: u16,
        /// The queue index.
        queue: u16,
        /// Why the handle cannot be given.
        reason: &'static str,
    },
    /// `Port::stop`/`start` while queue handles are still alive (workers may be polling).
    #[error("port {port}: {held} queue handle(s) still alive; drop them before stopping")]
    QueuesInUse {
        /// The port id.
        port: u16,
        /// How many handles are alive.
        held: usize,
    },
    /// Not enough room in the mbuf for `append`/`prepend`, or too little data for `adj`/`trim`.
    #[error("mbuf has no room: requested {requested} bytes, {available} available")]
    NoRoom {
        /// Bytes requested.
        requested: usize,
        /// Bytes available.
        available: usize,
    },
}

impl DpdkError {
    /// Error from `rte_errno` after a failed call.
    pub(crate) fn from_rte_errno(op: impl Into<String>) -> Self {
        // SAFETY: bh_rte_errno reads this thread's rte_errno, a plain thread-local int.
        let errno = unsafe { sys::bh_rte_errno() };
        Self::from_errno(op, errno)
    }

    /// Error from a DPDK return value that is `-errno` (ethdev convention).
    pub(crate) fn from_ret(op: impl Into<String>, ret: i32) -> Self {
        Self::from_errno(op, ret.saturating_neg())
    }

    pub(crate) fn from_errno(op: impl Into<String>, errno: i32) -> Self {
        DpdkError::Rte {
            op: op.into(),
            errno,
            message: strerror(errno),
        }
    }
}

/// `rte_strerror`: DPDK's text for both libc and DPDK-specific error numbers.
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a static string or to a
    // per-thread buffer; it is valid until the next call on this thread, and we copy it at once.
    let p = unsafe { sys::rte_strerror(errno) };
    if p.is_null() {
        return format!("unknown error {errno}");
    }
    // SAFETY: non-null, NUL-terminated (see above), read before any other rte_strerror call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A `CString` for DPDK, rejecting interior NULs with a named error.
pub(crate) fn c_name(what: &'static str, name: &str) -> Result<std::ffi::CString, DpdkError> {
    std::ffi::CString::new(name).map_err(|_| DpdkError::InvalidName {
        what,
        name: name.to_owned(),
        reason: "contains a NUL byte",
    })
}
