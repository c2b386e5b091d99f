//! The per-worker connection table: a bucket index of (tag, entry index)
//! pairs in front of a slab of 128-byte entries. See `DESIGN.md`.

use core::fmt;

use crate::key::{hash_key, ConnKey, KeySide};
use crate::quota::{Quotas, Sketch};
use crate::state::{ConnState, Dir, Step, STATE_COUNT};
use crate::timeouts::{BadTimeout, Timeouts};
use crate::window::{self, Segment, Windows};

mod config;
mod entry;
mod tcp;

use config::alloc_filled;
pub use config::{ConfigError, ConfigErrors, Counters, TableConfig};

pub use entry::Entry;
use tcp::{syn_again, window_fits, TcpWindows};

use bulkhead_prefetch::prefetch_read;

/// Slots per bucket. One bucket is one 64-byte cache line.
pub const BUCKET_SLOTS: usize = 8;
/// Longest probe sequence, in buckets (so at most 64 slots are ever looked
/// at for one key). Inserts that find no free slot this close to the home
/// bucket evict (expired or half-open) or are refused.
pub const MAX_PROBE_BUCKETS: usize = 8;
/// Smallest and largest accepted slot counts.
pub const MIN_SLOTS: usize = BUCKET_SLOTS;
pub const MAX_SLOTS: usize = 1 << 30;

/// `lookup_burst`: how many keys ahead the bucket line is prefetched. Hides
/// one DRAM miss (~80-100 ns) behind the work on the 8 keys in between
/// (tag scan, key compare, ~10 ns each), within the ~10-12 line-fill buffers
/// a core has.
pub const BUCKET_PREFETCH_DISTANCE: usize = 8;
/// `lookup_burst`: how many keys ahead the candidate entry (both of its
/// lines) is prefetched, once its bucket has arrived. Shorter than the bucket
/// distance so the bucket prefetched at `i + 8` has had 4 keys' time to land.
pub const ENTRY_PREFETCH_DISTANCE: usize = 4;
const RING: usize = 8;
const _: () =
    assert!(RING > ENTRY_PREFETCH_DISTANCE && ENTRY_PREFETCH_DISTANCE < BUCKET_PREFETCH_DISTANCE);

/// Rule reference meaning "no rule matched, the policy default decided".
pub const RULE_DEFAULT: u32 = u32::MAX;

const EMPTY_IDX: u32 = u32::MAX;

/// Per-connection flags set by the engine from the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnFlags(pub u8);

impl ConnFlags {
    pub const NONE: ConnFlags = ConnFlags(0);
    /// The deciding rule has `log: true`: emit flow events for it.
    pub const LOG: ConnFlags = ConnFlags(1);
    /// Forwarded only because the destination is in monitor mode: every
    /// event of the connection is marked `would-deny`.
    pub const MONITOR: ConnFlags = ConnFlags(2);
    /// Table-internal: the initiator sent a new SYN on this live TCP
    /// connection (a reboot, a lost FIN or RST); a SYN-ACK from the responder
    /// now starts the connection over. Kept across `set_judgement`.
    pub const SYN_AGAIN: ConnFlags = ConnFlags(4);
    /// The initiator's first packet entered on side B of its wire: packets
    /// from the initiator must keep entering there, its peer's on side A.
    pub const INITIATOR_ON_B: ConnFlags = ConnFlags(8);
    /// The flags the verdict sets (the rest belong to the table).
    pub const VERDICT: ConnFlags = ConnFlags(1 | 2);

    #[inline]
    #[must_use]
    pub const fn contains(self, other: ConnFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for ConnFlags {
    type Output = ConnFlags;
    fn bitor(self, rhs: ConnFlags) -> ConnFlags {
        ConnFlags(self.0 | rhs.0)
    }
}

/// Handle to a live entry. Carries a version: after the entry is removed
/// (and its slot maybe reused), the handle no longer resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryId {
    index: u32,
    version: u32,
}

impl EntryId {
    /// Slab index (stable for the life of the entry; for diagnostics).
    #[inline]
    #[must_use]
    pub fn index(self) -> u32 {
        self.index
    }
}

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    /// Top 16 bits of the hash, never 0; 0 marks an empty slot.
    tags: [u16; BUCKET_SLOTS],
    /// Entry index per slot (`EMPTY_IDX` when the tag is 0).
    idx: [u32; BUCKET_SLOTS],
    /// Number of live keys whose home bucket is before this one (within the
    /// probe window) and that are stored after it: a lookup continues past
    /// this bucket only when it is non-zero. Makes deletion exact without
    /// tombstones (the F14 scheme).
    overflow: u32,
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        tags: [0; BUCKET_SLOTS],
        idx: [EMPTY_IDX; BUCKET_SLOTS],
        overflow: 0,
    };
}

