//! Ethernet ports: configuration, start/stop, per-queue RX/TX handles, stats.

use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bulkhead_dpdk_sys as sys;

use crate::af_packet::{self, KernelSockets};
use crate::eal::{Eal, EalInner};
use crate::error::{c_name, DpdkError};
use crate::mbuf::MbufBurst;
use crate::mempool::Mempool;
use crate::ring::Ring;

/// An ethdev port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// How to configure a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of RX queues (one per worker), at least 1.
    pub rx_queues: u16,
    /// Number of TX queues, at least 1.
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Spread flows over RX queues with a symmetric Toeplitz key (both directions of a
    /// connection land on the same queue), if the device supports RSS; see [`RssState`].
    pub rss_symmetric: bool,
    /// Receive frames for every destination MAC (a bump-in-the-wire needs this).
    pub promiscuous: bool,
    /// Largest IP packet (L3 MTU) the port must carry. Frames longer than
    /// [`max_frame_len`]`(mtu)`, or in more than one segment, are dropped at RX and counted
    /// ([`IngressDrops::oversize`]). The pool's buffers must hold such a frame in one segment.
    pub mtu: u16,
}

/// The Ethernet MTU DPDK and Linux default to.
pub const DEFAULT_MTU: u16 = 1500;

/// Bytes of a frame beyond its IP packet: the Ethernet header and up to two VLAN tags (QinQ).
/// DPDK strips the FCS.
pub const FRAME_OVERHEAD: u16 = 14 + 2 * 4;

/// The longest frame a port configured for `mtu` accepts.
pub const fn max_frame_len(mtu: u16) -> u32 {
    mtu as u32 + FRAME_OVERHEAD as u32
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss_symmetric: false,
            promiscuous: false,
            mtu: DEFAULT_MTU,
        }
    }
}

/// What RSS the port ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssState {
    /// Not requested.
    Disabled,
    /// Enabled with the symmetric key over these `RTE_ETH_RSS_*` hash functions.
    Enabled {
        /// The `rss_hf` bits in use.
        hash_functions: u64,
    },
    /// Requested, but the device hashes none of IP/TCP/UDP (typical of vdevs such as
    /// `net_ring`): every packet arrives on RX queue 0.
    Unsupported {
        /// The device's `flow_type_rss_offloads`.
        device_supports: u64,
    },
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s, 0 if unknown.
    pub speed_mbps: u32,
}

/// Frames a port received but no worker saw: dropped by the device, the kernel or the RX path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngressDrops {
    /// `rte_eth_stats.imissed`: the device's RX queues were full.
    pub missed: u64,
    /// `rte_eth_stats.rx_nombuf`: no mbuf to receive into.
    pub no_mbuf: u64,
    /// `rte_eth_stats.ierrors`: erroneous frames.
    pub rx_errors: u64,
    /// Longer than the port's [`max_frame_len`], or in several segments (dropped by
    /// [`RxQueue::rx_burst`]). On `net_af_packet` this includes frames the kernel truncated to
    /// the ring's frame size.
    pub oversize: u64,
    /// `net_af_packet` only: frames the kernel dropped because the socket's RX ring was full
    /// (`PACKET_STATISTICS` `tp_drops`; DPDK 22.11's PMD does not report them in `imissed`).
    pub kernel_ring: Option<u64>,
}

impl IngressDrops {
    /// Every reason with its metric label, `kernel_ring` only where the port has it.
    pub fn reasons(&self) -> Vec<(&'static str, u64)> {
        let mut v = vec![
            ("missed", self.missed),
            ("no_mbuf", self.no_mbuf),
            ("rx_errors", self.rx_errors),
            ("oversize", self.oversize),
        ];
        if let Some(k) = self.kernel_ring {
            v.push(("kernel_ring", k));
        }
        v
    }

