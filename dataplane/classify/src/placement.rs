//! Segment placement: the VLAN map, longest-prefix match over segment
//! prefixes and endpoints for IPv4 and IPv6, anti-spoofing by VLAN and by
//! ingress zone. Part of [`CompiledPolicy`](crate::CompiledPolicy), rebuilt
//! alone when endpoints change.

use std::fmt::Debug;
use std::hash::Hash;
use std::net::IpAddr;

use hashbrown::HashMap;
use ipnet::IpNet;

use crate::compile::CompileError;
use crate::model::{EndpointDef, ModelError, PlaceError, Ruleset, SegIdx};

/// "No segment" in the VLAN array.
pub(crate) const NO_SEG: SegIdx = SegIdx::MAX;

/// Most distinct zone names one policy may use: a zone is a bit of a `u64`.
pub const MAX_ZONES: usize = 64;

/// The zones a frame entered in, as bits of one compiled policy's zone
/// names ([`SegmentMap::zone_mask`]); 0: no zone this policy names.
pub type ZoneMask = u64;

/// Address bits of one family, as an unsigned integer.
trait AddrBits: Copy + Eq + Hash + Debug {
    const WIDTH: u8;
    /// Network mask of a prefix of `len` bits (`len <= WIDTH`).
    fn mask(len: u8) -> Self;
    fn and(self, other: Self) -> Self;
}

impl AddrBits for u32 {
    const WIDTH: u8 = 32;
    fn mask(len: u8) -> Self {
        u32::MAX
            .checked_shl(u32::from(32 - len.min(32)))
            .unwrap_or(0)
    }
    fn and(self, other: Self) -> Self {
        self & other
    }
}

impl AddrBits for u128 {
    const WIDTH: u8 = 128;
    fn mask(len: u8) -> Self {
        u128::MAX
            .checked_shl(u32::from(128 - len.min(128)))
            .unwrap_or(0)
    }
    fn and(self, other: Self) -> Self {
        self & other
    }
}

/// The prefixes of one length: masked address → segment.
#[derive(Clone, Debug)]
struct Level<K> {
    mask: K,
    map: HashMap<K, SegIdx>,
}

/// Longest-prefix match: one exact-match table per prefix length present,
/// probed from the longest. Cost: at most one hash probe per distinct length
/// (≤ 33 or 129), independent of the number of prefixes; no allocation.
#[derive(Clone, Debug)]
struct Lpm<K> {
    levels: Vec<Level<K>>,
}

impl<K: AddrBits> Lpm<K> {
    /// Entries are (network, length, segment); a later entry with the same
    /// network and length replaces an earlier one.
    fn build(entries: impl Iterator<Item = (K, u8, SegIdx)>) -> Self {
        let mut by_len: Vec<HashMap<K, SegIdx>> = vec![HashMap::new(); usize::from(K::WIDTH) + 1];
        for (net, len, seg) in entries {
            let len = len.min(K::WIDTH);
            if let Some(map) = by_len.get_mut(usize::from(len)) {
                map.insert(net.and(K::mask(len)), seg);
            }
        }
        let levels = by_len
            .into_iter()
            .enumerate()
            .rev()
            .filter(|(_, map)| !map.is_empty())
            .map(|(len, map)| Level {
                mask: K::mask(len as u8),
                map,
            })
            .collect();
        Lpm { levels }
    }

    #[inline]
    fn lookup(&self, addr: K) -> Option<SegIdx> {
        self.levels
            .iter()
            .find_map(|level| level.map.get(&addr.and(level.mask)).copied())
    }
}

/// What placement keeps from the ruleset, so endpoints can be swapped
/// without the ruleset.
#[derive(Debug)]
pub(crate) struct PlacementBase {
    vlan: Box<[SegIdx]>,
    v4: Vec<(u32, u8, SegIdx)>,
    v6: Vec<(u128, u8, SegIdx)>,
    anti_spoofing: bool,
    segment_count: usize,
    /// Sorted, distinct zone names of the policy (at most [`MAX_ZONES`]).
    zone_names: Vec<String>,
    /// Per segment: the zones it attaches in (0: not bound to a place).
    seg_zones: Box<[ZoneMask]>,
}

impl PlacementBase {
    pub(crate) fn new(rs: &Ruleset) -> Result<Self, CompileError> {
        let mut zone_names: Vec<String> = rs
            .segments
            .iter()
            .flat_map(|s| s.zones.iter().cloned())
            .collect();
        zone_names.sort_unstable();
        zone_names.dedup();
        if zone_names.len() > MAX_ZONES {
            return Err(ModelError::TooManyZones(zone_names.len()).into());
        }
        let seg_zones = rs
            .segments
            .iter()
            .map(|s| {
                s.zones
                    .iter()
                    .filter_map(|z| zone_names.binary_search(z).ok())
                    .fold(0, |m, i| m | (1u64 << i))
            })
            .collect();
        let mut vlan = vec![NO_SEG; 4096].into_boxed_slice();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (index, seg) in rs.segments.iter().enumerate() {
            let index = index as SegIdx; // < MAX_SEGMENTS, checked
            for &id in &seg.vlans {
                if let Some(cell) = vlan.get_mut(usize::from(id)) {
                    *cell = index;
                }
            }
            for prefix in &seg.prefixes {
                match prefix {
                    IpNet::V4(net) => v4.push((u32::from(net.network()), net.prefix_len(), index)),
                    IpNet::V6(net) => v6.push((u128::from(net.network()), net.prefix_len(), index)),
                }
            }
        }
        Ok(PlacementBase {
            vlan,
            v4,
            v6,
            anti_spoofing: rs.anti_spoofing,
            segment_count: rs.segments.len(),
            zone_names,
            seg_zones,
        })
    }
}