#[inline(always)]
fn tag_of(hash: u64) -> u16 {
    let t = (hash >> 48) as u16;
    t | u16::from(t == 0)
}

/// What the engine knows about a new connection when it inserts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewConn {
    /// Side of the key the opening packet came from.
    pub initiator: KeySide,
    /// Segment id of the source (charged for the per-segment quota).
    pub src_segment: u32,
    /// Policy generation that judged it.
    pub generation: u64,
    /// Deciding rule, [`RULE_DEFAULT`] for the default.
    pub rule: u32,
    pub flags: ConnFlags,
    /// `FlowTuple::svc` of the opening packet (what the rules matched).
    pub svc: u16,
    /// Size of the opening packet (it is counted as the first original
    /// packet; do not `track` it again).
    pub bytes: u32,
}

/// Result of [`ConnTable::track`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    /// Packet fits the connection; state, last seen and counters updated.
    Accept,
    /// Packet does not fit the state: drop and count as `invalid`. The entry
    /// is unchanged (an invalid packet does not keep a connection alive).
    Invalid,
    /// The entry is finished: it had already expired, a SYN re-uses a closed
    /// tuple, or the handle is stale. `remove` it (emit its "closed" event if
    /// `remove` returns it) and handle the packet as a table miss.
    Stale,
    /// A TCP segment outside the sequence windows (window tracking on):
    /// drop it; the entry is unchanged.
    OutOfWindow,
}

/// Why an insert failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// No free entry or no free slot within the probe window, and nothing
    /// expired or half-open to evict there: deny the new connection and
    /// count it.
    #[error("connection table full")]
    Full,
    /// The key is already tracked.
    #[error("connection already tracked")]
    Exists(EntryId),
    /// The source address has its quota of tracked connections.
    #[error("source address over its connection quota")]
    SourceQuota,
    /// The source segment has its quota of tracked connections.
    #[error("source segment over its connection quota")]
    SegmentQuota,
}

/// The connection table of one worker. Not `Sync`-shared: one owner, no
/// locks; all memory is allocated by the constructor and never again.
///
/// Time: every `now` is nanoseconds on the worker's monotonic clock (the
/// engine converts the TSC once per burst).
pub struct ConnTable {
    buckets: Vec<Bucket>,
    entries: Vec<Entry>,
    /// Stack of free entry indices; capacity = entries.len(), never grows.
    free: Vec<u32>,
    bucket_mask: usize,
    /// min(MAX_PROBE_BUCKETS, bucket count).
    probe_len: usize,
    timeouts_ns: [u64; STATE_COUNT],
    timeouts: Timeouts,
    seed: u64,
    /// Next entry index `expire_slice` looks at.
    cursor: usize,
    counters: Counters,
    by_source: Sketch,
    by_segment: Sketch,
    /// Per entry index, when window tracking is on (else empty).
    windows: Vec<TcpWindows>,
}