    /// The sum over reasons.
    pub fn total(&self) -> u64 {
        self.reasons().iter().map(|(_, n)| n).sum()
    }
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because RX queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Process-wide bookkeeping: which ports a live `Port` owns, and the rings backing
/// `net_ring` ports made by `Port::from_rings` (kept alive until the port closes).
struct Registry {
    configured: Vec<u16>,
    ring_backing: Vec<(u16, Vec<Ring>)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    configured: Vec::new(),
    ring_backing: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // The registry stays consistent even if a holder panicked: every update is one push/retain.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A configured, started port. Take one [`RxQueue`]/[`TxQueue`] per worker. The device is
/// stopped and closed when the `Port` and every queue handle are dropped.
#[derive(Debug)]
pub struct Port {
    inner: Arc<PortInner>,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
    started: bool,
}

#[derive(Debug)]
struct PortInner {
    id: u16,
    name: String,
    rss: RssState,
    promiscuous: bool,
    /// Longest frame accepted at RX.
    max_frame: u32,
    /// Frames dropped at RX as oversize, per queue (written by that queue's owner only).
    rx_oversize: Vec<AtomicU64>,
    /// `net_af_packet`: the PMD's packet sockets, for kernel ring drops.
    kernel: Option<KernelSockets>,
    _pool: Mempool,
    _eal: Arc<EalInner>,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // Close and forget the port under the registry lock: closing frees the
        // port id, and `from_rings` (which allocates ids under the same lock)
        // must not be handed this id while it is still listed as configured.
        let mut reg = registry();
        // SAFETY: the last handle of a port we configured: no queue handle is polling it.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
        reg.configured.retain(|&p| p != self.id);
        reg.ring_backing.retain(|(p, _)| *p != self.id);
    }
}

/// Removes a port from `configured` if configuration fails half-way.
struct ClaimGuard {
    id: u16,
    armed: bool,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.armed {
            registry().configured.retain(|&p| p != self.id);
        }
    }
}

fn check(op: impl FnOnce() -> String, ret: i32) -> Result<(), DpdkError> {
    if ret < 0 {
        Err(DpdkError::from_ret(op(), ret))
    } else {
        Ok(())
    }
}

