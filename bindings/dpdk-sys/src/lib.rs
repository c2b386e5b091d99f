//! Raw DPDK bindings, generated at build time by bindgen from the system
//! libdpdk (Debian 22.11, found with pkg-config), plus Bulkhead's C shim.
//!
//! Owns: the FFI surface only. Nothing here is safe to call without reading
//! DPDK's documentation; `bulkhead-dpdk` is the one safe wrapper over it.
//!
//! The shim (`bh_*` functions, `csrc/shim.c`) holds one-line forwards of the
//! static-inline functions and thread-locals Rust cannot reach directly
//! (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, `rte_lcore_id`, `rte_errno`, ...);
//! each is called once per burst. `bh_mbuf_layout_get` reports the C
//! compiler's `offsetof` of the `rte_mbuf` fields that Rust reads directly, so
//! the wrapper can test its layout assumptions against C.
//!
//! Invariant: the bindings and the shim are compiled with the same
//! `pkg-config --cflags libdpdk` (exported to dependants as `DEP_DPDK_CFLAGS`).

#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    reason = "bindgen output mirrors C names and layouts; it is generated, not hand-written"
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
