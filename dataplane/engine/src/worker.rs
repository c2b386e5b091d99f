//! The DPDK side of a worker: poll the RX queue this worker owns on every
//! port, run the burst through the [`Pipeline`], transmit survivors on the
//! paired port's TX queue, free the rest. Run to completion; no locks, no
//! allocation in the loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bulkhead_dpdk::{Eal, Mbuf, MbufBurst, RxQueue, TxQueue};

use crate::fragments::HOLD_SLOTS;
use crate::handoff::{Handoff, Mailboxes};
use crate::handover::{PolicyHandle, PolicySnapshot};
use crate::idle::{Backoff, IdleMode};
use crate::pipeline::Pipeline;
use crate::stats::{slot, EngineDrop, Fate, SharedCounters, Side};
use crate::zones::Ingress;
use crate::BURST;

/// Connection-table slots examined per loop iteration by the expiry walk.
const EXPIRE_SLICE: usize = 64;

/// The queues of one wire a worker owns: RX and TX queue `i` of both ports.
#[derive(Debug)]
pub struct WireQueues {
    pub rx: [RxQueue; 2],
    pub tx: [TxQueue; 2],
}

/// A fragment waiting for its first fragment's verdict, and where it goes.
#[derive(Debug)]
struct HeldFrame {
    mbuf: Mbuf,
    wire: usize,
    out: Side,
}

/// Everything a worker thread owns.
#[derive(Debug)]
pub struct Worker {
    pub index: usize,
    pub wires: Vec<WireQueues>,
    pub pipeline: Pipeline,
    pub policy: Arc<PolicyHandle>,
    pub shared: Arc<SharedCounters>,
    pub stop: Arc<AtomicBool>,
    pub idle: IdleMode,
    pub tsc_hz: u64,
    /// TSC value of the engine clock's zero (shared by all workers).
    pub base_tsc: u64,
    /// Hand-off rings of every worker.
    pub mailboxes: Arc<Mailboxes>,
    /// Control-plane questions about the connection table.
    pub control: crate::control::Control,
}

impl Worker {
    /// Run until `stop` is set. Returns after publishing final counters.
    pub fn run(mut self) {
        let mut held: Vec<Option<HeldFrame>> = (0..HOLD_SLOTS).map(|_| None).collect();
        let mut snap: Arc<PolicySnapshot> = self.policy.load();
        self.shared.set_generation(snap.generation);
        let mut burst: MbufBurst<BURST> = MbufBurst::new();
        let mut fates = [Fate::Forward; BURST];
        let mut backoff = Backoff::default();
        let clock = Clock::new(self.tsc_hz, self.base_tsc);
        while !self.stop.load(Ordering::Relaxed) {
            // Policy hand-over at the burst boundary.
            if self.policy.generation() != snap.generation {
                snap = self.policy.load();
                self.shared.set_generation(snap.generation);
            }
            let start = Eal::tsc();
            let now = clock.ns(start);
            let mut received = 0usize;
            for (w, wire) in self.wires.iter_mut().enumerate() {
                for side in [Side::A, Side::B] {
                    let n = wire.rx[side.index()].rx_burst(&mut burst);
                    if n == 0 {
                        continue;
                    }
                    received += n;
                    let mut frames: [&[u8]; BURST] = [&[]; BURST];
                    for (f, m) in frames.iter_mut().zip(burst.iter()) {
                        *f = m.data();
                    }
                    let ingress = Ingress {
                        wire: w as u16,
                        side,
                    };
                    self.pipeline
                        .process_burst(&snap, ingress, &frames[..n], now, &mut fates[..n]);
                    divert(
                        &mut burst,
                        &fates[..n],
                        ingress,
                        &mut held,
                        &self.mailboxes,
                        self.index,
                        &mut self.pipeline,
                    );
                    forward(
                        &mut burst,
                        &fates[..n],
                        &mut wire.tx[side.peer().index()],
                        side.peer(),
                        &mut self.pipeline,
                    );
                }
            }
            received += self.receive_handed(&snap, now, &mut held);
            self.exchange_verdicts(now);
            self.release_held(now, &mut held);
            self.pipeline.expire(&snap, now, EXPIRE_SLICE);
            if let Some((q, reply)) = self.control.next(self.index) {
                let _ = reply.send(self.answer(&snap, &q, now));
            }
            if received > 0 {
                let c = self.pipeline.counters_mut();
                c.add(slot::BUSY_CYCLES, Eal::tsc().wrapping_sub(start));
                c.add(slot::BUSY_PACKETS, received as u64);
                backoff.reset();
            } else {
                backoff.idle(self.idle);
            }
            self.shared.publish(self.pipeline.counters());
        }
        self.shared.publish(self.pipeline.counters());
    }
}