impl Port {
    /// The port id of the device `name` (`net_ring0`, `0000:01:00.0`, ...). A full devargs
    /// string is accepted: only the part before the first comma is the name.
    pub fn by_name(_eal: &Eal, name: &str) -> Result<PortId, DpdkError> {
        let base = name.split(',').next().unwrap_or(name).trim();
        let cname = c_name("port name", base)?;
        let mut id = 0u16;
        // SAFETY: the EAL is initialised (token); valid C string and out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(DpdkError::PortNotFound {
                name: base.to_owned(),
            });
        }
        Ok(PortId(id))
    }

    /// Create a `net_ring` port (DPDK names the device `net_ring_<name>`) whose RX queue `i` reads from `rx[i]` and whose
    /// TX queue `i` writes to `tx[i]` (`rte_eth_from_rings`). The rings stay alive until the
    /// port is closed (a port never configured keeps them for the life of the process).
    pub fn from_rings(
        _eal: &Eal,
        name: &str,
        rx: &[&Ring],
        tx: &[&Ring],
    ) -> Result<PortId, DpdkError> {
        let cname = c_name("port name", name)?;
        if rx.is_empty() || tx.is_empty() || rx.len() > 1024 || tx.len() > 1024 {
            return Err(DpdkError::InvalidConfig {
                object: format!("ring port {name:?}"),
                reason: format!(
                    "needs 1..=1024 RX and TX rings, got {} and {}",
                    rx.len(),
                    tx.len()
                ),
            });
        }
        let rx_ptrs: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_raw()).collect();
        let tx_ptrs: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_raw()).collect();
        let mut reg = registry();
        // SAFETY: the EAL is initialised; the pointer arrays hold valid rings, which we keep
        // alive below for as long as the port exists. Under the registry lock so the new port id
        // cannot be claimed before its rings are recorded.
        let ret = unsafe {
            sys::rte_eth_from_rings(
                cname.as_ptr(),
                rx_ptrs.as_ptr(),
                rx_ptrs.len() as u32,
                tx_ptrs.as_ptr(),
                tx_ptrs.len() as u32,
                Eal::socket_id() as u32,
            )
        };
        let id = u16::try_from(ret)
            .map_err(|_| DpdkError::from_rte_errno(format!("rte_eth_from_rings({name})")))?;
        let backing = rx.iter().chain(tx.iter()).map(|&r| r.clone()).collect();
        reg.ring_backing.push((id, backing));
        Ok(PortId(id))
    }

    /// Configure port `port` with `cfg`, give its RX queues buffers from `pool`, and start it.
    /// Only one live `Port` may own a port id.
    pub fn configure(
        eal: &Eal,
        port: PortId,
        cfg: &PortConfig,
        pool: &Mempool,
    ) -> Result<Port, DpdkError> {
        let id = port.0;
        // SAFETY: the EAL is initialised; any u16 may be asked about.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(DpdkError::PortNotFound {
                name: format!("port id {id}"),
            });
        }
        {
            let mut reg = registry();
            if reg.configured.contains(&id) {
                return Err(DpdkError::PortBusy { port: id });
            }
            reg.configured.push(id);
        }
        let mut claim = ClaimGuard { id, armed: true };

        let name = port_name(id)?;
        let object = || format!("port {id} ({name})");
        // SAFETY: rte_eth_dev_info is plain data; zero is a valid initial value.
        let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: valid port id and out-pointer.
        let ret = unsafe { sys::rte_eth_dev_info_get(id, &mut info) };
        check(|| format!("rte_eth_dev_info_get({})", object()), ret)?;
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues {
            return Err(DpdkError::InvalidConfig {
                object: object(),
                reason: format!(
                    "rx_queues {} must be in 1..={}",
                    cfg.rx_queues, info.max_rx_queues
                ),
            });
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::InvalidConfig {
                object: object(),
                reason: format!(
                    "tx_queues {} must be in 1..={}",
                    cfg.tx_queues, info.max_tx_queues
                ),
            });
        }

        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-NULL driver name is the PMD's static NUL-terminated string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        let max_frame = max_frame_len(cfg.mtu);
        if u32::from(pool.frame_room()) < max_frame {
            return Err(DpdkError::InvalidConfig {
                object: object(),
                reason: format!(
                    "MTU {} needs frames of up to {max_frame} bytes in one buffer; the buffers of \
                     mempool {:?} hold {}",
                    cfg.mtu,
                    pool.name(),
                    pool.frame_room()
                ),
            });
        }

        // SAFETY: rte_eth_conf is plain data; all-zero means "defaults, no offloads".
        let mut conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        let af_packet = driver == af_packet::DRIVER;
        if af_packet {
            // ethdev would refuse any MTU above 1500 (see `af_packet`): the ethdev MTU stays at
            // its default and the interface's MTU is raised instead. The frame size the PMD
            // was probed with (`framesz=`) is the caller's to choose.
            let iface = af_packet::interface_name(info.if_index).ok_or_else(|| {
                DpdkError::InvalidConfig {
                    object: object(),
                    reason: format!("no network interface with index {}", info.if_index),
                }
            })?;
            af_packet::ensure_mtu(&iface, cfg.mtu).map_err(|reason| DpdkError::InvalidConfig {
                object: object(),
                reason,
            })?;
        } else if cfg.mtu != DEFAULT_MTU {
            // The check ethdev makes in rte_eth_dev_configure, made here to name the limits.
            let overhead =
                if info.max_mtu != u16::MAX && info.max_rx_pktlen > u32::from(info.max_mtu) {
                    info.max_rx_pktlen - u32::from(info.max_mtu)
                } else {
                    14 + 4
                };
            if cfg.mtu < info.min_mtu
                || cfg.mtu > info.max_mtu
                || u32::from(cfg.mtu) + overhead > info.max_rx_pktlen
            {
                return Err(DpdkError::InvalidConfig {
                    object: object(),
                    reason: format!(
                        "the device cannot take MTU {}: it accepts {}..={} and frames of up to \
                         {} bytes",
                        cfg.mtu,
                        info.min_mtu,
                        info.max_mtu.min(
                            u16::try_from(info.max_rx_pktlen.saturating_sub(overhead))
                                .unwrap_or(u16::MAX)
                        ),
                        info.max_rx_pktlen
                    ),
                });
            }
            conf.rxmode.mtu = u32::from(cfg.mtu);
        }
        let key_len = if info.hash_key_size == 0 {
            40
        } else {
            info.hash_key_size
        };
        // Symmetric Toeplitz key: repeating 0x6d5a hashes (a, b) and (b, a) alike.
        let mut key: Vec<u8> = (0..key_len)
            .map(|i| if i % 2 == 0 { 0x6d } else { 0x5a })
            .collect();
        let rss = if cfg.rss_symmetric {
            // SAFETY: returns a constant.
            let wanted = unsafe { sys::bh_rss_hf_ip_tcp_udp() };
            let hf = wanted & info.flow_type_rss_offloads;
            if hf == 0 {
                RssState::Unsupported {
                    device_supports: info.flow_type_rss_offloads,
                }
            } else {
                conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
                // SAFETY: returns a constant.
                let rss_hash_offload = unsafe { sys::bh_rx_offload_rss_hash() };
                if info.rx_offload_capa & rss_hash_offload != 0 {
                    conf.rxmode.offloads |= rss_hash_offload;
                }
                RssState::Enabled { hash_functions: hf }
            }
        } else {
            RssState::Disabled
        };

        // SAFETY: valid port, not started by anyone else (registry claim); `conf` and the key it
        // points to live across the call (DPDK copies them).
        let ret = unsafe { sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) };
        check(|| format!("rte_eth_dev_configure({})", object()), ret)?;
        drop(key);
        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: configured port; valid out-pointers.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc) };
        check(
            || format!("rte_eth_dev_adjust_nb_rx_tx_desc({})", object()),
            ret,
        )?;
        // SAFETY: valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) } as u32;
        for q in 0..cfg.rx_queues {
            // SAFETY: configured port, q < rx_queues; NULL rxconf = driver defaults; the pool
            // outlives the port (PortInner holds a handle).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(id, q, rx_desc, socket, std::ptr::null(), pool.as_raw())
            };
            check(
                || format!("rte_eth_rx_queue_setup({}, queue {q})", object()),
                ret,
            )?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: configured port, q < tx_queues; NULL txconf = driver defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(id, q, tx_desc, socket, std::ptr::null()) };
            check(
                || format!("rte_eth_tx_queue_setup({}, queue {q})", object()),
                ret,
            )?;
        }
        if cfg.promiscuous {
            // SAFETY: configured port. Failure (e.g. -ENOTSUP on some vdevs) is reported
            // through `promiscuous()` rather than failing the port.
            unsafe { sys::rte_eth_promiscuous_enable(id) };
        }
        // SAFETY: configured port with all queues set up.
        let ret = unsafe { sys::rte_eth_dev_start(id) };
        check(|| format!("rte_eth_dev_start({})", object()), ret)?;
        // SAFETY: valid port.
        let promiscuous = unsafe { sys::rte_eth_promiscuous_get(id) } == 1;
        // The PMD opened its sockets at probe; they live until the port is closed.
        let kernel = af_packet.then(|| KernelSockets::find(info.if_index));
        claim.armed = false;
        Ok(Port {
            inner: Arc::new(PortInner {
                id,
                name,
                rss,
                promiscuous,
                max_frame,
                rx_oversize: (0..cfg.rx_queues).map(|_| AtomicU64::new(0)).collect(),
                kernel,
                _pool: pool.clone(),
                _eal: Arc::clone(&eal.inner),
            }),
            rx_taken: vec![false; usize::from(cfg.rx_queues)],
            tx_taken: vec![false; usize::from(cfg.tx_queues)],
            started: true,
        })
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        PortId(self.inner.id)
    }

    /// The device name (`net_ring0`, a PCI address, ...).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The RSS the device accepted.
    pub fn rss(&self) -> RssState {
        self.inner.rss
    }

    /// Whether promiscuous mode is on (it may be off although requested if unsupported).
    pub fn promiscuous(&self) -> bool {
        self.inner.promiscuous
    }

    /// Number of RX queues.
    pub fn rx_queue_count(&self) -> u16 {
        self.rx_taken.len() as u16
    }

    /// Number of TX queues.
    pub fn tx_queue_count(&self) -> u16 {
        self.tx_taken.len() as u16
    }

    /// The handle of RX queue `queue`; each queue can be taken once.
    pub fn rx_queue(&mut self, queue: u16) -> Result<RxQueue, DpdkError> {
        take_slot(&mut self.rx_taken, "rx", self.inner.id, queue)?;
        Ok(RxQueue {
            port: Arc::clone(&self.inner),
            port_id: self.inner.id,
            max_frame: self.inner.max_frame,
            queue,
            _not_sync: PhantomData,
        })
    }

    /// The handle of TX queue `queue`; each queue can be taken once.
    pub fn tx_queue(&mut self, queue: u16) -> Result<TxQueue, DpdkError> {
        take_slot(&mut self.tx_taken, "tx", self.inner.id, queue)?;
        Ok(TxQueue {
            port: Arc::clone(&self.inner),
            port_id: self.inner.id,
            queue,
            _not_sync: PhantomData,
        })
    }

    /// Link state, without waiting.
    pub fn link_status(&self) -> Result<LinkStatus, DpdkError> {
        // SAFETY: rte_eth_link is plain data.
        let mut link: sys::rte_eth_link = unsafe { std::mem::zeroed() };
        // SAFETY: started port we own; valid out-pointer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.inner.id, &mut link) };
        check(
            || format!("rte_eth_link_get_nowait(port {})", self.inner.id),
            ret,
        )?;
        let speed = link.link_speed;
        Ok(LinkStatus {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: if speed == sys::RTE_ETH_SPEED_NUM_UNKNOWN {
                0
            } else {
                speed
            },
        })
    }

    /// Device counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        // SAFETY: rte_eth_stats is plain data.
        let mut s: sys::rte_eth_stats = unsafe { std::mem::zeroed() };
        // SAFETY: valid port we own; valid out-pointer.
        let ret = unsafe { sys::rte_eth_stats_get(self.inner.id, &mut s) };
        check(|| format!("rte_eth_stats_get(port {})", self.inner.id), ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The longest frame this port accepts at RX.
    pub fn max_frame_len(&self) -> u32 {
        self.inner.max_frame
    }

    /// `net_af_packet`: how many of the PMD's kernel sockets were found (drops are read from
    /// them); `None` for other devices.
    pub fn kernel_sockets(&self) -> Option<usize> {
        self.inner.kernel.as_ref().map(KernelSockets::len)
    }

    /// Frames received by the device, kernel or RX path that no worker saw.
    pub fn ingress_drops(&self) -> Result<IngressDrops, DpdkError> {
        let s = self.stats()?;
        Ok(IngressDrops {
            missed: s.imissed,
            no_mbuf: s.rx_nombuf,
            rx_errors: s.ierrors,
            oversize: self
                .inner
                .rx_oversize
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum(),
            kernel_ring: self.inner.kernel.as_ref().map(KernelSockets::drops),
        })
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut a = sys::rte_ether_addr { addr_bytes: [0; 6] };
        // SAFETY: valid port; valid out-pointer.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.inner.id, &mut a) };
        check(
            || format!("rte_eth_macaddr_get(port {})", self.inner.id),
            ret,
        )?;
        Ok(a.addr_bytes)
    }

    /// Stop the device. Refused while queue handles are alive (a worker may be polling them,
    /// and DPDK forbids stopping a port under a running burst call).
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        self.no_handles_alive()?;
        if self.started {
            // SAFETY: we own the port and no queue handle exists (checked above; new handles
            // need `&mut self`).
            let ret = unsafe { sys::rte_eth_dev_stop(self.inner.id) };
            check(|| format!("rte_eth_dev_stop(port {})", self.inner.id), ret)?;
            self.started = false;
        }
        Ok(())
    }

    /// Start the device again after [`stop`](Self::stop).
    pub fn start(&mut self) -> Result<(), DpdkError> {
        self.no_handles_alive()?;
        if !self.started {
            // SAFETY: configured port we own; stopped.
            let ret = unsafe { sys::rte_eth_dev_start(self.inner.id) };
            check(|| format!("rte_eth_dev_start(port {})", self.inner.id), ret)?;
            self.started = true;
        }
        Ok(())
    }

    /// Whether the device is started.
    pub fn is_started(&self) -> bool {
        self.started
    }

    fn no_handles_alive(&self) -> Result<(), DpdkError> {
        let held = Arc::strong_count(&self.inner) - 1;
        if held > 0 {
            return Err(DpdkError::QueuesInUse {
                port: self.inner.id,
                held,
            });
        }
        Ok(())
    }
}

