//! The ring geometry of `net_af_packet` ports, chosen from the MTU.
//!
//! DPDK 22.11's af_packet PMD (`drivers/net/af_packet/rte_eth_af_packet.c`) receives through a
//! `PACKET_MMAP` ring of `framecnt` frames of `framesz` bytes in blocks of `blocksz` bytes
//! (defaults 512, 2048 and the page size), and:
//!
//! - a frame longer than `framesz` minus the `TPACKET_V2` header (66 bytes before the MAC
//!   header of an Ethernet frame) is silently truncated by the kernel (`tpacket_rcv`), and the
//!   PMD hands the truncated frame on (`tp_snaplen`, never `tp_len`);
//! - it copies each frame into one mbuf (`eth_af_packet_rx`), and refuses at RX queue set-up
//!   a pool whose buffers hold less than `framesz` minus 32 bytes (`eth_rx_queue_setup`);
//! - it addresses RX frame `i` at `i * framesz` from the start of the ring, so frames must tile
//!   the blocks exactly (`blocksz` a multiple of `framesz`); the kernel wants `blocksz` a
//!   multiple of the page size, `framesz` a multiple of 16 and `framecnt` a multiple of the
//!   frames per block.
//!
//! bulkheadd appends `framesz=`, `blocksz=` and `framecnt=` when the devargs lack them, sized so
//! a frame of the configured MTU (with two VLAN tags) fits with one byte to spare: a frame the
//! kernel truncated is then longer than any allowed frame and is counted as `oversize` at RX.

use bulkhead_dpdk::max_frame_len;