impl Worker {
    /// Answer one control-plane question from this worker's table.
    #[cold]
    fn answer(
        &mut self,
        snap: &PolicySnapshot,
        q: &crate::control::Query,
        now: u64,
    ) -> crate::control::Answer {
        use crate::control::{Answer, Query};
        match q {
            Query::Connections { filter, limit } => {
                let (list, truncated) = self.pipeline.connections(snap, filter, *limit, now);
                Answer::Connections { list, truncated }
            }
            Query::Flush { filter } => {
                Answer::Flushed(self.pipeline.flush_matching(snap, filter, now))
            }
        }
    }

    /// Run the packets other workers handed over (one at a time: they are
    /// rare), then send them on, hold, hand them further, or free them.
    fn receive_handed(
        &mut self,
        snap: &PolicySnapshot,
        now: u64,
        held: &mut [Option<HeldFrame>],
    ) -> usize {
        let mut n = 0;
        while n < BURST {
            let Some(h) = self.mailboxes.receive(self.index) else {
                break;
            };
            n += 1;
            let fate = self.pipeline.process_handed(
                snap,
                h.ingress,
                h.mbuf.data(),
                now,
                h.hops_left,
                h.origin,
            );
            let out = h.ingress.side.peer();
            let wire = usize::from(h.ingress.wire);
            match fate {
                Fate::Forward => self.send_one(wire, out, h.mbuf),
                Fate::Held(slot) => {
                    if let Some(cell) = held.get_mut(usize::from(slot)) {
                        *cell = Some(HeldFrame {
                            mbuf: h.mbuf,
                            wire,
                            out,
                        });
                    }
                }
                Fate::HandOff => {
                    let next = Handoff {
                        hops_left: self.pipeline.next_hops_left(),
                        ..h
                    };
                    if self
                        .mailboxes
                        .send(self.mailboxes.next(self.index), next)
                        .is_err()
                    {
                        self.pipeline
                            .counters_mut()
                            .drop(Fate::Engine(EngineDrop::HandoffFull));
                    }
                }
                Fate::Parse(_) | Fate::Engine(_) => drop(h.mbuf),
            }
        }
        n
    }

    /// Send first-fragment verdicts owed to other workers; apply the ones
    /// sent here.
    fn exchange_verdicts(&mut self, now: u64) {
        let mailboxes = &self.mailboxes;
        self.pipeline.take_verdicts(|to, v| {
            // A lost verdict only lets the held fragments time out.
            let _ = mailboxes.send_verdict(usize::from(to), v);
        });
        for _ in 0..BURST {
            let Some(v) = self.mailboxes.receive_verdict(self.index) else {
                break;
            };
            self.pipeline.apply_verdict(v, now);
        }
    }

    /// Transmit one frame on `wire`'s `out` port, counted.
    fn send_one(&mut self, wire: usize, out: Side, mbuf: Mbuf) {
        let Some(w) = self.wires.get_mut(wire) else {
            return;
        };
        let mut one: MbufBurst<1> = MbufBurst::new();
        let bytes = mbuf.data().len() as u64;
        if one.push(mbuf).is_err() {
            return;
        }
        let sent = w.tx[out.index()].tx_burst(&mut one);
        let c = self.pipeline.counters_mut();
        if sent == 1 {
            c.add(slot::TX_PKTS + out.index(), 1);
            c.add(slot::TX_BYTES + out.index(), bytes);
        } else {
            c.add(slot::ENGINE_DROP_BASE + EngineDrop::TxFull.index(), 1);
            one.clear();
        }
    }

