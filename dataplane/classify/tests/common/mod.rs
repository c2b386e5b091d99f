//! Helpers shared by the integration tests: ruleset builders and checks that
//! ask both the compiled policy and the reference evaluator.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::IpAddr;

use bulkhead_classify::{
    reference, Action, CompiledPolicy, Decision, EndpointDef, FlowQuery, Mode, PlaceError, RuleDef,
    Ruleset, SegIdx, SegmentDef, SegmentId, SegmentSet, ServiceSpec,
};

pub fn world() -> SegmentDef {
    SegmentDef {
        id: SegmentId::WORLD,
        name: "world".into(),
        vlans: vec![],
        prefixes: vec![],
        mode: Mode::Enforce,
        zones: vec![],
    }
}

pub fn seg(id: u32, name: &str, vlans: &[u16], prefixes: &[&str]) -> SegmentDef {
    SegmentDef {
        id: SegmentId(id),
        name: name.into(),
        vlans: vlans.to_vec(),
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        mode: Mode::Enforce,
        zones: vec![],
    }
}

pub fn zoned(mut seg: SegmentDef, zones: &[&str]) -> SegmentDef {
    seg.zones = zones.iter().map(|z| z.to_string()).collect();
    seg
}

pub fn monitored(mut seg: SegmentDef) -> SegmentDef {
    seg.mode = Mode::Monitor;
    seg
}

pub fn list(segs: &[SegIdx]) -> SegmentSet {
    SegmentSet::List(segs.to_vec())
}

pub fn tcp(lo: u16, hi: u16) -> ServiceSpec {
    ServiceSpec::Ports { proto: 6, lo, hi }
}

pub fn udp(lo: u16, hi: u16) -> ServiceSpec {
    ServiceSpec::Ports { proto: 17, lo, hi }
}

pub fn rule(
    name: &str,
    from: SegmentSet,
    to: SegmentSet,
    services: Vec<ServiceSpec>,
    action: Action,
) -> RuleDef {
    RuleDef {
        name: name.into(),
        from,
        to,
        services,
        action,
        log: false,
    }
}

pub fn ruleset(segments: Vec<SegmentDef>, rules: Vec<RuleDef>) -> Ruleset {
    Ruleset {
        default_action: Action::Deny,
        segments,
        endpoints: vec![],
        rules,
        anti_spoofing: true,
    }
}

pub fn endpoint(ip: &str, segment: SegIdx) -> EndpointDef {
    EndpointDef {
        ip: ip.parse().unwrap(),
        segment,
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A ruleset and its compiled form; every query asks both and asserts they agree.
pub struct Both {
    pub rs: Ruleset,
    pub cp: CompiledPolicy,
}

impl Both {
    pub fn new(rs: Ruleset) -> Both {
        let cp = CompiledPolicy::compile(&rs).unwrap();
        Both { rs, cp }
    }

    pub fn src(&self, vlan: Option<u16>, addr: &str) -> Result<SegIdx, PlaceError> {
        let addr = ip(addr);
        let want = reference::place_src(&self.rs, vlan, addr, None);
        assert_eq!(
            self.cp.place_src(vlan, addr, None),
            want,
            "place_src({vlan:?}, {addr})"
        );
        want
    }

    /// Placement of a source that entered in `zone` (`None`: in no zone).
    pub fn src_in(
        &self,
        vlan: Option<u16>,
        addr: &str,
        zone: Option<&str>,
    ) -> Result<SegIdx, PlaceError> {
        let addr = ip(addr);
        let want = reference::place_src(&self.rs, vlan, addr, Some(zone));
        let mask = zone.map_or(0, |z| self.cp.zone_mask(z));
        assert_eq!(
            self.cp.place_src(vlan, addr, Some(mask)),
            want,
            "place_src({vlan:?}, {addr}, {zone:?})"
        );
        want
    }

    pub fn dst(&self, addr: &str) -> SegIdx {
        let addr = ip(addr);
        let want = reference::place_dst(&self.rs, addr);
        assert_eq!(self.cp.place_dst(addr), want, "place_dst({addr})");
        want
    }

    pub fn decide(&self, src: SegIdx, dst: SegIdx, proto: u8, port: u16) -> Decision {
        let q = FlowQuery {
            src,
            dst,
            proto,
            port,
        };
        let want = reference::decide(&self.rs, &q);
        assert_eq!(self.cp.decide(&q), want, "decide({q:?})");
        want
    }
}