/// The driver's device-name prefix.
pub const PREFIX: &str = "net_af_packet";
/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)`: what the PMD's `eth_rx_queue_setup`
/// subtracts from `framesz` to get the mbuf space it insists on.
pub const PMD_FRAME_HEADER: u32 = 32;
/// Offset of the MAC header of an Ethernet frame in a `TPACKET_V2` ring frame:
/// `TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - 14`.
pub const MAC_OFFSET: u32 = 66;
/// `TPACKET_ALIGNMENT`.
pub const ALIGN: u32 = 16;
/// Block sizes must be multiples of the page size (4 KiB on the platforms we ship).
pub const PAGE: u32 = 4096;
/// The PMD's default frame count.
pub const DEFAULT_FRAMECNT: u32 = 512;

/// Whether these device arguments name an af_packet port.
pub fn is_af_packet(devargs: &str) -> bool {
    crate::config::device_name(devargs).starts_with(PREFIX)
}

/// A ring geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub framesz: u32,
    pub blocksz: u32,
    pub framecnt: u32,
}

impl Geometry {
    /// The mbuf space the PMD requires (and the most it copies into one mbuf).
    pub fn frame_room(&self) -> u32 {
        self.framesz - PMD_FRAME_HEADER
    }

    /// Longest Ethernet frame the ring holds untruncated.
    pub fn max_frame(&self) -> u32 {
        self.framesz - MAC_OFFSET
    }
}

fn arg(devargs: &str, key: &str) -> Result<Option<u32>, String> {
    for kv in devargs.split(',').skip(1) {
        if let Some((k, v)) = kv.split_once('=') {
            if k.trim() == key {
                return v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{key}={v:?} is not a number"));
            }
        }
    }
    Ok(None)
}

/// The geometry for `devargs` at `mtu`: the values given, the rest chosen. Refuses a geometry
/// that cannot hold a frame of `mtu` or that the PMD or kernel would mishandle.
pub fn geometry(devargs: &str, mtu: u16) -> Result<Geometry, String> {
    let max_frame = max_frame_len(mtu);
    let needed = (max_frame + 1 + MAC_OFFSET).div_ceil(ALIGN) * ALIGN;
    let framesz = match arg(devargs, "framesz")? {
        Some(f) => f,
        None if needed <= PAGE => needed.next_power_of_two(),
        None => needed.div_ceil(PAGE) * PAGE,
    };
    let blocksz = arg(devargs, "blocksz")?.unwrap_or(framesz.max(PAGE));
    let per_block = blocksz.checked_div(framesz).unwrap_or(0);
    let framecnt = match arg(devargs, "framecnt")? {
        Some(c) => c,
        None => DEFAULT_FRAMECNT.div_ceil(per_block.max(1)) * per_block.max(1),
    };
    let g = Geometry {
        framesz,
        blocksz,
        framecnt,
    };
    if framesz % ALIGN != 0 || framesz <= MAC_OFFSET {
        return Err(format!(
            "framesz={framesz} must be a multiple of {ALIGN} above {MAC_OFFSET}"
        ));
    }
    if blocksz % PAGE != 0 || blocksz < framesz || blocksz % framesz != 0 {
        return Err(format!(
            "blocksz={blocksz} must be a multiple of the {PAGE}-byte page and of framesz={framesz}"
        ));
    }
    if framecnt == 0 || framecnt % per_block != 0 {
        return Err(format!(
            "framecnt={framecnt} must be a positive multiple of the {per_block} frames per block"
        ));
    }
    if g.max_frame() <= max_frame {
        return Err(format!(
            "framesz={framesz} holds frames of up to {} bytes; MTU {mtu} (frames of up to \
             {max_frame} bytes) needs framesz={needed} at least",
            g.max_frame()
        ));
    }
    Ok(g)
}

/// `devargs` with the geometry's missing keys appended.
pub fn with_geometry(devargs: &str, g: &Geometry) -> String {
    let mut out = devargs.to_string();
    for (key, v) in [
        ("framesz", g.framesz),
        ("blocksz", g.blocksz),
        ("framecnt", g.framecnt),
    ] {
        if matches!(arg(devargs, key), Ok(None)) {
            out.push_str(&format!(",{key}={v}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mtu_keeps_the_pmd_defaults() {
        let g = geometry("net_af_packet0,iface=veth-a", 1500).unwrap();
        assert_eq!(
            g,
            Geometry {
                framesz: 2048,
                blocksz: 4096,
                framecnt: 512
            }
        );
        assert!(g.max_frame() > max_frame_len(1500));
        assert_eq!(
            with_geometry("net_af_packet0,iface=veth-a", &g),
            "net_af_packet0,iface=veth-a,framesz=2048,blocksz=4096,framecnt=512"
        );
    }

    #[test]
    fn jumbo_frames_get_one_page_aligned_frame_per_block() {
        for mtu in [9000, 9216] {
            let g = geometry("net_af_packet0,iface=x", mtu).unwrap();
            assert_eq!((g.framesz, g.blocksz, g.framecnt), (12288, 12288, 512));
            assert!(g.max_frame() > max_frame_len(mtu));
            assert!(g.frame_room() >= g.max_frame());
        }
    }

    #[test]
    fn given_values_are_kept_and_checked() {
        let d = "net_af_packet0,iface=x,framecnt=64";
        let g = geometry(d, 1500).unwrap();
        assert_eq!(g.framecnt, 64);
        assert_eq!(
            with_geometry(d, &g),
            "net_af_packet0,iface=x,framecnt=64,framesz=2048,blocksz=4096"
        );
        let e = geometry("net_af_packet0,iface=x,framesz=2048", 9000).unwrap_err();
        assert!(e.contains("framesz=2048") && e.contains("MTU 9000"), "{e}");
        let e = geometry("net_af_packet0,iface=x,framesz=3008", 1500).unwrap_err();
        assert!(e.contains("blocksz"), "{e}");
        let e = geometry("net_af_packet0,iface=x,framecnt=3", 1500).unwrap_err();
        assert!(e.contains("framecnt=3"), "{e}");
        let e = geometry("net_af_packet0,iface=x,framesz=big", 1500).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
    }
}
