//! The flow-event writer thread.
//!
//! Events are written on their own thread, so a slow, stalled or failing
//! output (a full pipe, a full disk) never blocks the control loop: signals,
//! reloads and shutdown keep working.
//!
//! Invariants:
//! - The hand-off from the control loop is bounded; an event that does not
//!   fit is dropped and counted (`bulkhead_appliance_flow_events_unwritten_total`),
//!   as is every event still unwritten at exit. Each event handed off is
//!   eventually either written or counted (`in_flight` tracks the rest).
//! - Each event is rendered in full into the batch buffer before any of it
//!   is written; the output never keeps part of a line ([`EventSink`]).
//! - After a write error the writer keeps the unwritten lines and retries
//!   with back-off (100 ms doubling to 5 s) until the output takes them again
//!   (space freed); meanwhile the bounded hand-off fills and overflows into
//!   the unwritten count. At shutdown a failing output is not retried.
//! - `reopen` (SIGHUP) makes the writer open the configured path again:
//!   after log rotation renamed the file, lines go to a new file there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bulkhead_engine::events::FlowEvent;
use bulkhead_engine::handover::PolicyHandle;
use bulkhead_engine::Engine;
use tracing::{info, warn};

use crate::events::{to_json, EventSink, WriteError};

/// First pause after a failed write; doubled after each further failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts while the output keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A batch is written once it holds this much (or the hand-off is empty).
const BATCH_BYTES: usize = 256 * 1024;
/// How often an idle writer looks for a reopen request.
const IDLE_TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Shared {
    /// Events dropped at the hand-off or given up by the writer.
    lost: AtomicU64,
    /// Events handed off and not yet written or counted as lost.
    in_flight: AtomicU64,
    stopping: AtomicBool,
    reopen: AtomicBool,
}

/// The control loop's handle on the writer thread.
#[derive(Debug)]
pub struct EventWriter {
    tx: Option<SyncSender<FlowEvent>>,
    handle: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl EventWriter {
    /// Start the writer thread; at most `bound` events wait in the hand-off.
    pub fn start(
        sink: EventSink,
        node: String,
        unix_base_ns: u128,
        policy: Arc<PolicyHandle>,
        bound: usize,
    ) -> EventWriter {
        let (tx, rx) = std::sync::mpsc::sync_channel::<FlowEvent>(bound.max(1));
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            sink,
            rx,
            shared: shared.clone(),
            node,
            unix_base_ns,
            policy,
            buf: Vec::new(),
            off: 0,
            lines: 0,
        };
        let handle = match std::thread::Builder::new()
            .name("bh-events".into())
            .spawn(move || writer.run())
        {
            Ok(h) => Some(h),
            Err(e) => {
                warn!(error = %e, "cannot start the flow-event writer; events are counted as unwritten");
                None
            }
        };
        EventWriter {
            tx: handle.as_ref().map(|_| tx),
            handle,
            shared,
        }
    }

    /// Move up to `max_per_worker` events per worker queue to the writer.
    pub fn take_from(&self, engine: &Engine, max_per_worker: usize) {
        self.take_from_with(engine, max_per_worker, |_| {});
    }

