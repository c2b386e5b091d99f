//! What the `net_af_packet` PMD of DPDK 22.11 does not do for us, done from the kernel side.
//!
//! - MTU: the PMD reports `max_rx_pktlen = RTE_ETHER_MAX_LEN` (1518) whatever its frame size
//!   (`eth_dev_info` in `drivers/net/af_packet/rte_eth_af_packet.c`), so ethdev's
//!   `eth_dev_validate_mtu` refuses any MTU above 1500 before the PMD's own `mtu_set` (a
//!   `SIOCSIFMTU` on the interface) is reached. Its real limits are the `framesz=` devarg and the
//!   kernel interface's MTU; [`ensure_mtu`] raises the latter through sysfs, as `mtu_set` would.
//! - Drops: the PMD's `eth_stats_get` never fills `imissed`; frames the kernel could not put in
//!   a full RX ring are counted only in the socket's `PACKET_STATISTICS` (`tp_drops`).
//!   [`KernelSockets`] finds the PMD's packet sockets (bound to the port's interface) among this
//!   process's descriptors and reads that counter.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// The driver name the PMD registers.
pub(crate) const DRIVER: &str = "net_af_packet";

/// The name of the network interface with index `if_index` in this network namespace.
pub(crate) fn interface_name(if_index: u32) -> Option<String> {
    for entry in std::fs::read_dir("/sys/class/net").ok()?.flatten() {
        let idx = std::fs::read_to_string(entry.path().join("ifindex")).ok()?;
        if idx.trim().parse::<u32>().ok() == Some(if_index) {
            return Some(entry.file_name().to_string_lossy().into_owned());
        }
    }
    None
}

/// Make interface `iface` carry IP packets of `mtu` bytes: raise its MTU if lower (never lower
/// it: longer frames then reach the port and are counted as oversize rather than vanishing in
/// the kernel). Returns the MTU in force.
pub(crate) fn ensure_mtu(iface: &str, mtu: u16) -> Result<u32, String> {
    let path = format!("/sys/class/net/{iface}/mtu");
    let now: u32 = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))?;
    if now >= u32::from(mtu) {
        return Ok(now);
    }
    std::fs::write(&path, mtu.to_string()).map_err(|e| {
        format!("interface {iface} has MTU {now} and cannot be raised to {mtu}: {e}")
    })?;
    Ok(u32::from(mtu))
}

/// The PMD's packet sockets of one port, and the kernel ring drops read from them so far.
#[derive(Debug, Default)]
pub(crate) struct KernelSockets {
    fds: Vec<RawFd>,
    /// `PACKET_STATISTICS` resets on read: the running sum lives here.
    drops: AtomicU64,
}

impl KernelSockets {
    /// The `AF_PACKET` sockets of this process bound to interface `if_index`. Called after the
    /// PMD opened them (at probe); they stay open until the port is closed, which the owner of
    /// this value outlives not.
    pub(crate) fn find(if_index: u32) -> KernelSockets {
        let mut fds = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return KernelSockets::default();
        };
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<RawFd>().ok())
            else {
                continue;
            };
            let is_socket = std::fs::read_link(entry.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
            if is_socket && packet_socket_ifindex(fd) == Some(if_index) {
                fds.push(fd);
            }
        }
        KernelSockets {
            fds,
            drops: AtomicU64::new(0),
        }
    }

    /// How many sockets were found.
    pub(crate) fn len(&self) -> usize {
        self.fds.len()
    }

    /// Frames the kernel dropped because an RX ring was full, since the port started.
    pub(crate) fn drops(&self) -> u64 {
        let mut new = 0u64;
        for &fd in &self.fds {
            new += u64::from(read_tp_drops(fd));
        }
        self.drops.fetch_add(new, Ordering::Relaxed) + new
    }
}

/// The interface index a packet socket is bound to, or `None` for any other descriptor.
fn packet_socket_ifindex(fd: RawFd) -> Option<u32> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt on any descriptor is harmless (EBADF / ENOTSOCK otherwise); the
    // out-pointers are valid for `len` bytes.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret != 0 || domain != libc::AF_PACKET {
        return None;
    }
    // SAFETY: sockaddr_ll is plain data; zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `fd` is a packet socket (checked above); getsockname writes at most `len` bytes
    // into `sll`.
    let ret =
        unsafe { libc::getsockname(fd, (&mut sll as *mut libc::sockaddr_ll).cast(), &mut len) };
    if ret != 0 || i32::from(sll.sll_family) != libc::AF_PACKET {
        return None;
    }
    u32::try_from(sll.sll_ifindex).ok()
}

/// `tp_drops` of a packet socket since the last read (the kernel resets it on read).
fn read_tp_drops(fd: RawFd) -> u32 {
    // SAFETY: tpacket_stats is plain data.
    let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `fd` is one of the PMD's packet sockets, open while the port is (see `find`);
    // the kernel writes at most `len` bytes of `struct tpacket_stats` (TPACKET_V2) into `st`.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return 0;
    }
    st.tp_drops
}
