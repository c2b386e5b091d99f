//! Where frames enter: the zone of each side of each wire (optionally per
//! VLAN on it), as the appliance's configuration names them, and which zones
//! hold routers (RA guard, RFC 6105).
//!
//! Policies name zones; appliances bind them to ports, so one policy serves
//! appliances wired differently (see `spec/policy.md`, "Zone").

use crate::stats::Side;

/// The zone bindings of one side of one wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideZones {
    /// Zone of frames entering on this side (untagged, or of a VLAN not
    /// listed in `vlans`). `None`: no zone.
    pub zone: Option<String>,
    /// Per-VLAN zones on this side: `(VLAN ID, zone)`. For QinQ frames the
    /// outer VLAN is the one looked up (it names the attachment).
    pub vlans: Vec<(u16, String)>,
}

/// The zone bindings of an appliance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneConfig {
    /// Per wire, sides A and B.
    pub wires: Vec<[SideZones; 2]>,
    /// Zones router advertisements may come from.
    pub router_zones: Vec<String>,
}

/// Where one frame entered: a wire and a side of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ingress {
    pub wire: u16,
    pub side: Side,
}

impl From<Side> for Ingress {
    /// Side of the first wire (tests and single-wire set-ups).
    fn from(side: Side) -> Ingress {
        Ingress { wire: 0, side }
    }
}

impl ZoneConfig {
    /// The zone a frame entered in: the VLAN's binding on that side if any
    /// (the outer tag of a QinQ frame, else its only tag), else the side's.
    pub fn zone_of(&self, at: Ingress, outer: Option<u16>, inner: Option<u16>) -> Option<&str> {
        let side = self.wires.get(usize::from(at.wire))?.get(at.side.index())?;
        let tag = outer.or(inner);
        if let Some(t) = tag {
            if let Some((_, z)) = side.vlans.iter().find(|(v, _)| *v == t) {
                return Some(z);
            }
        }
        side.zone.as_deref()
    }

    /// May a router advertisement enter here?
    pub fn is_router_zone(&self, at: Ingress, outer: Option<u16>, inner: Option<u16>) -> bool {
        self.zone_of(at, outer, inner)
            .is_some_and(|z| self.router_zones.iter().any(|r| r == z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ZoneConfig {
        ZoneConfig {
            wires: vec![[
                SideZones {
                    zone: Some("clients".into()),
                    vlans: vec![(30, "uplink".into())],
                },
                SideZones {
                    zone: Some("servers".into()),
                    vlans: vec![],
                },
            ]],
            router_zones: vec!["uplink".into()],
        }
    }

    #[test]
    fn vlan_binding_wins_over_the_side_and_outer_tag_names_the_attachment() {
        let c = cfg();
        let a = Ingress::from(Side::A);
        assert_eq!(c.zone_of(a, None, None), Some("clients"));
        assert_eq!(c.zone_of(a, None, Some(30)), Some("uplink"));
        assert_eq!(c.zone_of(a, Some(30), Some(7)), Some("uplink"));
        assert_eq!(c.zone_of(a, Some(31), Some(30)), Some("clients"));
        assert_eq!(c.zone_of(Side::B.into(), None, Some(30)), Some("servers"));
        assert_eq!(
            c.zone_of(
                Ingress {
                    wire: 1,
                    side: Side::A
                },
                None,
                None
            ),
            None
        );
    }

    #[test]
    fn only_router_zones_may_advertise() {
        let c = cfg();
        assert!(c.is_router_zone(Side::A.into(), None, Some(30)));
        assert!(!c.is_router_zone(Side::A.into(), None, None));
        assert!(!ZoneConfig::default().is_router_zone(Side::A.into(), None, None));
    }
}