/// Segment placement: VLAN map and longest-prefix match over segment
/// prefixes and endpoints, for IPv4 and IPv6, with anti-spoofing.
#[derive(Debug)]
pub struct SegmentMap {
    /// Indexed by VLAN ID (0..4096); `NO_SEG` where no segment lists it.
    vlan: Box<[SegIdx]>,
    v4: Lpm<u32>,
    v6: Lpm<u128>,
    anti_spoofing: bool,
    zone_names: Vec<String>,
    seg_zones: Box<[ZoneMask]>,
}

impl SegmentMap {
    pub(crate) fn build(
        base: &PlacementBase,
        endpoints: &[EndpointDef],
    ) -> Result<Self, CompileError> {
        let mut ep4 = Vec::new();
        let mut ep6 = Vec::new();
        for ep in endpoints {
            if ep.segment as usize >= base.segment_count {
                return Err(ModelError::EndpointSegmentOutOfRange {
                    ip: ep.ip,
                    index: ep.segment,
                    count: base.segment_count,
                }
                .into());
            }
            match ep.ip {
                IpAddr::V4(ip) => ep4.push((u32::from(ip), 32, ep.segment)),
                IpAddr::V6(ip) => ep6.push((u128::from(ip), 128, ep.segment)),
            }
        }
        // Endpoints after prefixes: at an equal /32 or /128 the endpoint wins,
        // and a later endpoint wins over an earlier one (see `reference`).
        Ok(SegmentMap {
            vlan: base.vlan.clone(),
            v4: Lpm::build(base.v4.iter().copied().chain(ep4)),
            v6: Lpm::build(base.v6.iter().copied().chain(ep6)),
            anti_spoofing: base.anti_spoofing,
            zone_names: base.zone_names.clone(),
            seg_zones: base.seg_zones.clone(),
        })
    }

    /// The bit of zone `name` in this policy, 0 when the policy names no
    /// such zone (a frame from there attaches to no zoned segment).
    pub fn zone_mask(&self, name: &str) -> ZoneMask {
        self.zone_names
            .binary_search_by(|z| z.as_str().cmp(name))
            .map_or(0, |i| 1 << i)
    }

    /// Does any segment of this policy list zones?
    #[inline]
    pub fn has_zones(&self) -> bool {
        !self.zone_names.is_empty()
    }

    /// Zone anti-spoofing: a source placed in a segment that lists zones
    /// must have entered in one of them. World is never bound.
    #[inline]
    fn zone_check(&self, seg: SegIdx, zone: Option<ZoneMask>) -> Result<SegIdx, PlaceError> {
        let Some(entered) = zone else {
            return Ok(seg);
        };
        let allowed = self.seg_zones.get(seg as usize).copied().unwrap_or(0);
        if self.anti_spoofing && seg != 0 && allowed != 0 && allowed & entered == 0 {
            return Err(PlaceError::Spoofed);
        }
        Ok(seg)
    }

    #[inline]
    fn by_vlan(&self, vlan: Option<u16>) -> Option<SegIdx> {
        let seg = self.vlan.get(usize::from(vlan?)).copied()?;
        (seg != NO_SEG).then_some(seg)
    }

    #[inline]
    fn place_src<K: AddrBits>(
        &self,
        lpm: &Lpm<K>,
        vlan: Option<u16>,
        src: K,
        zone: Option<ZoneMask>,
    ) -> Result<SegIdx, PlaceError> {
        let seg = self.place_src_by_vlan(lpm, vlan, src)?;
        self.zone_check(seg, zone)
    }

    #[inline]
    fn place_src_by_vlan<K: AddrBits>(
        &self,
        lpm: &Lpm<K>,
        vlan: Option<u16>,
        src: K,
    ) -> Result<SegIdx, PlaceError> {
        match self.by_vlan(vlan) {
            Some(by_vlan) => {
                if self.anti_spoofing {
                    if let Some(by_addr) = lpm.lookup(src) {
                        if by_addr != by_vlan && by_addr != 0 {
                            return Err(PlaceError::Spoofed);
                        }
                    }
                }
                Ok(by_vlan)
            }
            None => Ok(lpm.lookup(src).unwrap_or(0)),
        }
    }

    /// The segment listing this VLAN, if any (used by the engine's
    /// connection keys; see `bulkhead-engine`'s pipeline docs).
    #[inline]
    pub fn vlan_segment(&self, vlan: u16) -> Option<SegIdx> {
        self.by_vlan(Some(vlan))
    }

    /// Source segment of an IPv4 frame that entered in `zone` (`None`:
    /// the ingress zone is not checked, as in tests without a `zone`).
    #[inline]
    pub fn place_src_v4(
        &self,
        vlan: Option<u16>,
        src: u32,
        zone: Option<ZoneMask>,
    ) -> Result<SegIdx, PlaceError> {
        self.place_src(&self.v4, vlan, src, zone)
    }

    /// Source segment of an IPv6 frame (see [`SegmentMap::place_src_v4`]).
    #[inline]
    pub fn place_src_v6(
        &self,
        vlan: Option<u16>,
        src: u128,
        zone: Option<ZoneMask>,
    ) -> Result<SegIdx, PlaceError> {
        self.place_src(&self.v6, vlan, src, zone)
    }

    /// Destination segment of an IPv4 address.
    #[inline]
    pub fn place_dst_v4(&self, dst: u32) -> SegIdx {
        self.v4.lookup(dst).unwrap_or(0)
    }

    /// Destination segment of an IPv6 address.
    #[inline]
    pub fn place_dst_v6(&self, dst: u128) -> SegIdx {
        self.v6.lookup(dst).unwrap_or(0)
    }
}
