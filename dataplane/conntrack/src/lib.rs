//! `bulkhead-conntrack`: the per-worker connection table of the dataplane.
//!
//! Owns: the canonical connection key ([`ConnKey`]: source and destination
//! segment, protocol, addresses, ports, sorted so both directions map to one
//! key), its hash, the table ([`ConnTable`]: lookup in bursts with prefetch,
//! insert with per-source and per-segment [`Quotas`] and eviction of expired
//! or unreplied entries when full (early drop), removal, expiry in bounded
//! slices), the per-protocol state machines ([`ConnState`]) and their idle
//! [`Timeouts`].
//!
//! Invariants:
//! - All memory is allocated by [`ConnTable::new`]; no operation allocates
//!   afterwards (the free stack never exceeds its preallocated capacity).
//! - One table per worker: no locks, no atomics, no shared state. The owner
//!   is the only reader and writer.
//! - A key is stored at most once; every live entry is reachable by
//!   [`ConnTable::lookup`] with the hash it was inserted with, within
//!   [`MAX_PROBE_BUCKETS`] buckets of its home bucket.
//! - Occupancy never exceeds `capacity()`; a full table refuses new
//!   connections (counted) after trying to evict expired or unreplied ones;
//!   a source address or segment at its quota is refused (counted).
//! - Time is a `u64` in nanoseconds of the worker's monotonic clock; an entry
//!   expires when `now - last_seen >= timeout(state)`.
//! - TCP tracking follows the flags ([`state`]) and, when configured, the
//!   sequence windows ([`window`]).
//!
//! Engine usage per burst: build keys ([`ConnKey::new`]), hash them
//! ([`ConnTable::hash`]), [`ConnTable::lookup_burst`]; on a hit
//! [`ConnTable::track`] with the direction from [`Entry::dir`]; on a miss
//! classify, and for TCP open only if [`tcp_may_open`], then
//! [`ConnTable::insert`]. [`Track::Stale`] (expired but not yet reaped, a SYN
//! re-using a closed tuple, or a handle removed earlier in the burst) means:
//! [`ConnTable::remove`] it (emit "closed" if that returns the entry) and
//! handle the packet as a miss. When [`Entry::generation`] is older than the
//! policy snapshot, re-judge from the key, [`Entry::initiator`] and
//! [`Entry::svc`], then [`ConnTable::set_judgement`] or remove. Between bursts
//! call [`ConnTable::expire_slice`].
#![forbid(unsafe_code)]

pub mod key;
pub mod quota;
pub mod state;
pub mod table;
pub mod timeouts;
pub mod window;

pub use key::{
    domain_vlans, fold, hash_key, vlan_domain, wire_domain, ConnKey, Endpoint, KeySide, MAX_WIRES,
};
pub use quota::Quotas;
pub use state::{tcp_flags, tcp_may_open, ConnState, Dir, Step};
pub use table::{
    ConfigError, ConfigErrors, ConnFlags, ConnTable, Counters, Entry, EntryId, InsertError,
    NewConn, TableConfig, Track, BUCKET_PREFETCH_DISTANCE, BUCKET_SLOTS, ENTRY_PREFETCH_DISTANCE,
    MAX_PROBE_BUCKETS, MAX_SLOTS, MIN_SLOTS, RULE_DEFAULT,
};
pub use timeouts::{BadTimeout, Timeouts};
pub use window::Segment;