impl fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable")
            .field("slots", &(self.buckets.len() * BUCKET_SLOTS))
            .field("counters", &self.counters())
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl ConnTable {
    /// A table with `slots` index slots (power of two), room for `slots / 2`
    /// connections and default timeouts. `1 << 21` slots hold 1,048,576
    /// connections.
    pub fn with_capacity(slots: usize) -> Result<ConnTable, ConfigErrors> {
        ConnTable::new(&TableConfig::for_slots(slots))
    }

    /// Build and preallocate a table.
    pub fn new(cfg: &TableConfig) -> Result<ConnTable, ConfigErrors> {
        cfg.validate()?;
        let one = |e| ConfigErrors(vec![e]);
        let nb = cfg.slots / BUCKET_SLOTS;
        let buckets = alloc_filled(nb, Bucket::EMPTY).map_err(one)?;
        let entries = alloc_filled(cfg.max_connections, Entry::FREE).map_err(one)?;
        let mut free = alloc_filled(cfg.max_connections, 0u32).map_err(one)?;
        // Pop order 0, 1, 2, ...: new entries fill the slab from the front.
        for (slot, i) in free.iter_mut().zip((0..cfg.max_connections).rev()) {
            *slot = i as u32; // max_connections <= 7/8 * 2^30 fits
        }
        let by_source = Sketch::new(cfg.max_connections / 4, cfg.quotas.per_source).map_err(one)?;
        let by_segment = Sketch::new(1024, cfg.quotas.per_segment).map_err(one)?;
        let windows = if cfg.track_windows {
            alloc_filled(cfg.max_connections, TcpWindows::default()).map_err(one)?
        } else {
            Vec::new()
        };
        Ok(ConnTable {
            by_source,
            by_segment,
            windows,
            buckets,
            entries,
            free,
            bucket_mask: nb - 1,
            probe_len: MAX_PROBE_BUCKETS.min(nb),
            timeouts_ns: cfg.timeouts.to_ns_table(),
            timeouts: cfg.timeouts,
            seed: cfg.hash_seed,
            cursor: 0,
            counters: Counters::default(),
        })
    }

    /// Most connections tracked at once.
    #[inline]
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Live entries.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters, with `occupancy` and `capacity` filled in.
    #[must_use]
    pub fn counters(&self) -> Counters {
        Counters {
            occupancy: self.len() as u64,
            capacity: self.capacity() as u64,
            ..self.counters
        }
    }

    #[must_use]
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Bytes of table memory per connection slot of capacity (index + entries
    /// + free stack, divided by `capacity()`).
    #[must_use]
    pub fn bytes_per_connection(&self) -> usize {
        let total = self.buckets.capacity() * core::mem::size_of::<Bucket>()
            + self.entries.capacity() * core::mem::size_of::<Entry>()
            + self.free.capacity() * core::mem::size_of::<u32>()
            + self.by_source.bytes()
            + self.by_segment.bytes()
            + self.windows.capacity() * core::mem::size_of::<TcpWindows>();
        total / self.capacity().max(1)
    }

    /// The hash every other call expects for `key` (seeded per table).
    #[inline]
    #[must_use]
    pub fn hash(&self, key: &ConnKey) -> u64 {
        hash_key(key, self.seed)
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.bucket_mask
    }

    /// Prefetch the home bucket of `hash` (first pass of a burst).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(b) = self.buckets.get(self.home(hash)) {
            prefetch_read(b);
        }
    }

    /// Find `key`; `hash` must be `self.hash(key)` (or, consistently, any
    /// function of the key: correctness never depends on hash quality).
    #[inline]
    #[must_use]
    pub fn lookup(&self, key: &ConnKey, hash: u64) -> Option<EntryId> {
        let tag = tag_of(hash);
        let mut b = self.home(hash);
        for _ in 0..self.probe_len {
            let bucket = self.buckets.get(b)?;
            for s in 0..BUCKET_SLOTS {
                if bucket.tags[s] == tag {
                    let idx = bucket.idx[s];
                    if let Some(e) = self.entries.get(idx as usize) {
                        if e.key == *key {
                            return Some(EntryId {
                                index: idx,
                                version: e.version,
                            });
                        }
                    }
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = (b + 1) & self.bucket_mask;
        }
        None
    }

    /// First slot of the home bucket whose tag matches (a likely hit).
    #[inline(always)]
    fn candidate(&self, hash: u64) -> u32 {
        let tag = tag_of(hash);
        match self.buckets.get(self.home(hash)) {
            Some(bucket) => {
                let mut found = EMPTY_IDX;
                for s in (0..BUCKET_SLOTS).rev() {
                    if bucket.tags[s] == tag {
                        found = bucket.idx[s];
                    }
                }
                found
            }
            None => EMPTY_IDX,
        }
    }

    /// Look up a burst: `out[i] = self.lookup(&keys[i], hashes[i])` for
    /// `i < min(keys.len(), hashes.len(), out.len())`, with bucket lines
    /// prefetched [`BUCKET_PREFETCH_DISTANCE`] keys ahead and candidate
    /// entries [`ENTRY_PREFETCH_DISTANCE`] keys ahead.
    #[inline]
    pub fn lookup_burst(&self, keys: &[ConnKey], hashes: &[u64], out: &mut [Option<EntryId>]) {
        let n = keys.len().min(hashes.len()).min(out.len());
        let mut cand = [EMPTY_IDX; RING];
        for &h in hashes.iter().take(n.min(BUCKET_PREFETCH_DISTANCE)) {
            self.prefetch(h);
        }
        for (i, &h) in hashes
            .iter()
            .enumerate()
            .take(n.min(ENTRY_PREFETCH_DISTANCE))
        {
            cand[i % RING] = self.candidate(h);
            self.prefetch_index(cand[i % RING]);
        }
        for (i, (key, o)) in keys.iter().zip(out.iter_mut()).enumerate().take(n) {
            if let Some(&h) = hashes.get(i + BUCKET_PREFETCH_DISTANCE) {
                if i + BUCKET_PREFETCH_DISTANCE < n {
                    self.prefetch(h);
                }
            }
            let ahead = i + ENTRY_PREFETCH_DISTANCE;
            if ahead < n {
                if let Some(&h) = hashes.get(ahead) {
                    let c = self.candidate(h);
                    cand[ahead % RING] = c;
                    self.prefetch_index(c);
                }
            }
            let c = cand[i % RING];
            let hit = match self.entries.get(c as usize) {
                Some(e) if e.key == *key => Some(EntryId {
                    index: c,
                    version: e.version,
                }),
                _ => None,
            };
            *o = match hit {
                Some(id) => Some(id),
                None => hashes.get(i).and_then(|&h| self.lookup(key, h)),
            };
        }
    }

    #[inline(always)]
    fn prefetch_index(&self, idx: u32) {
        if let Some(e) = self.entries.get(idx as usize) {
            prefetch_read(e);
            prefetch_read(&e.packets);
        }
        // The entry's window state, when tracked: the third line a TCP
        // packet touches.
        if let Some(w) = self.windows.get(idx as usize) {
            prefetch_read(w);
        }
    }

    /// The live entry behind `id`, if the handle is still valid.
    #[inline]
    #[must_use]
    pub fn entry(&self, id: EntryId) -> Option<&Entry> {
        self.entries
            .get(id.index as usize)
            .filter(|e| e.live && e.version == id.version)
    }

    /// Direction of a packet whose source is on `side`.
    #[inline]
    #[must_use]
    pub fn dir_of(&self, id: EntryId, side: KeySide) -> Option<Dir> {
        self.entry(id).map(|e| e.dir(side))
    }

    #[inline(always)]
    fn entry_mut(&mut self, id: EntryId) -> Option<&mut Entry> {
        self.entries
            .get_mut(id.index as usize)
            .filter(|e| e.live && e.version == id.version)
    }

    /// Has the entry been idle for at least its state's timeout at `now`?
    #[inline]
    #[must_use]
    pub fn is_expired(&self, e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.last_seen) >= self.timeouts_ns[e.state as usize]
    }

    /// Record the verdict of a (re-)judgement under a new policy generation.
    /// Returns false if the handle is stale.
    #[inline]
    pub fn set_judgement(
        &mut self,
        id: EntryId,
        generation: u64,
        rule: u32,
        flags: ConnFlags,
    ) -> bool {
        match self.entry_mut(id) {
            Some(e) => {
                e.generation = generation as u32;
                e.rule = rule;
                e.flags = ConnFlags(
                    (flags.0 & ConnFlags::VERDICT.0) | (e.flags.0 & !ConnFlags::VERDICT.0),
                );
                true
            }
            None => false,
        }
    }

    /// Account one packet travelling in `dir` (see [`Entry::dir`]):
    /// advance the state machine (`tcp_flags` used for TCP only; protocol is
    /// the entry's), and on `Accept` write last seen and add to the
    /// counters. One timestamp write per packet.
    #[inline]
    pub fn track(&mut self, id: EntryId, dir: Dir, tcp_flags: u8, bytes: u32, now: u64) -> Track {
        self.track_with(id, dir, tcp_flags, None, bytes, now)
    }

    /// `track`, with the segment's window check first when `seg` is given
    /// (one access to the entry for both).
    #[inline(always)]
    fn track_with(
        &mut self,
        id: EntryId,
        dir: Dir,
        tcp_flags: u8,
        seg: Option<&Segment>,
        bytes: u32,
        now: u64,
    ) -> Track {
        let timeouts = &self.timeouts_ns;
        let Some(e) = self
            .entries
            .get_mut(id.index as usize)
            .filter(|e| e.live && e.version == id.version)
        else {
            return Track::Stale;
        };
        if now.saturating_sub(e.last_seen) >= timeouts[e.state as usize] {
            return Track::Stale;
        }
        // With windows, only the SYN-ACK to the SYN seen may restart.
        let mut restart_ok = true;
        if let (Some(seg), Some(w)) = (seg, self.windows.get_mut(id.index as usize)) {
            let marked = e.flags.contains(ConnFlags::SYN_AGAIN);
            restart_ok = seg.ack == w.syn_again_ack;
            if !window_fits(w, e.state, marked, dir, seg) {
                return Track::OutOfWindow;
            }
        }
        if e.state.is_tcp() {
            if let Some(t) = syn_again(e, dir, tcp_flags, restart_ok, bytes, now) {
                return t;
            }
        }
        match e.state.next(dir, tcp_flags) {
            Step::To(s) => {
                e.state = s;
                e.last_seen = now;
                e.count(dir, bytes);
                Track::Accept
            }
            Step::Invalid => Track::Invalid,
            Step::Stale => Track::Stale,
        }
    }

    /// Does this table track TCP sequence windows?
    #[inline]
    #[must_use]
    pub fn tracks_windows(&self) -> bool {
        !self.windows.is_empty()
    }

    /// Start window tracking of a new TCP connection from its SYN (call
    /// right after `insert`; a no-op when window tracking is off).
    #[inline]
    pub fn open_window(&mut self, id: EntryId, syn: &Segment) {
        if self.entry(id).is_none() {
            return;
        }
        if let Some(w) = self.windows.get_mut(id.index as usize) {
            *w = TcpWindows::default();
            window::open(&mut w.windows, Dir::Original as usize, syn);
        }
    }

    /// [`ConnTable::track`] for a TCP segment, checking its sequence
    /// numbers first when window tracking is on: out of window, it is
    /// refused ([`Track::OutOfWindow`]) and nothing changes.
    #[inline]
    pub fn track_tcp(
        &mut self,
        id: EntryId,
        dir: Dir,
        seg: &Segment,
        bytes: u32,
        now: u64,
    ) -> Track {
        self.track_with(id, dir, seg.flags, Some(seg), bytes, now)
    }

    /// Insert a new connection (the slow path: call after a miss and an
    /// allowing or monitored verdict). The opening packet is counted.
    ///
    /// Quotas first: a source address or source segment at its quota is
    /// refused ([`InsertError::SourceQuota`], [`InsertError::SegmentQuota`])
    /// without evicting anything. When no entry or no slot in the key's
    /// probe window is free, one entry in the window is evicted first: an
    /// expired one if any, else the unreplied one seen longest ago (early
    /// drop, as Linux does); `on_evict` gets it (for its "closed" event). If
    /// there is none, the insert is refused with [`InsertError::Full`] and
    /// counted.
    #[cold]
    #[inline(never)]
    pub fn insert(
        &mut self,
        key: &ConnKey,
        hash: u64,
        now: u64,
        new: NewConn,
        mut on_evict: impl FnMut(&Entry),
    ) -> Result<EntryId, InsertError> {
        if let Some(id) = self.lookup(key, hash) {
            return Err(InsertError::Exists(id));
        }
        let src_hash = if self.by_source.enabled() {
            self.source_hash(key, new.initiator)
        } else {
            0
        };
        if !self.by_source.has_room(src_hash) {
            self.counters.refused_source_quota += 1;
            return Err(InsertError::SourceQuota);
        }
        let seg_hash = if self.by_segment.enabled() {
            self.segment_hash(new.src_segment)
        } else {
            0
        };
        if !self.by_segment.has_room(seg_hash) {
            self.counters.refused_segment_quota += 1;
            return Err(InsertError::SegmentQuota);
        }
        let home = self.home(hash);
        let mut place = self.free_slot(home);
        if (place.is_none() || self.free.is_empty()) && self.evict_one(home, now, &mut on_evict) {
            place = self.free_slot(home);
        }
        let (Some((dist, b, s)), false) = (place, self.free.is_empty()) else {
            self.counters.refused_full += 1;
            return Err(InsertError::Full);
        };
        let Some(idx) = self.free.pop() else {
            self.counters.refused_full += 1;
            return Err(InsertError::Full);
        };
        for w in 0..dist {
            if let Some(bk) = self.buckets.get_mut((home + w) & self.bucket_mask) {
                bk.overflow += 1;
            }
        }
        if let Some(bk) = self.buckets.get_mut(b) {
            bk.tags[s] = tag_of(hash);
            bk.idx[s] = idx;
        }
        let mut version = 0;
        if let Some(e) = self.entries.get_mut(idx as usize) {
            version = e.version;
            *e = Entry {
                key: *key,
                last_seen: now,
                state: ConnState::initial(key.proto()),
                initiator: new.initiator,
                flags: new.flags,
                live: true,
                version,
                packets: [1, 0],
                bytes: [u64::from(new.bytes), 0],
                created: now,
                generation: new.generation as u32,
                src_segment: new.src_segment,
                home: home as u32,
                tag: tag_of(hash),
                svc: new.svc,
                rule: new.rule,
                pos: (b * BUCKET_SLOTS + s) as u32,
            };
        }
        self.by_source.add(src_hash);
        self.by_segment.add(seg_hash);
        self.counters.inserts += 1;
        Ok(EntryId {
            index: idx,
            version,
        })
    }

    /// What the per-source quota counts under: the initiator's address in
    /// its VLAN domain.
    #[inline]
    fn source_hash(&self, key: &ConnKey, initiator: KeySide) -> u64 {
        let a = key.endpoint(initiator).addr;
        let (k, _) = ConnKey::new(
            key.domain(),
            crate::key::Endpoint { addr: a, port: 0 },
            crate::key::Endpoint { addr: 0, port: 0 },
            0,
            0,
        );
        hash_key(&k, self.seed ^ 0x51_7cc1_b727_220a)
    }

    #[inline]
    fn segment_hash(&self, segment: u32) -> u64 {
        let (k, _) = ConnKey::new(
            segment,
            crate::key::Endpoint { addr: 0, port: 0 },
            crate::key::Endpoint { addr: 0, port: 0 },
            0,
            0,
        );
        hash_key(&k, self.seed ^ 0x2545_f491_4f6c_dd1d)
    }

    /// First free slot in the probe window: (distance in buckets, bucket,
    /// slot).
    fn free_slot(&self, home: usize) -> Option<(usize, usize, usize)> {
        (0..self.probe_len).find_map(|w| {
            let b = (home + w) & self.bucket_mask;
            let bucket = self.buckets.get(b)?;
            let s = bucket.tags.iter().position(|&t| t == 0)?;
            Some((w, b, s))
        })
    }

    /// Evict the best candidate in the probe window of `home`.
    fn evict_one(&mut self, home: usize, now: u64, on_evict: &mut impl FnMut(&Entry)) -> bool {
        // (not expired, last_seen, index): lowest wins.
        let mut best: Option<(bool, u64, u32)> = None;
        for w in 0..self.probe_len {
            let Some(bucket) = self.buckets.get((home + w) & self.bucket_mask) else {
                continue;
            };
            for s in 0..BUCKET_SLOTS {
                if bucket.tags[s] == 0 {
                    continue;
                }
                let idx = bucket.idx[s];
                let Some(e) = self.entries.get(idx as usize) else {
                    continue;
                };
                let expired = self.is_expired(e, now);
                if expired || e.state.is_unreplied() {
                    let cand = (!expired, e.last_seen, idx);
                    if best.is_none_or(|b| cand < b) {
                        best = Some(cand);
                    }
                }
            }
        }
        let Some((not_expired, _, idx)) = best else {
            return false;
        };
        let Some(copy) = self.entries.get(idx as usize).copied() else {
            return false;
        };
        on_evict(&copy);
        self.remove_index(idx);
        if not_expired {
            self.counters.evicted_unreplied += 1;
        } else {
            self.counters.evicted_expired += 1;
        }
        true
    }

    /// Unlink a live entry from the index and free it.
    fn remove_index(&mut self, idx: u32) {
        let Some(e) = self.entries.get_mut(idx as usize) else {
            return;
        };
        if !e.live {
            return;
        }
        e.live = false;
        e.version = e.version.wrapping_add(1);
        let (key, initiator, segment) = (e.key, e.initiator, e.src_segment);
        let pos = e.pos as usize;
        let (b, s) = (pos / BUCKET_SLOTS, pos % BUCKET_SLOTS);
        let mut w = e.home as usize;
        for _ in 0..self.probe_len {
            if w == b {
                break;
            }
            if let Some(bk) = self.buckets.get_mut(w) {
                bk.overflow = bk.overflow.saturating_sub(1);
            }
            w = (w + 1) & self.bucket_mask;
        }
        if let Some(bk) = self.buckets.get_mut(b) {
            bk.tags[s] = 0;
            bk.idx[s] = EMPTY_IDX;
        }
        // Never exceeds its preallocated capacity: one push per live entry.
        self.free.push(idx);
        if self.by_source.enabled() {
            let h = self.source_hash(&key, initiator);
            self.by_source.sub(h);
        }
        if self.by_segment.enabled() {
            let h = self.segment_hash(segment);
            self.by_segment.sub(h);
        }
    }

    /// Remove a connection; returns its final copy (for the "closed" event),
    /// or `None` if the handle is stale.
    pub fn remove(&mut self, id: EntryId) -> Option<Entry> {
        let copy = *self.entry(id)?;
        self.remove_index(id.index);
        self.counters.removed += 1;
        Some(copy)
    }

    /// Walk at most `max_slots` entry slots from where the previous call
    /// stopped (wrapping), removing the expired ones and handing each to
    /// `on_expire` before it goes. Returns how many were removed. Calling it
    /// with a total of `capacity()` slots visits every entry once.
    pub fn expire_slice(
        &mut self,
        now: u64,
        max_slots: usize,
        mut on_expire: impl FnMut(&Entry),
    ) -> usize {
        let cap = self.entries.len();
        let mut removed = 0;
        for _ in 0..max_slots.min(cap) {
            let i = self.cursor;
            self.cursor = if i + 1 >= cap { 0 } else { i + 1 };
            let Some(e) = self.entries.get(i) else {
                continue;
            };
            if e.live && self.is_expired(e, now) {
                on_expire(e);
                self.remove_index(i as u32);
                removed += 1;
            }
        }
        self.counters.expired += removed as u64;
        removed
    }

    /// Remove every entry (cold: a "flush" command), handing each to
    /// `on_remove`.
    pub fn flush(&mut self, mut on_remove: impl FnMut(&Entry)) {
        for i in 0..self.entries.len() {
            if let Some(e) = self.entries.get(i).filter(|e| e.live) {
                on_remove(e);
                self.remove_index(i as u32);
                self.counters.removed += 1;
            }
        }
    }

    /// Live entries (cold: listing connections).
    pub fn iter(&self) -> impl Iterator<Item = (EntryId, &Entry)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.live)
            .map(|(i, e)| {
                (
                    EntryId {
                        index: i as u32,
                        version: e.version,
                    },
                    e,
                )
            })
    }

    /// Check every structural invariant (tests and debugging; O(size)).
    /// Returns the first violation found.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let nb = self.buckets.len();
        let mut overflow = vec![0u32; nb];
        let mut live = 0usize;
        for (i, e) in self.entries.iter().enumerate() {
            if !e.live {
                continue;
            }
            live += 1;
            let pos = e.pos as usize;
            let (b, s) = (pos / BUCKET_SLOTS, pos % BUCKET_SLOTS);
            let bk = self
                .buckets
                .get(b)
                .ok_or(format!("entry {i}: pos {pos} out of range"))?;
            if bk.idx[s] as usize != i || bk.tags[s] != e.tag {
                return Err(format!("entry {i}: slot {pos} does not point back"));
            }
            let home = e.home as usize;
            let dist = (b + nb - home) % nb;
            if dist >= self.probe_len {
                return Err(format!("entry {i}: {dist} buckets from home"));
            }
            for w in 0..dist {
                overflow[(home + w) % nb] += 1;
            }
            if self.lookup(&e.key, e.table_hash()).map(|id| id.index) != Some(i as u32) {
                return Err(format!("entry {i}: lookup does not find it"));
            }
        }
        for (b, bk) in self.buckets.iter().enumerate() {
            if bk.overflow != overflow[b] {
                return Err(format!(
                    "bucket {b}: overflow {} should be {}",
                    bk.overflow, overflow[b]
                ));
            }
            for s in 0..BUCKET_SLOTS {
                let used = bk.tags[s] != 0;
                let idx = bk.idx[s];
                let points_live = self.entries.get(idx as usize).is_some_and(|e| e.live);
                if used != points_live || (!used && idx != EMPTY_IDX) {
                    return Err(format!("bucket {b} slot {s}: tag/index mismatch"));
                }
            }
        }
        if live != self.len() {
            return Err(format!("{live} live entries, len() says {}", self.len()));
        }
        if self.free.capacity() != self.entries.len() {
            return Err("free stack capacity changed".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
