//! The one safe wrapper over DPDK: EAL, mempools, mbufs, bursts, rings, ports and queues.
//!
//! Owns every `unsafe` FFI call the dataplane makes (with `bulkhead-dpdk-sys`). Invariants,
//! carried by types:
//!
//! - [`Eal`] is initialised once per process; its token is required to create pools, rings and
//!   ports, each of which keeps the EAL alive (`rte_eal_cleanup` runs after the last one).
//! - An [`Mbuf`] is owned: `Send`, not `Sync`; dropping it frees it; handing it to a device or
//!   ring (through an [`MbufBurst`]) moves it. A [`Mempool`] dropped while mbufs are outstanding
//!   is leaked rather than freed under them.
//! - A port's queues are handed out once each ([`RxQueue`], [`TxQueue`]): one worker per queue,
//!   no locking; a port is stopped and closed only after every handle is gone.
//! - Per-packet accessors read the `rte_mbuf` layout from Rust; the C shim is called once per
//!   burst. Layout tests compare the fields read with the C compiler's offsets.

mod af_packet;
mod eal;
mod error;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use bulkhead_dpdk_sys as sys;
pub use eal::{Eal, LcoreGuard};
pub use error::{strerror, DpdkError};
pub use mbuf::{Drain, Mbuf, MbufBurst};
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, MAX_CACHE_SIZE, MBUF_HEADROOM};
pub use port::{
    max_frame_len, IngressDrops, LinkStatus, Port, PortConfig, PortId, PortStats, RssState,
    RxQueue, TxQueue, DEFAULT_MTU, FRAME_OVERHEAD,
};
pub use ring::Ring;
