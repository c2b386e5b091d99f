//! How a table is configured and what it counts.

use super::*;

/// Table counters (per worker, plain integers: the owning core is the only
/// writer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Live entries now.
    pub occupancy: u64,
    /// Entry capacity (`max_connections`).
    pub capacity: u64,
    pub inserts: u64,
    /// Inserts refused because the table (or the key's probe window) was full.
    pub refused_full: u64,
    /// Inserts refused by the per-source-address quota.
    pub refused_source_quota: u64,
    /// Inserts refused by the per-source-segment quota.
    pub refused_segment_quota: u64,
    /// Entries evicted by inserts: already expired, or never replied to
    /// (early drop: half-open TCP, unreplied UDP, ICMP requests, other
    /// protocols seen one way).
    pub evicted_expired: u64,
    pub evicted_unreplied: u64,
    /// Entries removed by `expire_slice`.
    pub expired: u64,
    /// Entries removed by `remove` or `flush`.
    pub removed: u64,
}

/// A table configuration problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("connection table slots must be a power of two in {min}..={max}, got {got}")]
    Slots { got: usize, min: usize, max: usize },
    #[error("max_connections must be in 1..={max} (7/8 of {slots} slots), got {got}")]
    MaxConnections {
        got: usize,
        max: usize,
        slots: usize,
    },
    #[error("{0}")]
    Timeout(BadTimeout),
    #[error("cannot allocate {bytes} bytes for the connection table")]
    OutOfMemory { bytes: usize },
}

/// Every problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid connection table configuration: {}", join(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

pub(super) fn join(errs: &[ConfigError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How to build a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// Index slots, a power of two (`MIN_SLOTS..=MAX_SLOTS`).
    pub slots: usize,
    /// Entries preallocated: the most connections tracked at once. At most
    /// 7/8 of `slots`; half of it keeps probe sequences short.
    pub max_connections: usize,
    pub timeouts: Timeouts,
    /// Hash seed; give each table a random one (from the OS's random
    /// source) so tuples cannot be chosen to collide.
    pub hash_seed: u64,
    /// Connection quotas per source address and per source segment.
    pub quotas: Quotas,
    /// Track TCP sequence windows (see [`crate::window`]): 32 more bytes
    /// per connection, one more cache line per TCP packet.
    pub track_windows: bool,
}

impl TableConfig {
    /// `slots` index slots, `slots / 2` connections, default timeouts.
    #[must_use]
    pub fn for_slots(slots: usize) -> TableConfig {
        TableConfig {
            slots,
            max_connections: slots / 2,
            timeouts: Timeouts::default(),
            hash_seed: 0x5bd1_e995_1234_5678,
            quotas: Quotas::UNLIMITED,
            track_windows: false,
        }
    }

    /// Every problem, not just the first.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        let slots_ok =
            self.slots.is_power_of_two() && (MIN_SLOTS..=MAX_SLOTS).contains(&self.slots);
        if !slots_ok {
            errs.push(ConfigError::Slots {
                got: self.slots,
                min: MIN_SLOTS,
                max: MAX_SLOTS,
            });
        }
        let max = self.slots / 8 * 7;
        if slots_ok && !(1..=max).contains(&self.max_connections) {
            errs.push(ConfigError::MaxConnections {
                got: self.max_connections,
                max,
                slots: self.slots,
            });
        }
        if let Err(bad) = self.timeouts.validate() {
            errs.extend(bad.into_iter().map(ConfigError::Timeout));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

/// Preallocate `n` copies of `v`, reporting allocation failure instead of
/// aborting. Large arrays are advised onto transparent huge pages before
/// they are first touched: random lookups then rarely miss the TLB.
pub(super) fn alloc_filled<T: Clone>(n: usize, v: T) -> Result<Vec<T>, ConfigError> {
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| ConfigError::OutOfMemory {
            bytes: n.saturating_mul(core::mem::size_of::<T>()),
        })?;
    bulkhead_hugemem::advise_huge(&mut out);
    out.resize(n, v);
    Ok(out)
}