    /// Transmit or free the held fragments the pipeline has decided.
    fn release_held(&mut self, now: u64, held: &mut [Option<HeldFrame>]) {
        let mut decided = [(0u16, Fate::Forward); HOLD_SLOTS];
        let mut n = 0;
        self.pipeline.release_fragments(now, |slot, fate| {
            if let Some(d) = decided.get_mut(n) {
                *d = (slot, fate);
                n += 1;
            }
        });
        for &(slot, fate) in decided.iter().take(n) {
            let Some(h) = held.get_mut(usize::from(slot)).and_then(Option::take) else {
                continue;
            };
            if fate != Fate::Forward {
                drop(h.mbuf);
                continue;
            }
            self.send_one(h.wire, h.out, h.mbuf);
        }
    }
}

/// Move the frames the pipeline holds (fragments awaiting their first) into
/// their hold slots, and hand the ones it hands off to the next worker. From
/// the back, so the indices of the frames before stay valid.
#[inline]
fn divert(
    burst: &mut MbufBurst<BURST>,
    fates: &[Fate],
    ingress: Ingress,
    held: &mut [Option<HeldFrame>],
    mailboxes: &Mailboxes,
    me: usize,
    p: &mut Pipeline,
) {
    let wire = usize::from(ingress.wire);
    let out = ingress.side.peer();
    for i in (0..fates.len().min(burst.len())).rev() {
        match fates.get(i).copied() {
            Some(Fate::Held(slot)) => {
                if let (Some(mbuf), Some(cell)) = (burst.take(i), held.get_mut(usize::from(slot))) {
                    // A slot is reused only once released.
                    *cell = Some(HeldFrame { mbuf, wire, out });
                }
            }
            Some(Fate::HandOff) => {
                if let Some(mbuf) = burst.take(i) {
                    let h = Handoff {
                        mbuf,
                        ingress,
                        hops_left: p.next_hops_left(),
                        origin: p.origin(),
                    };
                    if mailboxes.send(mailboxes.next(me), h).is_err() {
                        p.counters_mut().drop(Fate::Engine(EngineDrop::HandoffFull));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Keep the packets to forward, free the others, transmit, count what the
/// device did not take. Held frames have already left the burst.
#[inline]
fn forward(
    burst: &mut MbufBurst<BURST>,
    fates: &[Fate],
    tx: &mut TxQueue,
    out: Side,
    p: &mut Pipeline,
) {
    let mut keep = [false; BURST];
    for (k, f) in keep.iter_mut().zip(
        fates
            .iter()
            .filter(|f| !matches!(f, Fate::Held(_) | Fate::HandOff)),
    ) {
        *k = *f == Fate::Forward;
    }
    let mut i = 0;
    burst.retain_mut(|_| {
        let k = keep.get(i).copied().unwrap_or(false);
        i += 1;
        k
    });
    let mut bytes = 0u64;
    for m in burst.iter() {
        bytes += m.data().len() as u64;
    }
    let want = burst.len();
    let sent = tx.tx_burst(burst);
    let c = p.counters_mut();
    if sent < want {
        // TX never spins: free what the device did not take and count it.
        for m in burst.iter() {
            bytes -= m.data().len() as u64;
        }
        c.add(
            slot::ENGINE_DROP_BASE + EngineDrop::TxFull.index(),
            (want - sent) as u64,
        );
        burst.clear();
    }
    c.add(slot::TX_PKTS + out.index(), sent as u64);
    c.add(slot::TX_BYTES + out.index(), bytes);
}

/// TSC to nanoseconds since the worker started, read once per burst.
#[derive(Debug, Clone, Copy)]
struct Clock {
    base: u64,
    /// Nanoseconds per TSC tick as a 32.32 fixed-point number.
    mult: u128,
}

impl Clock {
    fn new(tsc_hz: u64, base: u64) -> Clock {
        let hz = tsc_hz.max(1);
        Clock {
            base,
            mult: (1_000_000_000u128 << 32) / u128::from(hz),
        }
    }
    #[inline]
    fn ns(&self, tsc: u64) -> u64 {
        ((u128::from(tsc.wrapping_sub(self.base)) * self.mult) >> 32) as u64
    }
}
