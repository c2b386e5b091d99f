//! One tracked connection: the 128-byte entry and what it tells.

use super::*;

/// One tracked connection: 128 bytes, two cache lines. The first line holds
/// what every packet reads (key, version) and writes (state, last seen); the
/// second what it adds to (counters) and what only slow paths read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Entry {
    // --- line 0
    pub(super) key: ConnKey,
    pub(super) last_seen: u64,
    pub(super) state: ConnState,
    pub(super) initiator: KeySide,
    pub(super) flags: ConnFlags,
    pub(super) live: bool,
    pub(super) version: u32,
    // --- line 1
    pub(super) packets: [u64; 2],
    pub(super) bytes: [u64; 2],
    pub(super) created: u64,
    /// Low 32 bits of the policy generation that judged it (equality is all
    /// that is asked of it; 2^32 policy changes apart never meet).
    pub(super) generation: u32,
    /// Segment id of the initiator when it was admitted: what its
    /// per-segment quota was charged to.
    pub(super) src_segment: u32,
    /// Home bucket and tag of the key's hash: all the table needs of it.
    pub(super) home: u32,
    pub(super) tag: u16,
    /// Service judged: destination port or ICMP type of the opening packet.
    pub(super) svc: u16,
    pub(super) rule: u32,
    /// Index slot holding this entry: `bucket * BUCKET_SLOTS + slot`.
    pub(super) pos: u32,
}

const _: () = assert!(core::mem::size_of::<Entry>() <= 128);
const _: () = assert!(core::mem::size_of::<Entry>() == 128);
const _: () = assert!(core::mem::offset_of!(Entry, version) < 64);
const _: () = assert!(core::mem::offset_of!(Entry, packets) == 64);

impl Entry {
    pub(super) const FREE: Entry = Entry {
        key: ConnKey::ZERO,
        last_seen: 0,
        state: ConnState::OtherNew,
        initiator: KeySide::A,
        flags: ConnFlags::NONE,
        live: false,
        version: 0,
        packets: [0; 2],
        bytes: [0; 2],
        created: 0,
        generation: 0,
        src_segment: 0,
        home: 0,
        tag: 0,
        svc: 0,
        rule: 0,
        pos: 0,
    };

    #[inline]
    #[must_use]
    pub fn key(&self) -> &ConnKey {
        &self.key
    }
    #[inline]
    #[must_use]
    pub fn state(&self) -> ConnState {
        self.state
    }
    /// Did the initiator's first packet enter on side B of its wire?
    #[inline]
    #[must_use]
    pub fn initiator_on_b(&self) -> bool {
        self.flags.contains(ConnFlags::INITIATOR_ON_B)
    }
    /// Side of the key that opened the connection.
    #[inline]
    #[must_use]
    pub fn initiator(&self) -> KeySide {
        self.initiator
    }
    /// Direction of a packet whose source is on `side`.
    #[inline]
    #[must_use]
    pub fn dir(&self, side: KeySide) -> Dir {
        if side == self.initiator {
            Dir::Original
        } else {
            Dir::Reply
        }
    }
    /// Creation time, ns (the engine's monotonic clock).
    #[inline]
    #[must_use]
    pub fn created(&self) -> u64 {
        self.created
    }
    /// Time of the last accepted packet, ns.
    #[inline]
    #[must_use]
    pub fn last_seen(&self) -> u64 {
        self.last_seen
    }
    /// `last_seen - created`, ns.
    #[inline]
    #[must_use]
    pub fn duration_ns(&self) -> u64 {
        self.last_seen.saturating_sub(self.created)
    }
    /// Accepted packets in a direction (the opening packet included).
    #[inline]
    #[must_use]
    pub fn packets(&self, dir: Dir) -> u64 {
        self.packets[dir as usize]
    }
    /// Accepted bytes in a direction.
    #[inline]
    #[must_use]
    pub fn bytes(&self, dir: Dir) -> u64 {
        self.bytes[dir as usize]
    }
    /// Policy generation that judged this connection (its low 32 bits).
    #[inline]
    #[must_use]
    pub fn generation(&self) -> u64 {
        u64::from(self.generation)
    }
    /// Was it judged under policy generation `generation`?
    #[inline]
    #[must_use]
    pub fn judged_under(&self, generation: u64) -> bool {
        self.generation == generation as u32
    }
    /// Segment id of the initiator when admitted.
    #[inline]
    #[must_use]
    pub fn src_segment(&self) -> u32 {
        self.src_segment
    }
    /// Deciding rule, [`RULE_DEFAULT`] when the default decided.
    #[inline]
    #[must_use]
    pub fn rule(&self) -> u32 {
        self.rule
    }
    /// The verdict's flags ([`ConnFlags::VERDICT`]).
    #[inline]
    #[must_use]
    pub fn flags(&self) -> ConnFlags {
        ConnFlags(self.flags.0 & ConnFlags::VERDICT.0)
    }
    /// Service the connection was judged on (destination port, or ICMP
    /// type, of the opening packet: `FlowTuple::svc`), for re-judging it
    /// under a new policy generation.
    #[inline]
    #[must_use]
    pub fn svc(&self) -> u16 {
        self.svc
    }
    #[inline(always)]
    pub(super) fn count(&mut self, dir: Dir, bytes: u32) {
        let d = dir as usize;
        self.packets[d] = self.packets[d].wrapping_add(1);
        self.bytes[d] = self.bytes[d].wrapping_add(u64::from(bytes));
    }

    /// A hash equivalent to the one given to `insert` for every table
    /// purpose (same home bucket, same tag).
    #[inline]
    pub(super) fn table_hash(&self) -> u64 {
        (u64::from(self.tag) << 48) | u64::from(self.home)
    }
}