    /// [`EventWriter::take_from`], also showing each event to `tee` (the
    /// management API's flow stream) before it is queued for writing.
    pub fn take_from_with(
        &self,
        engine: &Engine,
        max_per_worker: usize,
        mut tee: impl FnMut(&FlowEvent),
    ) {
        let Some(tx) = &self.tx else {
            engine.drain_events(max_per_worker, |e| {
                tee(e);
                self.shared.lost.fetch_add(1, Ordering::Relaxed);
            });
            return;
        };
        engine.drain_events(max_per_worker, |e| {
            tee(e);
            // Counted before the send so that the writer never sees it negative.
            self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(*e) {
                self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                self.shared.lost.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Open the output file again (SIGHUP, after log rotation).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::SeqCst);
        if let Some(h) = &self.handle {
            h.thread().unpark();
        }
    }

    /// Events not written so far (dropped at the hand-off or given up).
    pub fn unwritten(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Close the hand-off and wait (bounded) for the writer to drain it.
    /// Returns how many events were dropped or could not be written.
    pub fn finish(mut self, wait: Duration) -> u64 {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.tx = None;
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let deadline = Instant::now() + wait;
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                warn!("flow-event output is stalled; leaving it");
            }
        }
        // Whatever is still in flight (a stalled writer) is not written now.
        self.shared.lost.load(Ordering::SeqCst) + self.shared.in_flight.load(Ordering::SeqCst)
    }
}

/// The writer thread's state.
struct Writer {
    sink: EventSink,
    rx: Receiver<FlowEvent>,
    shared: Arc<Shared>,
    node: String,
    unix_base_ns: u128,
    policy: Arc<PolicyHandle>,
    /// Whole rendered lines; `buf[..off]` is already written.
    buf: Vec<u8>,
    off: usize,
    /// Lines in `buf[off..]`.
    lines: u64,
}

impl Writer {
    fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        // While the output fails: when it started and the loss count then.
        let mut outage: Option<(Instant, u64)> = None;
        loop {
            if self.shared.reopen.swap(false, Ordering::SeqCst) {
                self.reopen();
            }
            if self.lines == 0 {
                self.buf.clear();
                self.off = 0;
                match self.rx.recv_timeout(IDLE_TICK) {
                    Ok(e) => self.render(&e),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                while self.buf.len() < BATCH_BYTES {
                    let Ok(e) = self.rx.try_recv() else { break };
                    self.render(&e);
                }
            }
            match self.sink.write_lines(&self.buf[self.off..]) {
                Ok(()) => {
                    self.done(self.lines);
                    self.buf.clear();
                    self.off = 0;
                    backoff = MIN_BACKOFF;
                    if let Some((since, lost_before)) = outage.take() {
                        let lost = self.shared.lost.load(Ordering::Relaxed) - lost_before;
                        info!(
                            output = %self.sink.describe(),
                            outage = ?since.elapsed(),
                            unwritten = lost,
                            "flow events are written again"
                        );
                    }
                }
                Err(WriteError { written, error }) => {
                    let kept = &self.buf[self.off..self.off + written];
                    let n = kept.iter().filter(|&&b| b == b'\n').count() as u64;
                    self.off += written;
                    self.done(n);
                    if outage.is_none() {
                        warn!(
                            output = %self.sink.describe(),
                            error = %error,
                            "cannot write flow events; retrying with back-off, events that do not fit meanwhile are counted as unwritten"
                        );
                        outage = Some((Instant::now(), self.shared.lost.load(Ordering::Relaxed)));
                    }
                    if self.shared.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    self.pause(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // Shutting down: what could not be written is lost.
        let left = self.lines + self.rx.try_iter().count() as u64;
        if left > 0 {
            self.shared.lost.fetch_add(left, Ordering::SeqCst);
            self.shared.in_flight.fetch_sub(left, Ordering::SeqCst);
            warn!(output = %self.sink.describe(), events = left, "flow events left unwritten at exit");
        }
    }

    /// Render one event as a whole line at the end of the batch.
    fn render(&mut self, e: &FlowEvent) {
        let v = to_json(e, &self.node, self.unix_base_ns, &self.policy);
        let mark = self.buf.len();
        if serde_json::to_writer(&mut self.buf, &v).is_ok() {
            self.buf.push(b'\n');
            self.lines += 1;
        } else {
            self.buf.truncate(mark);
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
            self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// `n` lines were written.
    fn done(&mut self, n: u64) {
        self.lines -= n;
        self.shared.in_flight.fetch_sub(n, Ordering::Relaxed);
    }

    fn reopen(&mut self) {
        match self.sink.reopen() {
            Ok(true) => info!(output = %self.sink.describe(), "flow events file reopened"),
            Ok(false) => {}
            Err(e) => warn!(
                output = %self.sink.describe(),
                error = %e,
                "cannot reopen the flow events file; still writing to the open one"
            ),
        }
    }

    /// Wait before the next attempt; a reopen request or shutdown cuts it short.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            if self.shared.stopping.load(Ordering::SeqCst)
                || self.shared.reopen.load(Ordering::SeqCst)
            {
                return;
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::park_timeout(until - now);
        }
    }
}