fn take_slot(
    taken: &mut [bool],
    kind: &'static str,
    port: u16,
    queue: u16,
) -> Result<(), DpdkError> {
    match taken.get_mut(usize::from(queue)) {
        None => Err(DpdkError::Queue {
            kind,
            port,
            queue,
            reason: "no such queue",
        }),
        Some(true) => Err(DpdkError::Queue {
            kind,
            port,
            queue,
            reason: "handle already taken",
        }),
        Some(t) => {
            *t = true;
            Ok(())
        }
    }
}

fn port_name(id: u16) -> Result<String, DpdkError> {
    let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: valid port id; the buffer has RTE_ETH_NAME_MAX_LEN bytes as the API requires.
    let ret = unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    check(|| format!("rte_eth_dev_get_name_by_port({id})"), ret)?;
    // SAFETY: DPDK wrote a NUL-terminated name into `buf`.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

/// One RX queue of a port, owned by one worker. `Send` (move it to its worker thread), not
/// `Sync`. Keeps the port open.
#[derive(Debug)]
pub struct RxQueue {
    port: Arc<PortInner>,
    port_id: u16,
    max_frame: u32,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Receive up to `burst.spare()` packets, appended to `burst`. Returns how many. Frames
    /// longer than the port's [`max_frame_len`] or in more than one segment are freed and
    /// counted instead ([`IngressDrops::oversize`]): every frame handed on is one slice.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let before = burst.len();
        let n = self.rx_raw(burst);
        let max = self.max_frame as usize;
        let fits = |m: &crate::Mbuf| m.len() <= max && m.nb_segs() == 1;
        if burst.as_slice()[before..].iter().all(fits) {
            return n;
        }
        self.drop_oversize(burst, before, n)
    }

    #[cold]
    #[inline(never)]
    fn drop_oversize<const N: usize>(
        &mut self,
        burst: &mut MbufBurst<N>,
        before: usize,
        n: usize,
    ) -> usize {
        let max = self.max_frame as usize;
        let mut i = 0usize;
        burst.retain_mut(|m| {
            let keep = i < before || (m.len() <= max && m.nb_segs() == 1);
            i += 1;
            keep
        });
        let kept = burst.len() - before;
        let slot = &self.port.rx_oversize[usize::from(self.queue)];
        // Single writer (this queue's owner): a plain add, read by stats off the hot path.
        slot.store(
            slot.load(Ordering::Relaxed) + (n - kept) as u64,
            Ordering::Relaxed,
        );
        kept
    }

    #[inline]
    fn rx_raw<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let (slots, spare) = burst.spare_raw();
        // SAFETY: this handle is the only user of (port, queue) (taken once, !Sync, &mut self);
        // the port is started (stop refuses while handles live) and open (we hold it);
        // `slots` has room for `spare <= u16::MAX` pointers.
        let n = unsafe { sys::bh_rte_eth_rx_burst(self.port_id, self.queue, slots, spare as u16) };
        // SAFETY: the driver wrote n <= spare owned mbufs.
        unsafe { burst.commit_spare(usize::from(n)) };
        usize::from(n)
    }

    /// The port id.
    pub fn port_id(&self) -> PortId {
        PortId(self.port.id)
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// One TX queue of a port, owned by one worker. `Send`, not `Sync`. Keeps the port open.
#[derive(Debug)]
pub struct TxQueue {
    port: Arc<PortInner>,
    port_id: u16,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// Send mbufs from the front of `burst`; those the device did not take stay in `burst`
    /// (retry later, or `clear()` them and count a drop). Returns how many were sent.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let (slots, len) = burst.front_raw();
        // SAFETY: as in RxQueue::rx_burst; `slots` holds `len <= u16::MAX` owned mbufs.
        let n = unsafe { sys::bh_rte_eth_tx_burst(self.port_id, self.queue, slots, len as u16) };
        // SAFETY: the driver took ownership of the first n mbufs.
        unsafe { burst.consume_front(usize::from(n)) };
        usize::from(n)
    }

    /// The port id.
    pub fn port_id(&self) -> PortId {
        PortId(self.port.id)
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}
