//! Hand-off between workers, for the packets symmetric RSS does not bring
//! to the worker that owns their connection.
//!
//! Each worker owns its connection table, and the device spreads packets
//! over workers by a hash of their addresses and ports. ICMP errors and IP
//! fragments carry no ports of their own (common NICs, and the kernel's
//! fan-out for `net_af_packet`, hash them on addresses only), so they can
//! reach a worker that lacks their connection. Such a packet, when its
//! lookup misses, is handed to the next worker through a bounded ring (as
//! VPP's handoff nodes do), until a worker finds the connection or every
//! worker has looked; the last one judges it as the rules say.
//!
//! Asking the workers in turn, rather than computing the owner, works
//! whatever function the device spreads by (Toeplitz on a NIC, the kernel's
//! flow hash on `net_af_packet`, which no user-space program can
//! reproduce). It costs one ring hop per worker for the rare packets that
//! need it; everything else never leaves its worker.
//!
//! Fragments: all fragments of a datagram share their addresses, so they
//! reach one worker (the receiving worker) together. Its first fragment may
//! be handed on to the worker owning the connection; that worker judges it
//! and sends the verdict back, and the receiving worker applies it to the
//! later fragments (and releases the ones it held).

use bulkhead_dpdk::Mbuf;
use crossbeam::queue::ArrayQueue;

use crate::fragments::DatagramKey;
use crate::zones::Ingress;

/// Packets waiting at one worker's ring at most; beyond, a hand-off is
/// dropped and counted (`handoff_full`).
pub const HANDOFF_DEPTH: usize = 1024;

/// A packet handed to another worker.
#[derive(Debug)]
pub struct Handoff {
    pub mbuf: Mbuf,
    pub ingress: Ingress,
    /// Further workers it may still be handed to after this one.
    pub hops_left: u8,
    /// The worker that received it from the device (fragment verdicts go
    /// back there).
    pub origin: u16,
}

/// A first fragment's verdict, for the worker that holds its datagram's
/// later fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentVerdict {
    pub key: DatagramKey,
    pub forward: bool,
    /// Payload bytes of the first fragment.
    pub first_len: u32,
}

/// One ring of packets and one of verdicts per worker.
#[derive(Debug)]
pub struct Mailboxes {
    packets: Vec<ArrayQueue<Handoff>>,
    verdicts: Vec<ArrayQueue<FragmentVerdict>>,
}

impl Mailboxes {
    pub fn new(workers: usize) -> Mailboxes {
        Mailboxes {
            packets: (0..workers)
                .map(|_| ArrayQueue::new(HANDOFF_DEPTH))
                .collect(),
            verdicts: (0..workers)
                .map(|_| ArrayQueue::new(HANDOFF_DEPTH))
                .collect(),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.packets.len()
    }

    /// The worker after `w` in the hand-off order.
    pub fn next(&self, w: usize) -> usize {
        (w + 1) % self.packets.len().max(1)
    }

    /// Hand a packet to worker `to`; gives it back when the ring is full.
    pub fn send(&self, to: usize, h: Handoff) -> Result<(), Handoff> {
        match self.packets.get(to) {
            Some(q) => q.push(h),
            None => Err(h),
        }
    }

    /// The next packet handed to worker `w`.
    pub fn receive(&self, w: usize) -> Option<Handoff> {
        self.packets.get(w)?.pop()
    }

    /// Tell worker `to` a first fragment's verdict; false when its ring is full.
    pub fn send_verdict(&self, to: usize, v: FragmentVerdict) -> bool {
        self.verdicts.get(to).is_some_and(|q| q.push(v).is_ok())
    }

    /// The next verdict sent to worker `w`.
    pub fn receive_verdict(&self, w: usize) -> Option<FragmentVerdict> {
        self.verdicts.get(w)?.pop()
    }
}
